// lists.mjs — what a page keeps current from server data with no commander code: templated
// presence lists (`data-tether-presence`, filled from `presence_list` updates) and live
// counters (`data-tether-topic`, set from `count` broadcasts).
//
// For: the page, which asks for the lists and counters on its join and hands it the updates.
// Never: renders markup from the server (entries become text in copies of the page's own
// `<template>`), wires or fills anything in a tether-ignore subtree, or talks to the socket.

import { ignored, report } from "./shared.mjs";

// The presence lists a page shows, for its join: the signed spec the server rendered into
// each (`data-tether-list`: topic, fields, key form; the server honours nothing else); each once.
export function presenceListSpecs(root) {
  const specs = new Set();
  for (const el of root.querySelectorAll("[data-tether-presence][data-tether-list]")) {
    if (!ignored(el)) specs.add(el.dataset.tetherList);
  }
  return [...specs];
}

function parseEntries(json) {
  try {
    const entries = JSON.parse(json || "[]");
    return Array.isArray(entries) ? entries : [];
  } catch (_) {
    report("presence", "data-tether-entries is not JSON");
    return [];
  }
}

// A `presence_list` update: every templated list of that topic, fields and key form
// (`keys: "hashed"`, `data-tether-keys`) shows `entries`.
export function renderPresenceLists(root, { topic, fields, keys, entries }) {
  if (!Array.isArray(entries)) return;
  for (const el of root.querySelectorAll("[data-tether-presence][data-tether-fields]")) {
    if (ignored(el)) continue;
    if (el.dataset.tetherPresence === topic && el.dataset.tetherFields === fields
      && (el.dataset.tetherKeys || "") === (keys || "")) fillPresenceList(el, entries);
  }
}

// Shows `entries` ({key, connections, meta}) in templated list `el`: one copy of its
// `<template>`'s first element per entry, in order, keyed by `data-tether-key` (an entry
// already shown keeps its element); each `[data-field]` element (the copy itself included)
// gets, as text, the entry's `key`, `connections` or meta field of that name.
function fillPresenceList(el, entries) {
  const template = el.querySelector(":scope > template");
  const model = template && template.content.firstElementChild;
  if (!model) return;
  const shown = new Map();
  for (const child of el.children) {
    if (child.hasAttribute("data-tether-key")) shown.set(child.getAttribute("data-tether-key"), child);
  }
  let before = template.nextSibling;
  for (const entry of entries) {
    if (!entry || typeof entry.key !== "string") continue;
    let item = shown.get(entry.key);
    shown.delete(entry.key);
    if (!item) {
      item = model.cloneNode(true);
      item.setAttribute("data-tether-key", entry.key);
    }
    const meta = entry.meta && typeof entry.meta === "object" ? entry.meta : {};
    const slots = item.matches("[data-field]") ? [item, ...item.querySelectorAll("[data-field]")] : item.querySelectorAll("[data-field]");
    for (const slot of slots) {
      const field = slot.getAttribute("data-field");
      const value = field === "key" ? entry.key : field === "connections" ? entry.connections : meta[field];
      const text = value == null ? "" : typeof value === "object" ? JSON.stringify(value) : String(value);
      if (slot.textContent !== text) slot.textContent = text;
    }
    if (item !== before) el.insertBefore(item, before);
    before = item.nextSibling;
  }
  for (const gone of shown.values()) gone.remove();
}

// Until their first update, templated presence lists show the entries they were rendered
// with (`data-tether-entries`).
export function showRenderedLists(root) {
  for (const el of root.querySelectorAll("[data-tether-presence][data-tether-entries]")) {
    if (!ignored(el)) fillPresenceList(el, parseEntries(el.dataset.tetherEntries));
  }
}

// The live counters of the page (`data-tether-topic`), but those in tether-ignore subtrees.
export function counterElements(root) {
  return [...root.querySelectorAll("[data-tether-topic]")].filter((el) => !ignored(el));
}

// A `count` broadcast: every live counter of its topic shows its users or connections (a
// counter naming neither, or a count that is not a number, is left as it is).
const COUNTS = new Set(["users", "connections"]);
export function renderCount(root, payload) {
  for (const el of counterElements(root)) {
    const which = el.dataset.tetherCount;
    if (el.dataset.tetherTopic !== payload.topic || !COUNTS.has(which) || typeof payload[which] !== "number") continue;
    el.textContent = String(payload[which]);
  }
}
