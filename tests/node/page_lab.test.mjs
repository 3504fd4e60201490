// Every page-side feature of tether.js against the real server, in Debian's Chromium driven by
// playwright-core: handler arguments (inline and inherited), the full sender, any DOM event
// (tether-on), forms and links that do not navigate, controls disabled while their handler
// runs, throttling counted on the server, this(sender), multi-property patches, Drab.Waiter,
// exec_js with a result, the modal, Drab.Browser helpers, and shared-commander regions.
// The page is the fixture tests/fixtures/page_lab.rs (built as the example `page_lab`).
//
// Every test starts its own server (PORT=0) and its own browser context. Console errors and
// warnings fail a test unless it expects them (a refused argument, a refused component).
// Without /usr/bin/chromium the tests are skipped, unless CI is set: in CI they fail.
// Every wait is event-driven and bounded; nothing sleeps, except typing rhythms.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { WAIT_MS, assertServerAlive, chromiumSkip, launchChromium, server, startServer, stopServer, within } from "./support.mjs";

const OPTS = { timeout: 60_000 };

let browser = null;
let context = null;
let outputMark = 0;
const problems = [];
const infos = []; // console.info lines

async function open(env = {}) {
  outputMark = server.output.length;
  await startServer("page_lab", { TETHER_CONFIG: undefined, ...env });
  context = await browser.newContext({ locale: "fr-FR" });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`console ${msg.type()}: ${msg.text()}`);
    if (msg.type() === "info") infos.push(msg.text());
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
  const response = await page.goto(`http://127.0.0.1:${server.port}/lab`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200);
  await waitOn(page, () => document.documentElement.dataset.tether === "connected", null, "joined");
  return page;
}

async function waitOn(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 20 });
  } catch (err) {
    throw new Error(
      `${what} not reached within ${WAIT_MS} ms; #echo is ${await page.textContent("#echo").catch(() => "?")}\n` +
        `problems: ${JSON.stringify(problems)}\n(${err.message.split("\n")[0]})\n` +
        `--- server output (tail) ---\n${server.output.slice(outputMark).slice(-2000)}`,
    );
  }
}

/** Clears #echo, runs `act`, and returns what the echo handler reported. */
async function echoed(page, act) {
  await page.evaluate(() => { document.querySelector("#echo").textContent = ""; });
  await act();
  await waitOn(page, () => document.querySelector("#echo").textContent !== "", null, "the echo handler's report");
  return JSON.parse(await page.textContent("#echo"));
}

function text(page, sel) {
  return page.evaluate((s) => document.querySelector(s).textContent, sel);
}

