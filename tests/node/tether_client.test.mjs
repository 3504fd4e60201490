// The pure parts of tether.js's page client (docs/page-channel.md: Events, Controls,
// Patches, Round trips), without a DOM: handler attributes, the sender's event fields,
// the join reply's `disable`, the refusals of the newer patch ops, cookies and JSON answers.
// They are imported from the ES modules of assets/src (window.Tether exports only what a
// page uses); one test loads the served bundle, assets/tether.js, as a classic script.
// The DOM behaviour itself is exercised in Chromium against the real server elsewhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { modalButtons, parseCookies, toJson } from "../../assets/src/calls.mjs";
import { disableOptions } from "../../assets/src/controls.mjs";
import { eventFields, parseHandler, parseOn, truncate } from "../../assets/src/events.mjs";
import { cookieString, refusal } from "../../assets/src/patches.mjs";

const require = createRequire(import.meta.url);
require("../../assets/tether.js");

test("a handler attribute is a name, with an optional JSON argument", () => {
  assert.deepEqual(parseHandler("save"), { name: "save", hasArg: false, arg: null });
  assert.deepEqual(parseHandler("  save  "), { name: "save", hasArg: false, arg: null });
  assert.deepEqual(parseHandler("remove(42)"), { name: "remove", hasArg: true, arg: 42 });
  assert.deepEqual(parseHandler('pick({"id": 3, "tags": ["a", "b)"]})'), { name: "pick", hasArg: true, arg: { id: 3, tags: ["a", "b)"] } });
  assert.deepEqual(parseHandler('say("hi there")'), { name: "say", hasArg: true, arg: "hi there" });
  assert.deepEqual(parseHandler("clear(null)"), { name: "clear", hasArg: true, arg: null });
  // empty parentheses are no argument: the nearest tether-arg applies
  assert.deepEqual(parseHandler("save()"), { name: "save", hasArg: false, arg: null });
});

test("an argument is JSON, never script: anything else throws and nothing is sent", () => {
  for (const text of ["pick({id: 3})", "pick('x')", "pick(alert(1))", "pick(1, 2)", "pick(undefined)"]) {
    assert.throws(() => parseHandler(text), /invalid JSON argument/, text);
  }
  for (const text of ["", "   ", "pick(1", "a b", "(1)"]) {
    assert.throws(() => parseHandler(text), /invalid handler/, JSON.stringify(text));
  }
});

test("tether-on pairs keep JSON arguments with spaces and namespaced event types", () => {
  assert.deepEqual(parseOn("blur:save mouseenter:peek").pairs, [["blur", "save"], ["mouseenter", "peek"]]);
  assert.deepEqual(parseOn('  click:pick({"id": 3, "s": "a b"})\n\tkeyup:key("x y")  ').pairs, [
    ["click", 'pick({"id": 3, "s": "a b"})'],
    ["keyup", 'key("x y")'],
  ]);
  assert.deepEqual(parseOn('pick:go({"s": "\\" )"})').pairs, [["pick", 'go({"s": "\\" )"})']]);
  assert.deepEqual(parseOn("my:custom:hit(3)").pairs, [["my:custom", "hit(3)"]]);
  const { pairs, bad } = parseOn("save :save click: ok:go");
  assert.deepEqual(pairs, [["ok", "go"]]);
  assert.deepEqual(bad, ["save", ":save", "click:"]);
  assert.deepEqual(parseOn(null), { pairs: [], bad: [] });
});

test("the sender's event holds only the fields the event has", () => {
  const click = { type: "click", button: 0, clientX: 10, clientY: 20, altKey: false, ctrlKey: true, shiftKey: false, metaKey: false, target: {}, bubbles: true };
  assert.deepEqual(eventFields(click), { type: "click", altKey: false, ctrlKey: true, shiftKey: false, metaKey: false, button: 0, clientX: 10, clientY: 20 });
  assert.deepEqual(eventFields({ type: "keyup", key: "Enter", code: "Enter", location: 0 }), { type: "keyup", key: "Enter", code: "Enter" });
  assert.deepEqual(eventFields({ type: "focus", key: undefined }), { type: "focus" });
  assert.deepEqual(eventFields(null), {});
});

test("text is capped at 1,000 code points and never cuts a surrogate pair", () => {
  assert.equal(truncate("short", 1000), "short");
  assert.equal(truncate("x".repeat(5000), 1000).length, 1000);
  const emoji = "😀".repeat(1500); // 2 UTF-16 units each
  const cut = truncate(emoji, 1000);
  assert.equal([...cut].length, 1000);
  assert.equal(cut, "😀".repeat(1000));
  const odd = `a${"😀".repeat(1000)}`; // a pair straddles unit 1000
  assert.ok(!/[\ud800-\udbff]$/.test(truncate(odd, 1000)));
  assert.doesNotThrow(() => decodeURIComponent(encodeURIComponent(truncate(odd, 1000))));
});

