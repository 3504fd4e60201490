// The `notes` example (examples/notes.rs: the app tour's contract, in its module doc) in
// Debian's Chromium, driven by playwright-core through tether.js: only what needs a real
// browser. Live navigation (no document load, the title, Back and Forward), the search in the
// address bar, the form's feedback, loading state and flash, the menu and the flash's close
// button sending nothing, markup the page's own script owns, the chart's client hook, and the
// live count of pages showing a note. The server side is tested by the kit tests in
// examples/notes.rs (`cargo test --features testing --example notes`).
// Run with `node --test ./notes.test.mjs` from tests/node after `cargo build --examples`.
//
// Every test starts its own server (PORT=0); each browser "person" is its own playwright
// context. Every page must log no console error or warning and throw no page error. A page
// counts its document loads (navigation requests of its main frame) and the WebSocket frames
// it sends (heartbeats aside). Without /usr/bin/chromium the tests are skipped, unless CI is
// set: in CI they fail. Every wait is event-driven and bounded (page.waitForFunction); nothing
// sleeps. Time limits the contract names (1 s) are measured from the browser's own clock.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Signal,
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
/** What the contract allows between a change and what every page shows of it. */
const WITHIN_MS = 1_000;
/** How long a save takes on the server at least. */
const SAVE_MS = 500;

let browser = null;
const contexts = [];
let outputMark = 0;
const problems = [];

