// The live operator dashboard (`/tether/dashboard`) and `/metrics`, as an operator and a
// Prometheus scraper see them: HTTP Basic, the Prometheus text format, and the page in
// Debian's Chromium (playwright-core) following presence live, on one node and on two nodes
// of a Redis cluster. Run with `node --test` from tests/node after `cargo build --examples`
// (scripts/test does both).
//
// The contract (src/dashboard/mod.rs): with TETHER_DASHBOARD_PASSWORD set, every
// example serves GET /tether/dashboard and GET /metrics behind HTTP Basic `admin:<password>`
// (401 otherwise; 404 without the variable). `<table id="topics">` holds one
// `<tr data-topic="…">` per topic with presence (`<td class="users">`, `<td class="connections">`),
// `<table id="nodes">` one `<tr data-node="…">` per node (`<td class="status">` up or down); both
// change within 3 s without a reload.
//
// Every wait is event-driven or a bounded poll (`within`, page.waitForFunction); nothing
// sleeps to synchronize. All traffic goes to 127.0.0.1. The cluster test starts its own
// redis-server on a free port. A screenshot of node a's dashboard, showing both nodes and a
// topic, is kept at target/test-artifacts/dashboard.png.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join as joinPath } from "node:path";
import { fileURLToPath } from "node:url";
import {
  WAIT_MS,
  chromiumSkip,
  cleanup,
  closePeople,
  disconnect,
  join,
  killExample,
  launchChromium,
  leave,
  phxSocket,
  server,
  startExample,
  startRedis,
  startServer,
  stopExample,
  stopExtras,
  stopRedis,
  stopServer,
  waitInPage,
  within,
} from "./support.mjs";

const OPTS = { timeout: 60_000 };
const CLUSTER_OPTS = { timeout: 150_000 };
const PASSWORD = "dashboard-test-password";
const USER = "admin";
const DASHBOARD = "/tether/dashboard";
const METRICS = "/metrics";
const PROMETHEUS_TYPE = "text/plain; version=0.0.4";
/** The contract: the dashboard shows a change within this long, without a reload. */
const LIVE_MS = 3_000;
/** Every example (examples/*.rs). */
const EXAMPLES = ["anonymous_counts", "live_todo", "online_counter", "own_server", "presence_chat"];
// The cluster's presence periods: short, so that a crashed node is down within a second.
const BROADCAST_MS = 200;
const DOWN_MS = 1_000;
const PERMDOWN_MS = 60_000;
// Nodes of one cluster must share the key (it also names the Redis channel).
const SECRET = "dashboard-test-secret-key-base-".padEnd(72, "d");
const ARTIFACTS = fileURLToPath(new URL("../../target/test-artifacts/", import.meta.url));

let outputMark = 0; // server.output length when the current `server` started
const problems = []; // console errors/warnings and page errors of the dashboard pages

/** Starts `example` as `server` with the dashboard on, unless `env` says otherwise. */
async function start(example, env = {}) {
  outputMark = server.output.length;
  await startServer(example, { TETHER_DASHBOARD_PASSWORD: PASSWORD, TETHER_CONFIG: undefined, ...env });
}

function running(proc) {
  return proc && proc.exitCode === null && proc.signalCode === null;
}

/** The current `server`'s output since it started. */
function serverLog() {
  return server.output.slice(outputMark);
}

// ---------- HTTP ----------

function basic(user, password) {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

const GOOD = basic(USER, PASSWORD);

/** GET `path` on 127.0.0.1:`port` with `authorization` (none if undefined): {status, type, challenge, body}. */
async function get(port, path, authorization) {
  const headers = authorization === undefined ? {} : { authorization };
  const res = await within(WAIT_MS, fetch(`http://127.0.0.1:${port}${path}`, { headers, redirect: "manual" }), `GET ${path}`);
  const body = await within(WAIT_MS, res.text(), `the body of GET ${path}`);
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    challenge: res.headers.get("www-authenticate"),
    body,
  };
}

