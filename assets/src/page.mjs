// page.mjs — a page driven by a commander. The server renders
//   <script src="/tether.js" data-tether-socket=… data-tether-commander=… data-tether-token=…>
// and the Page joins the page channel (docs/page-channel.md is the wire contract), keeps the
// signed browser id and the encrypted store in localStorage, sends the DOM events that
// attributes name to the commander (event delegation on the document: events.mjs says what
// the attributes mean), and hands what the server sends to the modules of each job: patches,
// round trips (calls.mjs), live-region tokens (live.mjs), presence lists and counters
// (lists.mjs), client-side commands (commands.mjs), hooks and pushed events (hooks.mjs), the
// connection state (connection.mjs), live navigation (navigation.mjs: the page may move to
// another commander's page over the same socket, `switchTo`); controls.mjs holds what it
// disabled. It sends the URL it shows and its tether.js version (version.mjs) with every join.
//
// For: `Tether.page` (null on a page without a page token), started by index.mjs from the
// script tag; `Tether.page.run(handler, arg)` calls a handler from script.
// Never: applies a patch without patches.mjs's check, waits on a reply after the join is lost
// (everything in flight is given up and its controls enabled again), rejoins with a refused
// page token (or as an outdated client) more than once a minute, or is created twice by
// one script tag.

import { Calls } from "./calls.mjs";
import { commandsRefusal, isCommandList, runCommands, runList, runsOffline } from "./commands.mjs";
import { announce, showState } from "./connection.mjs";
import { Controls, controlsOf, disableOptions, submitButtons, typedFields } from "./controls.mjs";
import {
  BOUND, HANDLER_ATTRIBUTES, SHORTHANDS, allowEvents, allowOnlyEvents, bareSender, boundElement, describe, formOf, handlerCall,
  handlersOf, isAllowed, navigates, parseOn,
} from "./events.mjs";
import { Hooks } from "./hooks.mjs";
import { Loading, UsedFields, clearFlash, closeFlashOnClick, formsToRecover, putFlash } from "./forms.mjs";
import { counterElements, presenceListSpecs, renderCount, renderPresenceLists, showRenderedLists } from "./lists.mjs";
import { liveTokens } from "./live.mjs";
import { morph } from "./morph.mjs";
import { Navigation, localUrl } from "./navigation.mjs";
import { applyPatch } from "./patches.mjs";
import { ignored, report } from "./shared.mjs";
import { Socket } from "./socket.mjs";
import { VERSION } from "./version.mjs";

// An event's reply comes once its handler has finished, which may take minutes: its push
// does not time out (a day is "never"), and the socket closing is what gives up on it.
const EVENT_TIMEOUT_MS = 24 * 60 * 60 * 1000;

function storage() {
  try {
    const probe = "tether_probe";
    globalThis.localStorage.setItem(probe, probe);
    globalThis.localStorage.removeItem(probe);
    return globalThis.localStorage;
  } catch (_) {
    const memory = new Map(); // private mode: keep it for this page only
    return {
      getItem: (k) => (memory.has(k) ? memory.get(k) : null),
      setItem: (k, v) => memory.set(k, String(v)),
      removeItem: (k) => memory.delete(k),
    };
  }
}

// A page that reloaded itself because its token was refused, and when (sessionStorage).
const RELOADED_KEY = "tether_reloaded_for_token";
const RELOAD_AGAIN_AFTER_MS = 60_000;

function sessionGet(key) {
  try { return window.sessionStorage.getItem(key); } catch (_) { return null; }
}

function sessionSet(key, value) {
  try { window.sessionStorage.setItem(key, value); } catch (_) { /* no storage: reload anyway */ }
}

// The visible message of a page that cannot rejoin: `#tether-stale`, a fixed bar.
function showStale() {
  document.documentElement.dataset.tether = "stale";
  showState("stale");
  if (document.getElementById("tether-stale")) return;
  const bar = document.createElement("div");
  bar.id = "tether-stale";
  bar.setAttribute("role", "alert");
  bar.style.cssText = "position:fixed;left:0;right:0;top:0;z-index:2147483647;padding:8px 16px;" +
    "background:#b3261e;color:#fff;font:14px/1.4 system-ui,sans-serif;text-align:center";
  bar.textContent = "This page is out of date and cannot reconnect to the server. Reload it to continue.";
  document.body.appendChild(bar);
}

