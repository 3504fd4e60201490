// Forms that guide, in Debian's Chromium driven by playwright-core (issue 25, items 4 and 5):
// loading states (tether-disable-with, the tether-loading class) restored on the reply and on
// a lost socket; used fields in the sender (typed and left, changed, submitted); flash
// messages (text only, by kind, closed without a frame); a rejoin's recovery of forms.
// The page is the fixture tests/fixtures/forms_lab.rs (built as the example `forms_lab`).
//
// Every test starts its own server (PORT=0) and its own browser context. Console errors and
// warnings fail a test. Without /usr/bin/chromium the tests are skipped, unless CI is set.
// Every wait is event-driven and bounded; nothing sleeps.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WAIT_MS, assertServerAlive, chromiumSkip, launchChromium, server, startServer, stopServer } from "./support.mjs";

const OPTS = { timeout: 60_000 };
// A fixed key so that page tokens survive a server restart (the recovery tests).
const SECRET = "forms-lab-test-secret-".padEnd(64, "k");
// What Chromium logs (as a console error) for a WebSocket that cannot connect: allowed while
// the server restarts.
const WS_FAILED = /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/tether\/socket\/websocket\?vsn=2\.0\.0' failed/;

let browser = null;
let context = null;
let outputMark = 0;
const problems = [];
const sent = []; // event frames the page sent, parsed

async function open() {
  outputMark = server.output.length;
  await startServer("forms_lab", { TETHER_CONFIG: undefined, TETHER_SECRET_KEY_BASE: SECRET });
  context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
  page.on("websocket", (ws) => ws.on("framesent", ({ payload }) => {
    try {
      const frame = JSON.parse(String(payload));
      if (Array.isArray(frame) && frame[3] === "event") sent.push(frame[4]);
    } catch (_) { /* not JSON */ }
  }));
  const response = await page.goto(`http://127.0.0.1:${server.port}/forms`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200);
  await joined(page);
  return page;
}

function joined(page) {
  return waitOn(page, () => document.documentElement.dataset.tether === "connected", null, "joined");
}

async function waitOn(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 20 });
  } catch (err) {
    throw new Error(
      `${what} not reached within ${WAIT_MS} ms; #used is ${await page.textContent("#used").catch(() => "?")}\n` +
        `problems: ${JSON.stringify(problems)}\n(${err.message.split("\n")[0]})\n` +
        `--- server output (tail) ---\n${server.output.slice(outputMark).slice(-2000)}`,
    );
  }
}

/** Clears `sel`, runs `act`, and returns the JSON the handler then wrote into `sel`. */
async function reported(page, sel, act) {
  await page.evaluate((s) => { document.querySelector(s).textContent = ""; }, sel);
  await act();
  await waitOn(page, (s) => document.querySelector(s).textContent !== "", sel, `a report in ${sel}`);
  return JSON.parse(await page.textContent(sel));
}

// Stops the server and starts it again on the same port, with the same key: the page loses its
// socket, then rejoins by itself.
async function restartServer(page) {
  const port = server.port;
  await stopServer();
  await waitOn(page, () => document.documentElement.dataset.tether === "disconnected", null, 'data-tether="disconnected"');
  await startServer("forms_lab", { TETHER_CONFIG: undefined, TETHER_SECRET_KEY_BASE: SECRET, PORT: String(port) });
  assert.equal(server.port, port, "the new server listens on the same port");
}

// Lets the running `slow` handler finish (one permit: it may come before the handler waits).
async function release() {
  const response = await fetch(`http://127.0.0.1:${server.port}/release`, { method: "POST" });
  assert.equal(response.status, 204);
}

function state(page, sel) {
  return page.evaluate((s) => {
    const el = document.querySelector(s);
    return { text: el.value !== undefined && el.tagName === "INPUT" ? el.value : el.textContent, className: el.className };
  }, sel);
}