/** Every wrong way to ask: none, wrong password, wrong user, not Basic, garbage, empty password. */
const WRONG = [
  ["no credentials", undefined],
  ["a wrong password", basic(USER, `${PASSWORD}x`)],
  ["a prefix of the password", basic(USER, PASSWORD.slice(0, -1))],
  ["another user", basic("root", PASSWORD)],
  ["an empty password", basic(USER, "")],
  ["Bearer instead of Basic", `Bearer ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`],
  ["undecodable Basic", "Basic %%%"],
];

/** The dashboard and /metrics of the example on `port` answer 401 to every wrong credential and 200 to the right one. */
async function assertGuarded(example, port) {
  // The contract names the paths at the root, whatever scope an app mounts tether under.
  for (const path of [DASHBOARD, METRICS]) {
    const { status } = await get(port, path, GOOD);
    if (status === 404) {
      const scoped = [];
      for (const scope of ["/live"]) { // own_server mounts tether under /live
        const res = await get(port, `${scope}${path}`, GOOD);
        if (res.status !== 404) scoped.push(`${scope}${path} answers ${res.status}`);
      }
      assert.fail(`${example}: GET ${path} is 404 with TETHER_DASHBOARD_PASSWORD set${scoped.length ? ` (but ${scoped.join(", ")})` : ""}`);
    }
  }
  for (const path of [DASHBOARD, METRICS]) {
    for (const [how, authorization] of WRONG) {
      const res = await get(port, path, authorization);
      assert.equal(res.status, 401, `${example}: GET ${path} with ${how} answered ${res.status}`);
      assert.match(res.challenge ?? "", /^Basic /, `${example}: the 401 of ${path} with ${how} has no Basic challenge`);
      assert.ok(!res.body.includes(PASSWORD), `${example}: the 401 of ${path} echoes the password`);
      assert.ok(!/tether_connections|id="topics"/.test(res.body), `${example}: the 401 of ${path} leaks content`);
    }
  }
  const page = await get(port, DASHBOARD, GOOD);
  assert.equal(page.status, 200, `${example}: GET ${DASHBOARD} with the password answered ${page.status}: ${page.body.slice(0, 500)}`);
  assert.match(page.type ?? "", /^text\/html/, `${example}: the dashboard's content type`);
  assert.match(page.body, /<table id="topics"/, `${example}: the dashboard has no <table id="topics">`);
  assert.match(page.body, /<table id="nodes"/, `${example}: the dashboard has no <table id="nodes">`);
  const metrics = await get(port, METRICS, GOOD);
  assert.equal(metrics.status, 200, `${example}: GET ${METRICS} with the password answered ${metrics.status}`);
  assert.equal(metrics.type, PROMETHEUS_TYPE, `${example}: the content type of ${METRICS}`);
  assert.match(metrics.body, /^# TYPE tether_connections gauge$/m, `${example}: no tether_connections gauge in ${METRICS}`);
  assert.notEqual(connectionsIn(metrics.body), null, `${example}: no tether_connections sample in ${METRICS}`);
}

/** Without the password set, neither route exists. */
async function assertAbsent(example, port) {
  for (const path of [DASHBOARD, METRICS]) {
    for (const authorization of [undefined, GOOD]) {
      const res = await get(port, path, authorization);
      assert.equal(res.status, 404, `${example} without TETHER_DASHBOARD_PASSWORD: GET ${path} (${authorization ? "with" : "without"} credentials) answered ${res.status}`);
    }
  }
}

/** The value of the `tether_connections` gauge in a Prometheus text body, or null. */
function connectionsIn(body) {
  const m = /^tether_connections(?:\{[^}]*\})? (\S+)$/m.exec(body);
  return m ? Number(m[1]) : null;
}

async function scrapeConnections(port) {
  const res = await get(port, METRICS, GOOD);
  assert.equal(res.status, 200, `GET ${METRICS}: ${res.status}`);
  assert.equal(res.type, PROMETHEUS_TYPE);
  const value = connectionsIn(res.body);
  assert.notEqual(value, null, `no tether_connections in:\n${res.body}`);
  return value;
}

/** Polls /metrics (bounded) until tether_connections is `expected`. */
async function connectionsBecome(port, expected) {
  let last;
  let stop = false;
  const poll = (async () => {
    while (!stop) {
      last = await scrapeConnections(port);
      if (last === expected) return;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the poll's pace, not a synchronization
    }
  })();
  try {
    await within(WAIT_MS, poll, () => `tether_connections to be ${expected} (last scraped: ${last})`);
  } finally {
    stop = true;
  }
}

