// hooks.mjs — page JavaScript that coexists with the server: client hooks and the events the
// server pushes to them.
//
//   Tether.hooks.Chart = {
//     mounted() { this.chart = draw(this.el); this.handleEvent("points", (p) => this.chart.set(p)); },
//     updated() {}, destroyed() {}, disconnected() {}, reconnected() {},
//   };
//   <div id="chart" tether-hook="Chart" tether-update="ignore"></div>
//
// A hook is an object registered on `Tether.hooks` (or with `Tether.registerHook(name, hook)`)
// before the element shows up; each element with `tether-hook="Name"` and an id gets its own
// instance (Object.create of the hook) with `this.el`, `this.pushEvent(handler, payload)` (a
// Promise of the handler's result), `this.handleEvent(name, callback)` (the server's
// `push_event`; returns a reference for `this.removeHandleEvent`). `mounted` runs when the
// element is in the page (at start, or when a patch or a script adds it), `updated` after a
// patch from the server changed it or what is inside it, `destroyed` when it left the page,
// `disconnected` / `reconnected` when the page's join is lost and comes back.
//
// For: the page (page.mjs), which tells it of joins, losses, patches and DOM mutations, and
// sends a hook's pushEvent (`page.request`).
// Never: evaluates anything the server sends (a pushed event is data handed to callbacks),
// mounts a hook on an element without an id or in a `tether-ignore` subtree, lets a hook's
// exception escape (reported as a `tether:error`), or mounts one element twice.

import { describe } from "./events.mjs";
import { errorMessage, report } from "./shared.mjs";

export const HOOK = "[tether-hook]";
// The registry (`Tether.hooks`): name → hook object. A null-prototype object, so a name such
// as "constructor" or "__proto__" is just a name.
export const registry = Object.create(null);

// A hook's `this.pushEvent(handler, payload)`: an `event` with the hook's element as the
// sender and `payload` as its `arg`; a Promise of the handler's result.
function pushEvent(page, el, handler, payload) {
  if (!page.isJoined()) return Promise.reject("not connected");
  return page.request({ handler: String(handler), sender: describe(el, null, payload) }, [])
    .then((reply) => (reply.result === undefined ? null : reply.result));
}

// Hooks on page elements, and the server events their callbacks wait for.
export class Hooks {
  constructor(page) {
    this.page = page;
    this.mounted = new Map(); // element → instance
    this.warned = new Set(); // hook names reported as unknown
    this.observer = null; // from start(): every mutation, to mount and destroy
  }

  // The first join: hooks registered by the page's scripts by now mount, and from then on
  // elements added or removed mount and destroy theirs.
  start() {
    if (this.observer) return;
    this.observer = new MutationObserver((records) => this.mutated(records));
    this.observer.observe(document.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
    this.mountIn(document);
  }

  // Around a patch of the server: what changed before it is a script's (mount and destroy
  // only), what changed during it is the server's (`updated` too).
  beforePatch() {
    if (this.observer) this.mutated(this.observer.takeRecords());
  }

  afterPatch() {
    if (this.observer) this.patched(this.observer.takeRecords());
  }

  call(instance, name) {
    const fn = instance[name];
    if (typeof fn !== "function") return;
    try {
      fn.call(instance);
    } catch (err) {
      report(`hook ${instance.__name} ${name}`, errorMessage(err));
    }
  }

  // Mounts the hooks of `root` (an element, or the document) and of everything in it.
  mountIn(root) {
    if (root.nodeType === 1 && root.matches(HOOK)) this.mount(root);
    for (const el of root.querySelectorAll(HOOK)) this.mount(el);
  }

  mount(el) {
    if (this.mounted.has(el) || !el.isConnected || el.closest("[tether-ignore]")) return;
    const name = el.getAttribute("tether-hook");
    const hook = registry[name];
    if (!hook || typeof hook !== "object") {
      if (!this.warned.has(name)) {
        this.warned.add(name);
        report("tether-hook", `no hook "${name}" in Tether.hooks`);
      }
      return;
    }
    if (!el.id) {
      report("tether-hook", `an element with tether-hook="${name}" needs an id`);
      return;
    }
    const page = this.page;
    const instance = Object.create(hook);
    const handlers = new Set();
    Object.assign(instance, {
      __name: name,
      __handlers: handlers,
      el,
      pushEvent: (handler, payload = null) => pushEvent(page, el, handler, payload),
      handleEvent: (event, callback) => {
        const ref = { event: String(event), callback };
        handlers.add(ref);
        return ref;
      },
      removeHandleEvent: (ref) => handlers.delete(ref),
    });
    this.mounted.set(el, instance);
    this.call(instance, "mounted");
  }

  // Destroys the hooks whose element left the page (a patch, a morph or a script removed it).
  sweep() {
    for (const [el, instance] of this.mounted) {
      if (el.isConnected) continue;
      this.mounted.delete(el);
      this.call(instance, "destroyed");
    }
  }

  // After a DOM mutation batch: mounts what was added, destroys what left.
  mutated(records) {
    let removed = false;
    for (const record of records) {
      if (record.type !== "childList") continue;
      if (record.removedNodes.length > 0) removed = true;
      for (const node of record.addedNodes) if (node.nodeType === 1) this.mountIn(node);
    }
    if (removed) this.sweep();
  }

  // After a patch of the server: `updated` for the mounted hooks whose element (or what is
  // inside it) the patch changed (the mutation records it made).
  patched(records) {
    this.mutated(records);
    const touched = new Set();
    for (const record of records) {
      for (const [el, instance] of this.mounted) {
        if (!touched.has(instance) && el.isConnected && el.contains(record.target)) touched.add(instance);
      }
    }
    for (const instance of touched) this.call(instance, "updated");
  }

  each(name) {
    for (const instance of [...this.mounted.values()]) this.call(instance, name);
  }

  // A `push_event` of the server: every hook's callbacks for `name`, then a
  // `tether:event:<name>` CustomEvent on window (detail: the payload).
  event(name, payload) {
    for (const instance of [...this.mounted.values()]) {
      for (const ref of [...instance.__handlers]) {
        if (ref.event !== name) continue;
        try {
          ref.callback.call(instance, payload);
        } catch (err) {
          report(`hook ${instance.__name} handleEvent ${name}`, errorMessage(err));
        }
      }
    }
    window.dispatchEvent(new CustomEvent(`tether:event:${name}`, { detail: payload }));
  }
}