// The page: its channel, its event delegation and DOM watch, the controls it disabled, the
// events waiting for their reply and the round trips waiting for the page's answer.
export class Page {
  constructor(script) {
    const { tetherSocket, tetherCommander, tetherToken, tetherEvents } = script.dataset;
    // More tether-on types than the gestures, allowed by the page's own script tag.
    allowEvents(tetherEvents);
    this.refusedTypes = new Set(); // tether-on types refused (and reported once)
    this.warned = new Set(); // the server's development warnings, each written once
    this.store = storage();
    this.socket = new Socket(tetherSocket);
    this.socketPath = tetherSocket; // a live navigation stays on this socket (navigation.mjs)
    this.onload = true;
    this.topicsToken = null; // signed runtime topics, sent back when rejoining
    this.live = liveTokens(script.dataset.tetherLive); // live regions' encrypted assigns, by name
    this.execJs = false; // until a join reply says otherwise
    this.disable = disableOptions(null); // the defaults until a join reply
    this.controls = new Controls();
    this.inFlight = new Set(); // {abort}: events and runs waiting for their reply
    this.calls = new Calls(this); // round trips waiting for the page's answer
    this.listening = new Set(); // event types with a document listener
    this.rates = new WeakMap(); // element → type → debounce/throttle state
    // Before watchDom: a field an event marks as used is used in the sender of that event.
    this.used = new UsedFields(document);
    this.loading = new Loading();
    closeFlashOnClick(document);
    this.run = this.run.bind(this);
    this.hooks = new Hooks(this); // client hooks, mounted from the first join on
    this.connection = "connecting"; // connecting, connected, disconnected (connection.mjs)
    showState("connecting");
    // Templated presence lists show the entries they were rendered with until the first update.
    showRenderedLists(document);
    this.joinChannel(tetherCommander, tetherToken);
    this.watchDom();
    this.navigation = new Navigation(this);
    this.socket.onClose(() => this.lost("disconnected"));
    this.socket.connect();
  }

  // The join was refused. A refused page token (a server restarted with a new key, a page
  // older than the token age) cannot get better by rejoining: the page reloads itself once
  // (a fresh page gets a fresh token); if that was already tried in the last minute, it
  // stops rejoining and says so on the page.
  refused(reason) {
    report("join", reason);
    // An outdated client (a deploy with a newer tether.js) is helped by the same reload.
    if (reason !== "invalid page token" && reason !== "outdated client") return;
    const last = Number(sessionGet(RELOADED_KEY)) || 0;
    if (Date.now() - last > RELOAD_AGAIN_AFTER_MS) {
      sessionSet(RELOADED_KEY, String(Date.now()));
      location.reload();
      return;
    }
    this.channel.leave();
    this.socket.disconnect();
    showStale();
  }

  joinParams(token) {
    this.joinUrl = location.pathname + location.search;
    return {
      token,
      browser_id: this.store.getItem("tether_browser_id"),
      store: this.store.getItem("tether_store"),
      onload: this.onload,
      topics: this.topicsToken,
      counters: [...new Set(counterElements(document).map((e) => e.dataset.tetherTopic))],
      presence_lists: presenceListSpecs(document),
      utc_offset: -new Date().getTimezoneOffset(),
      live: this.live,
      url: this.joinUrl,
      version: VERSION,
    };
  }

  joinChannel(commander, token) {
    const channel = (this.channel = this.socket.channel(`tether:page:${commander}`, () => this.joinParams(token)));
    this.bindChannel();
    channel.join()
      .receive("ok", (reply) => { if (channel === this.channel) this.joined(reply); })
      .receive("error", (reply) => { if (channel === this.channel) this.refused(reply && reply.reason); });
  }

  // A live navigation (navigation.mjs) to the page of script tag data `next` (its
  // commander, token, live regions, events) whose body is `html`: this page's channel is
  // left (everything in flight given up), the body morphed, the new channel joined on the
  // same socket, as a first join of a new page load.
  switchTo(next, html) {
    this.lost("navigated away");
    // The old channel no longer speaks for the page (not even its phx_close).
    this.channel.bindings = [];
    this.channel.leave();
    allowOnlyEvents(next.tetherEvents);
    this.live = liveTokens(next.tetherLive);
    this.topicsToken = null;
    this.onload = true;
    clearFlash(document); // a flash belongs to the page that showed it
    morph(document.body, html);
    showRenderedLists(document);
    this.joinChannel(next.tetherCommander, next.tetherToken);
  }

