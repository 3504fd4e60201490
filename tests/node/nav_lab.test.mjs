// Live navigation and URL state (issue 25 items 1 and 7) in Debian's Chromium driven by
// playwright-core, against the fixture tests/fixtures/nav_lab.rs (built as the example
// `nav_lab`): the URL at join (handle_params), tether-patch links and GET forms, Back and
// Forward within a page and across pages, push_patch and push_navigate from the server, a
// navigate over the same socket (no document load, the old page's presence gone, the title
// follows), and an outdated tether.js reloading once.
//
// Every test starts its own server (PORT=0) and its own browser context. Console errors and
// warnings fail a test unless it expects them. Without /usr/bin/chromium the tests are
// skipped, unless CI is set: in CI they fail. Every wait is event-driven and bounded.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WAIT_MS, assertServerAlive, chromiumSkip, launchChromium, server, startServer, stopServer } from "./support.mjs";

const OPTS = { timeout: 60_000 };

let browser = null;
let context = null;
let outputMark = 0;
const problems = [];
let sockets = 0; // WebSockets the page opened
let documents = []; // document loads (paths)

async function open(path, { route } = {}) {
  outputMark = server.output.length;
  await startServer("nav_lab", { TETHER_CONFIG: undefined });
  context = await browser.newContext();
  if (route) await context.route("**/tether.js", route);
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
  page.on("websocket", () => { sockets += 1; });
  page.on("request", (request) => {
    if (request.isNavigationRequest()) documents.push(new URL(request.url()).pathname);
  });
  const response = await page.goto(`http://127.0.0.1:${server.port}${path}`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200);
  return page;
}

async function waitOn(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 20 });
  } catch (err) {
    const body = await page.evaluate(() => document.body.innerText).catch(() => "?");
    throw new Error(
      `${what} not reached within ${WAIT_MS} ms; the page: ${body}\nproblems: ${JSON.stringify(problems)}\n` +
        `(${err.message.split("\n")[0]})\n--- server output (tail) ---\n${server.output.slice(outputMark).slice(-2000)}`,
    );
  }
}

const joined = (page) => waitOn(page, () => document.documentElement.dataset.tether === "connected", null, "joined");

// Waits until the page shows `url` in the address bar and `text` in `sel`.
async function shows(page, url, sel, text) {
  await waitOn(
    page,
    ([u, s, t]) => location.pathname + location.search === u && document.querySelector(s)?.textContent === t,
    [url, sel, text],
    `${url} with ${sel} = ${text}`,
  );
}

describe("live navigation in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await context?.close().catch(() => {});
    context = null;
    problems.length = 0;
    sockets = 0;
    documents = [];
    if (server.proc && server.proc.exitCode === null && server.proc.signalCode === null) {
      assertServerAlive();
      await stopServer();
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("the URL reaches handle_params at join, on tether-patch links and GET forms, and Back/Forward within the page", OPTS, async () => {
    const page = await open("/notes?q=tea#top");
    assert.equal(await page.textContent("#q"), "tea", "a direct load renders the query");
    await joined(page);
    assert.equal(await page.evaluate(() => location.hash), "#top", "the loaded entry keeps its fragment");
    await shows(page, "/notes?q=tea", "#url", "/notes?q=tea"); // handle_params got the URL at join
    assert.equal(await page.textContent("#params_calls"), "1");
    await page.evaluate(() => { window.sameDocument = true; });

    await page.click("#patch_milk");
    await shows(page, "/notes?q=milk", "#q", "milk");
    assert.equal(await page.textContent("#params_calls"), "2");

    await page.fill("#search_q", "soup & bread");
    await page.click("#search_go");
    await shows(page, "/notes?q=soup+%26+bread", "#q", "soup & bread");

    await page.goBack();
    await shows(page, "/notes?q=milk", "#q", "milk");
    await page.goBack();
    await shows(page, "/notes?q=tea", "#q", "tea");
    await page.goForward();
    await shows(page, "/notes?q=milk", "#q", "milk");
    assert.equal(await page.textContent("#params_calls"), "6", "one handle_params per URL change");

    await page.click("#server_patch");
    await shows(page, "/notes?q=server", "#q", "server");
    assert.equal(await page.textContent("#params_calls"), "7");

    // An empty search: handle_params tidies the URL in place (replace_patch).
    await page.fill("#search_q", "");
    await page.click("#search_go");
    await shows(page, "/notes", "#url", "/notes");
    await page.goBack();
    await shows(page, "/notes?q=server", "#q", "server");
    assert.equal(await page.evaluate(() => window.sameDocument), true, "no document was loaded");
    assert.deepEqual(documents, ["/notes"]);
    assert.equal(sockets, 1);
    assert.deepEqual(problems, []);
  });

  test("a navigate swaps in another commander's page over the same socket; Back and Forward cross pages", OPTS, async () => {
    const page = await open("/notes?q=tea");
    await joined(page);
    await page.evaluate(() => { window.sameDocument = true; });
    await page.click("#patch_milk");
    await shows(page, "/notes?q=milk", "#q", "milk");

    await page.click("#to_about");
    await shows(page, "/about", "#about_url", "/about");
    assert.equal(await page.title(), "About", "the title follows");
    assert.equal(await page.textContent("#notes_here"), "0", "the notes page left before the about page joined");
    await joined(page);

    await page.goBack();
    await shows(page, "/notes?q=milk", "#q", "milk");
    assert.equal(await page.title(), "Notes milk");
    await page.goBack();
    await shows(page, "/notes?q=tea", "#q", "tea");
    await page.goForward();
    await page.goForward();
    await shows(page, "/about", "#about_url", "/about");
    // Back twice at once: the second (a patch within the notes page) comes while the first
    // (a navigate) is still joining; handle_params still sees the URL shown last.
    await page.goBack();
    await page.goBack();
    await shows(page, "/notes?q=tea", "#url", "/notes?q=tea");
    await page.goForward();
    await page.goForward();
    await shows(page, "/about", "#about_url", "/about");

    await page.click("#back_to_notes");
    await shows(page, "/notes?q=back", "#q", "back");
    await page.click("#server_navigate");
    await shows(page, "/about?from=server", "#about_url", "/about?from=server");

    assert.equal(await page.evaluate(() => window.sameDocument), true, "no document was loaded");
    assert.deepEqual(documents, ["/notes"]);
    assert.equal(sockets, 1, "one socket throughout");
    assert.deepEqual(problems, []);

    // A link without tether-navigate loads its document, as ever.
    await page.goBack();
    await shows(page, "/notes?q=back", "#q", "back");
    await joined(page);
    await Promise.all([page.waitForEvent("load"), page.click("#plain_about")]);
    assert.equal(await page.evaluate(() => window.sameDocument), undefined);
  });

  test("an outdated tether.js is refused and reloads once, then says the page is out of date", OPTS, async () => {
    const outdated = async (route) => {
      const response = await route.fetch();
      const body = (await response.text()).replace(/const VERSION = "[^"]+";/, 'const VERSION = "0.0.1";');
      assert.ok(body.includes('"0.0.1"'), "the bundle's version was found");
      await route.fulfill({ response, body });
    };
    const page = await open("/notes", { route: outdated });
    await waitOn(page, () => document.getElementById("tether-stale") !== null, null, "the out-of-date bar");
    assert.deepEqual(documents, ["/notes", "/notes"], "one reload, then no more");
    assert.ok(problems.length > 0 && problems.every((p) => /outdated client/.test(p)), JSON.stringify(problems));
  });
});
