// Shared helpers of the Node suite: start/stop an example binary, bounded event-driven
// waits, phoenix.js sockets and raw `ws` clients that are cleaned up after each test.
//
// Every wait is event-driven and bounded (`within`); nothing sleeps to synchronize.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Socket } from "phoenix";
import WebSocket from "ws";

export const START_MS = 20_000; // until "listening on …"
export const STOP_MS = 10_000; // SIGTERM to exit
export const WAIT_MS = 5_000; // any single frame or event
export const TEST_OPTS = { timeout: 30_000 };

/** The example server of this test file (one per file: node --test runs files in processes). */
export const server = {
  proc: null, // ChildProcess
  port: 0,
  output: "", // stdout+stderr, shown when something fails
};

// ---------- bounded waits ----------

/**
 * Resolves like `promise`, or rejects after `ms` naming `what` (a string, or a function
 * called at timeout for a description of the last state) and the server's output tail.
 */
export function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const label = typeof what === "function" ? what() : what;
      reject(new Error(`timed out after ${ms} ms waiting for ${label}\n--- server output (tail) ---\n${server.output.slice(-2000)}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A FIFO of received items; `next()` waits (bounded) for the next one in arrival order. */
export class Inbox {
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

/** Something that changes: `notify()` on each change; `until(pred)` waits (bounded) for pred. */
export class Signal {
  constructor() {
    this.listeners = new Set();
  }
  notify() {
    for (const listener of [...this.listeners]) listener();
  }
  /** Resolves once `pred()` holds (checked now and on every notify); `show()` describes the last state on timeout. */
  until(pred, what, { ms = WAIT_MS, show } = {}) {
    if (pred()) return Promise.resolve();
    let listener;
    const reached = new Promise((resolve) => {
      listener = () => pred() && resolve();
      this.listeners.add(listener);
    });
    const label = () => (show ? `${what}; last seen: ${show()}` : what);
    return within(ms, reached, label).finally(() => this.listeners.delete(listener));
  }
}

// ---------- server lifecycle ----------

// Servers still running; killed if this test process exits (one listener for all of them).
const alive = new Set();
process.once("exit", () => {
  for (const proc of alive) proc.kill("SIGKILL");
});

/** Starts target/debug/examples/<example> with PORT=0 and waits for its "listening on" line. */
export async function startServer(example, env = {}) {
  await launch(example, env, server);
}

/**
 * Spawns target/debug/examples/<example> (PORT=0, RUST_LOG=warn, then `env`; a value of
 * `undefined` unsets a variable) into `into` ({proc, port, output}): its output is appended to
 * `into.output`, and it resolves once the "listening on" line gave `into.port`.
 */
async function launch(example, env, into) {
  const bin = fileURLToPath(new URL(`../../target/debug/examples/${example}`, import.meta.url));
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build --examples\` in the repo root first`);
  }
  const proc = spawn(bin, [], {
    env: { ...process.env, PORT: "0", RUST_LOG: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  into.proc = proc;
  // Never leave the server behind if this test process dies.
  killOnExit(proc);
  proc.stderr.on("data", (chunk) => (into.output += chunk));
  const listening = new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout });
    lines.on("line", (line) => {
      into.output += line + "\n";
      const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
    });
    proc.once("error", reject);
    proc.once("exit", (code, signal) =>
      reject(new Error(`server exited before listening (code ${code}, signal ${signal})\n${into.output}`)),
    );
  });
  try {
    into.port = await within(START_MS, listening, `"listening on http://127.0.0.1:<port>" from ${bin}`);
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }
  assert.ok(into.port > 0, `bad port ${into.port}`);
}

/** Kills `proc` (SIGKILL) if this test process exits while it still runs. */
export function killOnExit(proc) {
  alive.add(proc);
  proc.once("exit", () => alive.delete(proc));
}

// ---------- extra example processes (a second node of a cluster, …) ----------

// Extra processes started and not yet stopped: `stopExtras` kills what is left.
const extras = new Set();

/**
 * Starts another example process besides `server` (e.g. a second node of a cluster): like
 * `startServer`, but it resolves a handle of its own, `{example, proc, port, output}`. Stop
 * it with `stopExample` or `killExample`; an `after` hook must call `stopExtras()` so that
 * none outlives the test file (they are also SIGKILLed if the test process exits).
 */
