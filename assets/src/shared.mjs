// shared.mjs — the few rules and helpers every part of a commander's page uses: how a problem
// is reported (console and a `tether:error` event), the `tether-ignore` rule, the property
// names no patch or query may touch, and which names and URLs would run markup or script
// (the rules patches and client-side commands both check).
//
// For: the page modules (patches, commands, lists, events, round trips, the page).
// Never: keeps state, talks to the socket or the server, or imports another module of
// tether.js (everything may import it; it imports nothing).

// Property names no patch, props group or query ever reads or writes.
export const FORBIDDEN_PROPS = new Set(["__proto__", "prototype", "constructor"]);
// Property and attribute names (lowercased) whose value is parsed as markup.
export const MARKUP_NAMES = new Set(["innerhtml", "outerhtml", "srcdoc"]);
// Attributes (lowercased) whose value is a URL, which a script URL would turn into script.
export const URL_ATTRIBUTES = new Set(["href", "src", "action", "formaction", "xlink:href"]);

// Whether `value` is a `javascript:` or `vbscript:` URL (control characters and spaces, which
// browsers skip, skipped).
export function isScriptUrl(value) {
  const scheme = String(value).replace(/[\u0000-\u0020\u007f]/g, "").slice(0, 11).toLowerCase();
  return scheme.startsWith("javascript:") || scheme.startsWith("vbscript:");
}
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
