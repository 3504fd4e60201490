// The shared DOM corpus (tests/fixtures/dom_corpus.json, described in tests/fixtures/README.md)
// run by tether.js itself in Debian's Chromium: the real ES modules of assets/src, loaded in a
// page served from a tiny HTTP server on 127.0.0.1, one fresh page per case. The Rust DOM
// model of `tether::testing` runs the same corpus, so the two cannot drift apart.
//
// Run with `cd tests/node && node --test ./dom_corpus.test.mjs`. Without /usr/bin/chromium the
// tests are skipped, unless CI is set: in CI they fail. Every step runs synchronously in the
// page; nothing sleeps.
//
// Never: special-cases a case by name, changes what tether.js does (the modules are served as
// they are), or serves anything but the repo's assets/ directory and the case pages.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { TEST_OPTS, chromiumSkip, launchChromium } from "./support.mjs";

const ASSETS = fileURLToPath(new URL("../../assets/", import.meta.url));
const CORPUS = JSON.parse(readFileSync(new URL("../fixtures/dom_corpus.json", import.meta.url), "utf8"));
const TYPES = { ".mjs": "text/javascript", ".js": "text/javascript" };

/** The page of case `index`: Idiomorph as a classic script (the global the bundle defines), its body. */
function casePage(index) {
  const body = CORPUS.cases[index].body;
  return `<!doctype html><html><head><meta charset="utf-8"><script src="/vendor/idiomorph.js"></script></head><body>${body}</body></html>`;
}

