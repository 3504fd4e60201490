// The `live_todo` example (docs/contracts.md: the commander tour) in Debian's Chromium, driven
// by playwright-core through tether.js: handler arguments, live re-rendering that leaves a
// person's typing alone, the debounced filter counted on the server, the confirm dialog, the
// import job with its progress bar and disabled button, a width measured in the browser, the
// live viewer count, and controls disabled while the socket is down.
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

  test("routes: / redirects to /lists/home; a bad list name is a 404", OPTS, async () => {
    await start();
    const home = await fetch(url("/"), { redirect: "manual" });
    assert.ok([302, 303, 307].includes(home.status), `GET / answered ${home.status}`);
    assert.equal(new URL(home.headers.get("location"), url("/")).pathname, "/lists/home");
    for (const bad of ["/lists/Home", "/lists/a_b", `/lists/${"a".repeat(33)}`, "/lists/%3Cb%3E"]) {
      assert.equal((await fetch(url(bad))).status, 404, `GET ${bad}`);
    }
    for (const good of ["/lists/a", "/lists/groceries-2", `/lists/${"z".repeat(32)}`]) {
      assert.equal((await fetch(url(good))).status, 200, `GET ${good}`);
    }
  });

  test("adding: every page of the list sees it, only the clicking page's input clears, bad text is refused", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    const other = await open(await person("C"), "/lists/other");

    await b.fill("#new_item", "half-typed");
    await add(a, "  <b>milk</b>  ");
    await showItems([a, b], ["<b>milk</b>"]); // trimmed, and shown as text
    assert.equal(await a.inputValue("#new_item"), "", "the clicking page's input is cleared");
    assert.equal(await b.inputValue("#new_item"), "half-typed", "the other page keeps its text");
    assert.equal(await a.locator("#items b").count(), 0, "markup in an item is not interpreted");
    await showItems([other], []);

    await add(a, "   ");
    await waitOn(a, () => document.querySelector("#error").textContent.trim() !== "", null, "an error for empty text");
    await add(a, "x".repeat(201));
    await waitOn(a, () => document.querySelector("#error").textContent.trim() !== "", null, "an error for long text");
    await add(a, "y".repeat(200));
    await showItems([a, b], ["<b>milk</b>", "y".repeat(200)]);
    assert.equal((await a.textContent("#error")).trim(), "", "the error is cleared by a good add");

    // Typing the next item while the last one is being added loses nothing: the form's field
    // is read-only until the handler's answer (which clears it), so the next fill waits.
    for (const text of ["one", "two", "three"]) {
      await a.fill("#new_item", text);
      await a.click("#add");
    }
    await showItems([a, b], ["<b>milk</b>", "y".repeat(200), "one", "two", "three"]);
    assertNoProblems();
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

  test("clear: a dialog asks; cancel keeps the list, ok empties it on every page", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    await add(a, "one");
    await showItems([a, b], ["one"]);

    await a.click("#clear");
    await a.waitForSelector("dialog[open] button[value=cancel]", { timeout: WAIT_MS });
    assert.equal(await a.locator("dialog[open] button[value=ok]").count(), 1);
    await a.click("dialog[open] button[value=cancel]");
    await waitOn(a, () => document.querySelector("dialog[open]") === null, null, "the dialog closed");
    await waitOn(a, () => !document.querySelector("#clear").disabled, null, "#clear enabled again");
    await showItems([a, b], ["one"]);

    await a.click("#clear");
    await a.click("dialog[open] button[value=ok]");
    await waitOn(a, () => document.querySelector("dialog[open]") === null, null, "the dialog closed");
    await showItems([a, b], []);
    assertNoProblems();
  });

  test("import: a 2 s job fills the list on every page and the progress bar, #import disabled meanwhile, #add still works", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    await a.click("#import");
    assert.equal(await a.evaluate(() => document.querySelector("#import").disabled), true, "#import disabled from the click on");
    await add(a, "during");
    await waitOn(a, () => [...document.querySelectorAll("#items .text")].some((e) => e.textContent === "during"), null, "#add works during the job");
    assert.equal(await a.evaluate(() => document.querySelector("#import").disabled), true, "the job is still running");
    await waitOn(a, () => document.querySelector("#progress").value === 100, null, "progress at 100");
    await waitOn(a, () => document.querySelector("#import").disabled === false, null, "#import enabled after the job");
    for (const page of [a, b]) {
      await waitOn(
        page,
        () => {
          const texts = [...document.querySelectorAll("#items .text")].map((e) => e.textContent);
          return [1, 2, 3, 4, 5].every((n) => texts.includes(`sample ${n}`)) && texts.length === 6;
        },
        null,
        "sample 1 … sample 5 and the item added meanwhile",
      );
    }
    const samples = await b.evaluate(() => [...document.querySelectorAll("#items .text")].map((e) => e.textContent).filter((t) => t.startsWith("sample")));
    assert.deepEqual(samples, ["sample 1", "sample 2", "sample 3", "sample 4", "sample 5"], "one by one, in order");
    assert.equal(await b.evaluate(() => document.querySelector("#progress").value), 0, "only the clicking page's bar moves");
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

  test("viewers: a live count of the pages open on this list", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    await waitOn(a, () => document.querySelector("#viewers").textContent.trim() === "1", null, "1 viewer");
    const b = await open(await person("B"));
    const elsewhere = await open(await person("C"), "/lists/other");
    for (const page of [a, b]) await waitOn(page, () => document.querySelector("#viewers").textContent.trim() === "2", null, "2 viewers");
    await waitOn(elsewhere, () => document.querySelector("#viewers").textContent.trim() === "1", null, "1 viewer on the other list");
    await b.close();
    await waitOn(a, () => document.querySelector("#viewers").textContent.trim() === "1", null, "back to 1 viewer");
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