test("the join reply's disable, with the defaults for what it leaves out", () => {
  const defaults = { while_processing: true, events: ["click", "submit"], when_disconnected: true };
  assert.deepEqual(disableOptions(undefined), defaults);
  assert.deepEqual(disableOptions(null), defaults);
  assert.deepEqual(disableOptions({}), defaults);
  assert.deepEqual(disableOptions({ while_processing: false, events: ["click"], when_disconnected: false }), {
    while_processing: false, events: ["click"], when_disconnected: false,
  });
  assert.deepEqual(disableOptions({ events: [] }).events, []);
  // the defaults are not shared: changing one reply's list changes no other
  disableOptions(undefined).events.push("input");
  assert.deepEqual(disableOptions(undefined).events, ["click", "submit"]);
});

test("props patches obey the prop rules key by key, attributes included", () => {
  const props = (p) => refusal({ op: "props", sel: "#x", props: p }, true);
  assert.equal(props({
    value: 40, hidden: false, textContent: "<b>x</b>", href: "https://example.com/",
    style: { width: "40%", "background-color": null }, dataset: { state: "running", old: null },
    attributes: { "aria-busy": "true", title: null, href: "/next" }, classList: { add: ["busy"], remove: ["idle"], toggle: [] },
  }), null);
  for (const bad of [
    { innerHTML: "<img src=x onerror=alert(1)>" },
    { outerHTML: "<b>x</b>" },
    { onclick: "alert(1)" },
    { href: "javascript:alert(1)" },
    { attributes: { onclick: "alert(1)" } },
    { attributes: { OnMouseOver: "alert(1)" } },
    { attributes: { srcdoc: "<script>alert(1)</script>" } },
    { attributes: { innerHTML: "x" } },
    { attributes: { href: " JavaScript:alert(1)" } },
    { attributes: { "xlink:href": "javascript:alert(1)" } },
    { attributes: { formaction: "vbscript:x" } },
  ]) {
    assert.match(props(bad), /takes only Html|refused/, JSON.stringify(bad));
  }
  for (const bad of [
    JSON.parse('{"__proto__": {"polluted": 1}}'),
    { constructor: 1 },
    { prototype: 1 },
    { style: JSON.parse('{"__proto__": "x"}') },
    { dataset: { constructor: "x" } },
    { attributes: { prototype: "x" } },
  ]) {
    assert.match(props(bad), /forbidden/, JSON.stringify(bad));
  }
  for (const bad of [{ style: "color: red" }, { dataset: null }, { attributes: ["x"] }, { classList: ["a"] }]) {
    assert.match(props(bad), /must be an object/, JSON.stringify(bad));
  }
  assert.match(props({ classList: { replace: ["a"] } }), /classList/);
  assert.match(props({ classList: { add: "a" } }), /classList/);
  assert.match(props(null), /props must be an object/);
  assert.match(props([]), /props must be an object/);
  // removing a URL attribute is fine whatever it held
  assert.equal(props({ attributes: { href: null } }), null);
});

test("redirect and set_url refuse script URLs; console takes the five levels only", () => {
  for (const op of ["redirect", "set_url"]) {
    assert.equal(refusal({ op, url: "/next?x=1" }, false), null);
    assert.equal(refusal({ op, url: "https://example.com/" }, false), null);
    for (const url of ["javascript:alert(1)", " \tJaVa\nScRiPt:alert(1)", "vbscript:x"]) {
      assert.match(refusal({ op, url }, true), /script URL/, `${op} ${url}`);
    }
    assert.match(refusal({ op }, true), /needs a url/);
  }
  for (const level of ["log", "info", "warn", "error", "debug"]) {
    assert.equal(refusal({ op: "console", level, msg: "x" }, false), null);
  }
  for (const level of ["table", "assert", "clear", "__proto__", "constructor", undefined]) {
    assert.match(refusal({ op: "console", level, msg: "x" }, true), /not allowed/, String(level));
  }
});

