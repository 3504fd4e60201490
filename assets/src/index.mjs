// index.mjs — the entry of the bundle (assets/tether.js, served at /tether.js): defines
// `window.Tether` and, on a commander's page, starts that page.
//
// Classic script: it defines `window.Tether = { Socket, Channel, Presence, page, hooks,
// registerHook, morph, enableLatencySim, disableLatencySim, version }`.
// Loaded by a commander's page (a script tag with data-tether-token), it also runs that page.
//
//   const socket = new Tether.Socket("/socket", { params: { user_id: "alice" } });
//   socket.connect();
//   const room = socket.channel("room:lobby", {});
//   const presence = new Tether.Presence(room);
//   presence.onSync(() => render(presence.list((key, { metas }) => [key, metas.length])));
//   room.join().receive("ok", () => {});
//
// For: what a user of tether.js reaches, and nothing else.
// Never: exports a helper only tests need (tests import the modules of assets/src directly),
// or starts a page without a page token on its own script tag.

import { Channel } from "./channel.mjs";
import { registry as hooks } from "./hooks.mjs";
import { disableLatencySim, enableLatencySim } from "./latency.mjs";
import { morph } from "./morph.mjs";
import { Page } from "./page.mjs";
import { Presence } from "./presence.mjs";
import { Socket } from "./socket.mjs";
import { VERSION } from "./version.mjs";

// Read while this script runs: document.currentScript is null once it has.
const script = typeof document !== "undefined" ? document.currentScript : null;
let page = null;
if (script && script.dataset.tetherToken) {
  page = new Page(script);
}

// Hooks a page defined before this (deferred) script ran: `window.Tether = {hooks: {…}}`.
const early = (typeof window !== "undefined" ? window : globalThis).Tether;
if (early && typeof early.hooks === "object" && early.hooks !== null) Object.assign(hooks, early.hooks);

(typeof window !== "undefined" ? window : globalThis).Tether = {
  Socket, Channel, Presence, page,
  // client hooks: Tether.hooks.Name = {mounted() {…}, …} (hooks.mjs), or registerHook(name, hook)
  registerHook: (name, hook) => { hooks[String(name)] = hook; },
  // morph(el, html): what a `morph` patch does, for pages that render client-side too
  morph,
  // A developer aid: delay every frame both ways by `ms`, for this tab's session.
  enableLatencySim, disableLatencySim,
  // the version of this tether.js (the crate's)
  version: VERSION,
};
// `Tether.hooks = {…}` adds to the registry rather than replacing it.
Object.defineProperty((typeof window !== "undefined" ? window : globalThis).Tether, "hooks", {
  get: () => hooks,
  set: (more) => { Object.assign(hooks, more); },
  enumerable: true,
});
