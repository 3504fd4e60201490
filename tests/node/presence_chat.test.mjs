// The official `phoenix` npm client (and raw `ws` for what phoenix.js cannot send) against
// the `presence_chat` example. Run with `node --test` from tests/node after
// `cargo build --examples` (scripts/test does both).
//
// Every wait is event-driven and bounded (`within`); nothing sleeps to synchronize.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Serializer, Socket } from "phoenix";
import WebSocket from "ws";

const BIN = fileURLToPath(new URL("../../target/debug/examples/presence_chat", import.meta.url));
const START_MS = 20_000; // until "listening on …"
const STOP_MS = 10_000; // SIGTERM to exit
const WAIT_MS = 5_000; // any single frame or event
const TEST_OPTS = { timeout: 30_000 };
const MIB = 1024 * 1024;

let server; // ChildProcess
let port;
let output = ""; // the server's stdout+stderr, shown when something fails

// ---------- helpers ----------

/** Resolves like `promise`, or rejects after `ms` naming `what` and the server's output tail. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${ms} ms waiting for ${what}\n--- server output (tail) ---\n${output.slice(-2000)}`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A FIFO of received items; `next()` waits (bounded) for the next one in arrival order. */
class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = [];
  }
  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }
  next(ms = WAIT_MS) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    let waiter;
    const p = new Promise((resolve) => {
      waiter = resolve;
      this.waiters.push(resolve);
    });
    return within(ms, p, `next item on ${this.label}`).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }
}

const sockets = new Set(); // phoenix sockets to disconnect after each test
const raws = new Set(); // raw ws clients to terminate after each test

/** A connected phoenix.js Socket; rejects if it errors or closes before opening. */
async function phxSocket(userId, opts = {}) {
  const params = userId === undefined ? {} : { user_id: userId };
  const socket = new Socket(`ws://127.0.0.1:${port}/socket`, { transport: WebSocket, params, ...opts });
  sockets.add(socket);
  const opened = new Promise((resolve, reject) => {
    const refs = [
      socket.onOpen(() => {
        socket.off(refs);
        resolve();
      }),
      socket.onError((err) => {
        socket.off(refs);
        reject(new Error(`socket for ${userId} errored before opening: ${err && (err.message || err)}`));
      }),
      socket.onClose((ev) => {
        socket.off(refs);
        reject(new Error(`socket for ${userId} closed before opening (code ${ev && ev.code})`));
      }),
    ];
  });
  socket.connect();
  await within(WAIT_MS, opened, `phoenix socket ${userId} to open`);
  return socket;
}