  // The URL changed within the page (navigation.mjs): its commander's handle_params runs.
  // While the page is not joined, the join (or, when it is already on its way, the join
  // reply: `joined`) carries the URL.
  pushParams(url) {
    if (!this.isJoined()) return;
    this.channel.push("params", { url }, EVENT_TIMEOUT_MS)
      .receive("error", (reply) => report("params", (reply && reply.reason) || "error"));
  }

  bindChannel() {
    const channel = this.channel;
    channel.on("patch", (patch) => this.apply(patch));
    channel.on("store", ({ token }) => this.store.setItem("tether_store", token));
    channel.on("topics", ({ token }) => { this.topicsToken = token; });
    channel.on("live", ({ name, token }) => { this.live[name] = token; });
    channel.on("error", ({ callback, reason }) => report(callback, reason));
    channel.on("warning", ({ reason }) => this.warn(reason));
    channel.on("call", (call) => this.calls.start(call));
    channel.on("call_cancel", ({ id }) => this.calls.cancel(id));
    channel.on("flash", (flash) => flash && putFlash(document, flash.kind, flash.text));
    channel.on("flash_clear", (flash) => clearFlash(document, flash && typeof flash.kind === "string" ? flash.kind : null));
    channel.on("navigate", (nav) => this.navigation.serverSays(nav));
    // The server's channel died (it rejoins) or ended the join: nothing in flight on it
    // will be answered, exactly as when the socket closes.
    channel.on("phx_error", () => this.lost("the page channel failed"));
    channel.on("phx_close", () => this.lost("the page channel closed"));
    if (this.socketBound) return; // once per socket: a live navigation binds a new channel
    this.socketBound = true;
    // This socket carries only this page: the server subscribed it to the page's topics, so
    // broadcasts on them (which may arrive even before the join reply) apply as they come.
    this.socket.onMessage(({ topic, event, payload }) => {
      if (topic === this.channel.topic) return;
      if (event === "patch") this.apply(payload);
      if (event === "live" && payload && typeof payload.token === "string") this.live[payload.name] = payload.token;
      if (event === "presence_list") renderPresenceLists(document, payload);
      if (event === "count") renderCount(document, payload);
    });
  }

  apply(patch) {
    if (patch && patch.op === "event") {
      this.hooks.event(String(patch.name), patch.payload === undefined ? null : patch.payload);
      return;
    }
    if (patch && patch.op === "exec") {
      const refused = commandsRefusal(patch.cmds);
      if (refused) report("patch", refused);
      else runCommands(patch.cmds, null, this.commandPage(null, null, null));
      return;
    }
    this.hooks.beforePatch();
    applyPatch(patch, this.execJs, (el) => this.controls.disown(el));
    this.hooks.afterPatch();
  }

  // A development warning of the server (a call that does nothing): once per page load, on
  // the console only (it is no error: no `tether:error` event).
  warn(reason) {
    if (typeof reason !== "string" || this.warned.has(reason)) return;
    this.warned.add(reason);
    console.warn(`tether: ${reason}`);
  }

  joined(reply) {
    const rejoin = !this.onload;
    this.onload = false;
    if (Array.isArray(reply.warnings)) reply.warnings.forEach((reason) => this.warn(reason));
    this.execJs = reply.exec_js === true;
    this.disable = disableOptions(reply.disable);
    this.store.setItem("tether_browser_id", reply.browser_id);
    if (reply.store_rejected) this.store.removeItem("tether_store");
    this.controls.releaseOffline();
    document.documentElement.dataset.tether = "connected";
    showState("connected");
    const was = this.connection;
    this.connection = "connected";
    if (was === "connecting") {
      this.hooks.start();
      announce("joined");
    } else if (was === "disconnected") {
      this.hooks.each("reconnected");
      announce("reconnected");
    }
    // The URL changed while the join was on its way (Back right after a navigate).
    const url = location.pathname + location.search;
    if (url !== this.joinUrl) this.pushParams(url);
    if (rejoin) this.recover();
  }

