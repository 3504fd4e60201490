// The official `phoenix` npm client (and raw `ws` for what phoenix.js cannot send) against
// the `presence_chat` example. Run with `node --test` from tests/node after
// `cargo build --examples` (scripts/test does both).
//
// Every wait is event-driven and bounded (`within`); nothing sleeps to synchronize.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Serializer } from "phoenix";
import {
  Inbox,
  TEST_OPTS,
  WAIT_MS,
  assertServerAlive,
  cleanup,
  closeOf,
  inboxOf,
  join,
  phxSocket,
  pushEvent,
  rawUpgrade,
  server,
  startServer,
  stopServer,
  within,
} from "./support.mjs";

const MIB = 1024 * 1024;

/** A text frame `[null,"1","phoenix","heartbeat",{"pad":"xx…"}]` of exactly `size` bytes. */
function paddedHeartbeat(size) {
  const head = '[null,"1","phoenix","heartbeat",{"pad":"';
  const tail = '"}]';
  const frame = head + "x".repeat(size - head.length - tail.length) + tail;
  assert.equal(Buffer.byteLength(frame), size);
  return frame;
}

/** Pushes a `shout`; the server sends no reply to it (a broadcast, like Phoenix's `:noreply`). */
function shout(channel, payload) {
  pushEvent(channel, "shout", payload, 10_000);
}

/** A shout from `channel` comes back to its own socket with exactly that payload. */
async function assertShoutRoundTrip(channel, inbox, payload) {
  shout(channel, payload);
  assert.deepEqual(await inbox.next(), payload);
}

// ---------- server lifecycle ----------

before(() => startServer("presence_chat"));

afterEach(cleanup);

after(async () => {
  if (!server.proc) return;
  assertServerAlive();
  // One client stays connected through the shutdown: the server must close it with a close
  // frame whose code is not 1000 (docs/contracts.md, wire protocol: phoenix.js does not reconnect after 1000).
  const { ws } = await rawUpgrade({ user_id: "stayer", vsn: "2.0.0" });
  const closed = closeOf(ws);
  await stopServer();
  const { code } = await within(WAIT_MS, closed, "the connected client to be closed by the shutdown");
  assert.ok(code !== 1000 && code !== 1005 && code !== 1006, `shutdown closed a client with code ${code}`);
});

// ---------- tests ----------

