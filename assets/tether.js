// tether.js — the browser client of tether: a socket speaking Phoenix Channels V2 JSON,
// channels, and a presence view. Our own code; it interoperates with servers that speak
// the same protocol as the official phoenix.js client.
//
// Classic script: it defines `window.Tether = { Socket, Channel, Presence, page }`. Loaded by
// a commander's page (a script tag with data-tether-token), it also runs that page.
//
//   const socket = new Tether.Socket("/socket", { params: { user_id: "alice" } });
//   socket.connect();
//   const room = socket.channel("room:lobby", {});
//   const presence = new Tether.Presence(room);
//   presence.onSync(() => render(presence.list((key, { metas }) => [key, metas.length])));
//   room.join().receive("ok", () => {});
(function (global) {
  "use strict";

  const VSN = "2.0.0";
  const HEARTBEAT_MS = 30000;
  const PUSH_TIMEOUT_MS = 10000;
  // Reconnect and rejoin backoff, with jitter so a server restart is not a thundering herd.
  const BACKOFF_MS = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];

  function backoff(tries) {
    const base = BACKOFF_MS[Math.min(tries, BACKOFF_MS.length) - 1] || BACKOFF_MS[0];
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  // A push waiting for its reply.
  class Push {
    constructor(channel, event, payload, timeout) {
      this.channel = channel;
      this.event = event;
      this.payload = payload;
      this.timeout = timeout;
      this.ref = null;
      this.reply = null;
      this.hooks = [];
      this.timer = null;
    }

    receive(status, callback) {
      if (this.reply && this.reply.status === status) callback(this.reply.response);
      this.hooks.push({ status, callback });
      return this;
    }

    send() {
      this.reply = null;
      this.ref = this.channel.socket.makeRef();
      // A join's ref is the channel's join ref from now on.
      if (this.event === "phx_join") this.channel.joinRef = this.ref;
      this.channel.socket.pending.set(this.ref, this);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.settle("timeout", {}), this.timeout);
      this.channel.socket.send([this.channel.joinRef, this.ref, this.channel.topic, this.event, this.payload]);
    }

    settle(status, response) {
      clearTimeout(this.timer);
      this.channel.socket.pending.delete(this.ref);
      this.reply = { status, response };
      for (const hook of this.hooks) if (hook.status === status) hook.callback(response);
    }

    cancel() {
      clearTimeout(this.timer);
      this.channel.socket.pending.delete(this.ref);
    }
  }

  class Channel {
    constructor(socket, topic, params) {
      this.socket = socket;
      this.topic = topic;
      this.params = params || {};  // an object, or a function returning one
      this.state = "closed"; // closed | joining | joined | errored | leaving
      this.joinRef = null;
      this.bindings = [];
      this.joinPush = null;
      this.rejoinTries = 0;
      this.rejoinTimer = null;
    }

    // Joins (once); the returned push resolves with "ok", "error" or "timeout".
    join(timeout = PUSH_TIMEOUT_MS) {
      if (this.joinPush) throw new Error("tether: join() may be called once per channel");
      this.joinPush = new Push(this, "phx_join", this.params, timeout);
      this.joinPush.receive("ok", () => {
        this.state = "joined";
        this.rejoinTries = 0;
      });
      this.joinPush.receive("error", () => this.scheduleRejoin());
      this.joinPush.receive("timeout", () => this.scheduleRejoin());
      this.sendJoin();
      return this.joinPush;
    }

    sendJoin() {
      clearTimeout(this.rejoinTimer);
      if (!this.socket.isConnected()) {
        this.state = "errored"; // joined when the socket opens
        return;
      }
      this.state = "joining";
      // Params may be a function, evaluated at every (re)join.
      this.joinPush.payload = typeof this.params === "function" ? this.params() : this.params;
      this.joinPush.send();
    }

    scheduleRejoin() {
      if (this.state === "leaving" || this.state === "closed") return;
      this.state = "errored";
      this.rejoinTries += 1;
      clearTimeout(this.rejoinTimer);
      this.rejoinTimer = setTimeout(() => this.sendJoin(), backoff(this.rejoinTries));
    }

    on(event, callback) {
      this.bindings.push({ event, callback });
    }

    off(event) {
      this.bindings = this.bindings.filter((b) => b.event !== event);
    }

    push(event, payload, timeout = PUSH_TIMEOUT_MS) {
      if (this.state !== "joined") throw new Error(`tether: push "${event}" before joining ${this.topic}`);
      const push = new Push(this, event, payload || {}, timeout);
      push.send();
      return push;
    }

    leave(timeout = PUSH_TIMEOUT_MS) {
      clearTimeout(this.rejoinTimer);
      this.state = "leaving";
      const push = new Push(this, "phx_leave", {}, timeout);
      const close = () => {
        this.state = "closed";
        this.trigger("phx_close", {});
        this.socket.remove(this);
      };
      push.receive("ok", close).receive("timeout", close);
      if (this.socket.isConnected()) push.send();
      else close();
      return push;
    }

    // A frame for this topic arrived; frames of an older join are dropped.
    dispatch(joinRef, event, payload) {
      if (joinRef && joinRef !== this.joinRef) return;
      if (event === "phx_close") {
        // The server ended this join for good.
        clearTimeout(this.rejoinTimer);
        this.state = "closed";
        this.socket.remove(this);
      } else if (event === "phx_error") {
        this.scheduleRejoin();
      }
      this.trigger(event, payload);
    }

    trigger(event, payload) {
      for (const binding of this.bindings) if (binding.event === event) binding.callback(payload);
    }

    // The socket dropped: joined channels rejoin when it comes back.
    socketLost() {
      if (this.state === "joined" || this.state === "joining") this.state = "errored";
      if (this.joinPush && this.joinPush.ref) this.joinPush.cancel();
    }

    socketOpened() {
      if (this.joinPush && this.state === "errored") {
        this.rejoinTries = 0;
        this.sendJoin();
      }
    }
  }

  class Socket {
    constructor(endpoint, options = {}) {
      this.endpoint = endpoint;
      this.params = options.params || {};
      this.heartbeatMs = options.heartbeatIntervalMs || HEARTBEAT_MS;
      this.channels = [];
      this.pending = new Map();
      this.ref = 0;
      this.conn = null;
      this.tries = 0;
      this.closedByUser = false;
      this.heartbeatTimer = null;
      this.heartbeatRef = null;
      this.reconnectTimer = null;
      this.callbacks = { open: [], close: [], error: [], message: [] };
    }

    onOpen(callback) { this.callbacks.open.push(callback); }
    onClose(callback) { this.callbacks.close.push(callback); }
    onError(callback) { this.callbacks.error.push(callback); }
    onMessage(callback) { this.callbacks.message.push(callback); }

    url() {
      const base = this.endpoint.startsWith("ws")
        ? this.endpoint
        : `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${this.endpoint}`;
      const params = typeof this.params === "function" ? this.params() : this.params;
      const query = new URLSearchParams({ ...params, vsn: VSN });
      return `${base}/websocket?${query}`;
    }

    makeRef() {
      this.ref += 1;
      return String(this.ref);
    }

    isConnected() {
      return this.conn !== null && this.conn.readyState === WebSocket.OPEN;
    }

    connect() {
      this.closedByUser = false;
      if (this.conn) return;
      const conn = new WebSocket(this.url());
      this.conn = conn;
      conn.onopen = () => {
        this.tries = 0;
        this.startHeartbeat();
        for (const cb of this.callbacks.open) cb();
        for (const channel of this.channels) channel.socketOpened();
      };
      conn.onerror = (error) => {
        for (const cb of this.callbacks.error) cb(error);
      };
      conn.onmessage = (event) => this.receive(event.data);
      conn.onclose = (event) => this.closed(conn, event);
    }

    disconnect(code = 1000) {
      this.closedByUser = true;
      clearTimeout(this.reconnectTimer);
      if (this.conn) this.conn.close(code);
    }

    closed(conn, event) {
      if (conn !== this.conn) return;
      this.conn = null;
      clearInterval(this.heartbeatTimer);
      this.heartbeatRef = null;
      for (const push of [...this.pending.values()]) push.cancel();
      for (const channel of this.channels) channel.socketLost();
      for (const cb of this.callbacks.close) cb(event);
      // 1000 is a deliberate close; anything else means "come back".
      if (!this.closedByUser && event.code !== 1000) {
        this.tries += 1;
        this.reconnectTimer = setTimeout(() => this.connect(), backoff(this.tries));
      }
    }

    startHeartbeat() {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = setInterval(() => {
        if (this.heartbeatRef) {
          // The previous heartbeat was never answered: the connection is dead.
          this.heartbeatRef = null;
          if (this.conn) this.conn.close(4000, "heartbeat timeout");
          return;
        }
        this.heartbeatRef = this.makeRef();
        this.send([null, this.heartbeatRef, "phoenix", "heartbeat", {}]);
      }, this.heartbeatMs);
    }

    send(frame) {
      if (this.isConnected()) this.conn.send(JSON.stringify(frame));
    }

    channel(topic, params) {
      const channel = new Channel(this, topic, params);
      this.channels.push(channel);
      return channel;
    }

    remove(channel) {
      this.channels = this.channels.filter((c) => c !== channel);
    }

    receive(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (_) {
        return;
      }
      if (!Array.isArray(frame) || frame.length !== 5) return;
      const [joinRef, ref, topic, event, payload] = frame;
      for (const cb of this.callbacks.message) cb({ join_ref: joinRef, ref, topic, event, payload });
      if (event === "phx_reply") {
        if (topic === "phoenix" && ref === this.heartbeatRef) this.heartbeatRef = null;
        const push = ref && this.pending.get(ref);
        if (push) push.settle(payload.status, payload.response);
      }
      for (const channel of this.channels) {
        if (channel.topic === topic) channel.dispatch(joinRef, event, payload);
      }
    }
  }

  // The presence view of a channel: applies presence_state and presence_diff; diffs that
  // arrive before the state of the current join are held until it comes.
  class Presence {
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

  // ---------------------------------------------------------------------------------------
  // Pages driven by a commander. The server renders
  //   <script src="/tether.js" data-tether-socket=… data-tether-commander=… data-tether-token=…>
  // and this part joins the page channel, applies patches, binds DOM events (attributes
  // tether-click, tether-change, tether-input, tether-submit, tether-keyup, tether-keydown)
  // and keeps the signed browser id and the encrypted store in localStorage.

  const EVENTS = ["click", "change", "input", "submit", "keyup", "keydown"];
  const FORBIDDEN_PROPS = new Set(["__proto__", "prototype", "constructor"]);

  function storage() {
    try {
      const probe = "tether_probe";
      global.localStorage.setItem(probe, probe);
      global.localStorage.removeItem(probe);
      return global.localStorage;
    } catch (_) {
      const memory = new Map(); // private mode: keep it for this page only
      return {
        getItem: (k) => (memory.has(k) ? memory.get(k) : null),
        setItem: (k, v) => memory.set(k, String(v)),
        removeItem: (k) => memory.delete(k),
      };
    }
  }

  function report(what, reason) {
    console.warn(`tether: ${what}: ${reason}`);
    document.dispatchEvent(new CustomEvent("tether:error", { detail: { what, reason } }));
  }

  // The same rules the server applies to every patch (Patch::check): script only when the
  // join reply said exec_js is on, and no plain value into a property that would parse it
  // as markup or script (only an `html` value, which the server sends for Html, may go there).
  const MARKUP_PROPS = new Set(["innerhtml", "outerhtml", "srcdoc"]);
  const URL_PROPS = new Set(["href", "src", "action", "formaction"]);

  function isScriptUrl(value) {
    const scheme = String(value).replace(/[\u0000-\u0020\u007f]/g, "").slice(0, 11).toLowerCase();
    return scheme.startsWith("javascript:") || scheme.startsWith("vbscript:");
  }

  // Why `patch` must not be applied, or null.
  function refusal(patch, execJs) {
    if (patch.op === "js") return execJs ? null : "script patches are disabled (exec_js)";
    if (patch.op !== "prop") return null;
    const prop = String(patch.prop);
    if (FORBIDDEN_PROPS.has(prop)) return `property ${prop} is forbidden`;
    if (patch.html != null) return null;
    const lower = prop.toLowerCase();
    if (MARKUP_PROPS.has(lower) || lower.startsWith("on")) return `property ${prop} takes only Html`;
    if (URL_PROPS.has(lower) && typeof patch.value === "string" && isScriptUrl(patch.value)) {
      return `property ${prop} takes only Html`;
    }
    return null;
  }

  function applyPatch(patch, execJs) {
    const refused = refusal(patch, execJs);
    if (refused) {
      report("patch", refused);
      return;
    }
    if (patch.op === "js") {
      (0, eval)(patch.js);
      return;
    }
    let elements;
    try {
      elements = document.querySelectorAll(patch.sel);
    } catch (_) {
      report("patch", `invalid selector ${patch.sel}`);
      return;
    }
    for (const el of elements) {
      switch (patch.op) {
        case "html": el.innerHTML = patch.html; break;
        case "text": el.textContent = patch.text; break;
        case "prop": el[patch.prop] = patch.html != null ? patch.html : patch.value; break;
        case "insert":
          if (patch.html != null) el.insertAdjacentHTML(patch.position, patch.html);
          else el.insertAdjacentText(patch.position, patch.text);
          break;
        case "remove": el.remove(); break;
        default: report("patch", `unknown op ${patch.op}`);
      }
    }
  }

  function formValues(form) {
    const values = {};
    if (!form) return values;
    for (const field of form.elements) {
      const name = field.name || field.id;
      if (!name || field.disabled) continue;
      if ((field.type === "checkbox" || field.type === "radio") && !field.checked) continue;
      if (field.type === "select-multiple") {
        values[name] = [...field.selectedOptions].map((o) => o.value);
      } else if (field.type !== "button" && field.type !== "submit") {
        values[name] = field.value;
      }
    }
    return values;
  }

  function describe(el, event) {
    const form = el.tagName === "FORM" ? el : el.form || el.closest("form");
    return {
      id: el.id || "",
      name: el.getAttribute("name") || "",
      value: "value" in el && el.value != null ? String(el.value) : "",
      dataset: { ...el.dataset },
      form: formValues(form),
      event: { type: event.type, key: event.key || "" },
    };
  }

  function startPage(script) {
    const store = storage();
    const { tetherSocket, tetherCommander, tetherToken } = script.dataset;
    const socket = new Socket(tetherSocket);
    let onload = true;
    let topicsToken = null; // signed runtime topics, sent back when rejoining
    const channel = socket.channel(`tether:page:${tetherCommander}`, () => ({
      token: tetherToken,
      browser_id: store.getItem("tether_browser_id"),
      store: store.getItem("tether_store"),
      onload,
      topics: topicsToken,
      counters: [...new Set([...document.querySelectorAll("[data-tether-topic]")].map((e) => e.dataset.tetherTopic))],
    }));
    let execJs = false; // until a join reply says otherwise
    const apply = (patch) => applyPatch(patch, execJs);
    channel.on("patch", apply);
    channel.on("store", ({ token }) => store.setItem("tether_store", token));
    channel.on("topics", ({ token }) => { topicsToken = token; });
    channel.on("error", ({ callback, reason }) => report(callback, reason));
    // This socket carries only this page: the server subscribed it to the page's topics, so
    // broadcasts on them (which may arrive even before the join reply) apply as they come.
    socket.onMessage(({ topic, event, payload }) => {
      if (topic === channel.topic) return;
      if (event === "patch") apply(payload);
      if (event === "count") {
        for (const el of document.querySelectorAll("[data-tether-topic]")) {
          if (el.dataset.tetherTopic === payload.topic) el.textContent = String(payload[el.dataset.tetherCount]);
        }
      }
    });
    channel.join()
      .receive("ok", (reply) => {
        onload = false;
        execJs = reply.exec_js === true;
        store.setItem("tether_browser_id", reply.browser_id);
        if (reply.store_rejected) store.removeItem("tether_store");
        document.documentElement.dataset.tether = "connected";
      })
      .receive("error", (reply) => report("join", reply.reason));
    socket.onClose(() => { document.documentElement.dataset.tether = "disconnected"; });
    for (const type of EVENTS) {
      document.addEventListener(type, (event) => {
        const el = event.target instanceof Element ? event.target.closest(`[tether-${type}]`) : null;
        if (!el) return;
        if (type === "submit") event.preventDefault();
        const handler = el.getAttribute(`tether-${type}`);
        if (channel.state !== "joined") {
          report(handler, "not connected");
          return;
        }
        channel.push("event", { handler, sender: describe(el, event) })
          .receive("error", (reply) => report(handler, reply.reason))
          .receive("timeout", () => report(handler, "timeout"));
      }, true);
    }
    socket.connect();
    return { socket, channel };
  }

  const script = typeof document !== "undefined" ? document.currentScript : null;
  let page = null;
  if (script && script.dataset.tetherToken) {
    page = startPage(script);
  }

  global.Tether = { Socket, Channel, Presence, page, refusal };
})(typeof window !== "undefined" ? window : globalThis);