describe("tether.js page features in Chromium", { skip: chromiumSkip }, () => {
  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    await context?.close().catch(() => {});
    context = null;
    problems.length = 0;
    infos.length = 0;
    if (server.proc && server.proc.exitCode === null && server.proc.signalCode === null) {
      assertServerAlive();
      await stopServer();
    }
  });

  after(async () => {
    await browser?.close();
  });

  test("arguments: inline JSON, inherited tether-arg, and a refused invalid one; the sender is complete", OPTS, async () => {
    const page = await open();
    const inline = await echoed(page, () => page.click("#arg_inline"));
    assert.deepEqual(inline.arg, { n: 1 }, "tether-click='echo({\"n\": 1})'");
    assert.equal(inline.id, "arg_inline");

    const inherited = await echoed(page, () => page.click("#arg_inherited"));
    assert.deepEqual(inherited.arg, { row: 7 }, "the ancestor's tether-arg");
    assert.equal(inherited.class, "a b");
    assert.equal(inherited.text, "inherited text");
    assert.deepEqual(inherited.dataset, { kind: "x" });
    assert.equal(inherited.type, "click");
    const stamped = await page.getAttribute("#arg_inherited", "tether-id");
    assert.ok(stamped && inherited.tether_id === stamped, `tether_id ${inherited.tether_id} is the stamped ${stamped}`);

    await page.evaluate(() => { document.querySelector("#echo").textContent = ""; });
    const reported = page.evaluate(
      () => new Promise((resolve) => document.addEventListener("tether:error", (e) => resolve(e.detail.reason), { once: true })),
    );
    await page.click("#arg_bad");
    assert.match(String(await reported), /json|argument/i);
    // Nothing was sent: a later event's report is the first one.
    const after = await echoed(page, () => page.click("#arg_inline"));
    assert.deepEqual(after.arg, { n: 1 });
    assert.equal(problems.filter((p) => !/echo\(\{bad json\}\)|argument|JSON/i.test(p)).length, 0, JSON.stringify(problems));
  });

  test("any DOM event through tether-on, checkboxes, forms and links that do not navigate", OPTS, async () => {
    const page = await open();
    const keyup = await echoed(page, async () => {
      await page.focus("#on_input");
      await page.keyboard.press("b");
    });
    assert.equal(keyup.type, "keyup");
    assert.equal(keyup.key, "b");
    assert.equal(keyup.value, "b");

    const blur = await echoed(page, () => page.evaluate(() => document.querySelector("#on_input").blur()));
    assert.equal(blur.type, "blur");
    const shifted = await echoed(page, () => page.click("#arg_inline", { modifiers: ["Shift"] }));
    assert.equal(shifted.shiftKey, true, "modifier keys reach the sender");

    const change = await echoed(page, () => page.check("#check"));
    assert.equal(change.type, "change");
    assert.equal(change.checked, true);

    const before = page.url();
    const submit = await echoed(page, () => page.click("#submit"));
    assert.equal(submit.type, "submit");
    assert.deepEqual(submit.form, { q: "query" });
    const link = await echoed(page, () => page.click("#link"));
    assert.equal(link.type, "click");
    assert.equal(page.url(), before, "neither the form nor the link navigated");
    assert.deepEqual(problems, []);
  });

  test("a control is disabled while its handler runs, unless tether-no-disable", OPTS, async () => {
    const page = await open();
    await page.click("#slow");
    assert.equal(await page.evaluate(() => document.querySelector("#slow").disabled), true, "disabled at once");
    await waitOn(page, () => document.querySelector("#slow_done").textContent === "400", null, "the slow handler done");
    await waitOn(page, () => !document.querySelector("#slow").disabled, null, "#slow enabled after the reply");

    await page.evaluate(() => { document.querySelector("#slow_done").textContent = ""; });
    await page.click("#slow_free");
    assert.equal(await page.evaluate(() => document.querySelector("#slow_free").disabled), false, "tether-no-disable");
    await waitOn(page, () => document.querySelector("#slow_done").textContent === "400", null, "the slow handler done");
    assert.deepEqual(problems, []);
  });

  test("throttle: a burst of typing reaches the server a few times, the last value included", OPTS, async () => {
    const page = await open();
    await page.focus("#typing");
    await page.keyboard.type("abcdefghij", { delay: 30 }); // 10 input events over ~300 ms
    await waitOn(page, () => Number(document.querySelector("#count").textContent) >= 2, null, "the trailing call");
    // Let a possible trailing call land: wait until the count is stable across a reply.
    await page.click("#arg_inline");
    await waitOn(page, () => document.querySelector("#echo").textContent !== "", null, "a later event handled");
    const calls = Number(await text(page, "#count"));
    assert.ok(calls >= 2 && calls <= 4, `10 events throttled at 200 ms ran the handler ${calls} times`);
    assert.deepEqual(problems, []);
  });

  test("this(sender) targets the element without an id; props set style, dataset, attributes and classes", OPTS, async () => {
    const page = await open();
    await page.click(".anon >> nth=1");
    await waitOn(page, () => document.querySelectorAll(".anon")[1].style.color === "rgb(255, 0, 0)", null, "the second span red");
    assert.equal(await page.evaluate(() => document.querySelectorAll(".anon")[0].style.color), "", "only the sender");

    await page.click("#props");
    await waitOn(page, () => document.querySelector("#box").style.width === "50px", null, "the box's width");
    const box = await page.evaluate(() => {
      const el = document.querySelector("#box");
      return {
        title: el.title,
        background: el.style.backgroundColor,
        dataset: { ...el.dataset },
        label: el.getAttribute("aria-label"),
        classes: [...el.classList].sort(),
      };
    });
    assert.deepEqual(box, {
      title: "boxed",
      background: "rgb(0, 0, 255)",
      dataset: { state: "on" },
      label: "the box",
      classes: ["big", "flip"],
    });
    assert.deepEqual(problems, []);
  });

  test("round trips: wait_for, exec_js with a result, and a modal's answers", OPTS, async () => {
    const page = await open();
    await page.click("#wait");
    await waitOn(page, () => document.querySelector("#waiting").textContent === "yes", null, "the handler waiting");
    await page.click("#no");
    await waitOn(page, () => document.querySelector("#waited").textContent === "1 no", null, "wait_for answered by #no");

    await page.click("#js");
    await waitOn(page, () => document.querySelector("#js_out").textContent === '"lab:42"', null, "exec_js's value");
    await page.fill("#js_input", "missing_function()");
    await page.click("#js");
    await waitOn(page, () => document.querySelector("#js_out").textContent.includes("missing_function"), null, "the exception's message");

    await page.click("#modal_open");
    await page.waitForSelector("dialog[open]", { timeout: WAIT_MS });
    assert.equal(await page.textContent("dialog[open] h2"), "Your name?");
    assert.equal(await page.locator("dialog[open] b").count(), 0, "a text body is not markup");
    assert.match(await page.textContent("dialog[open]"), /<b>not markup<\/b>/);
    await page.fill("dialog[open] input[name=name]", "Ada");
    await page.click("dialog[open] button[value=ok]");
    await waitOn(page, () => document.querySelector("#modal").textContent !== "", null, "the modal's answer");
    assert.deepEqual(JSON.parse(await text(page, "#modal")), { button: "ok", fields: { name: "Ada" } });
    assert.equal(await page.locator("dialog").count(), 0, "the dialog is gone");

    await page.evaluate(() => { document.querySelector("#modal").textContent = ""; });
    await page.click("#modal_open");
    await page.waitForSelector("dialog[open]", { timeout: WAIT_MS });
    await page.keyboard.press("Escape");
    await waitOn(page, () => document.querySelector("#modal").textContent !== "", null, "the dismissed modal's answer");
    assert.equal(JSON.parse(await text(page, "#modal")).button, null);
    assert.deepEqual(problems, []);
  });

  test("browser helpers: cookies, console, set_url, what the browser said at connect, redirect", OPTS, async () => {
    const page = await open();
    await page.click("#browser_go");
    await waitOn(page, () => document.querySelector("#browser").textContent !== "", null, "the browser report");
    const seen = JSON.parse(await text(page, "#browser"));
    assert.equal(seen.flavor, "oat", "the cookie set, then read back");
    assert.equal(seen.user_agent, true);
    assert.equal(seen.languages[0], "fr-FR");
    assert.equal(seen.utc_offset, true);
    assert.ok(infos.includes("hello from the server"), JSON.stringify(infos));
    assert.ok(page.url().endsWith("/lab?moved=1"), page.url());
    assert.ok((await context.cookies()).some((c) => c.name === "flavor" && c.value === "oat"));

    await page.click("#redirect");
    await page.waitForURL(/\/lab\?redirected=1$/, { timeout: WAIT_MS });
    assert.deepEqual(problems, []);
  });

  test("shared commanders: each region's events reach cart, scoped to the region; a region the token does not allow is refused", OPTS, async () => {
    const page = await open();
    await page.click(".cart >> nth=1 >> .add");
    await waitOn(page, () => document.querySelectorAll(".cart .total")[1].textContent === "42 #1", null, "the second region updated");
    assert.equal(await page.evaluate(() => document.querySelectorAll(".cart .total")[0].textContent), "", "only its own region");
    await page.click(".cart >> nth=0 >> .add");
    await waitOn(page, () => document.querySelectorAll(".cart .total")[0].textContent === "42 #2", null, "the first region updated");

    const reported = page.evaluate(
      () => new Promise((resolve) => document.addEventListener("tether:error", (e) => resolve(e.detail.reason), { once: true })),
    );
    await page.click("#vault_add");
    assert.equal(await reported, "unknown handler");
    assert.equal(await text(page, "#vault"), "", "vault's handler did not run");
    await waitOn(page, () => true, null, "(nothing)");
    assert.match(server.output.slice(outputMark), /call of an undeclared handler refused/, "the server logs the refusal");
    assert.deepEqual(problems.filter((p) => !/unknown handler/.test(p)), []);
  });

  test("morph: a re-render keeps focus, caret, typed text, ticked boxes, scroll and keyed identity; applies what the server changed", OPTS, async () => {
    const page = await open();
    // What the person is doing in the region.
    await page.focus("#m-3 .note");
    await page.keyboard.type("half");
    await page.evaluate(() => document.querySelector("#m-3 .note").setSelectionRange(1, 3));
    await page.check("#m-2 .tick");
    await page.fill("#m-1 .note", "unsent");
    await page.focus("#m-3 .note");
    await page.evaluate(() => {
      document.querySelector("#m-3 .note").setSelectionRange(1, 3);
      document.querySelector("#scroller").scrollTop = 40;
      document.querySelector("#m-4").tetherMark = "same element";
    });

    // The server re-renders the region: reversed, box 1 ticked by the server, item 5 relabelled.
    await page.evaluate(() => Tether.page.run("relist", { order: [5, 4, 3, 2, 1], checked: [1], label: " <b>new</b>" }));
    await waitOn(page, () => document.querySelector("#m-5 .label").textContent === "item 5 <b>new</b>", null, "the morph applied");

    const state = await page.evaluate(() => {
      const note = document.querySelector("#m-3 .note");
      return {
        order: [...document.querySelectorAll("#morph_list li")].map((li) => li.id),
        focused: document.activeElement === note,
        value: note.value,
        selection: [note.selectionStart, note.selectionEnd],
        unsent: document.querySelector("#m-1 .note").value,
        ticked: [...document.querySelectorAll("#morph_list .tick")].filter((t) => t.checked).map((t) => t.closest("li").id).sort(),
        scroll: document.querySelector("#scroller").scrollTop,
        identity: document.querySelector("#m-4").tetherMark,
        markup: document.querySelectorAll("#m-5 .label b").length,
      };
    });
    assert.deepEqual(state, {
      order: ["m-5", "m-4", "m-3", "m-2", "m-1"],
      focused: true,
      value: "half",
      selection: [1, 3],
      unsent: "unsent",
      ticked: ["m-1", "m-2"], // the person's box 2 stays; the server ticked box 1
      scroll: 40,
      identity: "same element",
      markup: 0, // the label is escaped text
    });

    // The server unticks box 1 again: a change of the server's, so it applies.
    await page.evaluate(() => Tether.page.run("relist", { order: [1, 2, 3, 4, 5], checked: [], label: "" }));
    await waitOn(page, () => document.querySelector("#morph_list li").id === "m-1", null, "the second morph applied");
    const ticked = await page.evaluate(() => [...document.querySelectorAll("#morph_list .tick")].filter((t) => t.checked).map((t) => t.closest("li").id));
    assert.deepEqual(ticked, ["m-2"]);
    assert.deepEqual(problems, []);
  });

  test("live region: pokes morph it, and tether.js brings its assigns back after a server restart", OPTS, async () => {
    const secret = "page-lab-test-secret-".padEnd(64, "s");
    const page = await open({ TETHER_SECRET_KEY_BASE: secret });
    assert.equal(await text(page, "#tally"), "tally 0", "rendered by the controller");
    for (const n of [1, 2]) {
      await page.click("#tally_add");
      await waitOn(page, (want) => document.querySelector("#tally").textContent === want, `tally ${n}`, `tally ${n}`);
    }
    const port = server.port;
    await stopServer();
    await waitOn(page, () => document.documentElement.dataset.tether === "disconnected", null, "disconnected");
    outputMark = server.output.length;
    await startServer("page_lab", { TETHER_CONFIG: undefined, PORT: String(port), TETHER_SECRET_KEY_BASE: secret });
    await waitOn(page, () => document.documentElement.dataset.tether === "connected", null, "rejoined");
    // The new server knows the tally only from the token the page kept.
    await page.click("#tally_add");
    await waitOn(page, () => document.querySelector("#tally").textContent === "tally 3", null, "tally 3 after the restart");
    // Only the browser's own lines about the socket that could not connect while the server was down.
    assert.deepEqual(problems.filter((p) => !/WebSocket connection to .* failed/.test(p)), []);
  });

  test("morph: a live region nested in the morphed one is left to its own pokes", OPTS, async () => {
    const page = await open();
    const after = await page.evaluate(() => {
      const host = document.createElement("div");
      host.innerHTML = '<p class="outer">outer 1</p><div tether-live="inner"><span class="inner">inner 5</span></div>';
      document.body.append(host);
      const inner = host.querySelector("[tether-live=inner]");
      Tether.morph(host, '<p class="outer">outer 2</p><div tether-live="inner"><span class="inner">inner 0</span></div>');
      return {
        outer: host.querySelector(".outer").textContent,
        inner: host.querySelector(".inner").textContent,
        same: host.querySelector("[tether-live=inner]") === inner,
      };
    });
    assert.deepEqual(after, { outer: "outer 2", inner: "inner 5", same: true });
    assert.deepEqual(problems, []);
  });

  test("markup alone calls no handler: tether-on takes user gestures only, tether-ignore subtrees are not wired", OPTS, async () => {
    const page = await open();
    const danger = () => text(page, "#danger");
    // The post a denylist sanitizer passed (no script, no on*), delivered by broadcast_insert.
    await page.evaluate(() => Tether.page.run("post", '<img id="evil" src="/nope.png" tether-on="error:danger">'));
    await waitOn(page, () => { const img = document.querySelector("#evil"); return img && img.complete; }, null, "the image failed");
    // Any call the error made was sent before this one, and answered before it.
    const later = await echoed(page, () => page.click("#arg_inline"));
    assert.deepEqual(later.arg, { n: 1 }, "a normal click handler still works");
    assert.equal(await danger(), "0", "the image's error called the handler");

    // A tether-ignore subtree: its handlers are not wired, its live region, counter and
    // presence list are not filled.
    await page.click("#ignored_click");
    await page.click("#tally_add");
    await waitOn(page, () => document.querySelector("#tally").textContent === "tally 1", null, "the live region poked");
    await waitOn(page, () => document.querySelector("#users").textContent === "1", null, "the live counter");
    assert.equal(await danger(), "0", "a click in a tether-ignore subtree called the handler");
    assert.equal(await text(page, "#ignored_tally"), "kept", "a live region in tether-ignore");
    assert.equal(await text(page, "#ignored_users"), "kept", "a counter in tether-ignore");
    assert.equal(await page.locator("#ignored_present li").count(), 0, "a presence list in tether-ignore");

    // A type the script tag allows (PageOptions::events) works; another one does not.
    await page.evaluate(() => {
      const el = document.createElement("button");
      el.id = "custom";
      el.setAttribute("tether-on", "lab:other:danger lab:ping:echo");
      document.body.append(el);
    });
    const custom = await echoed(page, () => page.evaluate(() => {
      const el = document.querySelector("#custom");
      el.dispatchEvent(new CustomEvent("lab:other", { bubbles: true }));
      el.dispatchEvent(new CustomEvent("lab:ping", { bubbles: true }));
    }));
    assert.equal(custom.type, "lab:ping");
    assert.equal(await danger(), "0", "a type the page did not allow called the handler");
    const expected = /nope\.png|Failed to load resource|"(error|lab:other)" is not a user gesture/;
    assert.deepEqual(problems.filter((p) => !expected.test(p)), []);
    assert.ok(problems.some((p) => /"error" is not a user gesture/.test(p)), JSON.stringify(problems));
  });

  test("forms: password and file fields are not sent unless the form includes them", OPTS, async () => {
    const page = await open();
    await page.setInputFiles("#login input[type=file]", { name: "cv.txt", mimeType: "text/plain", buffer: Buffer.from("x") });
    const plain = await echoed(page, () => page.click("#login_go"));
    assert.deepEqual(plain.form, { user: "ada" });
    const opted = await echoed(page, () => page.click("#login_opt_go"));
    assert.deepEqual(opted.form, { user: "ada", pw: "hunter2" }, "tether-include-passwords");
    assert.deepEqual(problems, []);
  });

  test("the sender's scope: the page sends the region's tether-id, the server builds the selector", OPTS, async () => {
    const page = await open();
    // What tether.js sends from a shared commander's region.
    await page.evaluate(() => {
      window.sentScopes = [];
      const channel = Tether.page.channel;
      const push = channel.push.bind(channel);
      channel.push = (event, payload, timeout) => {
        if (event === "event") window.sentScopes.push(payload.sender.scope);
        return push(event, payload, timeout);
      };
    });
    await page.click(".cart >> nth=1 >> .add");
    await waitOn(page, () => document.querySelectorAll(".cart .total")[1].textContent === "42 #1", null, "the second region updated");
    assert.equal(await page.evaluate(() => document.querySelectorAll(".cart .total")[0].textContent), "", "only its own region");
    const sent = await page.evaluate(() => window.sentScopes);
    const region = await page.evaluate(() => document.querySelectorAll(".cart")[1].getAttribute("tether-id"));
    assert.deepEqual(sent, [region], "the region's tether-id, not a selector");

    // Forged scopes: a tether-id becomes its selector, anything else no scope at all.
    const push = (scope) => echoed(page, () => page.evaluate((scope) => {
      Tether.page.channel.push("event", { handler: "echo", sender: { scope } });
    }, scope));
    assert.equal((await push("t7")).scope, '[tether-id="t7"]');
    assert.equal((await push("*, body")).scope, "");
    assert.equal((await push('[tether-id="t1"] , body')).scope, "");
    assert.deepEqual(problems, []);
  });

  test("presence list: kept current in the page without commander code", OPTS, async () => {
    const first = await open();
    const items = (page) => page.evaluate(() => document.querySelectorAll("#present li[data-tether-key]").length);
    await waitOn(first, () => document.querySelectorAll("#present li[data-tether-key]").length === 1, null, "1 present");
    const other = await browser.newContext();
    try {
      const second = await other.newPage();
      await second.goto(`http://127.0.0.1:${server.port}/lab`, { timeout: WAIT_MS });
      await waitOn(first, () => document.querySelectorAll("#present li[data-tether-key]").length === 2, null, "2 present");
      const keys = await first.evaluate(() => [...document.querySelectorAll("#present li")].map((li) => li.dataset.tetherKey));
      assert.equal(new Set(keys).size, 2, "two browsers, two keys");
      await second.close();
      await waitOn(first, () => document.querySelectorAll("#present li[data-tether-key]").length === 1, null, "back to 1 present");
    } finally {
      await other.close();
    }
    assert.equal(await items(first), 1);
    assert.deepEqual(problems, []);
  });

  test("development: a live counter of a topic the page is not on warns once in each console and once on the server", OPTS, async () => {
    await open();
    const warned = [];
    for (let i = 0; i < 2; i++) {
      const page = await context.newPage();
      page.on("console", (msg) => { if (msg.type() === "warning") warned.push(`${i}: ${msg.text()}`); });
      const warning = page.waitForEvent("console", { predicate: (msg) => msg.type() === "warning", timeout: WAIT_MS });
      await page.goto(`http://127.0.0.1:${server.port}/lab/frozen`, { timeout: WAIT_MS });
      await waitOn(page, () => document.documentElement.dataset.tether === "connected", null, "joined");
      assert.match((await warning).text(), /^tether: live counter of topic "tether:topic:elsewhere" ignored/);
    }
    const line = "live counter of topic";
    const logged = () => server.output.slice(outputMark).split(line).length - 1;
    await within(WAIT_MS, new Promise((resolve) => {
      const check = () => { if (logged() >= 1) resolve(); };
      server.proc.stderr.on("data", check);
      check();
    }), "the server's warning");
    assert.equal(logged(), 1, "logged once for the topic, not once per page");
    assert.equal(warned.length, 2, `one warning per page: ${JSON.stringify(warned)}`);
    assert.deepEqual(problems, []);
  });
});
