// tether.js's `morph` (Tether.morph, what a `morph` patch does) in Debian's Chromium, driven
// by playwright-core: its keyed path (children with ids) and its fallback (Idiomorph over the
// whole element), and what both keep of what the person is doing. No server: each test opens
// a blank page and adds the bundle /tether.js serves (vendor/idiomorph.js + tether.js).
//
// Run with `node --test tests/node/morph.test.mjs`. Without /usr/bin/chromium the tests are
// skipped, unless CI is set: in CI they fail. Everything runs synchronously in the page;
// nothing sleeps.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { TEST_OPTS, chromiumSkip, launchChromium } from "./support.mjs";

const asset = (path) => readFileSync(new URL(`../../assets/${path}`, import.meta.url), "utf8");
const BUNDLE = `${asset("vendor/idiomorph.js")}\n${asset("tether.js")}`;

// The markup of a keyed list: item({id, text, note, checked, cls}), render(items, sep) where
// an item is a number (its id) or an object. The same functions run in Node and in the page.
const item = (spec) => {
  const { id, text = `item ${id}`, note = "", checked = false, cls = "item" } = typeof spec === "number" ? { id: spec } : spec;
  return `<li id="i${id}" class="${cls}"><input class="note" value="${note}"> ` +
    `<input type="checkbox" class="tick"${checked ? " checked" : ""}> <span class="text">${text}</span></li>`;
};
const render = (items, sep = "\n  ") => sep + items.map(item).join(sep) + sep;

// Helpers defined in every page, besides item and render:
// - serialized(html): `html` as innerHTML reads it back (`checked` becomes `checked=""`).
// - spy(): from now on, window.calls lists each Idiomorph.morph call as {target, style}.
// - wholeMorphs(el): how many of those calls morphed the whole of `el` (the fallback).
// - mark(el): sets a JS property on each child with an id; marked(el) reads them back, each
//   id followed by " (new)" when that child is not the element marked.
const HELPERS = `
window.item = ${item};
window.render = ${render};
window.serialized = (html) => {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.innerHTML;
};
window.spy = () => {
  window.calls = [];
  const real = Idiomorph.morph;
  Idiomorph.morph = function (target, content, options) {
    window.calls.push({ target, style: options && options.morphStyle });
    return real.apply(this, arguments);
  };
};
window.wholeMorphs = (el) => window.calls.filter((c) => c.target === el && c.style === "innerHTML").length;
window.mark = (el) => { for (const child of el.querySelectorAll(":scope > [id]")) child.tetherMark = child.id; };
window.marked = (el) => [...el.querySelectorAll(":scope > [id]")].map((child) => child.tetherMark === child.id ? child.id : child.id + " (new)");
`;

