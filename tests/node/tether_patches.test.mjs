// tether.js refuses the patches the server refuses (Patch::check in src/commander/page.rs):
// script unless the join reply enabled exec_js, and a plain value for a property that would
// parse it as markup or script. A patch injected on the way (a compromised bus, a proxy)
// therefore cannot run script in the page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { refusal } from "../../assets/src/patches.mjs";

test("script patches run only when the join reply enabled exec_js", () => {
  const js = { op: "js", js: "alert(1)" };
  assert.match(refusal(js, false), /exec_js/);
  assert.equal(refusal(js, undefined), refusal(js, false));
  assert.equal(refusal(js, true), null);
});

test("a plain value never becomes markup or script through a property", () => {
  for (const [prop, value] of [
    ["innerHTML", "<img src=x onerror=alert(1)>"],
    ["outerHTML", "<b>x</b>"],
    ["srcdoc", "<script>alert(1)</script>"],
    ["onclick", "alert(1)"],
    ["OnMouseOver", "alert(1)"],
    ["href", "javascript:alert(1)"],
    ["src", " \tJaVaScRiPt:alert(1)"],
    ["formAction", "javascript:alert(1)"],
    ["action", "java\nscript:alert(1)"],
    ["href", "vbscript:msgbox(1)"],
  ]) {
    assert.match(refusal({ op: "prop", sel: "#x", prop, value }, true), /takes only Html/, `${prop}=${value}`);
  }
  for (const prop of ["__proto__", "prototype", "constructor"]) {
    assert.match(refusal({ op: "prop", sel: "#x", prop, value: 1 }, true), /forbidden/);
  }
});

test("ordinary properties, safe URLs and Html values pass", () => {
  for (const [prop, value] of [["value", "<b>x</b>"], ["href", "https://example.com/"], ["checked", true]]) {
    assert.equal(refusal({ op: "prop", sel: "#x", prop, value }, false), null);
  }
  assert.equal(refusal({ op: "prop", sel: "#x", prop: "innerHTML", html: "<b>x</b>" }, false), null);
  for (const op of ["html", "text", "remove"]) {
    assert.equal(refusal({ op, sel: "#x" }, false), null);
  }
  assert.equal(refusal({ op: "insert", sel: "#x", position: "beforeend", text: "t" }, false), null);
  assert.equal(refusal({ op: "insert", sel: "#x", position: "beforeend", html: "<b>h</b>" }, false), null);
  assert.equal(refusal({ op: "prop", sel: "#x", prop: "title", value: null }, false), null);
});

test("a patch missing what it sets is refused, never applied as \"undefined\"", () => {
  assert.match(refusal({ op: "insert", sel: "#x", position: "beforeend" }, false), /insert takes html or text/);
  assert.match(refusal({ op: "prop", sel: "#x", prop: "title" }, false), /prop takes a value or html/);
});
