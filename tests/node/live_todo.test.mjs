// The `live_todo` example (docs/contracts.md: the commander tour) in Debian's Chromium, driven
// by playwright-core through tether.js: only what needs a real browser. A re-render that leaves
// a person's focus and caret alone, the filter's CSS hiding items, a width measured by real
// layout, and tether.js's own reconnect after a server restart. The rest of the contract
// (routes, adding, per-item buttons, the debounced filter's count, the confirm dialog, the
// import job, viewers, controls while disconnected) is tested without a browser by the kit
// tests at the end of examples/live_todo.rs (`cargo test --features testing`).
// Run with `node --test` from tests/node after `cargo build --examples` (scripts/test does both).
//
// Every test starts its own server (PORT=0); each browser "person" is its own playwright
// context. Every page must log no console error or warning and throw no page error (except the
// "WebSocket connection … failed" lines while the server is deliberately down).
// Without /usr/bin/chromium the tests are skipped, unless CI is set: in CI they fail.
// Every wait is event-driven and bounded (page.waitForFunction); nothing sleeps, except the
// typing rhythm the contract names (8 characters 50 ms apart).

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  WAIT_MS,
  assertServerAlive,
  chromiumSkip,
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
const SECRET = "live-todo-test-secret-".padEnd(64, "k");
const WS_FAILED = /^console error: WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/tether\/socket\/websocket\?vsn=2\.0\.0' failed/;

let browser = null;
const contexts = [];
let outputMark = 0;
const problems = [];

async function start(env = {}) {
  outputMark = server.output.length;
  await startServer("live_todo", { TETHER_CONFIG: undefined, ...env });
}

function serverLog() {
  return server.output.slice(outputMark);
}

function url(path) {
  return `http://127.0.0.1:${server.port}${path}`;
}

function person(label) {
  return newPerson(browser, contexts, label);
}

function watch(page, label) {
  watchPage(page, label, problems);
}