test("cookies: the server's rules, so nothing can add an attribute", () => {
  const cookie = (c) => refusal({ op: "cookie", ...c }, false);
  assert.equal(cookie({ name: "theme", value: "dark" }), null);
  assert.equal(cookie({ name: "theme", value: null }), null);
  assert.equal(cookie({ name: "theme", value: "a%20b", max_age: 3600, path: "/app" }), null);
  assert.match(cookie({ name: "theme", value: "dark; domain=evil.example" }), /cookie-octets/);
  assert.match(cookie({ name: "theme", value: "a b" }), /cookie-octets/);
  assert.match(cookie({ name: "theme", value: "x", path: "/; domain=evil.example" }), /cookie-octets/);
  assert.match(cookie({ name: "a=b", value: "1" }), /not a token/);
  assert.match(cookie({ name: "", value: "1" }), /not a token/);
  assert.match(cookie({ name: "a;b", value: "1" }), /not a token/);
  assert.match(cookie({ value: "1" }), /not a token/);
  assert.match(cookie({ name: "n", value: "1", max_age: 1.5 }), /max_age/);

  assert.equal(cookieString({ name: "theme", value: "dark" }), "theme=dark");
  assert.equal(cookieString({ name: "theme", value: "dark", max_age: 60, path: "/" }), "theme=dark; path=/; max-age=60");
  assert.equal(cookieString({ name: "theme", value: null, path: "/" }), "theme=; path=/; max-age=0");
  assert.equal(cookieString({ name: "theme", value: null, max_age: 60 }), "theme=; max-age=0");
});

test("document.cookie is read as {name: value}", () => {
  const jar = parseCookies("a=1; theme=dark; b=x=y; a=shadowed; enc=a%20b; =nameless; lone");
  assert.deepEqual({ ...jar }, { a: "1", theme: "dark", b: "x=y", enc: "a%20b", "": "nameless" });
  assert.deepEqual({ ...parseCookies("") }, {});
  const proto = parseCookies("__proto__=x; constructor=y");
  assert.equal(proto.__proto__, "x");
  assert.equal(JSON.stringify(proto), '{"__proto__":"x","constructor":"y"}');
});

test("an answer is JSON: undefined is null, what JSON cannot hold is an error", () => {
  assert.equal(toJson(undefined), null);
  assert.equal(toJson(null), null);
  assert.deepEqual(toJson({ a: [1, "x", true], b: undefined, d: new Date(0) }), { a: [1, "x", true], d: "1970-01-01T00:00:00.000Z" });
  assert.equal(toJson(Number.NaN), null);
  assert.throws(() => toJson(() => 1), /not JSON/);
  assert.throws(() => toJson(Symbol("s")), /not JSON/);
  assert.throws(() => toJson(10n), TypeError);
  const cycle = {};
  cycle.self = cycle;
  assert.throws(() => toJson(cycle), TypeError);
});

test("modal buttons are [value, label] strings, with one OK button when none are given", () => {
  assert.deepEqual(modalButtons([["ok", "OK"], ["cancel", "Cancel"]]), [["ok", "OK"], ["cancel", "Cancel"]]);
  assert.deepEqual(modalButtons([["yes"], "no", [1, 2]]), [["yes", "yes"], ["no", "no"], ["1", "2"]]);
  assert.deepEqual(modalButtons([]), [["ok", "OK"]]);
  assert.deepEqual(modalButtons(undefined), [["ok", "OK"]]);
});

test("no page starts without a document, and the bundle exports what a page uses, nothing for tests", () => {
  assert.equal(globalThis.Tether.page, null);
  assert.deepEqual(Object.keys(globalThis.Tether).sort(), ["Channel", "Presence", "Socket", "disableLatencySim", "enableLatencySim", "hooks", "morph", "page", "registerHook", "version"]);
  assert.match(globalThis.Tether.version, /^\d+\.\d+\.\d+$/);
  for (const name of ["Socket", "Channel", "Presence", "morph", "registerHook", "enableLatencySim", "disableLatencySim"]) {
    assert.equal(typeof globalThis.Tether[name], "function", name);
  }
  // Hooks: registerHook and assigning Tether.hooks both add to the one registry.
  const chart = { mounted() {} };
  globalThis.Tether.registerHook("Chart", chart);
  globalThis.Tether.hooks = { Map: { mounted() {} } };
  assert.equal(globalThis.Tether.hooks.Chart, chart);
  assert.deepEqual(Object.keys(globalThis.Tether.hooks).sort(), ["Chart", "Map"]);
});

test("a morph patch takes markup only", () => {
  assert.equal(refusal({ op: "morph", sel: "#x", html: "<li>a</li>" }, false), null);
  assert.match(refusal({ op: "morph", sel: "#x", text: "a" }, false), /morph takes html/);
  assert.match(refusal({ op: "morph", sel: "#x", html: { toString: "x" } }, false), /morph takes html/);
});