// ---------- the dashboard in Chromium ----------

/** What a dashboard page shows: its topics and nodes rows, its connection state, the marker. */
function shown(page) {
  return page.evaluate(() => ({
    topics: [...document.querySelectorAll("#topics tr[data-topic]")].map((tr) => ({
      topic: tr.dataset.topic,
      users: tr.querySelector("td.users")?.textContent.trim(),
      connections: tr.querySelector("td.connections")?.textContent.trim(),
    })),
    nodes: [...document.querySelectorAll("#nodes tr[data-node]")].map((tr) => ({
      node: tr.dataset.node,
      status: tr.querySelector("td.status")?.textContent.trim(),
      incarnation: tr.querySelector("td.incarnation")?.textContent.trim(),
    })),
    tether: document.documentElement.dataset.tether,
    marker: window.__dashboardMarker,
    url: location.href,
  }));
}

/** Opens the dashboard of 127.0.0.1:`port` in a new browser with the password; waits until its socket is joined. */
async function openDashboard(browser, contexts, port, label) {
  // A browser of its own (own cookies and storage) that answers the Basic challenge.
  const context = await browser.newContext({ httpCredentials: { username: USER, password: PASSWORD } });
  contexts.push(context);
  const page = await context.newPage();
  watchPage(page, label, problems);
  const response = await page.goto(`http://127.0.0.1:${port}${DASHBOARD}`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${label}: GET ${DASHBOARD}`);
  await waitOn(page, () => document.documentElement.dataset.tether === "connected", null, 'data-tether="connected"', WAIT_MS);
  // Any reload or navigation from now on would lose this marker and count a navigation.
  const marker = `marker-${Math.random().toString(36).slice(2)}`;
  await page.evaluate((m) => {
    window.__dashboardMarker = m;
  }, marker);
  page.marker = marker;
  page.navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) page.navigations += 1;
  });
  return page;
}

function waitOn(page, fn, arg, what, ms = LIVE_MS) {
  return waitInPage(page, fn, arg, what, { shown, problems, serverLog, ms });
}

/** Waits until the topic row of `topic` reads `users` / `connections`. */
function topicShows(page, topic, users, connections, ms = LIVE_MS) {
  return waitOn(
    page,
    ([t, u, c]) => {
      const rows = [...document.querySelectorAll("#topics tr[data-topic]")].filter((tr) => tr.dataset.topic === t);
      return (
        rows.length === 1 &&
        rows[0].querySelector("td.users")?.textContent.trim() === u &&
        rows[0].querySelector("td.connections")?.textContent.trim() === c
      );
    },
    [topic, String(users), String(connections)],
    `the row of ${topic} to read ${users} users / ${connections} connections`,
    ms,
  );
}

/** Waits until there is no topic row of `topic`. */
function topicGone(page, topic, ms = LIVE_MS) {
  return waitOn(
    page,
    (t) => ![...document.querySelectorAll("#topics tr[data-topic]")].some((tr) => tr.dataset.topic === t),
    topic,
    `the row of ${topic} to go away`,
    ms,
  );
}

/** Waits until the `cell` (a td class) of the node row of `node` reads `text`. */
function nodeCell(page, node, cell, text, ms) {
  return waitOn(
    page,
    ([n, c, t]) => {
      const rows = [...document.querySelectorAll("#nodes tr[data-node]")].filter((tr) => tr.dataset.node === n);
      return rows.length === 1 && rows[0].querySelector(`td.${c}`)?.textContent.trim() === t;
    },
    [node, cell, String(text)],
    `the ${cell} of node ${node} to read ${text}`,
    ms,
  );
}

/** Waits until the node row of `node` reads `status`. */
function nodeShows(page, node, status, ms = LIVE_MS) {
  return nodeCell(page, node, "status", status, ms);
}

/** Waits until the node row of `node` shows `connections` (a number, or "–" for none known). */
function nodeConnections(page, node, connections, ms = LIVE_MS) {
  return nodeCell(page, node, "connections", connections, ms);
}

/** The page was never reloaded nor navigated since `openDashboard`, and is still connected. */
async function assertSamePage(page) {
  const state = await shown(page);
  assert.equal(state.marker, page.marker, `${page.label}: the page was reloaded (window marker lost): ${JSON.stringify(state)}`);
  assert.equal(page.navigations, 0, `${page.label}: the page navigated ${page.navigations} time(s)`);
  assert.equal(state.tether, "connected", `${page.label}: the page is no longer connected`);
}

/** Like support's watchPage, but a console message names where it comes from (e.g. which resource failed to load). */
function watchPage(page, label, list) {
  page.label = label;
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") {
      const at = msg.location()?.url ? ` (at ${msg.location().url})` : "";
      list.push({ label, text: `console ${msg.type()}: ${msg.text()}${at}`, at: Date.now() });
    }
  });
  page.on("pageerror", (err) => list.push({ label, text: `page error: ${err.stack || err}`, at: Date.now() }));
}

/** A failed /favicon.ico: its own test reports it ("the dashboard page loads without a console error"). */
const FAVICON = (p) => /\/favicon\.ico\)$/.test(p.text);

function assertNoProblems(except = FAVICON) {
  const left = problems.filter((p) => !except(p));
  assert.deepEqual(left.map((p) => `${p.label}: ${p.text}`), [], "console errors/warnings or page errors on a dashboard");
}

/** A phoenix.js client of presence_chat (`port`, default `server`) joined to `topic` as `user`: {socket, channel}. */
async function member(user, topic, port = server.port) {
  const socket = await phxSocket(user, { port });
  const channel = socket.channel(topic);
  const reply = await join(channel);
  assert.equal(reply.status, "ok", `${user} joining ${topic}: ${JSON.stringify(reply)}`);
  return { socket, channel };
}

// ---------- the tests ----------

describe("dashboard and /metrics over HTTP", () => {
  afterEach(async () => {
    await cleanup();
    if (running(server.proc)) await stopServer();
  });

  for (const example of EXAMPLES) {
    test(`${example}: 404 without TETHER_DASHBOARD_PASSWORD; with it 401 without the right credentials, 200 with them`, OPTS, async () => {
      await start(example, { TETHER_DASHBOARD_PASSWORD: undefined });
      await assertAbsent(example, server.port);
      await stopServer();

      await start(example);
      await assertGuarded(example, server.port);
    });
  }

  test("presence_chat: tether_connections counts a connected phoenix.js socket, and uncounts it after disconnect", OPTS, async () => {
    await start("presence_chat");
    const before = await scrapeConnections(server.port);

    const socket = await phxSocket("metrics-watcher");
    await connectionsBecome(server.port, before + 1);
    // Joining a channel is not another connection.
    const channel = socket.channel("room:metrics");
    assert.equal((await join(channel)).status, "ok");
    assert.equal(await scrapeConnections(server.port), before + 1, "joining a channel changed tether_connections");

    await disconnect(socket);
    await connectionsBecome(server.port, before);
  });
});

describe("the dashboard in Chromium", { skip: chromiumSkip }, () => {
  let browser = null;
  const contexts = [];
  let redis = null;

  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await closePeople(contexts, problems);
    await cleanup();
    try {
      await stopExtras();
      if (running(server.proc)) await stopServer();
    } finally {
      if (redis) await stopRedis(redis);
      redis = null;
    }
  });

  after(async () => {
    if (browser) await browser.close();
  });

  test("presence_chat: the dashboard page loads without a console error", OPTS, async () => {
    await start("presence_chat");
    const page = await openDashboard(browser, contexts, server.port, "dashboard");
    // Anything the browser still fetches or logs right after loading (a missing favicon, say)
    // is logged by then: no error may come within LIVE_MS.
    if (problems.length === 0) {
      await page
        .waitForEvent("console", { predicate: (msg) => msg.type() === "error", timeout: LIVE_MS })
        .catch(() => {}); // none came: good
    }
    assertNoProblems(() => false);
    await assertSamePage(page);
  });

  test("presence_chat: a topic row follows joins and leaves live, without a reload", OPTS, async () => {
    await start("presence_chat");
    const page = await openDashboard(browser, contexts, server.port, "dashboard");
    const topic = "room:dashboard";

    // The dashboard's own page connection tracks nothing: no topic yet.
    const initial = await shown(page);
    assert.deepEqual(initial.topics, [], `a fresh server's dashboard shows topics: ${JSON.stringify(initial.topics)}`);
    assert.equal(initial.nodes.length, 1, `one node: ${JSON.stringify(initial.nodes)}`);
    assert.equal(initial.nodes[0].status, "up", "the local node reads up");

    const alice = await member("alice", topic);
    await topicShows(page, topic, 1, 1);

    const bob = await member("bob", topic);
    await topicShows(page, topic, 2, 2);

    // A second connection of alice: one more connection, not one more user.
    const alice2 = await member("alice", topic);
    await topicShows(page, topic, 2, 3);

    // Another topic gets its own row and leaves this one alone.
    const carol = await member("carol", "room:other");
    await topicShows(page, "room:other", 1, 1);
    await topicShows(page, topic, 2, 3);

    // Leaving the channel (the socket stays) and closing a socket both count.
    assert.equal((await leave(alice2.channel)).status, "ok");
    await topicShows(page, topic, 2, 2);
    await disconnect(bob.socket);
    await topicShows(page, topic, 1, 1);
    await disconnect(alice.socket);
    await topicGone(page, topic);
    await topicShows(page, "room:other", 1, 1);
    await disconnect(carol.socket);
    await disconnect(alice2.socket);
    await topicGone(page, "room:other");

    await assertSamePage(page);
    assertNoProblems();
  });

  test("presence_chat: the sort buttons reorder the topics table", OPTS, async () => {
    await start("presence_chat");
    // Joined means the dashboard's own socket took the Basic credentials Chromium resent on
    // the upgrade (it answers 401 without them).
    const page = await openDashboard(browser, contexts, server.port, "dashboard");
    // a: 1 user, 4 connections; b: 3 users, 3 connections; c: 2 users, 2 connections.
    const people = [];
    for (const [user, topic] of [
      ["ann", "room:sort-a"], ["ann", "room:sort-a"], ["ann", "room:sort-a"], ["ann", "room:sort-a"],
      ["bob", "room:sort-b"], ["cy", "room:sort-b"], ["dee", "room:sort-b"],
      ["eve", "room:sort-c"], ["fay", "room:sort-c"],
    ]) {
      people.push(await member(user, topic));
    }
    await topicShows(page, "room:sort-a", 1, 4);
    await topicShows(page, "room:sort-b", 3, 3);
    await topicShows(page, "room:sort-c", 2, 2);

    const order = (expected, active) =>
      waitOn(
        page,
        ([want, button]) => {
          const rows = [...document.querySelectorAll("#topics tr[data-topic]")].map((tr) => tr.dataset.topic);
          const activeButton = document.querySelector("#topics button.sort.active")?.textContent.trim();
          return JSON.stringify(rows.filter((t) => t.startsWith("room:sort-"))) === JSON.stringify(want) && activeButton === button;
        },
        [expected.map((t) => `room:sort-${t}`), active],
        `the topics to read ${expected.join(", ")} sorted by ${active}`,
      );
    const click = (label) => page.click(`#topics button.sort:text-is("${label}")`, { timeout: WAIT_MS });

    await order(["b", "c", "a"], "Users"); // the default: most users first
    await click("Topic");
    await order(["a", "b", "c"], "Topic"); // a new column: names ascending
    await click("Topic");
    await order(["c", "b", "a"], "Topic"); // the same column again: reversed
    await click("Connections");
    await order(["a", "b", "c"], "Connections"); // most connections first
    await click("Users");
    await order(["b", "c", "a"], "Users");

    for (const { socket } of people) await disconnect(socket);
    await assertSamePage(page);
    assertNoProblems();
  });

  test("two nodes over Redis: node a's dashboard sees node b come, count, crash, come back and leave", CLUSTER_OPTS, async () => {
    redis = await startRedis();
    const cluster = (node) => ({
      TETHER_PUBSUB_URL: `redis://127.0.0.1:${redis.port}/`,
      TETHER_NODE: node,
      TETHER_SECRET_KEY_BASE: SECRET,
      TETHER_PRESENCE_BROADCAST_PERIOD_MS: String(BROADCAST_MS),
      TETHER_PRESENCE_DOWN_PERIOD_MS: String(DOWN_MS),
      TETHER_PRESENCE_PERMDOWN_PERIOD_MS: String(PERMDOWN_MS),
    });
    const topic = "room:cluster";
    // A peer's arrival and departure take up to a presence period or two before the sampler sees them.
    const PEER_MS = LIVE_MS + 2 * BROADCAST_MS;
    // A crash is noticed after the down period.
    const CRASH_MS = DOWN_MS + LIVE_MS;

    await start("presence_chat", cluster("a"));
    let b = await startExample("presence_chat", { TETHER_DASHBOARD_PASSWORD: PASSWORD, ...cluster("b") });
    const page = await openDashboard(browser, contexts, server.port, "node a's dashboard");

    await nodeShows(page, "a", "up");
    await nodeShows(page, "b", "up", PEER_MS);

    // A user on each node: a's topic counts both.
    const ann = await member("ann", topic);
    await topicShows(page, topic, 1, 1);
    const bert = await member("bert", topic, b.port);
    await topicShows(page, topic, 2, 2, PEER_MS);
    // Another connection of ann, on node b this time: the same user, one more connection.
    const ann2 = await member("ann", topic, b.port);
    await topicShows(page, topic, 2, 3, PEER_MS);
    // Connections per node: b reports its own two sockets (bert, ann2) to a's dashboard; a
    // counts ann and this dashboard page.
    await nodeConnections(page, "b", 2, PEER_MS);
    await nodeConnections(page, "a", 2);

    // The artifact: both nodes and a topic with users of both.
    await nodeShows(page, "b", "up");
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: joinPath(ARTIFACTS, "dashboard.png"), fullPage: true });

    // kill -9 node b: down after the down period, and its users leave a's counts.
    const firstIncarnation = (await shown(page)).nodes.find((n) => n.node === "b")?.incarnation;
    await killExample(b);
    await nodeShows(page, "b", "down", CRASH_MS);
    await nodeConnections(page, "b", "–");
    await topicShows(page, topic, 1, 1, CRASH_MS);
    await nodeShows(page, "a", "up");
    // The clients of the dead node would reconnect forever: stop them.
    await disconnect(bert.socket);
    await disconnect(ann2.socket);

    // b again, a new run under the same name: up again, its users count again.
    b = await startExample("presence_chat", { TETHER_DASHBOARD_PASSWORD: PASSWORD, ...cluster("b") });
    await nodeShows(page, "b", "up", PEER_MS);
    const secondIncarnation = (await shown(page)).nodes.find((n) => n.node === "b")?.incarnation;
    assert.notEqual(secondIncarnation, firstIncarnation, "the restarted node b shows the incarnation of its crashed run");
    const bea = await member("bea", topic, b.port);
    await topicShows(page, topic, 2, 2, PEER_MS);

    // SIGTERM: b says goodbye; it reads down and its user leaves at once (no down period to wait).
    await stopExample(b);
    await nodeShows(page, "b", "down", PEER_MS);
    await topicShows(page, topic, 1, 1, PEER_MS);
    await disconnect(bea.socket);

    // A node that only ever left by goodbye (no crashed run of it lingers in presence) is
    // remembered as down rather than vanishing from the table.
    const c = await startExample("presence_chat", { TETHER_DASHBOARD_PASSWORD: PASSWORD, ...cluster("c") });
    await nodeShows(page, "c", "up", PEER_MS);
    const cy = await member("cy", topic, c.port);
    await topicShows(page, topic, 2, 2, PEER_MS);
    await stopExample(c);
    await nodeShows(page, "c", "down", PEER_MS);
    await topicShows(page, topic, 1, 1, PEER_MS);
    await disconnect(cy.socket);
    await nodeShows(page, "b", "down");
    await nodeShows(page, "a", "up");

    // ann leaves: the topic goes.
    await disconnect(ann.socket);
    await topicGone(page, topic);

    await assertSamePage(page);
    assertNoProblems();
  });
});
