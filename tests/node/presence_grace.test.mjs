// Leave grace (`[presence] leave_grace_ms`, env TETHER_PRESENCE_LEAVE_GRACE_MS) with the
// official phoenix.js client against the presence_chat example: a connection that drops
// abruptly and comes back within the grace is never seen leaving; one that stays away leaves
// exactly once, when the grace ends. Across two nodes (the reconnect lands on the other one),
// the key is never seen leaving either.
//
// The waits of GRACE_MS below are the scenario (reconnect "within the grace", "after it"),
// not synchronization: every observation is awaited on an event, and the end of each
// observation window is marked by a sentinel join the watcher must see first.

import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { Presence } from "phoenix";
import {
  Inbox,
  TEST_OPTS,
  cleanup,
  join,
  phxSocket,
  server,
  startExample,
  startRedis,
  startServer,
  stopExtras,
  stopRedis,
  stopServer,
} from "./support.mjs";

const GRACE_MS = 1500;

// These tests are about the grace itself, with connections that drop moments after they
// joined: the bound that gives no grace to entries tracked less than
// `presence.grace_min_age_ms` (5 s by default) before the drop is turned off for them
// (tests/presence.rs tests that bound).
const CONFIG_DIR = mkdtempSync(joinPath(tmpdir(), "tether-grace-"));
const CONFIG = joinPath(CONFIG_DIR, "tether.toml");
writeFileSync(CONFIG, "[presence]\ngrace_min_age_ms = 0\n");
after(() => rmSync(CONFIG_DIR, { recursive: true, force: true }));
const OPTS = { timeout: 40_000 };

/** A watcher on `topic`: every presence_diff in an inbox, and the synced phoenix Presence. */
async function watch(port, topic) {
  const socket = await phxSocket("watcher", { port });
  const channel = socket.channel(topic, {});
  const diffs = new Inbox(`presence_diff on ${topic}`);
  const presence = new Presence(channel);
  const present = []; // snapshots of the keys after every sync
  const synced = new Inbox(`presence syncs on ${topic}`);
  presence.onSync(() => {
    present.push(presence.list((key) => key).sort());
    synced.push(true);
  });
  channel.on("presence_diff", (diff) => diffs.push(diff));
  await join(channel);
  await synced.next(); // the watcher's presence_state: later joins come as diffs
  return { socket, channel, diffs, presence, present };
}

/** Waits for the diff that mentions `key` (joins or leaves), skipping others. */
async function diffFor(diffs, key, ms = 5_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const diff = await diffs.next(Math.max(1, deadline - Date.now()));
    if (key in diff.joins || key in diff.leaves) return diff;
  }
}

/** Cuts a phoenix socket's TCP connection without a close frame (a network loss). */
function cut(socket) {
  socket.conn._socket.destroy();
}

/** Every diff seen up to (not including) the first one mentioning `sentinel`. */
async function diffsUntil(diffs, sentinel, ms = 10_000) {
  const seen = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const diff = await diffs.next(Math.max(1, deadline - Date.now()));
    if (sentinel in diff.joins) return seen;
    seen.push(diff);
  }
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