  // A rejoin after the socket was lost: each form with an id and a change handler sends its
  // values again (the server may have restarted and forgotten them), marked as a recovery.
  recover() {
    for (const { form, handler } of formsToRecover(document)) {
      let call;
      try {
        call = handlerCall(form, handler);
      } catch (err) {
        report(handler, err.message);
        continue;
      }
      const sender = { ...describe(form, null, call.arg), event: { type: "change" }, used: this.used.of(form, null), recovery: true };
      const payload = { handler: call.handler, sender };
      const region = form.closest("[tether-commander]");
      if (region) payload.commander = region.getAttribute("tether-commander");
      this.request(payload, []).catch((reason) => {
        if (this.isJoined()) report(call.handler, reason);
      });
    }
  }

  // The join is gone (socket closed, channel failed): give up on every reply and answer,
  // enable what was busy, and disable the controls until the next join.
  lost(reason) {
    if (document.documentElement.dataset.tether !== "stale") {
      document.documentElement.dataset.tether = "disconnected";
      showState("disconnected");
    }
    if (this.connection === "connected") {
      this.connection = "disconnected";
      this.hooks.each("disconnected");
      announce("disconnected");
    }
    for (const flight of [...this.inFlight]) flight.abort(reason);
    this.inFlight.clear();
    this.calls.cancelAll();
    this.notice(document.querySelectorAll(BOUND), false); // seen (and reported) before
  }

  isJoined() {
    return this.channel.state === "joined";
  }

  // ---- events ----

  // Listeners are on the document, capturing: elements come and go with patches, and focus
  // and blur (which do not bubble) still pass the document on their way down.
  listen(type) {
    if (this.listening.has(type)) return;
    this.listening.add(type);
    document.addEventListener(type, (event) => this.onEvent(type, event), true);
  }