/** Serves GET /case/<n> and the .js/.mjs files of assets/ (nothing outside it). */
function serve() {
  const server = createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url, "http://127.0.0.1").pathname);
    } catch (_) {
      res.writeHead(400).end();
      return;
    }
    const page = /^\/case\/(\d+)$/.exec(path);
    if (page && Number(page[1]) < CORPUS.cases.length) {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(casePage(Number(page[1])));
      return;
    }
    const file = normalize(ASSETS + path);
    const type = TYPES[extname(file)];
    if (!type || !file.startsWith(ASSETS) || file.includes(`${sep}node_modules${sep}`)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const text = await readFile(file);
      res.writeHead(200, { "content-type": `${type}; charset=utf-8` });
      res.end(text);
    } catch (_) {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

// Runs in the page: the steps of `kase`, with the modules of assets/src; resolves what the
// expectations compare. A step the runner does not know throws (the case is wrong, not tether).
async function runCase(json) {
  const kase = JSON.parse(json); // parsed here: a "__proto__" key stays a key
  const patches = await import("/src/patches.mjs");
  const lists = await import("/src/lists.mjs");
  const events = await import("/src/events.mjs");
  const { Calls } = await import("/src/calls.mjs");

  let reports = 0;
  const seen = [];
  document.addEventListener("tether:error", (event) => {
    reports += 1;
    seen.push(`${event.detail.what}: ${event.detail.reason}`);
  });

  // The DOM interface each event type is made with (a real event of that type has it), and
  // the types whose DOM events do not bubble.
  const INTERFACES = [
    [/^(click|dblclick|auxclick|contextmenu|mouse\w+)$/, MouseEvent],
    [/^pointer\w+$/, PointerEvent],
    [/^wheel$/, WheelEvent],
    [/^(drag\w*|drop)$/, DragEvent],
    [/^(key\w+)$/, KeyboardEvent],
    [/^(focus|blur|focusin|focusout)$/, FocusEvent],
    [/^(input|beforeinput)$/, InputEvent],
    [/^submit$/, SubmitEvent],
  ];
  const NOT_BUBBLING = new Set(["focus", "blur", "mouseenter", "mouseleave", "pointerenter", "pointerleave", "load", "unload", "error", "abort", "toggle", "invalid", "scroll"]);
  function makeEvent(spec, target) {
    const { type, ...init } = spec;
    const found = INTERFACES.find(([pattern]) => pattern.test(type));
    const Interface = found ? found[1] : Event;
    const event = new Interface(type, { ...init, bubbles: !NOT_BUBBLING.has(type), cancelable: true });
    // Not dispatched (a click would tick a box or submit a form): the target is set instead.
    Object.defineProperty(event, "target", { value: target });
    return event;
  }

  let refused = 0;
  const calls = [];
  const first = (sel) => {
    const el = document.querySelector(sel);
    if (!el) throw new Error(`no element matches ${sel}`);
    return el;
  };
  for (const step of kase.steps || []) {
    const [kind] = Object.keys(step);
    const arg = step[kind];
    switch (kind) {
      case "patch": {
        const before = reports;
        patches.applyPatch(arg, kase.exec_js === true);
        if (reports > before) refused += 1;
        break;
      }
      case "type": first(arg.sel).value = arg.value; break;
      case "check": first(arg.sel).checked = arg.checked; break;
      case "presence_list": lists.renderPresenceLists(document, arg); break;
      case "count": lists.renderCount(document, arg); break;
      case "describe": {
        const target = first(arg.sel);
        const event = makeEvent(arg.event, target);
        const el = events.boundElement(target, event.type, event.bubbles);
        if (!el) break;
        const [text] = events.handlersOf(el, event.type);
        const call = events.handlerCall(el, text);
        calls.push({ handler: call.handler, sender: events.describe(el, event, call.arg) });
        break;
      }
      default: throw new Error(`unknown step ${kind}`);
    }
  }
  const body = document.body.innerHTML;

  // `props`: what a `query` round trip answers, through calls.mjs itself (after the body is
  // read: a query stamps a tether-id on an element without an id).
  const props = [];
  for (const { sel, prop } of (kase.expect && kase.expect.props) || []) {
    let reply = null;
    const page = {
      execJs: false,
      isJoined: () => true,
      channel: { joinRef: "1", push: (_event, body) => { reply = body; return { receive() {} }; } },
    };
    new Calls(page).start({ id: 1, op: "query", sel, props: [prop] });
    if (!reply || !reply.ok || reply.ok.length === 0) throw new Error(`query ${sel} answered ${JSON.stringify(reply)}`);
    props.push({ sel, prop, value: reply.ok[0].props[prop] });
  }
  return { body, refused, calls, props, reports: seen };
}

test("the corpus has cases with unique names, known keys and known steps", () => {
  const names = CORPUS.cases.map((c) => c.name);
  assert.ok(names.length >= 50, `only ${names.length} cases`);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], "duplicate names");
  const unknown = (object, known) => Object.keys(object).filter((key) => !known.includes(key));
  for (const kase of CORPUS.cases) {
    assert.deepEqual(unknown(kase, ["name", "body", "exec_js", "steps", "expect"]), [], kase.name);
    assert.equal(typeof kase.body, "string", `${kase.name}: body`);
    assert.equal(typeof kase.expect.body, "string", `${kase.name}: expect.body`);
    assert.deepEqual(unknown(kase.expect, ["body", "refused", "props", "calls"]), [], kase.name);
    for (const step of kase.steps) {
      assert.equal(Object.keys(step).length, 1, `${kase.name}: one kind per step`);
      assert.deepEqual(unknown(step, ["patch", "type", "check", "presence_list", "count", "describe"]), [], kase.name);
    }
  }
});

describe("the DOM corpus in Chromium", { skip: chromiumSkip }, () => {
  let browser;
  let server;
  let origin;

  before(async () => {
    server = await serve();
    origin = `http://127.0.0.1:${server.address().port}`;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
  });

  CORPUS.cases.forEach((kase, index) => {
    test(kase.name, TEST_OPTS, async () => {
      const page = await browser.newPage();
      const problems = [];
      page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
      try {
        await page.goto(`${origin}/case/${index}`);
        const got = await page.evaluate(runCase, JSON.stringify(kase));
        if (process.env.CORPUS_SHOW) console.log(JSON.stringify({ name: kase.name, ...got }));
        const expect = kase.expect;
        const why = (what) => `case "${kase.name}": ${what} (reports: ${JSON.stringify(got.reports)})`;
        assert.equal(got.body, expect.body, why("body"));
        assert.equal(got.refused, expect.refused || 0, why("refused"));
        assert.deepEqual(got.props, expect.props || [], why("props"));
        assert.deepEqual(got.calls, expect.calls || [], why("calls"));
        assert.deepEqual(problems, [], why("page errors"));
      } finally {
        await page.close();
      }
    });
  });
});
