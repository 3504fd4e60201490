// JavaScript that coexists with the server, client-side commands and the connection state, in
// Debian's Chromium driven by playwright-core, against the fixture tests/fixtures/js_lab.rs
// (built as the example `js_lab`, exec_js off): `Js` lists in handler attributes (no frame
// sent but for `push`, working while the socket is down), `page.exec`, client hooks
// (mounted/updated/destroyed/disconnected/reconnected, pushEvent with a result, handleEvent
// of the server's push_event), `tether-update="ignore"` and `tether-keep` under morphs and
// patches, and the root's classes and DOM events for joined/disconnected/reconnected.
//
// Every test starts its own server (PORT=0) and browser context. Console errors and warnings
// fail a test unless it expects them. Without /usr/bin/chromium the tests are skipped, unless
// CI is set. Every wait is event-driven and bounded; nothing sleeps.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WAIT_MS, assertServerAlive, chromiumSkip, launchChromium, server, startServer, stopServer } from "./support.mjs";

const OPTS = { timeout: 60_000 };
const SECRET = "js-lab-test-secret-".padEnd(64, "s");

let browser = null;
let context = null;
let outputMark = 0;
const problems = [];
const frames = []; // the frames the page sent on its socket

async function open(env = {}) {
  outputMark = server.output.length;
  await startServer("js_lab", { TETHER_CONFIG: undefined, TETHER_SECRET_KEY_BASE: SECRET, ...env });
  context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
  page.on("websocket", (ws) => ws.on("framesent", (frame) => frames.push(String(frame.payload))));
  const response = await page.goto(`http://127.0.0.1:${server.port}/js`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200);
  await waitOn(page, () => document.documentElement.classList.contains("tether-connected"), null, "joined");
  return page;
}

async function waitOn(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 20 });
  } catch (err) {
    const seen = await page.evaluate(() => JSON.stringify(window.seen)).catch(() => "?");
    throw new Error(
      `${what} not reached within ${WAIT_MS} ms; seen ${seen}\nproblems: ${JSON.stringify(problems)}\n` +
        `(${err.message.split("\n")[0]})\n--- server output (tail) ---\n${server.output.slice(outputMark).slice(-2000)}`,
    );
  }
}

const eventFrames = () => frames.filter((f) => f.includes('"event"') && f.includes('"handler"'));
const seen = (page) => page.evaluate(() => window.seen);