describe("leave grace on one node", () => {
  afterEach(cleanup);
  after(async () => {
    if (server.proc) await stopServer();
  });

  test("start", TEST_OPTS, async () => {
    await startServer("presence_chat", {
      TETHER_PRESENCE_LEAVE_GRACE_MS: String(GRACE_MS),
      TETHER_CONFIG: CONFIG,
    });
  });

  test("an abrupt disconnect and a reconnect within the grace: the watcher sees no diff at all", OPTS, async () => {
    const w = await watch(server.port, "room:grace1");
    const ann = await phxSocket("ann", { port: server.port, reconnectAfterMs: () => 50, rejoinAfterMs: () => 50 });
    const annChannel = ann.channel("room:grace1", {});
    const joined = new Inbox("ann's join replies");
    annChannel.join().receive("ok", () => joined.push("ok"));
    await joined.next();
    await diffFor(w.diffs, "ann");
    cut(ann);
    await joined.next(GRACE_MS); // phoenix.js reconnected and rejoined, within the grace
    await pause(GRACE_MS + 500); // past the end of the grace the first connection had
    const zed = await phxSocket("zed", { port: server.port });
    await join(zed.channel("room:grace1", {}));
    const between = await diffsUntil(w.diffs, "zed");
    assert.deepEqual(between, [], "no diff between ann's drop and the sentinel");
    const since = w.present.findIndex((keys) => keys.includes("ann"));
    assert.ok(since >= 0 && w.present.slice(since).every((keys) => keys.includes("ann")), `ann always present: ${JSON.stringify(w.present)}`);
    assert.equal(w.presence.list((key, { metas }) => [key, metas.length]).find(([k]) => k === "ann")[1], 1);
  });

  test("an abrupt disconnect with no return: exactly one leave, when the grace ends", OPTS, async () => {
    const w = await watch(server.port, "room:grace2");
    const bob = await phxSocket("bob", { port: server.port, reconnectAfterMs: () => 60_000 });
    await join(bob.channel("room:grace2", {}));
    await diffFor(w.diffs, "bob");
    const cutAt = Date.now();
    cut(bob);
    const leave = await diffFor(w.diffs, "bob", GRACE_MS + 5_000);
    const waited = Date.now() - cutAt;
    assert.ok("bob" in leave.leaves && !("bob" in leave.joins), JSON.stringify(leave));
    assert.ok(waited >= GRACE_MS - 50, `the leave came ${waited} ms after the drop, before the grace ended`);
    const zed = await phxSocket("zed2", { port: server.port });
    await join(zed.channel("room:grace2", {}));
    const later = await diffsUntil(w.diffs, "zed2");
    assert.deepEqual(later.filter((d) => "bob" in d.leaves || "bob" in d.joins), [], "one leave only");
  });

  test("a clean leave (phx_leave) is not held: it is seen before the grace would end", OPTS, async () => {
    const w = await watch(server.port, "room:grace3");
    const cy = await phxSocket("cy", { port: server.port });
    const channel = cy.channel("room:grace3", {});
    await join(channel);
    await diffFor(w.diffs, "cy");
    const leftAt = Date.now();
    await new Promise((resolve) => channel.leave().receive("ok", resolve));
    const leave = await diffFor(w.diffs, "cy", GRACE_MS + 5_000);
    assert.ok("cy" in leave.leaves, JSON.stringify(leave));
    const waited = Date.now() - leftAt;
    assert.ok(waited < GRACE_MS, `an explicit leave waited ${waited} ms, as if it were a drop`);
  });
});

describe("leave grace across two nodes", () => {
  let redis;
  let a;
  let b;
  afterEach(cleanup);
  after(async () => {
    await stopExtras();
    if (redis) await stopRedis(redis);
  });

  test("start redis and nodes a and b", { timeout: 60_000 }, async () => {
    redis = await startRedis();
    const env = (node) => ({
      TETHER_PUBSUB_URL: `redis://127.0.0.1:${redis.port}/`,
      TETHER_NODE: node,
      TETHER_SECRET_KEY_BASE: "g".repeat(64),
      TETHER_PRESENCE_BROADCAST_PERIOD_MS: "100",
      TETHER_PRESENCE_DOWN_PERIOD_MS: "2000",
      TETHER_PRESENCE_LEAVE_GRACE_MS: String(GRACE_MS),
      TETHER_CONFIG: CONFIG,
    });
    a = await startExample("presence_chat", env("a"));
    b = await startExample("presence_chat", env("b"));
  });

  test("a drop on node a and a reconnect to node b within the grace: the key is never seen leaving", OPTS, async () => {
    const w = await watch(a.port, "room:grace4");
    const ann = await phxSocket("ann", { port: a.port, reconnectAfterMs: () => 60_000 });
    await join(ann.channel("room:grace4", {}));
    await diffFor(w.diffs, "ann");
    cut(ann);
    const again = await phxSocket("ann", { port: b.port });
    await join(again.channel("room:grace4", {}));
    await pause(GRACE_MS + 500); // past the end of the grace the first connection had
    const zed = await phxSocket("zed", { port: a.port });
    await join(zed.channel("room:grace4", {}));
    const between = await diffsUntil(w.diffs, "zed");
    // What the watcher saw: ann's meta from node b joined, and ann's meta from node a left
    // (the connection count went up by one and back), but ann as a key never left.
    const since = w.present.findIndex((keys) => keys.includes("ann"));
    assert.ok(since >= 0 && w.present.slice(since).every((keys) => keys.includes("ann")), `ann always present: ${JSON.stringify(w.present)}`);
    const annLeaves = between.flatMap((d) => (d.leaves.ann ? d.leaves.ann.metas : []));
    const annJoins = between.flatMap((d) => (d.joins.ann ? d.joins.ann.metas : []));
    assert.equal(annLeaves.length, 1, JSON.stringify(between));
    assert.equal(annJoins.length, 1, JSON.stringify(between));
    const metas = w.presence.list((key, { metas }) => [key, metas.length]).find(([k]) => k === "ann");
    assert.deepEqual(metas, ["ann", 1], "one connection of ann left in the end");
  });
});
