// commands.mjs — client-side commands (the Rust `Js` builder's lists): a handler attribute
// whose value is a JSON list runs these in the page instead of sending an event, and an
// `exec` patch runs one from the server.
//
//   tether-click='[["toggle",{"to":"#menu"}],["add_class",{"to":"#b","names":["open"]}]]'
//   tether-on='mouseenter:[["show",{"to":"#tip"}]]'
//
// Commands: show {to, display?}, hide {to}, toggle {to, display?}, add_class / remove_class /
// toggle_class {to, names}, set_attr {to, attr: [name, value]}, remove_attr {to, attr},
// transition {to, names, time}, dispatch {to, event, detail?}, focus {to}, push {event,
// value} (calls a handler: the one command that sends a frame), navigate {href}, patch
// {href}. `to` is a CSS selector; empty (or absent) means the element the list is on.
//
// For: the page (page.mjs runs lists from attributes with runList and `exec` patches with
// runCommands; `push`, `navigate` and `patch` go back to it through the `page` object it
// passes; runsOffline tells it which controls stay enabled while it is not joined).
// Never: evaluates anything (there is no script command; JSON.parse only), sets an `on*`,
// `srcdoc` or markup attribute or a script URL, navigates to a script URL, runs a list longer
// than MAX_COMMANDS, acts inside a `tether-ignore` subtree through a selector, or needs the
// socket for anything but `push`.

import { HANDLER_ATTRIBUTES, parseOn } from "./events.mjs";
import {
  FORBIDDEN_PROPS, MARKUP_NAMES, URL_ATTRIBUTES, errorMessage, isObject, isScriptUrl, report,
} from "./shared.mjs";

export const MAX_COMMANDS = 64;
const OPS = new Set([
  "show", "hide", "toggle", "add_class", "remove_class", "toggle_class", "set_attr", "remove_attr",
  "transition", "dispatch", "focus", "push", "navigate", "patch",
]);
const HIDDEN = "tetherHidden"; // dataset key: the inline display a `hide` replaced

// Whether a handler attribute's text is a command list rather than a handler name.
export function isCommandList(text) {
  return /^\s*\[/.test(String(text));
}

// The list in `text`, checked; throws with the reason otherwise.
export function parseCommands(text) {
  let commands;
  try {
    commands = JSON.parse(text);
  } catch (err) {
    throw new Error(`invalid command list: ${errorMessage(err)}`);
  }
  const refused = commandsRefusal(commands);
  if (refused) throw new Error(refused);
  return commands;
}

// Why a command list must not run, or null: the server's rules (js.rs check_commands).
export function commandsRefusal(commands) {
  if (!Array.isArray(commands)) return "js: not a command list";
  if (commands.length > MAX_COMMANDS) return `js: more than ${MAX_COMMANDS} commands`;
  for (const command of commands) {
    if (!Array.isArray(command) || typeof command[0] !== "string" || !isObject(command[1])) return "js: a command is [op, {args}]";
    const [op, args] = command;
    if (!OPS.has(op)) return `js: unknown command ${op}`;
    if (op === "set_attr") {
      const [name, value] = Array.isArray(args.attr) ? args.attr : [];
      const lower = String(name || "").toLowerCase();
      if (!name || FORBIDDEN_PROPS.has(String(name)) || MARKUP_NAMES.has(lower) || lower.startsWith("on")) return `js: attribute ${name} is refused`;
      if (URL_ATTRIBUTES.has(lower) && isScriptUrl(value)) return `js: attribute ${name} is refused (script URL)`;
    }
    if ((op === "navigate" || op === "patch") && (typeof args.href !== "string" || isScriptUrl(args.href))) return `js: ${op} needs a URL that is no script`;
  }
  return null;
}

// The elements a command acts on: `to` in the document (never in a tether-ignore subtree),
// or `el` itself when `to` is empty.
function targets(el, to) {
  if (to == null || to === "") return el ? [el] : [];
  let found;
  try {
    found = document.querySelectorAll(String(to));
  } catch (_) {
    throw new Error(`invalid selector ${to}`);
  }
  return [...found].filter((node) => !node.closest("[tether-ignore]"));
}

function isHidden(node) {
  return node.style.display === "none" || (node.style.display === "" && getComputedStyle(node).display === "none");
}

function hide(node) {
  if (node.style.display === "none") return;
  node.dataset[HIDDEN] = node.style.display;
  node.style.display = "none";
}

function show(node, display) {
  if (display) node.style.display = String(display);
  else {
    const before = node.dataset[HIDDEN];
    node.style.display = before && before !== "none" ? before : "";
    // Hidden by the stylesheet (not inline): showing needs a display of its own.
    if (getComputedStyle(node).display === "none") node.style.display = "block";
  }
  delete node.dataset[HIDDEN];
}

function classNames(args) {
  return (Array.isArray(args.names) ? args.names : []).map(String).filter((name) => name !== "");
}

// Runs the list of a handler attribute (`text`) at `el`: checked first, reported when refused.
export function runList(text, el, page) {
  let commands;
  try {
    commands = parseCommands(text);
  } catch (err) {
    report("js", err.message);
    return;
  }
  runCommands(commands, el, page);
}

// Whether every handler attribute of `el` is a command list without `push`: it works while
// the page is not joined, so the page does not disable it then.
export function runsOffline(el) {
  const texts = [];
  for (const name of HANDLER_ATTRIBUTES) {
    const value = el.getAttribute(name);
    if (value === null) continue;
    if (name === "tether-on") for (const [, handler] of parseOn(value).pairs) texts.push(handler);
    else texts.push(value);
  }
  return texts.length > 0 && texts.every((text) => {
    if (!isCommandList(text)) return false;
    try {
      return parseCommands(text).every(([op]) => op !== "push");
    } catch (_) {
      return false;
    }
  });
}

// Runs `commands` (checked by parseCommands or commandsRefusal) for element `el` (null for
// an `exec` patch). `page` gives `push(el, handler, value)`, `navigate(href)` and
// `patch(href)`. A command that fails is reported; the ones after it still run.
export function runCommands(commands, el, page) {
  for (const [op, args] of commands) {
    try {
      runOne(op, args, el, page);
    } catch (err) {
      report(`js ${op}`, errorMessage(err));
    }
  }
}

function runOne(op, args, el, page) {
  switch (op) {
    case "push": page.push(el, String(args.event), args.value === undefined ? null : args.value); return;
    case "navigate": page.navigate(args.href); return;
    case "patch": page.patch(args.href); return;
  }
  const nodes = targets(el, args.to);
  for (const node of nodes) {
    switch (op) {
      case "show": show(node, args.display); break;
      case "hide": hide(node); break;
      case "toggle": if (isHidden(node)) show(node, args.display); else hide(node); break;
      case "add_class": node.classList.add(...classNames(args)); break;
      case "remove_class": node.classList.remove(...classNames(args)); break;
      case "toggle_class": for (const name of classNames(args)) node.classList.toggle(name); break;
      case "set_attr": node.setAttribute(String(args.attr[0]), String(args.attr[1] ?? "")); break;
      case "remove_attr": node.removeAttribute(String(args.attr)); break;
      case "transition": {
        const names = classNames(args);
        node.classList.add(...names);
        setTimeout(() => node.classList.remove(...names), Math.max(0, Number(args.time) || 0));
        break;
      }
      case "dispatch":
        node.dispatchEvent(new CustomEvent(String(args.event), { bubbles: true, detail: args.detail ?? null }));
        break;
      case "focus": node.focus(); return; // the first one only
    }
  }
}
