// shared.mjs — the few rules and helpers every part of a commander's page uses: how a problem
// is reported (console and a `tether:error` event), the `tether-ignore` rule, and the
// property names no patch or query may touch.
//
// For: the page modules (patches, lists, events, round trips, the page).
// Never: keeps state, talks to the socket or the server, or imports another module of
// tether.js (everything may import it; it imports nothing).

// Property names no patch, props group or query ever reads or writes.
export const FORBIDDEN_PROPS = new Set(["__proto__", "prototype", "constructor"]);
const IGNORE = "[tether-ignore]";

export function report(what, reason) {
  console.warn(`tether: ${what}: ${reason}`);
  document.dispatchEvent(new CustomEvent("tether:error", { detail: { what, reason } }));
}

// Whether `el` is in a `tether-ignore` subtree (or is its root): markup tether.js never
// wires (handlers, counters, presence lists) and never fills through a selector it built
// from an attribute (live regions, Sender::this, Sender::within).
export function ignored(el) {
  return el.closest(IGNORE) !== null;
}

export function errorMessage(err) {
  return String((err && err.message) || err);
}

export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