describe("presence_chat with the official phoenix client", () => {
  test("a. shout reaches everyone in the room, and only that room", TEST_OPTS, async () => {
    const alice = await phxSocket("alice");
    const bob = await phxSocket("bob");
    const carol = await phxSocket("carol");

    const lobbyA = alice.channel("room:lobby");
    const lobbyB = bob.channel("room:lobby");
    const otherC = carol.channel("room:other");
    const shoutsA = inboxOf(lobbyA, "shout", "alice");
    const shoutsB = inboxOf(lobbyB, "shout", "bob");
    const shoutsC = inboxOf(otherC, "shout", "carol");

    assert.equal((await join(lobbyA)).status, "ok");
    assert.equal((await join(lobbyB)).status, "ok");
    assert.equal((await join(otherC)).status, "ok");

    shout(lobbyA, { body: "hi" });
    assert.deepEqual(await shoutsA.next(), { body: "hi" }, "the sender gets its own shout");
    assert.deepEqual(await shoutsB.next(), { body: "hi" }, "another member gets the shout");

    // Carol's connection delivers in order: had the lobby shout leaked into room:other, it
    // would have been queued before her own later shout, so her first shout must be her own.
    shout(otherC, { body: "only other" });
    assert.deepEqual(await shoutsC.next(), { body: "only other" }, "room:other saw a lobby shout");
  });

  test("b. heartbeats get ok replies and the socket does not reconnect", TEST_OPTS, async () => {
    const heartbeatRefs = new Set();
    const socket = await phxSocket("heartbeater", {
      heartbeatIntervalMs: 200,
      encode: (msg, callback) => {
        if (msg.topic === "phoenix" && msg.event === "heartbeat") heartbeatRefs.add(msg.ref);
        return Serializer.encode(msg, callback);
      },
    });
    const replies = [];
    const done = new Promise((resolve, reject) => {
      socket.onError((err) => reject(new Error(`socket errored: ${err && (err.message || err)}`)));
      socket.onClose((ev) => reject(new Error(`socket closed (code ${ev && ev.code}): it would reconnect`)));
      socket.onOpen(() => reject(new Error("socket opened again: it reconnected")));
      socket.onMessage((msg) => {
        if (msg.topic !== "phoenix" || msg.event !== "phx_reply") return;
        replies.push(msg);
        const ok =
          heartbeatRefs.has(msg.ref) &&
          msg.join_ref === null &&
          msg.payload.status === "ok" &&
          JSON.stringify(msg.payload.response) === "{}";
        if (!ok) reject(new Error(`not an ok reply to a heartbeat: ${JSON.stringify(msg)}`));
        else if (replies.length >= 3) resolve();
      });
    });
    await within(WAIT_MS, done, `3 heartbeat replies (got ${replies.length})`);
    assert.ok(socket.isConnected());
  });

  test('c. joining an unmatched topic gets error {reason: "unmatched topic"}', TEST_OPTS, async () => {
    const socket = await phxSocket("lost");
    const reply = await join(socket.channel("nosuchtopic:1"));
    assert.deepEqual(reply, { status: "error", response: { reason: "unmatched topic" } });
  });

  test("d. the upgrade is refused with 403 without a valid user_id", TEST_OPTS, async () => {
    assert.equal((await rawUpgrade({ vsn: "2.0.0" })).status, 403, "no user_id");
    assert.equal((await rawUpgrade({ user_id: "", vsn: "2.0.0" })).status, 403, "empty user_id");
    assert.equal((await rawUpgrade({ user_id: "u".repeat(129), vsn: "2.0.0" })).status, 403, "129-byte user_id");
    // Control: the limit itself is accepted.
    assert.equal((await rawUpgrade({ user_id: "u".repeat(128), vsn: "2.0.0" })).status, 101, "128-byte user_id");
  });

  test("e. a foreign Origin is refused with 403, the server's own is accepted", TEST_OPTS, async () => {
    const query = { user_id: "origin", vsn: "2.0.0" };
    assert.equal((await rawUpgrade(query, { Origin: "http://evil.example" })).status, 403, "foreign origin");
    assert.equal((await rawUpgrade(query, { Origin: `http://127.0.0.1:${server.port}` })).status, 101, "own origin");
  });

  test("f. leave gets ok, fires onClose, and the server sends phx_close", TEST_OPTS, async () => {
    const socket = await phxSocket("leaver");
    const frames = new Inbox("leaver frames on room:leave");
    socket.onMessage((msg) => {
      // Replies and closes only: presence frames may interleave once the example tracks.
      if (msg.topic === "room:leave" && (msg.event === "phx_reply" || msg.event === "phx_close")) frames.push(msg);
    });
    const channel = socket.channel("room:leave");
    assert.equal((await join(channel)).status, "ok");
    const joinRef = channel.joinRef();
    assert.equal((await frames.next()).event, "phx_reply"); // the join reply

    const closed = new Promise((resolve) => channel.onClose(() => resolve()));
    const left = new Promise((resolve) => {
      channel
        .leave(WAIT_MS)
        .receive("ok", () => resolve("ok"))
        .receive("error", () => resolve("error"))
        .receive("timeout", () => resolve("timeout"));
    });
    assert.equal(await within(WAIT_MS + 1_000, left, "leave reply"), "ok");
    await within(WAIT_MS, closed, "channel onClose");

    // On the wire: the ok reply to phx_leave, then phx_close for the join (docs/contracts.md, wire protocol).
    const reply = await frames.next();
    assert.equal(reply.event, "phx_reply", `expected the leave reply, got ${JSON.stringify(reply)}`);
    assert.equal(reply.payload.status, "ok");
    const close = await frames.next();
    assert.equal(close.event, "phx_close", `expected phx_close, got ${JSON.stringify(close)}`);
    assert.equal(close.join_ref, joinRef);
  });

  test("g. a text frame over 1 MiB closes that connection with 1009, others go on", TEST_OPTS, async () => {
    const socket = await phxSocket("bystander");
    const lobby = socket.channel("room:big");
    const shouts = inboxOf(lobby, "shout", "bystander");
    assert.equal((await join(lobby)).status, "ok");

    const { ws } = await rawUpgrade({ user_id: "bigmouth", vsn: "2.0.0" });
    const closed = closeOf(ws);
    ws.send(paddedHeartbeat(MIB + 100));
    const { code, reason } = await within(WAIT_MS, closed, "the server to close the oversized connection");
    assert.equal(code, 1009, `close code ${code} (reason "${reason}", client errors: ${ws.errors.map(String)})`);

    await assertShoutRoundTrip(lobby, shouts, { body: "still here" });
  });

  test("h. undecodable frames close with 1007, a binary frame with 1003", TEST_OPTS, async (t) => {
    const cases = [
      ["not json", "not json", 1007],
      ["a JSON object (V1 form)", '{"a":1}', 1007],
      ["a 4-element array", '[null,"1","phoenix","heartbeat"]', 1007],
      ["a binary frame", Buffer.from('[null,"1","phoenix","heartbeat",{}]'), 1003],
    ];
    for (const [name, frame, expected] of cases) {
      await t.test(name, async () => {
        const { ws } = await rawUpgrade({ user_id: "garbler", vsn: "2.0.0" });
        const closed = closeOf(ws);
        ws.send(frame);
        const { code, reason } = await within(WAIT_MS, closed, `the server to close after ${name}`);
        assert.equal(code, expected, `close code ${code} (reason "${reason}")`);
      });
    }
  });
});
