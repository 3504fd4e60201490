// presence.mjs — the presence view of a channel: applies presence_state and presence_diff
// and reports joins, leaves and syncs.
//
// For: `Tether.Presence`, the same API and semantics as phoenix.js's Presence
// (tests/node/tether_presence.test.mjs compares both on random event sequences).
// Never: pushes anything, touches the socket or the DOM; it only listens to the channel it
// was given.

// The presence view of a channel: applies presence_state and presence_diff; diffs that
// arrive before the state of the current join are held until it comes.
export class Presence {
  constructor(channel, options = {}) {
    const events = options.events || { state: "presence_state", diff: "presence_diff" };
    this.state = Object.create(null);
    this.pendingDiffs = [];
    this.joinRef = null;
    this.channel = channel;
    this.callbacks = { join: () => {}, leave: () => {}, sync: () => {} };
    channel.on(events.state, (newState) => {
      this.joinRef = channel.joinRef;
      this.state = Presence.syncState(this.state, newState, this.callbacks.join, this.callbacks.leave);
      for (const diff of this.pendingDiffs) {
        this.state = Presence.syncDiff(this.state, diff, this.callbacks.join, this.callbacks.leave);
      }
      this.pendingDiffs = [];
      this.callbacks.sync();
    });
    channel.on(events.diff, (diff) => {
      if (this.inPendingSyncState()) {
        this.pendingDiffs.push(diff);
      } else {
        this.state = Presence.syncDiff(this.state, diff, this.callbacks.join, this.callbacks.leave);
        this.callbacks.sync();
      }
    });
  }

  onJoin(callback) { this.callbacks.join = callback; }
  onLeave(callback) { this.callbacks.leave = callback; }
  onSync(callback) { this.callbacks.sync = callback; }

  list(chooser) {
    return Presence.list(this.state, chooser);
  }

  inPendingSyncState() {
    return !this.joinRef || this.joinRef !== this.channel.joinRef;
  }

  static refs(metas) {
    return new Set(metas.map((m) => m.phx_ref));
  }

  // Replaces `current` by `next`, reporting what joined and left per key.
  static syncState(current, next, onJoin, onLeave) {
    const state = Presence.clone(current);
    // Null-prototype maps: a key such as "__proto__" is just a key.
    const joins = Object.create(null);
    const leaves = Object.create(null);
    for (const key of Object.keys(state)) {
      if (!Object.prototype.hasOwnProperty.call(next, key)) leaves[key] = state[key];
    }
    for (const key of Object.keys(next)) {
      const nextEntry = next[key];
      const currentEntry = state[key];
      if (!currentEntry) {
        joins[key] = nextEntry;
        continue;
      }
      const nextRefs = Presence.refs(nextEntry.metas);
      const currentRefs = Presence.refs(currentEntry.metas);
      const joined = nextEntry.metas.filter((m) => !currentRefs.has(m.phx_ref));
      const left = currentEntry.metas.filter((m) => !nextRefs.has(m.phx_ref));
      if (joined.length > 0) joins[key] = { ...nextEntry, metas: joined };
      if (left.length > 0) leaves[key] = { ...currentEntry, metas: left };
    }
    return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
  }

  // Applies a diff: joins first, then leaves. A joined meta replaces a known meta with the
  // same ref; leaves of unknown refs are ignored; a key with no metas left is removed.
  // Callbacks get the diff's own entry, as phoenix.js does.
  static syncDiff(current, diff, onJoin, onLeave) {
    const state = Presence.clone(current);
    const joins = diff.joins || {};
    const leaves = diff.leaves || {};
    for (const key of Object.keys(joins)) {
      const entry = joins[key];
      const before = state[key];
      const joinedRefs = Presence.refs(entry.metas || []);
      const kept = before ? before.metas.filter((m) => !joinedRefs.has(m.phx_ref)) : [];
      state[key] = { ...entry, metas: kept.concat(entry.metas || []) };
      if (onJoin) onJoin(key, before, entry);
    }
    for (const key of Object.keys(leaves)) {
      const before = state[key];
      if (!before) continue;
      const gone = Presence.refs(leaves[key].metas || []);
      const remaining = { ...before, metas: before.metas.filter((m) => !gone.has(m.phx_ref)) };
      state[key] = remaining;
      if (onLeave) onLeave(key, remaining, leaves[key]);
      if (remaining.metas.length === 0) delete state[key];
    }
    return state;
  }

  static list(state, chooser) {
    const choose = chooser || ((key, entry) => entry);
    return Object.keys(state).map((key) => choose(key, state[key]));
  }

  static clone(state) {
    const out = Object.create(null);
    for (const key of Object.keys(state)) out[key] = { ...state[key], metas: state[key].metas.slice() };
    return out;
  }
}