describe("JavaScript that coexists, client-side commands, connection state (Chromium)", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await context?.close().catch(() => {});
    context = null;
    problems.length = 0;
    frames.length = 0;
    if (server.proc && server.proc.exitCode === null && server.proc.signalCode === null) {
      assertServerAlive();
      await stopServer();
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("Js lists run in the page without a frame; only push sends one", OPTS, async () => {
    const page = await open();
    // The hook's pushEvent at mount is an event frame: wait for its answer first.
    await waitOn(page, () => window.seen.hook.some(([what]) => what === "double"), null, "the hook's pushEvent");
    const before = eventFrames().length;
    await page.click("#menu_btn");
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("#menu")).display), "block");
    assert.equal(await page.getAttribute("#menu_btn", "class"), "open", "an empty `to` is the element itself");
    await page.click("#menu_btn");
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("#menu")).display), "none");
    await page.click("#attrs");
    const target = await page.evaluate(() => {
      const t = document.querySelector("#target");
      return { cls: [...t.classList].sort(), expanded: t.getAttribute("aria-expanded"), x: t.hasAttribute("data-x"), focus: document.activeElement.id };
    });
    assert.deepEqual(target, { cls: ["b", "c", "fading"], expanded: "true", x: false, focus: "focus_me" });
    await waitOn(page, () => !document.querySelector("#target").classList.contains("fading"), null, "the transition's classes removed");
    await page.click("#dispatch");
    assert.deepEqual((await seen(page)).pushed, [["ping", { n: 1 }, "target"]]);
    await page.click("#css_shown");
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("#css_hidden")).display), "block", "shown over a stylesheet's display: none");
    await page.hover("#hover");
    await waitOn(page, () => document.querySelector("#hover").classList.contains("hovered"), null, "tether-on with a list");
    assert.equal(eventFrames().length, before, `no event frame for local commands: ${JSON.stringify(eventFrames().slice(before))}`);
    await page.click("#push");
    assert.equal(await page.getAttribute("#pushed", "class"), "sent");
    await waitOn(page, () => document.querySelector("#echo").textContent !== "", null, "the pushed handler's report");
    assert.deepEqual(JSON.parse(await page.textContent("#echo")), { arg: { n: 5 }, id: "push" });
    assert.equal(eventFrames().length, before + 1, "push sends one event");
    assert.deepEqual(problems, []);
  });

  test("a list with script in it is refused, page.exec runs one from the server", OPTS, async () => {
    const page = await open();
    await page.click("#bad");
    assert.equal(await page.getAttribute("#target", "onclick"), null);
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.match(problems[0], /attribute onclick is refused/);
    problems.length = 0;
    await page.click("#flash_btn");
    await waitOn(page, () => document.querySelector("#flash").classList.contains("shown"), null, "exec from the server");
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("#flash")).display), "block");
    assert.deepEqual(problems, []);
  });

  test("hooks: mounted with pushEvent's result, handleEvent of push_event (page and topic), updated, destroyed", OPTS, async () => {
    const page = await open();
    await waitOn(page, () => window.seen.hook.some(([what]) => what === "double"), null, "the hook's pushEvent result");
    let hook = (await seen(page)).hook;
    assert.deepEqual(hook[0], ["mounted", "chart", "1"]);
    assert.deepEqual(hook.find(([what]) => what === "double"), ["double", { doubled: 42, from: "chart" }]);
    await page.click("#points_btn");
    await waitOn(page, () => window.seen.everyone.length === 1, null, "the topic's push_event");
    hook = (await seen(page)).hook;
    assert.deepEqual(hook.filter(([what]) => what === "points"), [["points", { x: [1, 2, 3], to: "me" }]]);
    assert.deepEqual((await seen(page)).everyone, [{ x: [1, 2, 3] }]);
    // The page's script changes the kept box; the server re-renders the region.
    await page.evaluate(() => {
      const kept = document.querySelector("#kept");
      kept.className = "mine";
      kept.style.color = "rgb(1, 2, 3)";
    });
    await page.click("#rerender_btn");
    await waitOn(page, () => document.querySelector("#kept").textContent === "kept 2", null, "the region re-rendered");
    const state = await page.evaluate(() => {
      const chart = document.querySelector("#chart");
      const kept = document.querySelector("#kept");
      return {
        chart: chart.innerHTML, n: chart.dataset.n,
        kept: [kept.className, kept.style.color, kept.title],
      };
    });
    assert.deepEqual(state, {
      chart: '<span id="chart_inner">server 1</span><canvas id="canvas"></canvas>', // neither the morph nor the text patch
      n: "2", // data-* still follow the server
      kept: ["mine", "rgb(1, 2, 3)", "title 2"],
    });
    hook = (await seen(page)).hook;
    assert.deepEqual(hook.filter(([what]) => what === "updated"), [["updated", "2"]]);
    await page.click("#remove_btn");
    await waitOn(page, () => window.seen.hook.some(([what]) => what === "destroyed"), null, "destroyed");
    // A hooked element a patch adds mounts; the patch of its parent updates no other hook.
    await page.click("#add_btn");
    await waitOn(page, () => window.seen.hook.some(([what, id]) => what === "mounted" && id === "chart2"), null, "chart2 mounted");
    hook = (await seen(page)).hook;
    assert.deepEqual(hook.filter(([what]) => what === "mounted"), [["mounted", "chart", "1"], ["mounted", "chart2", "9"]]);
    assert.deepEqual(hook.filter(([what]) => what === "updated" || what === "destroyed"), [["updated", "2"], ["destroyed"]]);
    assert.deepEqual(problems, []);
  });

  test("connection state: classes and events; hooks hear of it; lists work while down", OPTS, async () => {
    const page = await open();
    await waitOn(page, () => window.seen.hook.some(([what]) => what === "mounted"), null, "mounted");
    assert.deepEqual((await seen(page)).events, ["joined"]);
    const port = server.port;
    await stopServer();
    await waitOn(page, () => document.documentElement.classList.contains("tether-disconnected"), null, "disconnected");
    assert.equal(await page.evaluate(() => document.documentElement.classList.contains("tether-connected")), false);
    // Local commands still work, and their buttons are not disabled.
    assert.equal(await page.isDisabled("#menu_btn"), false);
    assert.equal(await page.isDisabled("#push"), true, "a list with push needs the socket");
    await page.click("#menu_btn");
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector("#menu")).display), "block");
    outputMark = server.output.length;
    await startServer("js_lab", { TETHER_CONFIG: undefined, TETHER_SECRET_KEY_BASE: SECRET, PORT: String(port) });
    await waitOn(page, () => window.seen.events.includes("reconnected"), null, "reconnected");
    assert.deepEqual((await seen(page)).events, ["joined", "disconnected", "reconnected"]);
    assert.deepEqual((await seen(page)).hook.filter(([what]) => what === "disconnected" || what === "reconnected"), [["disconnected"], ["reconnected"]]);
    assert.equal(await page.evaluate(() => document.documentElement.className), "tether-connected");
    assert.deepEqual(problems.filter((p) => !/WebSocket connection to .* failed/.test(p)), []);
  });
});