export async function startExample(example, env = {}) {
  const extra = { example, proc: null, port: 0, output: "" };
  extras.add(extra);
  await launch(example, env, extra);
  return extra;
}

/** Resolves `{code, signal}` once `proc` has exited (at once if it already has). */
function exitOf(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  }
  return new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
}

/** SIGTERM to an extra process; it must exit with status 0 within STOP_MS. */
export async function stopExample(extra) {
  const exited = exitOf(extra.proc);
  extra.proc.kill("SIGTERM");
  let result;
  try {
    result = await within(STOP_MS, exited, `${extra.example} (port ${extra.port}) to exit after SIGTERM`);
  } catch (err) {
    extra.proc.kill("SIGKILL");
    throw err;
  }
  extras.delete(extra);
  assert.deepEqual(result, { code: 0, signal: null }, `unclean exit after SIGTERM\n${extra.output}`);
}

/** SIGKILL to an extra process (a crash as its peers see it); resolves once it has exited. */
export async function killExample(extra) {
  const exited = exitOf(extra.proc);
  extra.proc.kill("SIGKILL");
  await within(STOP_MS, exited, `${extra.example} (port ${extra.port}) to die of SIGKILL`);
  extras.delete(extra);
}

/** SIGKILLs every extra process still running and waits for them to exit (for `after` hooks). */
export async function stopExtras() {
  const left = [...extras];
  extras.clear();
  for (const extra of left) if (extra.proc) extra.proc.kill("SIGKILL");
  await within(STOP_MS, Promise.all(left.filter((e) => e.proc).map((e) => exitOf(e.proc))), "extra processes to exit");
}

/** Fails if the server has exited. */
export function assertServerAlive() {
  const { proc } = server;
  if (proc.exitCode !== null || proc.signalCode !== null) {
    assert.fail(`server died during the tests (code ${proc.exitCode}, signal ${proc.signalCode})\n${server.output}`);
  }
}

/** SIGTERM; the server must exit with status 0 within STOP_MS. */
export async function stopServer() {
  const { proc } = server;
  assertServerAlive();
  const exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
  proc.kill("SIGTERM");
  let result;
  try {
    result = await within(STOP_MS, exited, "the server to exit after SIGTERM");
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  }
  assert.deepEqual(result, { code: 0, signal: null }, `unclean exit after SIGTERM\n${server.output}`);
}

// ---------- phoenix.js clients ----------

const sockets = new Set(); // phoenix sockets to disconnect after each test
const raws = new Set(); // raw ws clients to terminate after each test
const pushes = new Set(); // unanswered pushes whose timeout timers are cancelled after each test

/**
 * A connected phoenix.js Socket (params {user_id} unless undefined) to `server`, or to the
 * process listening on `opts.port`; rejects if it fails to open. Other `opts` go to `Socket`.
 */
export async function phxSocket(userId, { port = server.port, ...opts } = {}) {
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

/** Disconnects a phoenix socket (close 1000, no reconnect); resolves once it is closed. */
export function disconnect(socket) {
  return within(WAIT_MS, new Promise((resolve) => socket.disconnect(resolve)), "socket disconnect");
}

/** Resolves `{status, response}` of `push` for "ok", "error" or "timeout". */
export function replyOf(push, what) {
  const reply = new Promise((resolve) => {
    push
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => resolve({ status: "timeout" }));
  });
  return within(WAIT_MS + 1_000, reply, what);
}

/** Joins `channel`; resolves `{status, response}` for "ok", "error" or "timeout". */
export function join(channel) {
  return replyOf(channel.join(WAIT_MS), `join reply on ${channel.topic}`);
}

/** Leaves `channel`; resolves `{status, response}`. */
export function leave(channel) {
  return replyOf(channel.leave(WAIT_MS), `leave reply on ${channel.topic}`);
}

/** Pushes an event that may get no reply; its timeout timer is cancelled after the test. */
export function pushEvent(channel, event, payload, timeout = WAIT_MS) {
  const push = channel.push(event, payload, timeout);
  pushes.add(push);
  return push;
}

/** An Inbox of the payloads of `event` on `channel`, subscribed now. */
export function inboxOf(channel, event, label) {
  const inbox = new Inbox(`${label} ${channel.topic} ${event}`);
  channel.on(event, (payload) => inbox.push(payload));
  return inbox;
}

// ---------- raw ws clients ----------