/** Opens `path` in a new tab of `context` and waits until its page channel is joined. */
async function open(context, path = "/lists/home") {
  const page = await context.newPage();
  context.tabs += 1;
  watch(page, `${context.label} tab ${context.tabs}`);
  const response = await page.goto(url(path), { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${page.label}: GET ${path}`);
  await connected(page);
  return page;
}

/** What `page` shows, for failure messages. */
function shown(page) {
  return page.evaluate(() => ({
    items: [...document.querySelectorAll("#items li.item")].map((li) => ({
      text: li.querySelector(".text")?.textContent,
      done: li.classList.contains("done"),
    })),
    count: document.querySelector("#count")?.textContent,
    error: document.querySelector("#error")?.textContent,
    filter_calls: document.querySelector("#filter_calls")?.textContent,
    viewers: document.querySelector("#viewers")?.textContent,
    progress: document.querySelector("#progress")?.value,
    import_disabled: document.querySelector("#import")?.disabled,
    add_disabled: document.querySelector("#add")?.disabled,
    tether: document.documentElement.dataset.tether,
  }));
}

function waitOn(page, fn, arg, what) {
  return waitInPage(page, fn, arg, what, { shown, problems, serverLog });
}

function connected(page) {
  return waitOn(page, () => document.documentElement.dataset.tether === "connected", null, 'data-tether="connected"');
}

/** Waits until every page lists exactly `texts` (in order) with `#count` matching. */
async function showItems(pages, texts) {
  for (const page of pages) {
    await waitOn(
      page,
      (want) => {
        const texts = [...document.querySelectorAll("#items li.item .text")].map((e) => e.textContent);
        return JSON.stringify(texts) === JSON.stringify(want) && document.querySelector("#count").textContent === String(want.length);
      },
      texts,
      `items ${JSON.stringify(texts)}`,
    );
  }
}

/**
 * Types `text` into #new_item, clicks #add, and waits for the handler's reply (tether.js
 * disables #add from the click until then), as a person would before typing the next item.
 */
async function add(page, text) {
  await page.fill("#new_item", text);
  await page.click("#add");
  await waitOn(page, () => !document.querySelector("#add").disabled, null, "#add enabled after its handler");
}

function assertNoProblems(except = () => false) {
  const left = problems.filter((p) => !except(p));
  assert.deepEqual(left.map((p) => `${p.label}: ${p.text}`), [], "console errors/warnings or page errors");
}

describe("live_todo in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await closePeople(contexts, problems);
    if (server.proc && server.proc.exitCode === null && server.proc.signalCode === null) {
      assertServerAlive();
      await stopServer();
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("per-item buttons: .done toggles class done and .remove removes, on every page, without disturbing typing", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    for (const text of ["bread", "eggs", "tea"]) await add(a, text);
    await showItems([a, b], ["bread", "eggs", "tea"]);

    // B is typing while A works on the list.
    await b.focus("#new_item");
    await b.keyboard.type("half");
    await a.locator("#items li.item", { hasText: "eggs" }).locator("input.done").check();
    for (const page of [a, b]) {
      await waitOn(
        page,
        () => [...document.querySelectorAll("#items li.item")].find((li) => li.textContent.includes("eggs"))?.classList.contains("done") === true,
        null,
        "eggs marked done",
      );
    }
    await a.locator("#items li.item", { hasText: "bread" }).locator("button.remove").click();
    await showItems([a, b], ["eggs", "tea"]);
    await a.locator("#items li.item", { hasText: "eggs" }).locator("input.done").uncheck();
    await waitOn(b, () => document.querySelectorAll("#items li.done").length === 0, null, "eggs no longer done");
    assert.deepEqual(
      await b.evaluate(() => [document.activeElement?.id, document.querySelector("#new_item").value]),
      ["new_item", "half"],
      "B's focus and half-typed text survive A's changes",
    );
    assertNoProblems();
  });

  test("filter: debounced on the server (8 keys 50 ms apart run it at most 3 times) and exact after the last key", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    for (const text of ["Strawberries", "strawberry jam", "straws", "bread"]) await add(a, text);
    await showItems([a], ["Strawberries", "strawberry jam", "straws", "bread"]);

    await a.focus("#filter");
    await a.keyboard.type("strawber", { delay: 50 });
    await waitOn(
      a,
      () => {
        const texts = [...document.querySelectorAll("#items li.item")]
          .filter((li) => li.offsetParent !== null)
          .map((li) => li.querySelector(".text").textContent);
        return JSON.stringify(texts) === JSON.stringify(["Strawberries", "strawberry jam"]);
      },
      null,
      "only the items matching the full filter",
    );
    const calls = Number(await a.textContent("#filter_calls"));
    assert.ok(calls >= 1 && calls <= 3, `the server ran the filter ${calls} times`);

    // CSS syntax in the filter is matched as text, not obeyed: nothing matches, nothing shows.
    await a.fill("#filter", 'zz"] , #items li { display: block } [x="');
    await waitOn(a, () => [...document.querySelectorAll("#items li.item")].every((li) => li.offsetParent === null), null, "no item shown");
    // Another page's change re-renders the list; this page's filter still applies.
    await a.fill("#filter", "bread");
    const b = await open(await person("B"));
    await add(b, "more bread");
    await waitOn(
      a,
      () => {
        const shown = [...document.querySelectorAll("#items li.item")].filter((li) => li.offsetParent !== null);
        return JSON.stringify(shown.map((li) => li.querySelector(".text").textContent)) === JSON.stringify(["bread", "more bread"]);
      },
      null,
      "the filter applied to the re-rendered list",
    );
    assertNoProblems();
  });

  test("measure: #width shows #items' offsetWidth read in the browser", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    // The expected number is read in the browser too: the server cannot compute it.
    for (const width of ["333px", "271px"]) {
      const expected = await a.evaluate((w) => {
        const items = document.querySelector("#items");
        items.style.width = w;
        return String(items.offsetWidth);
      }, width);
      await a.click("#measure");
      await waitOn(a, (want) => document.querySelector("#width").textContent === want, expected, `#width ${expected}`);
    }
    assertNoProblems();
  });

  test("socket down: #add and #import are disabled, and enabled again after the reconnect", OPTS, async () => {
    await start({ TETHER_SECRET_KEY_BASE: SECRET });
    const port = server.port;
    const a = await open(await person("A"));
    await waitOn(a, () => !document.querySelector("#add").disabled && !document.querySelector("#import").disabled, null, "controls enabled");
    const windowStart = Date.now();
    await stopServer();
    await waitOn(
      a,
      () => document.querySelector("#add").disabled && document.querySelector("#import").disabled,
      null,
      "#add and #import disabled while the socket is down",
    );
    await start({ PORT: String(port), TETHER_SECRET_KEY_BASE: SECRET });
    await connected(a);
    await waitOn(a, () => !document.querySelector("#add").disabled && !document.querySelector("#import").disabled, null, "controls enabled again");
    const windowEnd = Date.now();
    await add(a, "after the restart");
    await showItems([a], ["after the restart"]);
    assertNoProblems((p) => p.at >= windowStart && p.at <= windowEnd && WS_FAILED.test(p.text));
  });
});