describe("forms that guide, in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await context?.close().catch(() => {});
    context = null;
    problems.length = 0;
    sent.length = 0;
    if (server.proc && server.proc.exitCode === null && server.proc.signalCode === null) {
      assertServerAlive();
      await stopServer();
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("a field is used once typed in and left, changed, or its form submitted", OPTS, async () => {
    const page = await open();
    // Typing: the input event's sender does not count the field yet.
    const typing = await reported(page, "#used", () => page.type("#nick", "A"));
    assert.equal(typing.type, "input");
    assert.deepEqual(typing.used, [], "typed in, not left yet");
    // Leaving it changed: its change event counts it.
    const left = await reported(page, "#used", () => page.press("#nick", "Tab"));
    assert.equal(left.type, "change");
    assert.deepEqual(left.used, ["nick"]);
    // A chosen option counts at once; the email, never touched, does not.
    const chosen = await reported(page, "#used", () => page.selectOption("#size", "m"));
    assert.deepEqual(chosen.used, ["nick", "size"]);
    // A submit counts every field of the form.
    const submitted = await reported(page, "#used", () => page.click("#submit"));
    assert.equal(submitted.type, "submit");
    assert.deepEqual(submitted.used.sort(), ["email", "nick", "size", "submit"]);
    assert.deepEqual(problems, []);
  });

  test("disable-with and the loading class last until the reply", OPTS, async () => {
    const page = await open();
    await page.click("#slow");
    await waitOn(page, () => document.querySelector("#slow").textContent === "Working…", null, "the disable-with text");
    assert.deepEqual(await state(page, "#slow"), { text: "Working…", className: "tether-loading" });
    assert.equal((await state(page, "#work")).className, "tether-loading", "the sender's form is loading too");
    await release();
    await waitOn(page, () => document.querySelector("#slow").textContent === "Work", null, "the text restored");
    assert.deepEqual(await state(page, "#slow"), { text: "Work", className: "" });
    assert.equal((await state(page, "#work")).className, "");

    // A submit: the form's own loading class, the submit button's value.
    await page.click("#go");
    await waitOn(page, () => document.querySelector("#go").value === "Going…", null, "the button's value");
    assert.equal((await state(page, "#work2")).className, "busy", "tether-loading-class");
    assert.equal((await state(page, "#go")).className, "tether-loading");
    await release();
    await waitOn(page, () => document.querySelector("#go").value === "Go", null, "the value restored");
    assert.equal((await state(page, "#work2")).className, "");
    assert.deepEqual(problems, []);
  });

  test("a lost socket (a crashed server) ends the loading state", OPTS, async () => {
    const page = await open();
    await page.click("#slow");
    await waitOn(page, () => document.querySelector("#slow").textContent === "Working…", null, "the disable-with text");
    // A crash: no reply comes (a stopped server would answer the handler with an error).
    const port = server.port;
    const exited = new Promise((resolve) => server.proc.once("exit", resolve));
    server.proc.kill("SIGKILL");
    await exited;
    await waitOn(page, () => document.querySelector("#slow").textContent === "Work", null, "the text restored on the loss");
    assert.equal((await state(page, "#slow")).className, "");
    assert.equal((await state(page, "#work")).className, "");
    await startServer("forms_lab", { TETHER_CONFIG: undefined, TETHER_SECRET_KEY_BASE: SECRET, PORT: String(port) });
    await joined(page);
    assert.deepEqual(problems.filter((p) => !WS_FAILED.test(p)), []);
  });

  test("a flash is text in the containers of its kind, closed without a frame", OPTS, async () => {
    const page = await open();
    await page.click("#info");
    await waitOn(page, () => document.querySelector("#flashes .tether-flash-message[data-kind=info]"), null, "the info flash");
    assert.equal(await page.textContent("#flashes .tether-flash-text"), "<b>Saved</b>", "text, never markup");
    assert.equal(await page.locator("#flashes b").count(), 0);
    assert.equal(await page.locator("#errors .tether-flash-message").count(), 0, "only errors there");
    await page.click("#error");
    await waitOn(page, () => document.querySelector("#errors .tether-flash-message"), null, "the error flash");
    assert.equal(await page.getAttribute("#errors .tether-flash-message", "role"), "alert");
    assert.equal(await page.locator("#flashes .tether-flash-message").count(), 2);

    const before = sent.length;
    await page.click("#errors .tether-flash-close");
    assert.equal(await page.locator("#errors .tether-flash-message").count(), 0, "closed in the page");
    assert.equal(await page.locator("#flashes .tether-flash-message").count(), 2, "the other container keeps its own");
    // A later event is the next frame: the close sent nothing.
    await page.click("#clear");
    await waitOn(page, () => !document.querySelector("#flashes .tether-flash-message"), null, "cleared");
    assert.deepEqual(sent.slice(before).map((p) => p.handler), ["clear"]);
    assert.deepEqual(problems, []);
  });

  test("the latency simulator delays frames both ways, for the tab's session", OPTS, async () => {
    const page = await open();
    await page.evaluate(() => Tether.enableLatencySim(400));
    await page.reload();
    await joined(page);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("tether_latency_sim")), "400", "kept across a reload");
    const started = Date.now();
    await page.click("#info");
    await waitOn(page, () => document.querySelector("#flashes .tether-flash-message"), null, "the delayed flash");
    const took = Date.now() - started;
    assert.ok(took >= 800, `a round trip takes at least twice the delay (took ${took} ms)`);
    await page.evaluate(() => Tether.disableLatencySim());
    assert.equal(await page.evaluate(() => sessionStorage.getItem("tether_latency_sim")), null);
    assert.deepEqual(problems, []);
  });

  test("the names list: a name set in one tab shows in every tab of every reader", OPTS, async () => {
    const a1 = await open();
    const contexts = [context];
    const tab = async (ctx) => {
      const page = await ctx.newPage();
      page.on("console", (msg) => {
        if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
      });
      await page.goto(`http://127.0.0.1:${server.port}/forms`, { timeout: WAIT_MS });
      await joined(page);
      return page;
    };
    try {
      const a2 = await tab(context);
      const other = await browser.newContext();
      contexts.push(other);
      const b1 = await tab(other);
      const names = (want) => Promise.all([a1, a2, b1].map((p) => waitOn(p, (w) => {
        const shown = [...document.querySelectorAll("#names li")].map((li) => li.textContent.trim().replace(/\s+/g, " ")).sort();
        return JSON.stringify(shown) === JSON.stringify(w);
      }, want, `the names ${JSON.stringify(want)}`)));
      await names(["anonymous 1", "anonymous 2"]);
      await a2.fill("#display-name", "Ada");
      await a2.press("#display-name", "Tab");
      await names(["Ada 2", "anonymous 1"]);
      await b1.fill("#display-name", "<b>Bob</b>");
      await b1.press("#display-name", "Tab");
      await names(["<b>Bob</b> 1", "Ada 2"]);
      assert.equal(await a1.locator("#names b").count(), 0, "a name is text");
    } finally {
      for (const ctx of contexts.slice(1)) await ctx.close().catch(() => {});
    }
    assert.deepEqual(problems, []);
  });

  test("a rejoin after the socket was lost recovers a form with an id and a change handler", OPTS, async () => {
    const page = await open();
    await reported(page, "#used", async () => {
      await page.fill("#email", "ada@example.com");
      await page.press("#email", "Tab");
    });
    assert.equal(await page.textContent("#recovered"), "", "no recovery on the first join");
    const recovered = await reported(page, "#recovered", () => restartServer(page));
    assert.equal(recovered.recovery, true);
    assert.equal(recovered.type, "change");
    assert.deepEqual(recovered.used, ["email"]);
    assert.deepEqual(recovered.form, { nick: "", email: "ada@example.com", size: "s" });
    // Only #profile: #work has no change handler.
    assert.deepEqual(sent.filter((p) => p.sender.recovery).map((p) => p.sender.id), ["profile"]);
    assert.deepEqual(problems.filter((p) => !WS_FAILED.test(p)), []);
  });
});
