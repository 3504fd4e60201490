// tether.js's Presence against the official phoenix.js Presence: fed the same presence_state
// and presence_diff events (including diffs that arrive before the state, updates, leaves of
// unknown refs), both must end with the same view and report the same joins and leaves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Presence as PhoenixPresence } from "phoenix";

const require = createRequire(import.meta.url);
require("../../assets/tether.js");
const TetherPresence = globalThis.Tether.Presence;

// A stand-in channel: just enough for both Presence classes (event bindings and a join ref).
function fakeChannel() {
  const bindings = [];
  return {
    joinRef: "1",
    on(event, callback) { bindings.push({ event, callback }); return bindings.length; },
    off() {},
    emit(event, payload) { for (const b of bindings) if (b.event === event) b.callback(payload); },
  };
}

function watch(PresenceClass) {
  const channel = fakeChannel();
  // phoenix.js reads the join ref through a method; tether.js through a property.
  channel.joinRef = Object.assign(() => "1", { toString: () => "1" });
  const presence = new PresenceClass(channel);
  const events = [];
  presence.onJoin((key, current, joined) => events.push(`join ${key} ${joined.metas.map((m) => m.phx_ref).join(",")}`));
  presence.onLeave((key, current, left) => events.push(`leave ${key} ${left.metas.map((m) => m.phx_ref).join(",")}`));
  presence.onSync(() => events.push("sync"));
  return { channel, presence, events };
}

const view = (presence) =>
  presence.list((key, { metas }) => `${key}:${metas.map((m) => `${m.phx_ref}${m.status ? "/" + m.status : ""}`).sort().join(",")}`).sort();

// A deterministic pseudo-random generator, so a failure can be replayed.
function rng(seed) {
  let x = seed;
  return () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
}

function scenario(seed) {
  const random = rng(seed);
  const live = new Map(); // ref -> {key, meta}
  let next = 0;
  const steps = [];
  const meta = (ref, extra = {}) => ({ phx_ref: ref, online_at: "1", ...extra });
  const diff = () => {
    const joins = {};
    const leaves = {};
    const n = 1 + Math.floor(random() * 3);
    for (let i = 0; i < n; i++) {
      const roll = random();
      if (roll < 0.5 || live.size === 0) {
        const key = ["alice", "bob", "carol", "dave"][Math.floor(random() * 4)];
        const ref = `r${next++}`;
        live.set(ref, { key, meta: meta(ref) });
        (joins[key] ||= { metas: [] }).metas.push(meta(ref));
      } else if (roll < 0.8) {
        const ref = [...live.keys()][Math.floor(random() * live.size)];
        const { key, meta: old } = live.get(ref);
        live.delete(ref);
        (leaves[key] ||= { metas: [] }).metas.push(old);
      } else {
        // an update: new ref joins (with phx_ref_prev), old ref leaves
        const ref = [...live.keys()][Math.floor(random() * live.size)];
        const { key, meta: old } = live.get(ref);
        live.delete(ref);
        const fresh = `r${next++}`;
        const updated = meta(fresh, { phx_ref_prev: ref, status: "away" });
        live.set(fresh, { key, meta: updated });
        (joins[key] ||= { metas: [] }).metas.push(updated);
        (leaves[key] ||= { metas: [] }).metas.push(old);
      }
    }
    return { joins, leaves };
  };
  const state = () => {
    const out = {};
    for (const { key, meta: m } of live.values()) (out[key] ||= { metas: [] }).metas.push(m);
    return JSON.parse(JSON.stringify(out));
  };
  // Some diffs before the state (buffered by both clients), the state, then more diffs.
  const before = Math.floor(random() * 3);
  const pending = [];
  for (let i = 0; i < before; i++) pending.push(["presence_diff", diff()]);
  steps.push(...pending);
  steps.push(["presence_state", state()]);
  for (let i = 0; i < 8; i++) steps.push(["presence_diff", diff()]);
  return steps;
}

test("tether.js Presence behaves like phoenix.js Presence on 200 random event sequences", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const ours = watch(TetherPresence);
    const theirs = watch(PhoenixPresence);
    for (const [event, payload] of scenario(seed)) {
      ours.channel.emit(event, JSON.parse(JSON.stringify(payload)));
      theirs.channel.emit(event, JSON.parse(JSON.stringify(payload)));
      assert.deepEqual(view(ours.presence), view(theirs.presence), `seed ${seed}, after ${event}`);
    }
    assert.deepEqual(ours.events, theirs.events, `seed ${seed}: callbacks`);
  }
});

test("a key named __proto__ is just a key (no prototype pollution)", () => {
  const { channel, presence } = watch(TetherPresence);
  channel.emit("presence_state", JSON.parse('{"__proto__": {"metas": [{"phx_ref": "p1"}]}}'));
  channel.emit("presence_diff", JSON.parse('{"joins": {"__proto__": {"metas": [{"phx_ref": "p2"}]}}, "leaves": {}}'));
  assert.deepEqual(view(presence), ["__proto__:p1,p2"]);
  assert.equal({}.metas, undefined, "Object.prototype untouched");
});

test("diffs received before the state are applied after it, in order", () => {
  const { channel, presence, events } = watch(TetherPresence);
  channel.emit("presence_diff", { joins: { bob: { metas: [{ phx_ref: "b1" }] } }, leaves: {} });
  assert.deepEqual(view(presence), [], "nothing shown before the state");
  assert.deepEqual(events, []);
  channel.emit("presence_state", { alice: { metas: [{ phx_ref: "a1" }] } });
  assert.deepEqual(view(presence), ["alice:a1", "bob:b1"]);
  assert.deepEqual(events, ["join alice a1", "join bob b1", "sync"]);
});