/** Joins `channel`; resolves `{status, response}` for "ok", "error" or "timeout". */
function join(channel) {
  const reply = new Promise((resolve) => {
    channel
      .join(WAIT_MS)
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
  return within(WAIT_MS + 1_000, reply, `join reply on ${channel.topic}`);
}

/** An Inbox of the payloads of `event` on `channel`, subscribed now. */
function inboxOf(channel, event, label) {
  const inbox = new Inbox(`${label} ${channel.topic} ${event}`);
  channel.on(event, (payload) => inbox.push(payload));
  return inbox;
}

function socketUrl(query) {
  return `ws://127.0.0.1:${port}/socket/websocket?${new URLSearchParams(query)}`;
}

/**
 * A raw `ws` upgrade. Resolves `{status: 101, ws}` when it opens, or `{status}` with the HTTP
 * status when the server refuses the upgrade.
 */
function rawUpgrade(query, headers = {}) {
  const ws = new WebSocket(socketUrl(query), { headers, perMessageDeflate: false });
  raws.add(ws);
  ws.errors = [];
  ws.on("error", (err) => ws.errors.push(err)); // never an unhandled 'error'
  const result = new Promise((resolve, reject) => {
    ws.once("open", () => resolve({ status: 101, ws }));
    ws.once("unexpected-response", (req, res) => {
      res.resume();
      req.destroy();
      resolve({ status: res.statusCode });
    });
    ws.once("error", (err) => reject(err));
  });
  return within(WAIT_MS, result, `upgrade response for ?${new URLSearchParams(query)}`);
}

/** Resolves `{code, reason}` when `ws` closes; subscribe before provoking the close. */
function closeOf(ws) {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** A text frame `[null,"1","phoenix","heartbeat",{"pad":"xx…"}]` of exactly `size` bytes. */
function paddedHeartbeat(size) {
  const head = '[null,"1","phoenix","heartbeat",{"pad":"';
  const tail = '"}]';
  const frame = head + "x".repeat(size - head.length - tail.length) + tail;
  assert.equal(Buffer.byteLength(frame), size);
  return frame;
}

const pushes = new Set(); // unanswered pushes whose timeout timers are cancelled after each test

/** Pushes a `shout`; the server sends no reply to it (a broadcast, like Phoenix's `:noreply`). */
function shout(channel, payload) {
  pushes.add(channel.push("shout", payload));
}

/** A shout from `channel` comes back to its own socket with exactly that payload. */
async function assertShoutRoundTrip(channel, inbox, payload) {
  shout(channel, payload);
  assert.deepEqual(await inbox.next(), payload);
}

// ---------- server lifecycle ----------

before(async () => {
  if (!existsSync(BIN)) {
    throw new Error(`${BIN} is missing: run \`cargo build --examples\` in the repo root first`);
  }
  server = spawn(BIN, [], {
    env: { ...process.env, PORT: "0", RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stderr.on("data", (chunk) => (output += chunk));
  const listening = new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.on("line", (line) => {
      output += line + "\n";
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    server.once("error", reject);
    server.once("exit", (code, signal) =>
      reject(new Error(`server exited before listening (code ${code}, signal ${signal})\n${output}`)),
    );
  });
  try {
    port = await within(START_MS, listening, `"listening on http://127.0.0.1:<port>" from ${BIN}`);
  } catch (err) {
    server.kill("SIGKILL");
    throw err;
  }
  assert.ok(port > 0, `bad port ${port}`);
});

afterEach(async () => {
  for (const push of pushes) push.cancelTimeout();
  pushes.clear();
  for (const socket of sockets) {
    // Leave every channel first so no rejoin timer outlives the test.
    const leaves = socket.channels.map(
      (ch) => new Promise((resolve) => ch.leave(1_000).receive("ok", resolve).receive("timeout", resolve).receive("error", resolve)),
    );
    await within(WAIT_MS, Promise.all(leaves), "channel leaves during cleanup").catch(() => {});
    await within(WAIT_MS, new Promise((resolve) => socket.disconnect(resolve)), "socket disconnect").catch(() => {});
  }
  sockets.clear();
  for (const ws of raws) ws.terminate();
  raws.clear();
});

after(async () => {
  if (!server) return;
  if (server.exitCode !== null || server.signalCode !== null) {
    assert.fail(`server died during the tests (code ${server.exitCode}, signal ${server.signalCode})\n${output}`);
  }
  // One client stays connected through the shutdown: the server must close it with a close
  // frame whose code is not 1000 (DESIGN §2: phoenix.js does not reconnect after 1000).
  const { ws } = await rawUpgrade({ user_id: "stayer", vsn: "2.0.0" });
  const closed = closeOf(ws);
  const exited = new Promise((resolve) => server.once("exit", (code, signal) => resolve({ code, signal })));
  server.kill("SIGTERM");
  let result;
  try {
    result = await within(STOP_MS, exited, "the server to exit after SIGTERM");
  } catch (err) {
    server.kill("SIGKILL");
    throw err;
  }
  assert.deepEqual(result, { code: 0, signal: null }, `unclean exit after SIGTERM\n${output}`);
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
    assert.equal((await rawUpgrade(query, { Origin: `http://127.0.0.1:${port}` })).status, 101, "own origin");
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

    // On the wire: the ok reply to phx_leave, then phx_close for the join (DESIGN §2).
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
