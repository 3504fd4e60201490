// The checks of client-side command lists in tether.js (assets/src/commands.mjs), with the
// vectors of the server's own check (src/commander/js.rs): both sides refuse the same lists.
// No browser: commandsRefusal and isCommandList are pure. The lists running in a page are
// tested in Chromium by js_lab.test.mjs.

import { test } from "node:test";
import assert from "node:assert/strict";
import { MAX_COMMANDS, commandsRefusal, isCommandList } from "../../assets/src/commands.mjs";

test("a list the server builds passes", () => {
  const list = [
    ["show", { to: "#m", display: "flex" }],
    ["add_class", { to: "#m", names: ["a", "b"] }],
    ["set_attr", { to: "#m", attr: ["aria-expanded", "true"] }],
    ["transition", { to: "#m", names: ["fade"], time: 200 }],
    ["dispatch", { to: "", event: "menu:open", detail: { n: 1 } }],
    ["focus", { to: "#q" }],
    ["push", { event: "save", value: { id: 1 } }],
    ["patch", { href: "/notes?q=x" }],
  ];
  assert.equal(commandsRefusal(list), null);
});

test("script is refused in every command, as on the server", () => {
  for (const bad of [
    [["set_attr", { to: "#a", attr: ["onclick", "alert(1)"] }]],
    [["set_attr", { to: "#a", attr: ["href", " javascript:alert(1)"] }]],
    [["set_attr", { to: "#a", attr: ["srcdoc", "<script></script>"] }]],
    [["set_attr", { to: "#a", attr: ["xlink:href", "javascript:x"] }]],
    [["navigate", { href: "javascript:alert(1)" }]],
    [["patch", { href: "vbscript:x" }]],
    [["eval", { js: "1" }]],
    [["show"]],
    { show: 1 },
    Array.from({ length: MAX_COMMANDS + 1 }, () => ["hide", { to: "#a" }]),
  ]) {
    assert.notEqual(commandsRefusal(bad), null, JSON.stringify(bad).slice(0, 80));
  }
});

test("a handler attribute is a list when it starts with [", () => {
  assert.equal(isCommandList(' [["hide",{}]]'), true);
  assert.equal(isCommandList("save"), false);
  assert.equal(isCommandList('pick({"id": [1]})'), false);
});