  // Shorthand types are always listened for; tether-on types as they show up in the DOM.
  watchDom() {
    for (const type of SHORTHANDS) this.listen(type);
    this.notice(document.querySelectorAll(BOUND));
    // Sees what the parser adds after this script too. Work per batch is proportional to
    // the added subtrees and changed handler attributes, never the whole document.
    new MutationObserver((records) => this.mutated(records)).observe(document.documentElement, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: HANDLER_ATTRIBUTES,
    });
  }

  mutated(records) {
    for (const record of records) {
      if (record.type === "attributes") {
        this.notice([record.target]);
        continue;
      }
      for (const node of record.addedNodes) {
        if (node.nodeType !== 1) continue;
        this.notice([node]);
        this.notice(node.querySelectorAll(BOUND));
      }
    }
  }

  // Elements that have (or got) handlers: listen for their tether-on types, and disable
  // them while the page is not joined.
  notice(elements, reportBad = true) {
    const offline = !this.isJoined() && this.disable.when_disconnected;
    for (const el of elements) {
      if (!el.matches(BOUND) || ignored(el)) continue;
      const on = el.getAttribute("tether-on");
      if (on) {
        const { pairs, bad } = parseOn(on);
        for (const [type] of pairs) {
          if (isAllowed(type)) this.listen(type);
          else if (!this.refusedTypes.has(type)) {
            this.refusedTypes.add(type);
            report("tether-on", `"${type}" is not a user gesture: allow it with data-tether-events on the script tag`);
          }
        }
        if (reportBad && bad.length > 0) report("tether-on", `not type:handler: ${bad.join(" ")}`);
      }
      if (offline && !runsOffline(el)) for (const control of controlsOf(el)) this.controls.hold(control, "offline");
    }
  }

  onEvent(type, event) {
    const el = boundElement(event.target, type, event.bubbles);
    if (!el) return;
    // Decided now, whatever debounce or the connection do next: the page stays put.
    if (type === "submit" || (type === "click" && navigates(el))) event.preventDefault();
    this.rateLimited(el, type, event);
  }

  // tether-debounce and tether-throttle, per element and event type. The sender is read
  // when the call fires, from the last event.
  rateLimited(el, type, event) {
    const debounce = Number(el.getAttribute("tether-debounce")) || 0;
    const throttle = Number(el.getAttribute("tether-throttle")) || 0;
    if (debounce <= 0 && throttle <= 0) {
      this.send(el, type, event);
      return;
    }
    let byType = this.rates.get(el);
    if (!byType) this.rates.set(el, (byType = new Map()));
    let rate = byType.get(type);
    if (!rate) byType.set(type, (rate = { timer: null, last: -Infinity, event: null }));
    rate.event = event;
    const fire = () => {
      rate.timer = null;
      rate.last = Date.now();
      const last = rate.event;
      rate.event = null;
      this.send(el, type, last);
    };
    if (debounce > 0) {
      clearTimeout(rate.timer);
      rate.timer = setTimeout(fire, debounce);
    } else if (!rate.timer) {
      const wait = rate.last + throttle - Date.now();
      if (wait <= 0) fire();
      else rate.timer = setTimeout(fire, wait); // the end of the burst sends its last event
    }
  }

  send(el, type, event) {
    for (const text of handlersOf(el, type)) this.sendHandler(el, type, event, text);
  }

  sendHandler(el, type, event, text) {
    if (isCommandList(text)) {
      runList(text, el, this.commandPage(el, type, event));
      return;
    }
    let call;
    try {
      call = handlerCall(el, text);
    } catch (err) {
      report(text, err.message);
      return;
    }
    this.sendCall(el, type, event, call);
  }

  sendCall(el, type, event, call) {
    if (!this.isJoined()) {
      report(call.handler, "not connected");
      return;
    }
    const payload = { handler: call.handler, sender: { ...describe(el, event, call.arg), used: this.used.of(el, event) } };
    const region = el.closest("[tether-commander]");
    if (region) payload.commander = region.getAttribute("tether-commander");
    const busy = this.disable.while_processing && this.disable.events.includes(type) && !el.hasAttribute("tether-no-disable");
    const held = busy ? this.busyControls(el, type, event).filter((control) => this.controls.hold(control, "busy")) : [];
    const form = busy ? formOf(el, event) : null;
    const locked = form ? typedFields(form).filter((field) => this.controls.lock(field)) : [];
    const loaded = this.loading.start(el, type, event);
    // Once the join is lost, that is the news (data-tether="disconnected"), not each event.
    this.request(payload, held, locked, loaded).catch((reason) => {
      if (this.isJoined()) report(call.handler, reason);
    });
  }

  // ---- client-side commands (commands.mjs) and hooks (hooks.mjs) ----

  // What `push`, `navigate` and `patch` commands do, for a list run at `el` (null: `exec`).
  commandPage(el, type, event) {
    return {
      push: (_, handler, value) => {
        if (el) this.sendCall(el, type, event, { handler, arg: value });
        else this.run(handler, value).catch((reason) => report(handler, reason));
      },
      // Live navigation (navigation.mjs) for a local URL; another origin loads as a document.
      navigate: (href) => this.commandNavigation("navigate", href),
      patch: (href) => this.commandNavigation("patch", href),
    };
  }

  // A `navigate` or `patch` command: the same as a `tether-navigate` / `tether-patch` link.
  commandNavigation(kind, href) {
    const local = localUrl(href);
    if (local) this.navigation.go(kind, local, "push");
    else globalThis.location.assign(href);
  }

  // What a processed event disables: for a submit, the form's submit buttons (the form
  // itself has no `disabled`); else the element itself.
  busyControls(el, type, event) {
    const form = type === "submit" ? formOf(el, event) : null;
    return form ? submitButtons(form) : controlsOf(el);
  }

  // Pushes an `event`; resolves with its ok reply, rejects with the reason. `held` controls
  // are enabled again when it settles, or when the join is lost (which also gives up on it).
  // `locked` fields are made writable again at the same moments, and `ended` is called.
  request(payload, held, locked = [], ended = null) {
    return new Promise((resolve, reject) => {
      const flight = {};
      const settle = (done, value) => {
        if (!this.inFlight.delete(flight)) return;
        for (const control of held) this.controls.release(control, "busy");
        for (const field of locked) this.controls.unlock(field);
        if (ended) ended();
        done(value);
      };
      const push = this.channel.push("event", payload, EVENT_TIMEOUT_MS);
      flight.abort = (reason) => {
        push.cancel();
        settle(reject, reason);
      };
      this.inFlight.add(flight);
      push.receive("ok", (reply) => settle(resolve, reply || {}))
        .receive("error", (reply) => settle(reject, (reply && reply.reason) || "error"))
        .receive("timeout", () => settle(reject, "timeout"));
    });
  }

  // Tether.page.run(handler, arg): calls a handler of the page's commander from script
  // (Drab's exec_elixir); resolves with the handler's result, rejects with the reason.
  run(handler, arg = null) {
    if (!this.isJoined()) return Promise.reject("not connected");
    return this.request({ handler: String(handler), sender: bareSender(arg) }, [])
      .then((reply) => (reply.result === undefined ? null : reply.result));
  }
}
