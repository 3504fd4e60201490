// The `online_counter` example (docs/contracts.md: Drab's online-user counter on a commander) in
// Debian's Chromium, driven by playwright-core, plus raw `ws` checks of the page channel.
// Run with `node --test` from tests/node after `cargo build --examples` (scripts/test does both).
//
// Every test starts its own server (PORT=0) so the tests are independent; each browser
// "person" is its own playwright context (own cookies and localStorage), and tabs are pages of
// a context. Every page must log no console error or warning and throw no page error.
// Without /usr/bin/chromium the tests are skipped, unless CI is set: in CI they fail.
// Every wait is event-driven and bounded (page.waitForFunction, `within`); nothing sleeps.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  RawClient,
  WAIT_MS,
  assertServerAlive,
  chromiumSkip,
  cleanup,
  closePeople,
  launchChromium,
  newPerson,
  server,
  startServer,
  stopServer,
  waitInPage,
  watchPage,
} from "./support.mjs";

const OPTS = { timeout: 60_000 };
const SOCKET_PATH = "/tether/socket";
const PAGE_TOPIC = "tether:page:counter";
// A fixed key so that page tokens and browser ids survive a restart (the reconnect test).
const SECRET = "online-counter-test-secret-".padEnd(64, "k");
// What Chromium logs (as a console error) for a WebSocket that cannot connect.
const WS_FAILED = /^WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/tether\/socket\/websocket\?vsn=2\.0\.0' failed/;

let browser = null; // one Chromium per file; every test makes its own contexts
const contexts = [];
let tmp = null; // a temp dir for config files, removed after each test
let outputMark = 0; // server.output length when the current server started
const problems = []; // console errors/warnings and page errors: {label, text, at}

// ---------- server ----------

/** Starts online_counter (PORT=0 unless given) and remembers where its output begins. */
async function start(env = {}) {
  outputMark = server.output.length;
  await startServer("online_counter", { TETHER_CONFIG: undefined, ...env });
}

/** The current server's output (stdout+stderr) since it started. */
function serverLog() {
  return server.output.slice(outputMark);
}

function running() {
  return server.proc && server.proc.exitCode === null && server.proc.signalCode === null;
}

