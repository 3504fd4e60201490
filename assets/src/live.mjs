// live.mjs — live regions (`tether-live`), as the page sees them: the tokens that carry
// each region's encrypted assigns across reconnects, and the rule that a parent's morph
// leaves a nested region alone (it is re-rendered by its own pokes).
//
// For: the page (tokens sent back on every join, renewed by `live` events) and the morph
// (nestedRegion).
// Never: reads or decrypts a token (they are opaque, the server's), renders a region itself
// (pokes arrive as ordinary morph patches), or touches the socket.

import { report } from "./shared.mjs";

// The live tokens the server rendered into the script tag (`data-tether-live`, JSON of
// {name: token}); kept in memory for this page load and sent back on every join, so a
// reconnect restores each live region's assigns. Null prototype: any name is just a name.
export function liveTokens(json) {
  const tokens = Object.create(null);
  let parsed = null;
  try {
    parsed = json ? JSON.parse(json) : null;
  } catch (_) {
    report("live", "data-tether-live is not JSON");
  }
  if (parsed && typeof parsed === "object") {
    for (const [name, token] of Object.entries(parsed)) if (typeof token === "string") tokens[name] = token;
  }
  return tokens;
}

// Whether `oldNode` is a live region nested in `root` that `newNode` renders again.
export function nestedRegion(root, oldNode, newNode) {
  return oldNode !== root && oldNode instanceof Element && newNode instanceof Element &&
    oldNode.hasAttribute("tether-live") && oldNode.getAttribute("tether-live") === newNode.getAttribute("tether-live");
}