async function start() {
  outputMark = server.output.length;
  await startServer("notes", { TETHER_CONFIG: undefined });
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

/** Adds `n` notes titled `seed <i>` through `POST /notes/seed?n=<n>`. */
async function seed(n) {
  const response = await fetch(url(`/notes/seed?n=${n}`), { method: "POST", signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(response.status, 200, `POST /notes/seed?n=${n}: ${await response.text()}`);
}

/**
 * Opens `path` in a new tab of `context` and waits until its page channel is joined. The page
 * records its document loads (`page.documents`, paths) and the frames it sends
 * (`page.sent`, parsed; heartbeats left out) and receives (`page.received`).
 */
async function open(context, path = "/notes") {
  const page = await context.newPage();
  context.tabs += 1;
  watchPage(page, `${context.label} tab ${context.tabs}`, problems);
  page.documents = [];
  page.sent = [];
  page.received = [];
  page.wsChanged = new Signal(); // notified on every frame sent or received
  page.on("request", (request) => {
    if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
      page.documents.push(new URL(request.url()).pathname);
    }
  });
  page.on("websocket", (ws) => {
    ws.on("framesent", ({ payload }) => {
      const frame = parse(payload);
      if (frame.topic !== "phoenix") page.sent.push(frame);
      page.wsChanged.notify();
    });
    ws.on("framereceived", ({ payload }) => {
      page.received.push(parse(payload));
      page.wsChanged.notify();
    });
  });
  const response = await page.goto(url(path), { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `${page.label}: GET ${path}`);
  await connected(page);
  return page;
}

function parse(payload) {
  try {
    const [join_ref, ref, topic, event, body] = JSON.parse(String(payload));
    return { join_ref, ref, topic, event, payload: body, text: String(payload) };
  } catch {
    return { event: "<unparsable>", text: String(payload) };
  }
}

/** What `page` shows, for failure messages. */
function shown(page) {
  return page.evaluate(() => ({
    url: location.pathname + location.search,
    title: document.title,
    notes: [...document.querySelectorAll("#notes li")].map((li) => li.textContent.trim()),
    note_count: document.querySelector("#note_count")?.textContent,
    search: document.querySelector("#search")?.value,
    title_error: document.querySelector("#title_error")?.textContent,
    save: [document.querySelector("#save")?.textContent, document.querySelector("#save")?.disabled],
    flash: document.querySelector("#flash")?.textContent,
    note: [document.querySelector("#note_title")?.textContent, document.querySelector("#note_body")?.textContent],
    viewers: document.querySelector("#viewers")?.textContent,
    chart: { ...document.querySelector("#chart")?.dataset },
    tether: document.documentElement.dataset.tether,
  }));
}

function waitOn(page, fn, arg, what, ms = WAIT_MS) {
  return waitInPage(page, fn, arg, what, { shown, problems, serverLog, ms });
}

function connected(page) {
  return waitOn(page, () => document.documentElement.dataset.tether === "connected", null, 'data-tether="connected"');
}

/** The browser's clock (ms): limits are measured in the page, where the person sees them. */
function now(page) {
  return page.evaluate(() => performance.timeOrigin + performance.now());
}

/**
 * Waits until every frame `page` sent with a ref has had its reply (the server is done with
 * it), after a round trip into the page so that frames already sent have been reported.
 */
async function settled(page) {
  await page.evaluate(() => true);
  const refs = page.sent.filter((f) => f.ref != null).map((f) => f.ref);
  await page.wsChanged.until(
    () => refs.every((ref) => page.received.some((f) => f.event === "phx_reply" && f.ref === ref)),
    `${page.label}: the replies to refs ${JSON.stringify(refs)}`,
    { show: () => JSON.stringify(page.received.slice(-5).map((f) => f.text)) },
  );
}

/** Waits until `page` has sent a frame whose text contains `part`. */
function sentFrame(page, part) {
  return page.wsChanged.until(() => page.sent.some((f) => f.text.includes(part)), `${page.label}: a frame with ${part}`, {
    show: () => JSON.stringify(page.sent.slice(-5).map((f) => f.text)),
  });
}

/** The titles `page` lists, in order. */
function titles(page) {
  return page.evaluate(() => [...document.querySelectorAll("#notes li .note-link")].map((a) => a.textContent));
}

/** Waits until `page` lists exactly `want` (in order) and `#note_count` says so. */
function lists(page, want, ms = WAIT_MS) {
  return waitOn(
    page,
    (want) =>
      JSON.stringify([...document.querySelectorAll("#notes li .note-link")].map((a) => a.textContent)) === JSON.stringify(want) &&
      document.querySelector("#note_count")?.textContent === String(want.length),
    want,
    `the list ${JSON.stringify(want)}`,
    ms,
  );
}

/** Saves a note through `page`'s form, as a person would, and waits until the save is over. */
async function save(page, title, body = "") {
  await page.fill("#new_note [name=title]", title);
  await page.fill("#new_note [name=body]", body);
  await page.click("#save");
  await saved(page);
}

/** Waits until the save under way on `page` is over: `Save` enabled, the form empty, the flash. */
function saved(page) {
  return waitOn(
    page,
    () => {
      const button = document.querySelector("#save");
      return (
        button.textContent === "Save" &&
        !button.disabled &&
        document.querySelector("#new_note [name=title]").value === "" &&
        document.querySelector("#new_note [name=body]").value === "" &&
        document.querySelector("#flash").textContent.trim() === "Note saved"
      );
    },
    null,
    "the save over: Save enabled, the form empty, the flash Note saved",
  );
}

/** The id of the note titled `title` in `page`'s list. */
async function idOf(page, title) {
  const href = await page.locator("#notes li .note-link", { hasText: title }).first().getAttribute("href");
  const m = /^\/notes\/(\d+)$/.exec(href || "");
  assert.ok(m, `${page.label}: the link of ${title} is ${href}`);
  return m[1];
}

async function mark(page) {
  await page.evaluate(() => {
    window.__marker = 1;
  });
}

/** No document was loaded since `open` (the marker set by `mark` survives). */
async function sameDocument(page, what) {
  assert.equal(await page.evaluate(() => window.__marker), 1, `${page.label}: a document was loaded (${what})`);
  assert.equal(page.documents.length, 1, `${page.label}: documents loaded: ${JSON.stringify(page.documents)} (${what})`);
}

/** Waits until `page` shows the note `id` titled `title` with `body`. */
function showsNote(page, id, title, body) {
  return waitOn(
    page,
    ([id, title, body]) =>
      location.pathname === `/notes/${id}` &&
      document.title === `${title} · notes` &&
      document.querySelector("#note_title")?.textContent === title &&
      document.querySelector("#note_body")?.textContent === body,
    [id, title, body],
    `note ${id} (${title})`,
  );
}

/** Waits until `page` shows the list page at `path` (pathname + search). */
function showsList(page, path) {
  return waitOn(
    page,
    (path) =>
      location.pathname + location.search === path &&
      document.title === "All notes · notes" &&
      document.querySelector("#notes") !== null &&
      document.querySelector("#note_title") === null,
    path,
    `the list at ${path}`,
  );
}

function assertNoProblems() {
  assert.deepEqual(problems.map((p) => `${p.label}: ${p.text}`), [], "console errors/warnings or page errors");
}

describe("notes in Chromium", { skip: chromiumSkip }, () => {
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

  test("a .note-link shows the note without a document load; #back, Back and Forward move between the views", OPTS, async () => {
    await start();
    await seed(2);
    const a = await open(await person("A"));
    await save(a, "Groceries", "milk\nand eggs");
    const id = await idOf(a, "Groceries");
    await mark(a);

    await a.click(`#note-${id} .note-link`);
    await showsNote(a, id, "Groceries", "milk\nand eggs");
    await sameDocument(a, "clicking a .note-link");

    await a.click("#back");
    await showsList(a, "/notes");
    await lists(a, ["Groceries", "seed 2", "seed 1"]);
    await sameDocument(a, "clicking #back");

    await a.goBack();
    await showsNote(a, id, "Groceries", "milk\nand eggs");
    await a.goForward();
    await showsList(a, "/notes");
    await a.goBack();
    await showsNote(a, id, "Groceries", "milk\nand eggs");
    await sameDocument(a, "Back and Forward");

    // The same view, loaded on its own.
    const b = await open(await person("B"), `/notes/${id}`);
    await showsNote(b, id, "Groceries", "milk\nand eggs");
    assertNoProblems();
  });

  test("#search: the list and the address bar follow the typing within 1 s, a load of ?q= shows the same, emptying shows all", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    await save(a, "Apple pie", "sweet");
    await save(a, "Cherry", "red");
    await save(a, "Banana bread", "with APPLE sauce");
    await lists(a, ["Banana bread", "Cherry", "Apple pie"]);
    await mark(a);

    await a.focus("#search");
    await a.keyboard.type("aPPle", { delay: 40 });
    const lastKey = await now(a);
    await lists(a, ["Banana bread", "Apple pie"]);
    await waitOn(a, () => location.pathname + location.search === "/notes?q=aPPle", null, "?q=aPPle in the address bar");
    const took = (await now(a)) - lastKey;
    assert.ok(took <= WITHIN_MS, `the filtered list and ?q= came ${Math.round(took)} ms after the last key`);
    await sameDocument(a, "searching");

    const b = await open(await person("B"), "/notes?q=aPPle");
    await lists(b, ["Banana bread", "Apple pie"]);
    assert.equal(await b.inputValue("#search"), "aPPle", "#search holds the query of a loaded /notes?q=");

    await a.click("#search", { clickCount: 3 });
    await a.keyboard.press("Backspace");
    const emptied = await now(a);
    await lists(a, ["Banana bread", "Cherry", "Apple pie"]);
    await waitOn(a, () => location.pathname + location.search === "/notes", null, "q dropped from the address bar");
    const tookEmpty = (await now(a)) - emptied;
    assert.ok(tookEmpty <= WITHIN_MS, `the whole list and /notes came ${Math.round(tookEmpty)} ms after emptying`);
    await sameDocument(a, "emptying the search");
    assertNoProblems();
  });

  test("the form: #title_error once the title is used, the save's loading state, flash and empty form, the note on other list pages (filters apply)", OPTS, async () => {
    await start();
    await seed(1);
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    const c = await open(await person("C"), "/notes?q=zzz");
    await lists(c, []);
    const error = (page) => page.textContent("#title_error");
    assert.equal(await error(a), "", "#title_error is empty at first");

    // Typed in but not left: no feedback yet.
    await a.focus("#new_note [name=title]");
    await a.keyboard.type("ab");
    await sentFrame(a, '"ab"');
    await settled(a);
    assert.equal(await error(a), "", "#title_error stays empty while the title is being typed for the first time");

    // Left (and the body typed in: leaving alone is the next test): it says why; valid: it
    // empties; invalid again: it says why again.
    await a.focus("#new_note [name=body]");
    await a.keyboard.type("x");
    await waitOn(a, () => document.querySelector("#title_error").textContent.trim() !== "", null, "#title_error says why, once the title was left");
    await a.focus("#new_note [name=title]");
    await a.keyboard.type("c");
    await waitOn(a, () => document.querySelector("#title_error").textContent === "", null, "#title_error empty once the title is valid");
    await a.keyboard.press("Backspace");
    await waitOn(a, () => document.querySelector("#title_error").textContent.trim() !== "", null, "#title_error says why again");
    await a.keyboard.type("c is for cookie");

    // The save: Saving… and disabled meanwhile (at least 500 ms), then Save, enabled, empty, flash.
    await a.fill("#new_note [name=body]", "a body");
    const clicked = await now(a);
    await a.click("#save");
    await waitOn(
      a,
      () => document.querySelector("#save").disabled && document.querySelector("#save").textContent === "Saving…",
      null,
      "#save disabled and reading Saving…",
    );
    await saved(a);
    const done = await now(a);
    assert.ok(done - clicked >= SAVE_MS - 20, `the save was over after ${Math.round(done - clicked)} ms, before the server could have saved`);
    assert.equal(await error(a), "", "no error after a valid save");

    // Another open list page shows it on top within 1 s; a page filtering for something else does not.
    await lists(b, ["abc is for cookie", "seed 1"], WITHIN_MS);
    await lists(a, ["abc is for cookie", "seed 1"], WITHIN_MS);
    await waitOn(c, () => document.querySelector("#chart").dataset.points?.startsWith("17,"), null, "C heard of the change (its chart)");
    await settled(c);
    assert.deepEqual(await titles(c), [], "a page filtering for zzz does not get a note without zzz");
    assert.equal(await c.textContent("#note_count"), "0");
    await save(b, "the zzz note");
    await lists(c, ["the zzz note"], WITHIN_MS);

    // An invalid submit (the title unused on a fresh page): nothing saved, the error shown.
    const d = await open(await person("D"));
    assert.equal(await error(d), "");
    await d.fill("#new_note [name=body]", "no title");
    await d.click("#save");
    await waitOn(d, () => document.querySelector("#title_error").textContent.trim() !== "", null, "#title_error after an invalid submit");
    await settled(d);
    await d.fill("#new_note [name=title]", " x ");
    await d.click("#save");
    await settled(d);
    assert.notEqual((await error(d)).trim(), "", "the error after a second invalid submit");
    assert.deepEqual(await titles(d), ["the zzz note", "abc is for cookie", "seed 1"], "an invalid submit saves nothing");
    assert.deepEqual(await titles(b), ["the zzz note", "abc is for cookie", "seed 1"], "no other page got a note");
    assert.equal(await d.inputValue("#new_note [name=body]"), "no title", "an invalid submit keeps what was typed");
    assertNoProblems();
  });

  test("#title_error says why as soon as the title is typed in and left, with nothing else done", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    await a.focus("#new_note [name=title]");
    await a.keyboard.type("ab");
    await sentFrame(a, '"ab"');
    await settled(a);
    assert.equal(await a.textContent("#title_error"), "", "#title_error stays empty while the title is being typed");
    await a.keyboard.press("Tab"); // leaves the title, as a person would
    await waitOn(a, () => document.activeElement !== document.querySelector("#new_note [name=title]"), null, "the title left");
    await waitOn(
      a,
      () => document.querySelector("#title_error").textContent.trim() !== "",
      null,
      "#title_error saying why once the title was typed in and left (nothing else typed)",
      WITHIN_MS,
    );
    assertNoProblems();
  });

  test("the flash: .close removes it without a frame; navigating away and back clears it", OPTS, async () => {
    await start();
    await seed(1);
    const a = await open(await person("A"));
    await save(a, "Flash me");
    await settled(a);
    const before = a.sent.length;
    await a.click("#flash .close");
    await waitOn(a, () => document.querySelector("#flash").textContent.trim() === "" && !document.querySelector("#flash .tether-flash-message"), null, "the flash gone");
    await settled(a);
    assert.deepEqual(a.sent.slice(before).map((f) => f.text), [], "closing the flash sent frames");

    await save(a, "Flash again");
    const id = await idOf(a, "seed 1");
    await a.click(`#note-${id} .note-link`);
    await showsNote(a, id, "seed 1", "");
    await a.click("#back");
    await showsList(a, "/notes");
    await settled(a);
    assert.equal((await a.textContent("#flash")).trim(), "", "the flash is gone after navigating away and back");
    assertNoProblems();
  });

  test("#menu_button shows and hides nav#menu on each click, sending no frame", OPTS, async () => {
    await start();
    const a = await open(await person("A"));
    const visible = () => a.isVisible("nav#menu");
    assert.equal(await visible(), false, "nav#menu is hidden at first");
    await settled(a);
    const before = a.sent.length;
    for (const want of [true, false, true, false]) {
      await a.click("#menu_button");
      await waitOn(a, (want) => (document.querySelector("nav#menu").offsetParent !== null) === want, want, `nav#menu ${want ? "shown" : "hidden"}`);
    }
    await settled(a);
    assert.deepEqual(a.sent.slice(before).map((f) => f.text), [], "the menu sent frames");
    assertNoProblems();
  });

  test("#widget: what the page's script put there survives re-renders of the list (a save elsewhere, a search)", OPTS, async () => {
    await start();
    await seed(3);
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    await waitOn(a, () => document.querySelector("#widget .clock") !== null, null, "the page's script filled #widget");
    const own = await a.evaluate(() => {
      window.__clock = document.querySelector("#widget .clock");
      window.__widget = document.querySelector("#widget").innerHTML;
      return window.__widget;
    });
    const intact = () => a.evaluate(() => document.querySelector("#widget .clock") === window.__clock && document.querySelector("#widget").innerHTML === window.__widget);

    await save(b, "From B");
    await lists(a, ["From B", "seed 3", "seed 2", "seed 1"]);
    await settled(a);
    assert.ok(await intact(), `#widget changed by a save elsewhere (it held ${own})`);

    await a.fill("#search", "seed 2");
    await lists(a, ["seed 2"]);
    await settled(a);
    assert.ok(await intact(), `#widget changed by a search (it held ${own})`);
    assertNoProblems();
  });

  test("#widget sits inside a part of the list page that the server re-renders when notes change", OPTS, async () => {
    await start();
    await seed(2);
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    await settled(a);
    const from = a.received.length;
    await save(b, "Re-render A");
    await lists(a, ["Re-render A", "seed 2", "seed 1"]);
    await settled(a);
    // The elements the server's patches for that change aimed at (their `sel`).
    const targets = a.received
      .slice(from)
      .filter((f) => f.event === "patch" && typeof f.payload?.sel === "string")
      .map((f) => f.payload.sel);
    assert.ok(targets.length > 0, "the save elsewhere sent A no patch with a target");
    const holding = await a.evaluate(
      (sels) => sels.filter((sel) => document.querySelector(sel)?.contains(document.querySelector("#widget"))),
      targets,
    );
    assert.ok(
      holding.length > 0,
      `no re-render of the list holds #widget (the patches aimed at ${JSON.stringify(targets)}), so tether-update="ignore" is never put to work`,
    );
    assertNoProblems();
  });

  test("canvas#chart: mounted, and after a save data-points holds the newest 20 titles' lengths, newest first", OPTS, async () => {
    await start();
    await seed(25);
    const a = await open(await person("A"));
    const b = await open(await person("B"));
    await waitOn(a, () => document.querySelector("canvas#chart")?.dataset.mounted === "true", null, 'canvas#chart data-mounted="true"');
    await save(a, "Chart me, please");
    const newest = ["Chart me, please"];
    for (let i = 25; newest.length < 20; i--) newest.push(`seed ${i}`);
    const want = newest.map((t) => t.length).join(",");
    for (const page of [a, b]) {
      await waitOn(page, (want) => document.querySelector("canvas#chart").dataset.points === want, want, `data-points ${want}`);
      assert.equal(await page.evaluate(() => document.querySelector("canvas#chart").dataset.mounted), "true");
    }
    assertNoProblems();
  });

  test("#viewers counts the pages showing a note; a page leaving for another note or the list leaves the count within 1 s", OPTS, async () => {
    await start();
    await seed(2); // ids 1 and 2
    const viewers = (page, n) => waitOn(page, (n) => document.querySelector("#viewers")?.textContent === String(n), n, `#viewers ${n}`);
    const a = await open(await person("A"), "/notes/1");
    const b = await open(await person("B"), "/notes/1");
    await viewers(a, 2);
    await viewers(b, 2);
    const c = await open(await person("C"), "/notes/2");
    await viewers(c, 1);
    await viewers(a, 2);

    // B goes to the list: note 1 counts one page within 1 s.
    await b.click("#back");
    await showsList(b, "/notes");
    let left = await now(b);
    await viewers(a, 1);
    assert.ok((await now(b)) - left <= WITHIN_MS, "note 1's count fell more than 1 s after B left for the list");

    // D: note 2, the list, note 1; then straight back to note 2 (history.go(-2)).
    const d = await open(await person("D"), "/notes/2");
    await mark(d);
    await viewers(c, 2);
    await d.click("#back");
    await showsList(d, "/notes");
    await viewers(c, 1);
    await d.click("#note-1 .note-link");
    await showsNote(d, "1", "seed 1", "");
    await viewers(d, 2);
    await viewers(a, 2);
    await d.evaluate(() => history.go(-2));
    await showsNote(d, "2", "seed 2", "");
    left = await now(d);
    await viewers(a, 1);
    assert.ok((await now(d)) - left <= WITHIN_MS, "note 1's count fell more than 1 s after D left for note 2");
    await viewers(c, 2);
    await viewers(d, 2);
    await sameDocument(d, "moving between notes and the list");
    assertNoProblems();
  });
});
