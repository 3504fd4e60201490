// The `presence_chat` page (tether.js and its Presence client) in Debian's Chromium, driven by
// playwright-core. Run with `node --test` from tests/node after `cargo build --examples`
// (scripts/test does both); .ci/run installs Chromium (apt package `chromium`).
//
// Without /usr/bin/chromium the tests are skipped, unless CI is set: in CI they fail.
// Every wait is event-driven and bounded (page.waitForFunction); nothing sleeps.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TEST_OPTS, WAIT_MS, chromiumSkip, launchChromium, server, startServer, stopServer } from "./support.mjs";

let browser;
let context; // one browser context: its pages share one profile, like tabs
const problems = []; // console errors and page errors of every page
const pages = new Set();

/** Opens `/?name=<name>` in a new page of the context and waits for it to load. */
async function openPage(name) {
  const page = await context.newPage();
  pages.add(page);
  const label = `page ${name}`;
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${label} console error: ${msg.text()} (${JSON.stringify(msg.location())})`);
  });
  page.on("pageerror", (err) => problems.push(`${label} page error: ${err.stack || err}`));
  page.label = label;
  const url = `http://127.0.0.1:${server.port}/?${new URLSearchParams({ name })}`;
  const response = await page.goto(url, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `GET ${url}`);
  return page;
}

/** The text lines of `main[role=main]` on `page`. */
function mainLines(page) {
  return page.evaluate(() => {
    const main = document.querySelector("main[role=main]");
    return main ? main.innerText.split("\n").map((l) => l.trim()).filter(Boolean) : null;
  });
}

/** Waits (bounded) until `page`'s main lines are exactly `expected`, in any order. */
async function converge(page, expected) {
  const want = [...expected].sort();
  try {
    await page.waitForFunction(
      (want) => {
        const main = document.querySelector("main[role=main]");
        if (!main) return false;
        const lines = main.innerText.split("\n").map((l) => l.trim()).filter(Boolean).sort();
        return JSON.stringify(lines) === JSON.stringify(want);
      },
      want,
      { timeout: WAIT_MS },
    );
  } catch (err) {
    const lines = await mainLines(page).catch((e) => `(unreadable: ${e.message})`);
    throw new Error(
      `${page.label}: main[role=main] did not become ${JSON.stringify(want)} within ${WAIT_MS} ms; ` +
        `it shows ${JSON.stringify(lines)}\nproblems: ${JSON.stringify(problems)}\n(${err.message.split("\n")[0]})\n` +
        `--- server output (tail) ---\n${server.output.slice(-2000)}`,
    );
  }
}

describe("presence_chat page in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
    await startServer("presence_chat");
    context = await browser.newContext();
  });

  afterEach(async () => {
    for (const page of pages) await page.close().catch(() => {});
    pages.clear();
    problems.length = 0;
  });

  after(async () => {
    if (context) await context.close();
    if (browser) await browser.close();
    if (server.proc) await stopServer();
  });

  test("two Alice pages and a Bob page converge; closing one Alice page updates the rest", TEST_OPTS, async () => {
    const alice1 = await openPage("Alice");
    const alice2 = await openPage("Alice");
    const bob = await openPage("Bob");
    for (const page of [alice1, alice2, bob]) await converge(page, ["Alice (count: 2)", "Bob (count: 1)"]);

    await alice2.close();
    pages.delete(alice2);
    for (const page of [alice1, bob]) await converge(page, ["Alice (count: 1)", "Bob (count: 1)"]);

    assert.deepEqual(problems, [], "console errors or page errors");
  });

  test("a name containing HTML is shown as text, not markup", TEST_OPTS, async () => {
    const name = "<b>x</b>";
    const html = await openPage(name);
    const bob = await openPage("Bob");
    for (const page of [html, bob]) {
      await converge(page, [`${name} (count: 1)`, "Bob (count: 1)"]);
      const bold = await page.evaluate(() => document.querySelectorAll("b").length);
      assert.equal(bold, 0, `${page.label}: the name became a <b> element`);
    }
    const shown = await html.evaluate(() => document.querySelector("strong")?.textContent);
    assert.equal(shown, name, "the page's own name is text");

    assert.deepEqual(problems, [], "console errors or page errors");
  });
});