/** The WebSocket URL of the socket at `path` (default `/socket`) with `query`. */
export function socketUrl(query, path = "/socket") {
  return `ws://127.0.0.1:${server.port}${path}/websocket?${new URLSearchParams(query)}`;
}

/**
 * A raw `ws` upgrade. Resolves `{status: 101, ws}` when it opens, or `{status}` with the HTTP
 * status when the server refuses the upgrade.
 */
export function rawUpgrade(query, headers = {}, path = "/socket") {
  const ws = new WebSocket(socketUrl(query, path), { headers, perMessageDeflate: false });
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
export function closeOf(ws) {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

/**
 * A raw V2 client that records every text frame it receives, in order: `texts` (as sent by
 * the server) and `frames` (parsed `{join_ref, ref, topic, event, payload}`).
 */
export class RawClient {
  constructor(label, ws) {
    this.label = label;
    this.ws = ws;
    this.texts = [];
    this.frames = [];
    this.cursor = 0; // frames before it were consumed by `next`
    this.ref = 0;
    this.changed = new Signal();
    ws.on("message", (data, isBinary) => {
      const text = data.toString();
      this.texts.push(isBinary ? `<binary> ${text}` : text);
      try {
        const [join_ref, ref, topic, event, payload] = JSON.parse(text);
        this.frames.push({ join_ref, ref, topic, event, payload });
      } catch {
        this.frames.push({ event: "<unparsable>", payload: text });
      }
      this.changed.notify();
    });
  }

  /** Connects with `query` (vsn 2.0.0 added) to the socket at `path`; the upgrade must succeed. */
  static async connect(label, query = {}, path = "/socket") {
    const { status, ws } = await rawUpgrade({ ...query, vsn: "2.0.0" }, {}, path);
    assert.equal(status, 101, `${label}: upgrade refused with HTTP ${status}`);
    return new RawClient(label, ws);
  }

  send(frame) {
    this.ws.send(JSON.stringify(frame));
  }

  makeRef() {
    this.ref += 1;
    return String(this.ref);
  }

  /** The first frame at or after the cursor matching `pred`; moves the cursor past it. */
  async next(pred, what, ms = WAIT_MS) {
    let found = -1;
    const scan = () => {
      for (let i = this.cursor; i < this.frames.length; i++) {
        if (pred(this.frames[i])) {
          found = i;
          return true;
        }
      }
      return false;
    };
    await this.changed.until(scan, `${this.label}: ${what}`, {
      ms,
      show: () => JSON.stringify(this.frames.slice(this.cursor)),
    });
    this.cursor = found + 1;
    return this.frames[found];
  }

  /** Sends `event` on `topic` and waits for its reply; resolves the reply's payload. */
  async request(topic, event, payload = {}, joinRef = null) {
    const ref = this.makeRef();
    this.send([event === "phx_join" ? ref : joinRef, ref, topic, event, payload]);
    const reply = await this.next((f) => f.event === "phx_reply" && f.ref === ref, `reply to ${event} ${topic} (ref ${ref})`);
    return { ref, ...reply.payload };
  }

  /** Joins `topic`; the reply must be ok. Resolves the join ref. */
  async join(topic, payload = {}) {
    const { ref, status, response } = await this.request(topic, "phx_join", payload);
    assert.equal(status, "ok", `${this.label}: join ${topic} replied ${status} ${JSON.stringify(response)}`);
    this.joinRefs = { ...this.joinRefs, [topic]: ref };
    return ref;
  }

  /** Leaves `topic`: an ok reply, then phx_close for the join. */
  async leave(topic) {
    const joinRef = this.joinRefs[topic];
    const { status } = await this.request(topic, "phx_leave", {}, joinRef);
    assert.equal(status, "ok", `${this.label}: leave ${topic} replied ${status}`);
    await this.next((f) => f.event === "phx_close" && f.topic === topic && f.join_ref === joinRef, `phx_close of ${topic}`);
  }
}

// ---------- Chromium ----------

export const CHROMIUM = "/usr/bin/chromium";
// docs/contracts.md, tests and benchmarks. Playwright runs with `headless: false` so that these are the only browser-mode
// flags (it would add its own --headless and friends otherwise); --headless makes it headless.
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
];
export const LAUNCH_MS = 30_000;

/** The `skip` option of browser suites: skip without Chromium, unless CI is set (then they fail). */
export const chromiumSkip =
  !existsSync(CHROMIUM) && !process.env.CI
    ? `${CHROMIUM} is missing (install the Debian package: apt-get install chromium; .ci/run does); CI is unset, so skipping`
    : false;

/**
 * Launches Debian's Chromium (never a downloaded one) with CHROMIUM_ARGS; resolves a
 * playwright Browser whose `newContext()` contexts are separate browsers (own cookies and
 * localStorage). playwright-core is loaded only here, so other test files do not pay for it.
 */
export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing and CI is set: .ci/run must install the Debian package chromium`);
  }
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, headless: false, args: CHROMIUM_ARGS, timeout: LAUNCH_MS });
}

/**
 * Waits (bounded by `ms`, default WAIT_MS) until `fn(arg)` is truthy in `page`; on timeout fails
 * with `what`, what the page shows (`shown(page)`), the problems seen and the tail of `serverLog`.
 */
export async function waitInPage(page, fn, arg, what, { shown, problems, serverLog, ms = WAIT_MS }) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 20 });
  } catch (err) {
    const state = await shown(page).catch((e) => `(unreadable: ${e.message})`);
    throw new Error(
      `${page.label}: ${what} not reached within ${ms} ms; the page shows ${JSON.stringify(state)}\n` +
        `problems: ${JSON.stringify(problems)}\n(${err.message.split("\n")[0]})\n` +
        `--- server output (tail) ---\n${serverLog().slice(-2000)}`,
    );
  }
}

/**
 * afterEach of a Chromium suite: closes every browser context the test opened (emptying
 * `contexts` in place) and forgets the problems it saw (`problems`, emptied in place).
 */
export async function closePeople(contexts, problems) {
  for (const context of contexts.splice(0)) await context.close().catch(() => {});
  problems.length = 0;
}

/** A new browser "person" of `browser`: its own cookies and localStorage; added to `contexts`. */
export async function newPerson(browser, contexts, label) {
  const context = await browser.newContext();
  context.label = label;
  context.tabs = 0;
  contexts.push(context);
  return context;
}

/** Records `page`'s console errors and warnings and its page errors in `problems`, labelled. */
export function watchPage(page, label, problems) {
  page.label = label;
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      problems.push({ label, text: `console ${msg.type()}: ${msg.text()}`, at: Date.now() });
    }
  });
  page.on("pageerror", (err) => problems.push({ label, text: `page error: ${err.stack || err}`, at: Date.now() }));
}

// ---------- Redis (cluster tests) ----------

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** A redis-server on a free 127.0.0.1 port, nothing persisted: {proc, port, output, dir}. */
export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(joinPath(tmpdir(), "tether-redis-"));
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  killOnExit(proc);
  const redis = { proc, port, output: "", dir };
  proc.stderr.on("data", (chunk) => (redis.output += chunk));
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).on("line", (line) => {
      redis.output += line + "\n";
      if (/Ready to accept connections/.test(line)) resolve();
    });
    proc.once("error", reject);
    proc.once("exit", (code, signal) => reject(new Error(`redis-server exited (code ${code}, signal ${signal})\n${redis.output}`)));
  });
  try {
    await within(START_MS, ready, `redis-server on port ${port} to be ready`);
  } catch (err) {
    await stopRedis(redis);
    throw err;
  }
  return redis;
}

export async function stopRedis(redis) {
  if (redis.proc.exitCode === null && redis.proc.signalCode === null) {
    const exited = new Promise((resolve) => redis.proc.once("exit", resolve));
    redis.proc.kill("SIGKILL");
    await within(STOP_MS, exited, "redis-server to exit");
  }
  rmSync(redis.dir, { recursive: true, force: true });
}

// ---------- cleanup ----------

/** afterEach: leaves and disconnects every phoenix socket, terminates raw clients. */
export async function cleanup() {
  for (const push of pushes) push.cancelTimeout();
  pushes.clear();
  for (const socket of sockets) {
    // Leave every channel first so no rejoin timer outlives the test.
    const leaves = socket.channels.map(
      (ch) => new Promise((resolve) => ch.leave(1_000).receive("ok", resolve).receive("timeout", resolve).receive("error", resolve)),
    );
    await within(WAIT_MS, Promise.all(leaves), "channel leaves during cleanup").catch(() => {});
    await disconnect(socket).catch(() => {});
  }
  sockets.clear();
  for (const ws of raws) ws.terminate();
  raws.clear();
}