describe("Tether.morph in Chromium", { skip: chromiumSkip }, () => {
  let browser;
  let page;
  let problems;

  before(async () => {
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  /** A blank page with the bundle and the helpers, and `<ul id=list>` holding `html`. */
  async function open(html = "") {
    page = await browser.newPage();
    problems = [];
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`page error: ${err.stack || err}`));
    await page.setContent("<!doctype html><html><body><ul id=list></ul></body></html>");
    await page.addScriptTag({ content: BUNDLE });
    await page.addScriptTag({ content: HELPERS });
    await page.evaluate((html) => {
      document.querySelector("#list").innerHTML = html;
      window.spy();
    }, html);
    return page;
  }

  afterEach(async () => {
    await page?.close();
    page = null;
    assert.deepEqual(problems, [], "no console errors or page errors");
  });

  // ---------- the keyed path is taken, and touches only what changed ----------

  test("keyed path: one item's text changed on 1,000 items is the only mutation, and nothing else is re-rendered", TEST_OPTS, async () => {
    await open();
    const result = await page.evaluate(() => {
      const list = document.querySelector("#list");
      const ids = Array.from({ length: 1000 }, (_, i) => i + 1);
      list.innerHTML = render(ids);
      mark(list);
      const changed = render(ids.map((id) => (id === 500 ? { id, text: "edited" } : id)));
      const observer = new MutationObserver(() => {});
      observer.observe(list, { subtree: true, childList: true, attributes: true, characterData: true });
      Tether.morph(list, changed);
      const records = observer.takeRecords();
      observer.disconnect();
      const item500 = document.querySelector("#i500");
      return {
        outside: records.filter((r) => !item500.contains(r.target)).map((r) => `${r.type} on ${r.target.nodeName}`),
        inside: records.map((r) => r.type),
        text: item500.querySelector(".text").textContent,
        replaced: marked(list).filter((id) => id.endsWith("(new)")),
        whole: wholeMorphs(list),
        same: list.innerHTML === serialized(changed),
      };
    });
    assert.deepEqual(result.outside, [], "no mutation outside item 500");
    assert.deepEqual(result.inside, ["characterData"], "one text mutation, in item 500");
    assert.equal(result.text, "edited");
    assert.deepEqual(result.replaced, [], "every item is the same element");
    assert.equal(result.whole, 0, "Idiomorph did not morph the whole list");
    assert.ok(result.same, "the list is the new markup");
  });

  test("keyed path: no change is no mutation at all", TEST_OPTS, async () => {
    await open();
    const records = await page.evaluate(() => {
      const list = document.querySelector("#list");
      const html = render(Array.from({ length: 200 }, (_, i) => i + 1));
      list.innerHTML = html;
      const observer = new MutationObserver(() => {});
      observer.observe(list, { subtree: true, childList: true, attributes: true, characterData: true });
      Tether.morph(list, html);
      const records = observer.takeRecords().length;
      observer.disconnect();
      return { records, calls: calls.length };
    });
    assert.deepEqual(records, { records: 0, calls: 0 });
  });

  test("keyed path: two items swapped on 1,000 move two children; one removed removes one; one added adds one", TEST_OPTS, async () => {
    await open();
    const touched = await page.evaluate(() => {
      const list = document.querySelector("#list");
      const ids = Array.from({ length: 1000 }, (_, i) => i + 1);
      const swapped = ids.slice();
      [swapped[9], swapped[989]] = [swapped[989], swapped[9]];
      const count = (from, to) => {
        list.innerHTML = render(from);
        const observer = new MutationObserver(() => {});
        observer.observe(list, { childList: true });
        Tether.morph(list, render(to));
        const records = observer.takeRecords();
        observer.disconnect();
        const elements = (key) => records.flatMap((r) => [...r[key]]).filter((n) => n.nodeType === 1).map((n) => n.id);
        return { added: elements("addedNodes"), removed: elements("removedNodes"), same: list.innerHTML === serialized(render(to)) };
      };
      return {
        swapped: count(ids, swapped),
        removed: count(ids, ids.filter((id) => id !== 500)),
        added: count(ids, ids.slice(0, 500).concat([1001], ids.slice(500))),
      };
    });
    assert.deepEqual(touched.swapped.added.sort(), ["i10", "i990"], "two children moved");
    assert.ok(touched.swapped.same);
    assert.deepEqual(touched.removed, { added: [], removed: ["i500"], same: true });
    assert.deepEqual(touched.added, { added: ["i1001"], removed: [], same: true });
  });

  // ---------- structure: order, identity, additions, removals, text between ----------

  test("keyed path: reorders, additions, removals and the text between items end up as the markup, kept items the same elements (moveBefore and insertBefore)", TEST_OPTS, async () => {
    await open();
    const failures = await page.evaluate(() => {
      const list = document.querySelector("#list");
      // A deterministic pseudo-random shuffle.
      let seed = 7;
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
      const shuffled = (xs) => {
        const out = xs.slice();
        for (let i = out.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [out[i], out[j]] = [out[j], out[i]];
        }
        return out;
      };
      const base = Array.from({ length: 20 }, (_, i) => i + 1);
      const cases = [
        ["reversed", base, base.slice().reverse(), "\n"],
        ["two swapped", base, base.map((id) => (id === 3 ? 17 : id === 17 ? 3 : id)), "\n"],
        ["first to last", base, base.slice(1).concat([1]), " "],
        ["last to first", base, [20].concat(base.slice(0, 19)), "\n  "],
        ["some removed", base, base.filter((id) => id % 3 !== 0), "\n"],
        ["some added", base, [0].concat(base.slice(0, 10), [100, 101], base.slice(10), [102]), "\n"],
        ["removed, added and moved", base, shuffled(base.filter((id) => id % 4 !== 0).concat([200, 201, 202])), "\n"],
        ["all replaced", base, [300, 301, 302], "\n"],
        ["emptied", base, [], "\n"],
        ["from empty", [], base, "\n"],
        ["separators changed", base, base, "<!-- sep -->"],
        ["no separators", base, shuffled(base), ""],
      ];
      const failures = [];
      for (const mode of ["moveBefore", "insertBefore"]) {
        for (const [name, from, to, sep] of cases) {
          for (const [a, b] of [[from, to], [to, from]]) {
            list.innerHTML = render(a, "\n");
            if (mode === "insertBefore") list.moveBefore = undefined; // not a function: insertBefore
            else delete list.moveBefore;
            mark(list);
            calls.length = 0;
            const html = render(b, sep);
            Tether.morph(list, html);
            const kept = marked(list);
            const want = b.map((id) => (a.includes(id) ? `i${id}` : `i${id} (new)`));
            if (list.innerHTML !== serialized(html)) failures.push(`${mode}, ${name}: the list is not the markup`);
            if (JSON.stringify(kept) !== JSON.stringify(want)) failures.push(`${mode}, ${name}: identity ${kept} instead of ${want}`);
            if (wholeMorphs(list) !== 0) failures.push(`${mode}, ${name}: fell back to the whole-list morph`);
          }
        }
        // A run of random transitions, each from the last.
        let current = base;
        list.innerHTML = render(current, "\n");
        for (let step = 0; step < 60; step++) {
          const next = shuffled(current.filter(() => random() > 0.2).concat(random() > 0.5 ? [1000 + step] : []));
          mark(list);
          const sep = ["\n", " ", "", "<!--c-->", "\n<!--c--> "][step % 5];
          const html = render(next, sep);
          Tether.morph(list, html);
          const want = next.map((id) => (current.includes(id) ? `i${id}` : `i${id} (new)`));
          if (list.innerHTML !== serialized(html)) failures.push(`${mode}, random step ${step}: the list is not the markup`);
          if (JSON.stringify(marked(list)) !== JSON.stringify(want)) failures.push(`${mode}, random step ${step}: identity`);
          current = next;
        }
      }
      return failures;
    });
    assert.deepEqual(failures, []);
  });

  test("keyed path: a detached element ends up as the markup too", TEST_OPTS, async () => {
    await open();
    const result = await page.evaluate(() => {
      const el = document.createElement("ul");
      el.innerHTML = render([1, 2, 3, 4, 5]);
      mark(el);
      const html = render([5, 3, 1, 4, 6]);
      Tether.morph(el, html);
      return { same: el.innerHTML === serialized(html), kept: marked(el) };
    });
    assert.deepEqual(result, { same: true, kept: ["i5", "i3", "i1", "i4", "i6 (new)"] });
  });

  // ---------- focus, caret and typed text ----------

  /** The person types `typed` into item `id`'s note and selects characters 1–3. */
  async function typeInto(id, typed) {
    await page.focus(`#i${id} .note`);
    await page.keyboard.type(typed);
    await page.evaluate((id) => document.querySelector(`#i${id} .note`).setSelectionRange(1, 3), id);
  }

  /** Morphs #list into `html` and reads what the person sees of item `id`'s note. */
  function morphAndRead(html, id, { insertBefore = false } = {}) {
    return page.evaluate(({ html, id, insertBefore }) => {
      const list = document.querySelector("#list");
      if (insertBefore) list.moveBefore = undefined;
      const note = document.querySelector(`#i${id} .note`);
      let blurs = 0;
      note.addEventListener("blur", () => blurs++);
      mark(list);
      Tether.morph(list, html);
      return {
        focused: document.activeElement === note,
        connected: note.isConnected,
        value: note.value,
        selection: [note.selectionStart, note.selectionEnd],
        blurs,
        order: [...list.children].map((li) => li.id || li.textContent),
        fresh: marked(list).filter((mark) => mark.endsWith("(new)")),
        whole: wholeMorphs(list),
      };
    }, { html, id, insertBefore });
  }

  const FOCUS_KEPT = { focused: true, connected: true, value: "half", selection: [1, 3], blurs: 0 };
  const pick = (state) => ({ focused: state.focused, connected: state.connected, value: state.value, selection: state.selection, blurs: state.blurs });

  test("keyed path: focus, caret and typed text stay in an item while the others change, move, go and come", TEST_OPTS, async () => {
    await open(render([1, 2, 3, 4, 5]));
    await typeInto(3, "half");
    const next = [6, { id: 5, text: "five" }, 3, { id: 1, cls: "item done" }, 2];
    const state = await morphAndRead(render(next), 3);
    assert.deepEqual(pick(state), FOCUS_KEPT);
    assert.deepEqual(state.order, ["i6", "i5", "i3", "i1", "i2"]);
    assert.deepEqual(state.fresh, ["i6 (new)"]);
    assert.equal(state.whole, 0, "keyed path");
  });

  test("keyed path: focus, caret and typed text stay when the item itself changes", TEST_OPTS, async () => {
    await open(render([1, 2, 3]));
    await typeInto(2, "half");
    // A changed class on the item: Idiomorph morphs it, the focused note keeps its value.
    const state = await morphAndRead(render([1, { id: 2, cls: "item flagged", text: "two" }, 3]), 2);
    assert.deepEqual(pick(state), FOCUS_KEPT);
    assert.equal(await page.evaluate(() => document.querySelector("#i2").className + "|" + document.querySelector("#i2 .text").textContent), "item flagged|two");
  });

  for (const [name, order] of [["swapped with another", [1, 4, 3, 2, 5]], ["the list reversed", [5, 4, 3, 2, 1]], ["moved to the end", [1, 3, 4, 5, 2]]]) {
    for (const insertBefore of [false, true]) {
      test(`keyed path: the focused item ${name} keeps focus and caret, without a blur (${insertBefore ? "insertBefore" : "moveBefore"})`, TEST_OPTS, async () => {
        await open(render([1, 2, 3, 4, 5]));
        await typeInto(2, "half");
        const state = await morphAndRead(render(order), 2, { insertBefore });
        assert.deepEqual(pick(state), FOCUS_KEPT);
        assert.deepEqual(state.order, order.map((id) => `i${id}`));
        assert.deepEqual(state.fresh, []);
        assert.equal(state.whole, 0, "keyed path");
      });
    }
  }

  test("fallback: focus, caret and typed text stay while other items change and move (a child without an id)", TEST_OPTS, async () => {
    const header = "<li class=header>header</li>";
    await open(header + render([1, 2, 3, 4, 5]));
    await typeInto(3, "half");
    const state = await morphAndRead(header + render([5, { id: 4, text: "four" }, 3, 1, 6]), 3);
    assert.deepEqual(pick(state), FOCUS_KEPT);
    assert.deepEqual(state.order, ["header", "i5", "i4", "i3", "i1", "i6"]);
    assert.equal(state.whole, 1, "Idiomorph morphed the whole list");
  });

  test("fallback: the focused item reversed with the others keeps focus and caret", TEST_OPTS, async () => {
    const header = "<li class=header>header</li>";
    await open(header + render([1, 2, 3, 4, 5]));
    await typeInto(2, "half");
    const state = await morphAndRead(header + render([5, 4, 3, 2, 1]), 2);
    assert.deepEqual(pick(state), FOCUS_KEPT);
    assert.deepEqual(state.order, ["header", "i5", "i4", "i3", "i2", "i1"]);
    assert.equal(state.whole, 1, "Idiomorph morphed the whole list");
  });

  test("keyed path: a focused contenteditable keeps what the person wrote while the rest of its item changes", TEST_OPTS, async () => {
    await open('<li id="a"><span class="label">a</span> <div class="editor" contenteditable>draft</div></li><li id="b">b</li>');
    await page.focus("#a .editor");
    await page.keyboard.press("End");
    await page.keyboard.type(" more");
    const state = await page.evaluate(() => {
      const list = document.querySelector("#list");
      Tether.morph(list, '<li id="b">b</li><li id="a"><span class="label">a 2</span> <div class="editor" contenteditable>draft</div></li>');
      return { label: document.querySelector("#a .label").textContent, editor: document.querySelector("#a .editor").textContent, whole: wholeMorphs(list) };
    });
    assert.deepEqual(state, { label: "a 2", editor: "draft more", whole: 0 });
  });

  test("keyed path: a textarea keeps text the person typed while the server leaves its text alone, and takes the server's new text", TEST_OPTS, async () => {
    await open('<li id="a"><textarea class="t">one</textarea><span>a</span></li><li id="b"><textarea class="t">two</textarea><span>b</span></li>');
    await page.fill("#a .t", "typed a");
    await page.fill("#b .t", "typed b");
    const state = await page.evaluate(() => {
      document.activeElement.blur();
      const list = document.querySelector("#list");
      Tether.morph(list, '<li id="b"><textarea class="t">two (server)</textarea><span>b</span></li><li id="a"><textarea class="t">one</textarea><span>a 2</span></li>');
      return { a: document.querySelector("#a .t").value, b: document.querySelector("#b .t").value, whole: wholeMorphs(list) };
    });
    assert.deepEqual(state, { a: "typed a", b: "two (server)", whole: 0 });
  });

  // ---------- boxes the person ticked ----------

  for (const fallback of [false, true]) {
    test(`${fallback ? "fallback" : "keyed path"}: a ticked box stays ticked while the server leaves its checked attribute alone, and follows it when the server changes it`, TEST_OPTS, async () => {
      const header = fallback ? "<li class=header>header</li>" : "";
      await open();
      const ticked = (html) => page.evaluate((html) => {
        const list = document.querySelector("#list");
        calls.length = 0;
        Tether.morph(list, html);
        return {
          ticked: [...list.querySelectorAll(".tick")].filter((box) => box.checked).map((box) => box.closest("li").id),
          whole: wholeMorphs(list),
        };
      }, html);
      await page.evaluate((html) => { document.querySelector("#list").innerHTML = html; }, header + render([1, 2, 3, 4]));
      await page.check("#i2 .tick");
      await page.check("#i3 .tick");
      // Not the focused control (Idiomorph leaves the focused one alone anyway): the rule itself.
      await page.evaluate(() => document.activeElement.blur());
      // Item 2 unchanged, item 3 changed (its class: morphed by Idiomorph), item 4 moved: the person's boxes stay.
      let state = await ticked(header + render([4, 1, 2, { id: 3, cls: "item flagged" }]));
      assert.deepEqual(state, { ticked: ["i2", "i3"], whole: fallback ? 1 : 0 });
      // The server ticks box 1 and unticks nothing it had ticked: box 1 follows, the person's stay.
      state = await ticked(header + render([4, { id: 1, checked: true }, 2, { id: 3, cls: "item flagged" }]));
      assert.deepEqual(state, { ticked: ["i1", "i2", "i3"], whole: fallback ? 1 : 0 });
      // The person unticks box 1; the server still renders it ticked: it stays unticked.
      await page.uncheck("#i1 .tick");
      state = await ticked(header + render([4, { id: 1, checked: true, text: "one" }, 2, { id: 3, cls: "item flagged" }]));
      assert.deepEqual(state, { ticked: ["i2", "i3"], whole: fallback ? 1 : 0 });
      // The server renders box 2 ticked then unticked: a change of the server's, so it applies.
      state = await ticked(header + render([4, { id: 1, checked: true }, { id: 2, checked: true }, { id: 3, cls: "item flagged" }]));
      assert.deepEqual(state.ticked, ["i2", "i3"]);
      state = await ticked(header + render([4, { id: 1, checked: true }, 2, { id: 3, cls: "item flagged" }]));
      assert.deepEqual(state.ticked, ["i3"]);
    });
  }

  // ---------- scroll ----------

  for (const insertBefore of [false, true]) {
    test(`keyed path: the scroll position of the list's container is kept while items move, with a focused item far away (${insertBefore ? "insertBefore" : "moveBefore"})`, TEST_OPTS, async () => {
      await open();
      const state = await page.evaluate((insertBefore) => {
        document.body.innerHTML = '<div id="scroller" style="height: 100px; overflow: auto"><ul id="list" style="margin: 0"></ul></div>';
        const list = document.querySelector("#list");
        const scroller = document.querySelector("#scroller");
        if (insertBefore) list.moveBefore = undefined;
        const ids = Array.from({ length: 60 }, (_, i) => i + 1);
        list.innerHTML = render(ids);
        const note = document.querySelector("#i3 .note");
        note.focus();
        scroller.scrollTop = 500;
        const before = scroller.scrollTop;
        Tether.morph(list, render(ids.slice().reverse().filter((id) => id !== 40).concat([61])));
        return { before, after: scroller.scrollTop, focused: document.activeElement === note, whole: wholeMorphs(list) };
      }, insertBefore);
      assert.ok(state.before > 0, "the container scrolled");
      assert.deepEqual(state, { before: state.before, after: state.before, focused: true, whole: 0 });
    });
  }

  test("fallback: the scroll position of the list's container is kept", TEST_OPTS, async () => {
    await open();
    const state = await page.evaluate(() => {
      document.body.innerHTML = '<div id="scroller" style="height: 100px; overflow: auto"><ul id="list" style="margin: 0"></ul></div>';
      const list = document.querySelector("#list");
      const scroller = document.querySelector("#scroller");
      const ids = Array.from({ length: 60 }, (_, i) => i + 1);
      list.innerHTML = "<li>header</li>" + render(ids);
      document.querySelector("#i3 .note").focus();
      scroller.scrollTop = 500;
      const before = scroller.scrollTop;
      Tether.morph(list, "<li>header</li>" + render(ids.slice().reverse()));
      return { before, after: scroller.scrollTop, whole: wholeMorphs(list) };
    });
    assert.ok(state.before > 0, "the container scrolled");
    assert.deepEqual(state, { before: state.before, after: state.before, whole: 1 });
  });

  // ---------- nested live regions ----------

  test("keyed path: a nested live region, as a child or deeper, is left to its own pokes; one renamed is morphed", TEST_OPTS, async () => {
    await open();
    const state = await page.evaluate(() => {
      const list = document.querySelector("#list");
      list.innerHTML =
        '<li id="a">outer 1</li><li id="r" tether-live="inner"><span>inner 5</span></li>' +
        '<li id="b"><p>outer b</p><div tether-live="deep"><span>deep 5</span></div></li><li id="c" tether-live="old"><span>c 5</span></li>';
      const inner = document.querySelector("#r span");
      const deep = document.querySelector("#b span");
      Tether.morph(list,
        '<li id="b"><p>outer b 2</p><div tether-live="deep"><span>deep 0</span></div></li><li id="r" tether-live="inner"><span>inner 0</span></li>' +
        '<li id="a">outer 2</li><li id="c" tether-live="new"><span>c 0</span></li>');
      return {
        order: [...list.children].map((li) => li.id),
        outer: [document.querySelector("#a").textContent, document.querySelector("#b p").textContent],
        inner: [inner.textContent, document.querySelector("#r span") === inner],
        deep: [deep.textContent, document.querySelector("#b span") === deep],
        renamed: document.querySelector("#c").textContent,
        whole: wholeMorphs(list),
      };
    });
    assert.deepEqual(state, {
      order: ["b", "r", "a", "c"],
      outer: ["outer 2", "outer b 2"],
      inner: ["inner 5", true],
      deep: ["deep 5", true],
      renamed: "c 0", // another region's name: the parent renders it
      whole: 0,
    });
  });

  // ---------- what the keyed path leaves to Idiomorph ----------

  test("fallback: children without ids, duplicate ids and empty ids are morphed whole, into the right DOM", TEST_OPTS, async () => {
    await open();
    const results = await page.evaluate(() => {
      const list = document.querySelector("#list");
      const cases = [
        ["a new child without an id", render([1, 2]), render([2, 1]) + "<li>plain</li>"],
        ["an old child without an id", "<li>plain</li>" + render([1, 2]), render([2, 1])],
        ["duplicate ids in the markup", render([1, 2, 3]), render([3, 1]) + '<li id="i3">again</li>'],
        ["duplicate ids in the list", render([1, 2]) + '<li id="i2">again</li>', render([2, 1])],
        ["an empty id", render([1, 2]), render([2, 1]) + '<li id="">empty</li>'],
      ];
      return cases.map(([name, from, to]) => {
        list.innerHTML = from;
        calls.length = 0;
        Tether.morph(list, to);
        return { name, same: list.innerHTML === serialized(to), whole: wholeMorphs(list) };
      });
    });
    for (const { name, same, whole } of results) {
      assert.deepEqual({ name, same, whole }, { name, same: true, whole: 1 });
    }
  });

  test("fallback: an element with an id moving up a level or into another item keeps its state (Idiomorph follows ids across the list)", TEST_OPTS, async () => {
    await open();
    const state = await page.evaluate(() => {
      const list = document.querySelector("#list");
      const out = {};
      // Up a level: the input #up becomes a child of the list.
      list.innerHTML = '<li id="a"><input id="up"></li><li id="b">b</li>';
      let input = document.querySelector("#up");
      input.value = "typed";
      calls.length = 0;
      Tether.morph(list, '<li id="a">a</li><input id="up"><li id="b">b</li>');
      out.up = { same: document.querySelector("#up") === input, value: input.value, whole: wholeMorphs(list), parent: input.parentNode.id };
      // Into another item: #across moves from item a to item b.
      list.innerHTML = '<li id="a"><input id="across"></li><li id="b">b</li>';
      input = document.querySelector("#across");
      input.value = "typed";
      calls.length = 0;
      Tether.morph(list, '<li id="a">a</li><li id="b">b <input id="across"></li>');
      out.across = { same: document.querySelector("#across") === input, value: input.value, whole: wholeMorphs(list), parent: input.parentNode.id };
      // Within its own item: the keyed path does it (Idiomorph on that item).
      list.innerHTML = '<li id="a"><p><input id="inside"></p><span>x</span></li><li id="b">b</li>';
      input = document.querySelector("#inside");
      input.value = "typed";
      calls.length = 0;
      Tether.morph(list, '<li id="b">b</li><li id="a"><span>x</span><input id="inside"></li>');
      out.inside = { same: document.querySelector("#inside") === input, value: input.value, whole: wholeMorphs(list), parent: input.parentNode.id };
      return out;
    });
    assert.deepEqual(state, {
      up: { same: true, value: "typed", whole: 1, parent: "list" },
      across: { same: true, value: "typed", whole: 1, parent: "b" },
      inside: { same: true, value: "typed", whole: 0, parent: "a" },
    });
  });

  test("keyed path: a <template> in an item is morphed (isEqualNode does not see template contents)", TEST_OPTS, async () => {
    await open();
    const state = await page.evaluate(() => {
      const list = document.querySelector("#list");
      list.innerHTML = '<li id="a"><template><b>1</b></template></li><li id="b">b</li>';
      Tether.morph(list, '<li id="b">b</li><li id="a"><template><b>2</b></template></li>');
      return { content: document.querySelector("#a template").innerHTML, whole: wholeMorphs(list) };
    });
    assert.deepEqual(state, { content: "<b>2</b>", whole: 0 });
  });
});