/** A temp TOML file with `text`; its path. */
function configFile(text) {
  tmp ??= mkdtempSync(join(tmpdir(), "tether-online-counter-"));
  const path = join(tmp, `config-${Date.now()}-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(path, text);
  return path;
}

// ---------- browsers and pages ----------

/** A new browser "person": its own cookies and localStorage. */
function person(label) {
  return newPerson(browser, contexts, label);
}

function watch(page, label) {
  watchPage(page, label, problems);
}

function url(path) {
  return `http://127.0.0.1:${server.port}${path}`;
}

/** Opens `path` in a new tab of `context`; waits until the page channel is joined. */
async function open(context, path = "/") {
  const page = await context.newPage();
  context.tabs += 1;
  watch(page, `${context.label} tab ${context.tabs}`);
  const response = await page.goto(url(path), { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${page.label}: GET ${path} (ended at ${page.url()})`);
  await connected(page);
  return page;
}

/** Reloads `page` and waits until it is joined again. */
async function reload(page) {
  const response = await page.reload({ timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${page.label}: reload of ${page.url()}`);
  await connected(page);
}

/** Navigates `page` to `path` (following redirects) and waits until it is joined. */
async function visit(page, path) {
  const response = await page.goto(url(path), { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${page.label}: GET ${path} (ended at ${page.url()})`);
  await connected(page);
}

function waitOn(page, fn, arg, what) {
  return waitInPage(page, fn, arg, what, { shown, problems, serverLog });
}

/** What `page` shows: the counts, the live counter and the connection state. */
function shown(page) {
  return page.evaluate(() => ({
    users: document.querySelector("#number_of_users")?.textContent,
    connections: document.querySelector("#number_of_connections")?.textContent,
    live_users: document.querySelector('[data-tether-count="users"]')?.textContent,
    tether: document.documentElement.dataset.tether,
    url: location.href,
  }));
}

function connected(page) {
  return waitOn(page, () => document.documentElement.dataset.tether === "connected", null, 'data-tether="connected"');
}

/**
 * Waits until every page shows `users` / `connections` (the commander's patches) and the
 * live counter `[data-tether-count="users"]` (refreshed by the server) shows `users` too.
 */
async function showCounts(pages, users, connections) {
  for (const page of pages) {
    await waitOn(
      page,
      ([u, c]) => {
        const text = (sel) => document.querySelector(sel)?.textContent;
        return (
          text("#number_of_users") === u &&
          text("#number_of_connections") === c &&
          text('[data-tether-count="users"]') === u
        );
      },
      [String(users), String(connections)],
      `${users} users / ${connections} connections`,
    );
  }
}

/**
 * Waits until every page's "who is here" list (`[data-tether-presence][data-tether-fields]`)
 * shows exactly `lines` (strings or regexps; in order unless `anyOrder`).
 */
async function showWho(pages, lines, { anyOrder = false } = {}) {
  const wanted = lines.map((l) => (l instanceof RegExp ? { re: l.source } : { text: l }));
  for (const page of pages) {
    await waitOn(
      page,
      ([wanted, anyOrder]) => {
        const items = [...document.querySelectorAll("[data-tether-presence][data-tether-fields] > li")].map((li) => li.textContent.trim());
        if (items.length !== wanted.length) return false;
        const fits = (item, w) => (w.re ? new RegExp(w.re).test(item) : item === w.text);
        return anyOrder ? wanted.every((w) => items.some((item) => fits(item, w))) : items.every((item, i) => fits(item, wanted[i]));
      },
      [wanted, anyOrder],
      `who is here: ${JSON.stringify(lines.map(String))}`,
    );
  }
}

async function close(page) {
  await page.close();
}

function assertNoProblems(except = () => false) {
  const left = problems.filter((p) => !except(p));
  assert.deepEqual(left.map((p) => `${p.label}: ${p.text}`), [], "console errors/warnings or page errors");
}

// ---------- raw page-channel clients ----------

/** The page token of a fresh `GET /` (HTML attribute, unescaped). */
async function pageToken() {
  const html = await (await fetch(url("/"))).text();
  const m = /data-tether-token="([^"]*)"/.exec(html);
  assert.ok(m, `no data-tether-token in GET /:\n${html}`);
  return m[1]
    .replaceAll("&quot;", '"')
    .replaceAll("&#34;", '"')
    .replaceAll("&#39;", "'")
    .replaceAll("&#60;", "<")
    .replaceAll("&#62;", ">")
    .replaceAll("&#x27;", "'")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&amp;", "&")
    .replaceAll("&#38;", "&");
}

/** `token` with the character at `index` replaced by another one. */
function changeChar(token, index) {
  const c = token[index];
  const other = c === "A" ? "B" : c === "a" ? "b" : c >= "0" && c <= "9" ? (c === "0" ? "1" : "0") : "A";
  const forged = token.slice(0, index) + other + token.slice(index + 1);
  assert.notEqual(forged, token);
  assert.equal(forged.length, token.length);
  return forged;
}

function joinPayload(token) {
  return { token, browser_id: null, store: null, onload: true, counters: [] };
}

// ---------- the tests ----------

describe("online_counter in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await closePeople(contexts, problems);
    await cleanup();
    try {
      if (running()) await stopServer();
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
      tmp = null;
    }
  });

  after(async () => {
    if (browser) await browser.close();
  });

  test("browser-id mode: tabs of one browser are one user; counts follow opens and closes live", OPTS, async () => {
    await start();
    const a = await person("A");
    const b = await person("B");

    const a1 = await open(a);
    await showCounts([a1], 1, 1);
    // Opened after a1 stored its browser id: same browser, same user.
    const a2 = await open(a);
    await showCounts([a1, a2], 1, 2);

    const b1 = await open(b);
    await showCounts([a1, a2, b1], 2, 3);

    await close(a2);
    await showCounts([a1, b1], 2, 2);

    await close(b1);
    await showCounts([a1], 1, 1);

    assertNoProblems();
  });

  test("session mode: pages of a logged-in user count as that user; logout falls back to the browser id", OPTS, async () => {
    await start({ TETHER_CONFIG: configFile('[presence]\nid = [{ session = "current_user_id" }]\n') });
    const l1 = await person("logged-in 1");
    const l2 = await person("logged-in 2");
    const anon = await person("anonymous");

    const p1 = await open(l1, "/login?user_id=42");
    assert.equal(new URL(p1.url()).pathname, "/", "/login redirects to /");
    assert.match(await p1.textContent("body"), /Logged in as 42/);
    const p2 = await open(l2, "/login?user_id=42");
    assert.equal(new URL(p2.url()).pathname, "/", "/login redirects to /");
    assert.match(await p2.textContent("body"), /Logged in as 42/);
    // Two browsers, one session user.
    await showCounts([p1, p2], 1, 2);
    await showWho([p1, p2], ["42 · 2 page(s)"]);

    const p3 = await open(anon);
    assert.match(await p3.textContent("body"), /log in as 42/);
    await showCounts([p1, p2, p3], 2, 3);
    // The live list (presence_list_with): one line per user, text only.
    await showWho([p1, p2, p3], ["42 · 2 page(s)", /^guest [0-9a-f]{4} · 1 page\(s\)$/], { anyOrder: true });

    // p1 logs out: it is keyed by its own browser id now. Open: p1 (browser of l1),
    // p2 (user 42), p3 (browser of anon) → 3 users, 3 connections.
    await visit(p1, "/logout");
    assert.equal(new URL(p1.url()).pathname, "/", "/logout redirects to /");
    assert.match(await p1.textContent("body"), /log in as 42/);
    await reload(p1);
    await showCounts([p1, p2, p3], 3, 3);

    // And the anonymous page leaving leaves user 42 and l1's browser.
    await close(p3);
    await showCounts([p1, p2], 2, 2);
    await showWho([p1, p2], [/^guest [0-9a-f]{4} · 1 page\(s\)$/, "42 · 1 page(s)"], { anyOrder: true });

    assertNoProblems();
  });

  test("store mode: remember_me keys the next load by the stored value; a tampered store is refused", OPTS, async () => {
    await start({ TETHER_CONFIG: configFile('[presence]\nid = [{ store = "current_user_id" }]\n') });
    const a = await person("A");
    const b = await person("B");
    const pa = await open(a);
    const pb = await open(b);
    await showCounts([pa, pb], 2, 2);

    for (const page of [pa, pb]) {
      await page.fill("#store_user_id", "alice");
      await page.click("#remember_me");
      await waitOn(page, () => localStorage.getItem("tether_store") !== null, null, "localStorage tether_store set");
    }
    // Effective on the next load only.
    await showCounts([pa, pb], 2, 2);
    await reload(pa);
    await showCounts([pa, pb], 2, 2); // pa is alice, pb still its browser id
    await reload(pb);
    await showCounts([pa, pb], 1, 2); // both alice

    // Tamper with A's store: one character of the encrypted token.
    const before = await pa.evaluate(() => localStorage.getItem("tether_store"));
    const tampered = changeChar(before, Math.floor(before.length / 2));
    await pa.evaluate((t) => localStorage.setItem("tether_store", t), tampered);
    await reload(pa);
    // A is keyed by its browser id again; B is still alice.
    await showCounts([pa, pb], 2, 2);
    // The page dropped the refused store.
    await waitOn(pa, () => localStorage.getItem("tether_store") === null, null, "the refused tether_store removed");
    assert.match(serverLog(), /store token refused/, "the server logs the refused store token");

    // B's store still works after a reload.
    await reload(pb);
    await showCounts([pa, pb], 2, 2);
    assert.equal(await pb.evaluate(() => localStorage.getItem("tether_store") !== null), true, "B keeps its store");

    // Development mode says so (issue 23): each page's console once, the server once per name.
    const stored = /^console warning: tether: store value "current_user_id" changes this page's presence .* until the next load/;
    for (const who of ["A tab 1", "B tab 1"]) {
      assert.equal(problems.filter((p) => p.label === who && stored.test(p.text)).length, 1, `${who} warned once`);
    }
    assert.equal(serverLog().split('store value "current_user_id" changes').length - 1, 1, "the server warns once per name");
    assertNoProblems((p) => stored.test(p.text));
  });

  test("reconnect: after a server restart on the same port the page rejoins by itself", OPTS, async (t) => {
    await start({ TETHER_SECRET_KEY_BASE: SECRET });
    const port = server.port;
    const a = await person("A");
    const a1 = await open(a);
    await showCounts([a1], 1, 1);

    // Mark what the page shows, so that the counts seen after the restart must come from the
    // new server.
    await a1.evaluate(() => {
      for (const sel of ["#number_of_users", "#number_of_connections", '[data-tether-count="users"]']) {
        document.querySelector(sel).textContent = "stale";
      }
    });

    const windowStart = Date.now();
    await stopServer(); // SIGTERM, exit 0
    await waitOn(a1, () => document.documentElement.dataset.tether === "disconnected", null, 'data-tether="disconnected"');
    await start({ PORT: String(port), TETHER_SECRET_KEY_BASE: SECRET });
    assert.equal(server.port, port, "the new server listens on the same port");
    await connected(a1);
    await showCounts([a1], 1, 1);
    const windowEnd = Date.now();

    // A second tab, opened after the restart: the first page updates without a reload.
    const a2 = await open(a);
    await showCounts([a1, a2], 1, 2);
    await close(a2);
    await showCounts([a1], 1, 1);

    // Only "WebSocket connection … failed" console errors, only during the restart window.
    assertNoProblems((p) => p.at >= windowStart && p.at <= windowEnd && WS_FAILED.test(p.text.replace(/^console error: /, "")));
    const restartErrors = problems.filter((p) => WS_FAILED.test(p.text.replace(/^console error: /, "")));
    t.diagnostic(
      `${restartErrors.length} "WebSocket connection … failed" console error(s) allowed during the restart` +
        (restartErrors.length ? `, e.g. ${restartErrors[0].text}` : ""),
    );
  });

  test("refused token: after a restart with another key the page reloads itself once; a token refused again shows a message", OPTS, async () => {
    await start({ TETHER_SECRET_KEY_BASE: SECRET });
    const port = server.port;
    const a = await person("A");
    const a1 = await open(a);
    await showCounts([a1], 1, 1);
    await a1.evaluate(() => { window.__beforeRestart = true; });
    const windowStart = Date.now();
    await stopServer();
    await waitOn(a1, () => document.documentElement.dataset.tether === "disconnected", null, 'data-tether="disconnected"');
    // Another key: the page's token (and browser id) no longer verify.
    const reloaded = a1.waitForEvent("load", { timeout: WAIT_MS * 3 });
    await start({ PORT: String(port), TETHER_SECRET_KEY_BASE: "z".repeat(64) });
    await reloaded;
    await connected(a1);
    assert.equal(await a1.evaluate(() => window.__beforeRestart), undefined, "the page reloaded itself");
    await showCounts([a1], 1, 1);
    const windowEnd = Date.now();

    // A page whose token is refused on every load (here: forged on the way): one reload,
    // then it stops rejoining and says so.
    const b = await person("B");
    const b1 = await b.newPage();
    watch(b1, "B tab 1");
    // Every load: the token is replaced as soon as the parser inserts the script tag,
    // before tether.js (an external script) runs.
    await b1.addInitScript(() => {
      new MutationObserver(() => {
        const script = document.querySelector("script[data-tether-token]");
        if (script && script.dataset.tetherToken !== "forged") script.dataset.tetherToken = "forged";
      }).observe(document, { childList: true, subtree: true });
    });
    let loads = 0;
    b1.on("load", () => { loads += 1; });
    await b1.goto(url("/"), { timeout: WAIT_MS });
    await waitOn(b1, () => document.documentElement.dataset.tether === "stale", null, 'data-tether="stale"');
    assert.equal(loads, 2, "loaded once, reloaded once");
    assert.match(await b1.textContent("#tether-stale"), /out of date.*Reload/);
    // It stopped: no join is retried (a rejoin would come within 2 s: tether.js retries
    // after 1 s at first), and it did not reload again.
    const refused = () => problems.filter((p) => p.label === "B tab 1" && /invalid page token/.test(p.text)).length;
    const atStale = refused();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    assert.equal(refused(), atStale, "no join retried after the message");
    assert.equal(loads, 2, "no further reload");
    assert.equal(await b1.evaluate(() => document.documentElement.dataset.tether), "stale");

    assertNoProblems((p) =>
      (p.at >= windowStart && p.at <= windowEnd && (WS_FAILED.test(p.text.replace(/^console error: /, "")) || /invalid page token/.test(p.text))) ||
      (p.label === "B tab 1" && /invalid page token/.test(p.text)));
  });

  test("who is here: no visitor is sent another visitor's browser id, in the page or on its socket", OPTS, async () => {
    await start();
    const a = await person("A");
    const a1 = await open(a);
    // A's browser id: the UUID inside its signed browser token.
    const signed = await a1.evaluate(() => localStorage.getItem("tether_browser_id"));
    const idOfA = /"d":"([0-9a-f-]{36})"/.exec(signed)?.[1];
    assert.ok(idOfA, `a browser id in ${signed}`);
    const guestA = `guest ${idOfA.slice(0, 4)} · 1 page(s)`;

    // B's page, with every frame its socket receives.
    const b = await person("B");
    const b1 = await b.newPage();
    b.tabs += 1;
    watch(b1, "B tab 1");
    const received = [];
    b1.on("websocket", (ws) => ws.on("framereceived", (frame) => received.push(String(frame.payload))));
    const response = await b1.goto(url("/"), { timeout: WAIT_MS });
    assert.equal(response.status(), 200);
    const served = await response.text();
    await connected(b1);
    // Both see both guests ("guest" and 4 hex digits stay the display).
    await showWho([a1, b1], [guestA, /^guest [0-9a-f]{4} · 1 page\(s\)$/], { anyOrder: true });
    // A third page joins and leaves: the list is updated over B's socket.
    const c1 = await open(await person("C"));
    await showWho([b1], [guestA, /^guest/, /^guest/], { anyOrder: true });
    await close(c1);
    await showWho([b1], [guestA, /^guest/], { anyOrder: true });

    assert.ok(served.includes("data-tether-presence"), "the list is in the page");
    assert.ok(!served.includes(idOfA), "the HTML served to B names A's browser id");
    assert.ok(!(await b1.content()).includes(idOfA), "B's document names A's browser id");
    assert.ok(received.some((f) => f.includes('"presence_list"')), `list updates over the socket: ${received.join("\n")}`);
    const leaked = received.filter((f) => f.includes(idOfA));
    assert.deepEqual(leaked, [], "frames to B naming A's browser id");
    // The entries are keyed by stand-ins.
    const keys = await b1.evaluate(() => [...document.querySelectorAll("[data-tether-presence] > li")].map((li) => li.dataset.tetherKey));
    assert.equal(keys.length, 2);
    for (const key of keys) assert.match(key, /^[0-9a-f]{16}$/);

    assertNoProblems();
  });

  test("page channel: a forged page token and an undeclared handler are refused", OPTS, async () => {
    await start();
    const token = await pageToken();
    const client = await RawClient.connect("raw page", {}, SOCKET_PATH);

    // One character changed in the signature, then one in the signed claims.
    const sigAt = 0;
    const claimsAt = token.indexOf('"counter"') + 1;
    assert.ok(claimsAt > 0, `the token names the commander: ${token}`);
    for (const [what, forged] of [
      ["signature", changeChar(token, sigAt)],
      ["claims", changeChar(token, claimsAt)],
    ]) {
      const reply = await client.request(PAGE_TOPIC, "phx_join", joinPayload(forged));
      assert.deepEqual(
        { status: reply.status, response: reply.response },
        { status: "error", response: { reason: "invalid page token" } },
        `join with a token forged in its ${what}`,
      );
    }
    assert.match(serverLog(), /page token refused/, "the server logs the refused page token");

    // The real token joins; an undeclared handler is refused and the channel stays usable.
    const joinRef = await client.join(PAGE_TOPIC, joinPayload(token));
    const joined = client.frames.find((f) => f.event === "phx_reply" && f.ref === joinRef).payload.response;
    assert.equal(typeof joined.browser_id, "string", `join reply ${JSON.stringify(joined)}`);
    assert.deepEqual(joined.topics, ["tether:topic:global"], `join reply ${JSON.stringify(joined)}`);
    assert.equal(joined.store_rejected, false);
    const dropped = await client.request(PAGE_TOPIC, "event", { handler: "drop_tables", sender: {} }, joinRef);
    assert.deepEqual(
      { status: dropped.status, response: dropped.response },
      { status: "error", response: { reason: "unknown handler" } },
      "push of an undeclared handler",
    );
    const from = client.cursor; // the store push comes before the reply
    const remembered = await client.request(PAGE_TOPIC, "event", { handler: "remember_me", sender: { form: { store_user_id: "bob" } } }, joinRef);
    assert.equal(remembered.status, "ok", `remember_me after the refusal: ${JSON.stringify(remembered)}`);
    client.cursor = from;
    await client.next((f) => f.event === "store" && f.topic === PAGE_TOPIC && typeof f.payload.token === "string", "store push after remember_me");

    // The same refusal through a real page's own channel (tether.js exposes Tether.page).
    const page = await open(await person("A"));
    const inPage = await page.evaluate(
      () =>
        new Promise((resolve) => {
          window.Tether.page.channel
            .push("event", { handler: "drop_tables", sender: {} })
            .receive("ok", (r) => resolve({ status: "ok", response: r }))
            .receive("error", (r) => resolve({ status: "error", response: r }))
            .receive("timeout", () => resolve({ status: "timeout" }));
        }),
    );
    assert.deepEqual(inPage, { status: "error", response: { reason: "unknown handler" } }, "push from the page");

    assertServerAlive();
    assertNoProblems();
  });
});
