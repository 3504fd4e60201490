// connection.mjs — the page's connection state, for CSS and scripts: classes on the root
// element and DOM events on the document (they bubble to window).
//
//   html.tether-connecting    before the first join
//   html.tether-connected     joined
//   html.tether-disconnected  the join was lost (tether.js is rejoining), or the page is stale
//   html.tether-stale         the page cannot rejoin (refused token): reload it
//   tether:joined             the first join of this page load
//   tether:disconnected       a join was lost (once per loss, not per retry)
//   tether:reconnected        joined again after a loss
//
// The `data-tether` attribute of the root (`connected`, `disconnected`, `stale`) stays as it
// was, for pages that already style it.
//
// For: the page (page.mjs), which says when it joined and when it lost the join.
// Never: talks to the socket or keeps more than the current state.

const STATES = ["connecting", "connected", "disconnected", "stale"];

// Sets the root's classes to `state` (one of STATES; `stale` keeps `disconnected` too).
export function showState(state) {
  const root = document.documentElement;
  for (const name of STATES) root.classList.remove(`tether-${name}`);
  root.classList.add(`tether-${state}`);
  if (state === "stale") root.classList.add("tether-disconnected");
}

// Dispatches `tether:<name>` (joined, disconnected, reconnected) on the document.
export function announce(name) {
  document.dispatchEvent(new CustomEvent(`tether:${name}`, { bubbles: true }));
}
