// tether.js — the browser client of tether, built by scripts/build-js (rollup) from the ES
// modules of assets/src (one per job; each says what it is for and what it must never do).
// Generated: do not edit; change assets/src and run scripts/build-js.
(function () {
  'use strict';

  // backoff.mjs — how long to wait before the next reconnect or rejoin.
  //
  // For: the socket (reconnecting) and channels (rejoining), which share one schedule.
  // Never: keeps no state and touches no timer, socket or DOM; it only computes a delay.

  // Reconnect and rejoin backoff, with jitter so a server restart is not a thundering herd.
  const BACKOFF_MS = [10, 50, 100, 150, 200, 250, 500, 1000, 2000, 5000];

  function backoff(tries) {
    const base = BACKOFF_MS[Math.min(tries, BACKOFF_MS.length) - 1] || BACKOFF_MS[0];
    return Math.round(base * (0.75 + Math.random() * 0.5));
  }

  // channel.mjs — one topic on a socket: join (and rejoin with backoff), push with replies
  // (`Push`), leave, and the events of that topic for whoever bound them.
  //
  // For: `Tether.Channel`, made by `socket.channel(topic, params)`; the same semantics as
  // phoenix.js's Channel (join refs, frames of an older join dropped, phx_error rejoins).
  // Never: opens or reads a WebSocket itself (it sends through its socket and is fed by the
  // socket's `dispatch`), imports the socket module (it holds the socket it was given), or
  // knows anything of pages, presence or the DOM.


  const PUSH_TIMEOUT_MS = 10000;

  // A push waiting for its reply.
  class Push {
    constructor(channel, event, payload, timeout) {
      this.channel = channel;
      this.event = event;
      this.payload = payload;
      this.timeout = timeout;
      this.ref = null;
      this.reply = null;
      this.hooks = [];
      this.timer = null;
    }

    receive(status, callback) {
      if (this.reply && this.reply.status === status) callback(this.reply.response);
      this.hooks.push({ status, callback });
      return this;
    }

    send() {
      this.reply = null;
      this.ref = this.channel.socket.makeRef();
      // A join's ref is the channel's join ref from now on.
      if (this.event === "phx_join") this.channel.joinRef = this.ref;
      this.channel.socket.pending.set(this.ref, this);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.settle("timeout", {}), this.timeout);
      this.channel.socket.send([this.channel.joinRef, this.ref, this.channel.topic, this.event, this.payload]);
    }

    settle(status, response) {
      clearTimeout(this.timer);
      this.channel.socket.pending.delete(this.ref);
      this.reply = { status, response };
      for (const hook of this.hooks) if (hook.status === status) hook.callback(response);
    }

    cancel() {
      clearTimeout(this.timer);
      this.channel.socket.pending.delete(this.ref);
    }
  }

  class Channel {
    constructor(socket, topic, params) {
      this.socket = socket;
      this.topic = topic;
      this.params = params || {};  // an object, or a function returning one
      this.state = "closed"; // closed | joining | joined | errored | leaving
      this.joinRef = null;
      this.bindings = [];
      this.joinPush = null;
      this.rejoinTries = 0;
      this.rejoinTimer = null;
    }

    // Joins (once); the returned push resolves with "ok", "error" or "timeout".
    join(timeout = PUSH_TIMEOUT_MS) {
      if (this.joinPush) throw new Error("tether: join() may be called once per channel");
      this.joinPush = new Push(this, "phx_join", this.params, timeout);
      this.joinPush.receive("ok", () => {
        this.state = "joined";
        this.rejoinTries = 0;
      });
      this.joinPush.receive("error", () => this.scheduleRejoin());
      this.joinPush.receive("timeout", () => this.scheduleRejoin());
      this.sendJoin();
      return this.joinPush;
    }

    sendJoin() {
      clearTimeout(this.rejoinTimer);
      if (!this.socket.isConnected()) {
        this.state = "errored"; // joined when the socket opens
        return;
      }
      this.state = "joining";
      // Params may be a function, evaluated at every (re)join.
      this.joinPush.payload = typeof this.params === "function" ? this.params() : this.params;
      this.joinPush.send();
    }

    scheduleRejoin() {
      if (this.state === "leaving" || this.state === "closed") return;
      this.state = "errored";
      this.rejoinTries += 1;
      clearTimeout(this.rejoinTimer);
      this.rejoinTimer = setTimeout(() => this.sendJoin(), backoff(this.rejoinTries));
    }

    on(event, callback) {
      this.bindings.push({ event, callback });
    }

    off(event) {
      this.bindings = this.bindings.filter((b) => b.event !== event);
    }

    push(event, payload, timeout = PUSH_TIMEOUT_MS) {
      if (this.state !== "joined") throw new Error(`tether: push "${event}" before joining ${this.topic}`);
      const push = new Push(this, event, payload || {}, timeout);
      push.send();
      return push;
    }

    leave(timeout = PUSH_TIMEOUT_MS) {
      clearTimeout(this.rejoinTimer);
      this.state = "leaving";
      const push = new Push(this, "phx_leave", {}, timeout);
      const close = () => {
        this.state = "closed";
        this.trigger("phx_close", {});
        this.socket.remove(this);
      };
      push.receive("ok", close).receive("timeout", close);
      if (this.socket.isConnected()) push.send();
      else close();
      return push;
    }

    // A frame for this topic arrived; frames of an older join are dropped.
    dispatch(joinRef, event, payload) {
      if (joinRef && joinRef !== this.joinRef) return;
      if (event === "phx_close") {
        // The server ended this join for good.
        clearTimeout(this.rejoinTimer);
        this.state = "closed";
        this.socket.remove(this);
      } else if (event === "phx_error") {
        this.scheduleRejoin();
      }
      this.trigger(event, payload);
    }

    trigger(event, payload) {
      for (const binding of this.bindings) if (binding.event === event) binding.callback(payload);
    }

    // The socket dropped: joined channels rejoin when it comes back.
    socketLost() {
      if (this.state === "joined" || this.state === "joining") this.state = "errored";
      if (this.joinPush && this.joinPush.ref) this.joinPush.cancel();
    }

    socketOpened() {
      if (this.joinPush && this.state === "errored") {
        this.rejoinTries = 0;
        this.sendJoin();
      }
    }
  }

  // shared.mjs — the few rules and helpers every part of a commander's page uses: how a problem
  // is reported (console and a `tether:error` event), the `tether-ignore` rule, the property
  // names no patch or query may touch, and which names and URLs would run markup or script
  // (the rules patches and client-side commands both check).
  //
  // For: the page modules (patches, commands, lists, events, round trips, the page).
  // Never: keeps state, talks to the socket or the server, or imports another module of
  // tether.js (everything may import it; it imports nothing).

  // Property names no patch, props group or query ever reads or writes.
  const FORBIDDEN_PROPS = new Set(["__proto__", "prototype", "constructor"]);
  // Property and attribute names (lowercased) whose value is parsed as markup.
  const MARKUP_NAMES = new Set(["innerhtml", "outerhtml", "srcdoc"]);
  // Attributes (lowercased) whose value is a URL, which a script URL would turn into script.
  const URL_ATTRIBUTES = new Set(["href", "src", "action", "formaction", "xlink:href"]);

  // Whether `value` is a `javascript:` or `vbscript:` URL (control characters and spaces, which
  // browsers skip, skipped).
  function isScriptUrl(value) {
    const scheme = String(value).replace(/[\u0000-\u0020\u007f]/g, "").slice(0, 11).toLowerCase();
    return scheme.startsWith("javascript:") || scheme.startsWith("vbscript:");
  }
  const IGNORE = "[tether-ignore]";

  function report(what, reason) {
    console.warn(`tether: ${what}: ${reason}`);
    document.dispatchEvent(new CustomEvent("tether:error", { detail: { what, reason } }));
  }

  // Whether `el` is in a `tether-ignore` subtree (or is its root): markup tether.js never
  // wires (handlers, counters, presence lists) and never fills through a selector it built
  // from an attribute (live regions, Sender::this, Sender::within).
  function ignored(el) {
    return el.closest(IGNORE) !== null;
  }

  function errorMessage(err) {
    return String((err && err.message) || err);
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  // events.mjs — what the page's attributes mean and what an event sends: the handler
  // attributes and their parsing, which element's handler an event calls, the event types
  // `tether-on` may listen for, and the `sender` (element, form, event fields, argument).
  //
  //   tether-click="save"               shorthands: tether-click, -dblclick, -change, -input,
  //                                     -submit, -keyup, -keydown, -focus, -blur
  //   tether-on="blur:save mouseenter:peek"   more DOM events: space-separated type:handler pairs,
  //                                     user-gesture types only (GESTURE_EVENTS) unless the
  //                                     script tag allows more (data-tether-events="load")
  //   tether-click='pick({"id": 3})'    an argument in parentheses, parsed as JSON (never run)
  //   tether-arg='<JSON>'               the argument of handlers on it or inside it naming none
  //   tether-debounce="300"             one call, 300 ms after the last event
  //   tether-throttle="300"             at most one call per 300 ms (the last of a burst too)
  //   tether-no-disable                 stays enabled while its event is processed
  //   tether-commander="<name>"         events inside it go to that shared commander
  //   tether-id="t1"                    stamped by tether.js: how the server selects a sender
  //   tether-ignore                     nothing in it (itself included) is wired: for markup
  //                                     the page does not vouch for (user posts)
  //   tether-include-passwords, tether-include-files   on a form: send those fields too
  //
  // Bubbling events call the handler of the closest element that has one for the type;
  // non-bubbling ones (focus, blur, mouseenter, …) only the target's own. While a click or a
  // submit is processed its control (a form's submit buttons) is disabled, and so is every
  // control with a handler while the page is not joined (the join reply's `disable` says).
  //
  // For: the page's event delegation (page.mjs), the controls it disables (controls.mjs) and the
  // round trips that describe an element (calls.mjs).
  // Never: adds a listener, sends anything or disables a control (the page does, with what
  // this module computes), evaluates an argument (JSON.parse only, never script), or listens
  // for a type that is no user gesture unless the page's own script tag allowed it.


  const SHORTHANDS = ["click", "dblclick", "change", "input", "submit", "keyup", "keydown", "focus", "blur"];
  // The event types `tether-on` listens for: those a person's gesture fires. Not `load`,
  // `error`, `toggle`, `animation*`, `transition*`, `scroll` and the like, which markup alone
  // fires with no one doing anything (`<img src=/nope tether-on="error:delete">`). The page's
  // script tag may allow more (`data-tether-events="load my:event"`, PageOptions::events):
  // the tag is the page's own, which markup inserted later cannot change.
  const GESTURE_EVENTS = [
    "click", "dblclick", "auxclick", "contextmenu",
    "mousedown", "mouseup", "mouseover", "mouseout", "mouseenter", "mouseleave", "mousemove",
    "pointerdown", "pointerup", "pointermove", "pointerover", "pointerout", "pointerenter", "pointerleave", "pointercancel",
    "touchstart", "touchend", "touchmove", "touchcancel", "wheel",
    "keydown", "keyup", "keypress", "beforeinput", "input", "change", "submit",
    "focus", "blur", "focusin", "focusout",
    "copy", "cut", "paste",
    "dragstart", "drag", "dragend", "dragenter", "dragleave", "dragover", "drop",
  ];
  const allowedEvents = new Set(GESTURE_EVENTS);
  const HANDLER_ATTRIBUTES = SHORTHANDS.map((type) => `tether-${type}`).concat("tether-on");
  // A selector of the elements with a handler attribute.
  const BOUND = HANDLER_ATTRIBUTES.map((name) => `[${name}]`).join(",");
  const EVENT_FIELDS = ["type", "key", "code", "altKey", "ctrlKey", "shiftKey", "metaKey", "button", "clientX", "clientY"];
  const TEXT_MAX = 1000;

  // More tether-on types than the gestures, allowed by the page's own script tag
  // (`data-tether-events`, space-separated).
  function allowEvents(types) {
    for (const type of String(types || "").split(/\s+/)) if (type) allowedEvents.add(type);
  }

  // What a live navigation's new page allows (navigation.mjs): the gestures and its own
  // script tag's types, nothing the page before it allowed.
  function allowOnlyEvents(types) {
    allowedEvents.clear();
    for (const type of GESTURE_EVENTS) allowedEvents.add(type);
    allowEvents(types);
  }

  // Whether `tether-on` may listen for `type`.
  function isAllowed(type) {
    return allowedEvents.has(type);
  }

  // A handler attribute, `name` or `name(<JSON>)`, as {name, hasArg, arg}. The argument is
  // JSON.parse'd, never evaluated; `name()` has none. Throws on anything else.
  function parseHandler(text) {
    const match = /^\s*([^\s()]+)\s*(?:\(([\s\S]*)\))?\s*$/.exec(String(text));
    if (!match) throw new Error(`invalid handler "${text}": expected name or name(<JSON>)`);
    const [, name, json] = match;
    if (json === undefined || json.trim() === "") return { name, hasArg: false, arg: null };
    try {
      return { name, hasArg: true, arg: JSON.parse(json) };
    } catch (err) {
      throw new Error(`invalid JSON argument in "${text}": ${err.message}`);
    }
  }

  // Splits at whitespace outside parentheses, brackets, braces and JSON strings, so that an
  // argument such as `pick({"id": 3})` stays one piece.
  function splitPairs(text) {
    const tokens = [];
    let token = "";
    let depth = 0;
    let inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        token += c;
        if (c === "\\" && i + 1 < text.length) token += text[++i];
        else if (c === '"') inString = false;
      } else if (depth === 0 && /\s/.test(c)) {
        if (token) tokens.push(token);
        token = "";
      } else {
        token += c;
        if (c === '"') inString = true;
        else if ("([{".includes(c)) depth += 1;
        else if (")]}".includes(c)) depth = Math.max(0, depth - 1);
      }
    }
    if (token) tokens.push(token);
    return tokens;
  }

  // `tether-on="blur:save mouseenter:peek"` as {pairs: [[type, handler]], bad: [token]}. The
  // type ends at the last colon before any argument, so namespaced types (`my:event:h`) work.
  function parseOn(text) {
    const pairs = [];
    const bad = [];
    for (const token of splitPairs(String(text || ""))) {
      const colon = token.split(/[([]/)[0].lastIndexOf(":"); // before an argument or a command list
      if (colon <= 0 || colon === token.length - 1) bad.push(token);
      else pairs.push([token.slice(0, colon), token.slice(colon + 1)]);
    }
    return { pairs, bad };
  }

  // The handler attributes of `el` for event `type`, as written (shorthand first).
  function handlersOf(el, type) {
    const handlers = [];
    if (SHORTHANDS.includes(type)) {
      const shorthand = el.getAttribute(`tether-${type}`);
      if (shorthand !== null) handlers.push(shorthand);
    }
    const on = el.getAttribute("tether-on");
    if (on && allowedEvents.has(type)) {
      for (const [onType, handler] of parseOn(on).pairs) if (onType === type) handlers.push(handler);
    }
    return handlers;
  }

  // The element whose handler an event of `type` at `target` calls: the closest one with a
  // handler for the type, or for a non-bubbling event the target itself only; never one in a
  // tether-ignore subtree (an event there may still reach a handler around the subtree).
  function boundElement(target, type, bubbles) {
    if (!(target instanceof Element)) return null;
    if (!bubbles) return handlersOf(target, type).length > 0 && !ignored(target) ? target : null;
    for (let el = target.closest(BOUND); el; el = el.parentElement && el.parentElement.closest(BOUND)) {
      if (handlersOf(el, type).length > 0 && !ignored(el)) return el;
    }
    return null;
  }

  // What the handler attribute `text` of `el` calls: {handler, arg}; the argument is the
  // attribute's own, else the nearest tether-arg, else null. Throws on invalid JSON.
  function handlerCall(el, text) {
    const { name, hasArg, arg } = parseHandler(text);
    return { handler: name, arg: hasArg ? arg : argumentOf(el) };
  }

  function argumentOf(el) {
    const holder = el.closest("[tether-arg]");
    if (!holder) return null;
    try {
      return JSON.parse(holder.getAttribute("tether-arg"));
    } catch (err) {
      throw new Error(`invalid JSON in tether-arg: ${err.message}`);
    }
  }

  // The fields of EVENT_FIELDS that `event` has.
  function eventFields(event) {
    const fields = {};
    if (!event) return fields;
    for (const name of EVENT_FIELDS) if (name in event && event[name] !== undefined) fields[name] = event[name];
    return fields;
  }

  // At most `max` code points: a surrogate pair is never cut in two (the server's JSON
  // parser refuses a lone surrogate), and the work is bounded by `max`, not the text.
  function truncate(text, max) {
    const s = String(text);
    if (s.length <= max) return s;
    return Array.from(s.slice(0, 2 * max)).slice(0, max).join("");
  }

  // The page's own counter for `tether-id` stamps, skipping ids already in the document.
  let stamped = 0;

  function stamp(el) {
    let id = el.getAttribute("tether-id");
    if (!id) {
      do {
        stamped += 1;
        id = `t${stamped}`;
      } while (document.querySelector(`[tether-id="${id}"]`));
      el.setAttribute("tether-id", id);
    }
    return id;
  }

  function stampSelector(el) {
    return `[tether-id="${CSS.escape(stamp(el))}"]`;
  }

  function formOf(el, event) {
    if (el.tagName === "FORM") return el;
    const form = el.form || el.closest("form");
    if (form) return form;
    // A submit delegated to an element around the form.
    return event && event.target instanceof Element && event.target.tagName === "FORM" ? event.target : null;
  }

  function isCheckable(el) {
    return el.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio");
  }

  // The `sender` of an event at `el` (docs/page-channel.md, Events).
  function describe(el, event, arg) {
    const region = el.closest("[tether-commander]");
    return {
      id: el.getAttribute("id") || "",
      name: el.getAttribute("name") || "",
      class: el.getAttribute("class") || "",
      tether_id: stamp(el),
      text: truncate((el.textContent || "").trim(), TEXT_MAX),
      value: "value" in el && el.value != null ? String(el.value) : "",
      checked: isCheckable(el) ? el.checked === true : null,
      dataset: { ...el.dataset },
      form: formValues(formOf(el, event)),
      event: eventFields(event),
      arg: arg === undefined ? null : arg,
      scope: region ? stamp(region) : "", // the server builds [tether-id="…"] from it
    };
  }

  // The sender of Tether.page.run: no element, only the argument.
  function bareSender(arg) {
    return {
      id: "", name: "", class: "", tether_id: "", text: "", value: "", checked: null,
      dataset: {}, form: {}, event: { type: "run" }, arg: arg === undefined ? null : arg, scope: "",
    };
  }

  // Clicks that would navigate away: links and submit buttons.
  function navigates(el) {
    if (el.tagName === "A" || el.tagName === "AREA") return el.hasAttribute("href");
    if (el.tagName === "BUTTON") return el.type === "submit";
    return el.tagName === "INPUT" && (el.type === "submit" || el.type === "image");
  }

  // A form's fields as {name: value}. Password and file fields only when the form says so
  // (`tether-include-passwords`, `tether-include-files`) or `secrets` (a modal the server
  // built and asks for).
  function formValues(form, secrets = false) {
    const values = {};
    if (!form) return values;
    const passwords = secrets || form.hasAttribute("tether-include-passwords");
    const files = secrets || form.hasAttribute("tether-include-files");
    for (const field of form.elements) {
      const name = field.name || field.id;
      if (!name || field.disabled) continue;
      if ((field.type === "password" && !passwords) || (field.type === "file" && !files)) continue;
      if ((field.type === "checkbox" || field.type === "radio") && !field.checked) continue;
      if (field.type === "select-multiple") {
        values[name] = [...field.selectedOptions].map((o) => o.value);
      } else if (field.type !== "button" && field.type !== "submit") {
        values[name] = field.value;
      }
    }
    return values;
  }

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


  const HOOK = "[tether-hook]";
  // The registry (`Tether.hooks`): name → hook object. A null-prototype object, so a name such
  // as "constructor" or "__proto__" is just a name.
  const registry = Object.create(null);

  // A hook's `this.pushEvent(handler, payload)`: an `event` with the hook's element as the
  // sender and `payload` as its `arg`; a Promise of the handler's result.
  function pushEvent(page, el, handler, payload) {
    if (!page.isJoined()) return Promise.reject("not connected");
    return page.request({ handler: String(handler), sender: describe(el, null, payload) }, [])
      .then((reply) => (reply.result === undefined ? null : reply.result));
  }

  // Hooks on page elements, and the server events their callbacks wait for.
  class Hooks {
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

  // latency.mjs — the latency simulator, a developer aid: `Tether.enableLatencySim(ms)` delays
  // every frame a tether socket sends and every frame it receives by `ms` (a round trip then
  // takes at least twice that), kept in sessionStorage so it lasts for the tab's session,
  // reloads included; `Tether.disableLatencySim()` ends it. Phoenix LiveView's
  // `liveSocket.enableLatencySim(ms)`.
  //
  // For: the socket (socket.mjs), which asks for the delay of each frame; index.mjs exposes
  // enable/disable.
  // Never: drops or reorders frames (every frame waits the same delay, in order), delays
  // anything while it is off, or keeps anything but one number in sessionStorage.

  const KEY = "tether_latency_sim";
  // A delay beyond this is a typo, not a network.
  const MAX_MS = 60_000;

  function session() {
    try {
      return globalThis.sessionStorage || null;
    } catch (_) {
      return null; // storage blocked: the simulator is off
    }
  }

  // The simulated one-way delay in ms, or 0 when off.
  function latencyMs() {
    const storage = session();
    const ms = storage ? Number(storage.getItem(KEY)) : 0;
    return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_MS) : 0;
  }

  function enableLatencySim(ms) {
    const delay = Math.min(Math.max(0, Math.round(Number(ms) || 0)), MAX_MS);
    const storage = session();
    if (!storage) return;
    if (delay > 0) {
      storage.setItem(KEY, String(delay));
      console.info(`tether: latency simulator on: ${delay} ms each way (Tether.disableLatencySim() ends it)`);
    } else {
      storage.removeItem(KEY);
    }
  }

  function disableLatencySim() {
    const storage = session();
    if (storage) storage.removeItem(KEY);
  }

  // Runs `fn` now, or after the simulated delay.
  function delayed(fn) {
    const ms = latencyMs();
    if (ms === 0) fn();
    else setTimeout(fn, ms);
  }

  // live.mjs — live regions (`tether-live`), as the page sees them: the tokens that carry
  // each region's encrypted assigns across reconnects, and the rule that a parent's morph
  // leaves a nested region alone (it is re-rendered by its own pokes).
  //
  // For: the page (tokens sent back on every join, renewed by `live` events) and the morph
  // (nestedRegion).
  // Never: reads or decrypts a token (they are opaque, the server's), renders a region itself
  // (pokes arrive as ordinary morph patches), or touches the socket.


  // The live tokens the server rendered into the script tag (`data-tether-live`, JSON of
  // {name: token}); kept in memory for this page load and sent back on every join, so a
  // reconnect restores each live region's assigns. Null prototype: any name is just a name.
  function liveTokens(json) {
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
  function nestedRegion(root, oldNode, newNode) {
    return oldNode !== root && oldNode instanceof Element && newNode instanceof Element &&
      oldNode.hasAttribute("tether-live") && oldNode.getAttribute("tether-live") === newNode.getAttribute("tether-live");
  }

  // morph.mjs — the DOM morph of `morph` patches (and of `Tether.morph`): a keyed path of our
  // own for the usual list of children with ids, and Idiomorph (assets/vendor, bundled ahead
  // of tether.js) for everything else, with the same guarantees on both.
  //
  // For: patches.mjs (`morph` patches, live-region pokes) and `Tether.morph(el, html)`, for
  // pages that render client-side too.
  // Never: checks a patch (patches.mjs refuses what must not be applied before it gets here),
  // touches the socket, or keeps state between calls. Idiomorph is read from the global at
  // each call, never captured at load (a page, or a test's spy, may replace it).


  // Morphs `el`'s children into `html`: unchanged nodes stay, children with an id move instead
  // of being re-created, the focused element keeps focus, caret and value. On top of that,
  // what the server did not change stays as the person left it: a form control whose rendered
  // state (its `checked`, `value` or `selected` attribute, a textarea's text) is the same in the
  // new markup keeps its live state — a box they ticked, text they typed and have not sent.
  // A live region inside `el` (`tether-live`, with the same name in the new markup) is left as
  // it is: it is re-rendered by its own pokes, not by its parent's.
  //
  // Two ways there, with the same guarantees:
  // - The keyed path (keyedMorph, below), for the usual list: every child of `el` and of the
  //   new markup is an element with an id (unique among those children), text or a comment.
  //   Children are matched by id (and tag) alone. A kept child equal to its new markup
  //   (isEqualNode: attributes and content, not live state such as a ticked box) is not
  //   touched; a changed one is morphed on its own, down to what differs (morphKept), with
  //   Idiomorph and the same options as below. New children are inserted, gone ones removed,
  //   and as few as possible are moved: those off a longest run of children already in order
  //   (moveBefore where the browser has it, so a moved child keeps its state). The child with
  //   the focus in it is never moved, the others move around it (Chromium's moveBefore would
  //   scroll it into view, insertBefore would blur it). Then the text and comments between
  //   the children are made those of the markup. Costs: parsing the markup, an isEqualNode
  //   per child, and work only where something changed.
  // - Otherwise the whole of `el` is morphed by Idiomorph (bundled ahead of this file, see
  //   assets/vendor), as before the keyed path: children without an id, duplicate ids,
  //   anything but elements, text and comments, markup with a </html>, </head> or </body>, or
  //   an element with an id that would move from one child of `el` into another (or up or
  //   down a level), which Idiomorph follows across the whole of `el` and a child-by-child
  //   morph could not. The markup is parsed again there (unless `el`'s own children already
  //   ruled the keyed path out).
  function morph(el, html) {
    if (typeof Idiomorph === "undefined") throw new Error("the DOM morph is not bundled");
    html = String(html);
    if (keyedMorph(el, html)) return;
    Idiomorph.morph(el, html, morphOptions(el, "innerHTML"));
  }

  // Elements whose children (and attributes, but `data-*`) morphs and patches leave alone:
  // markup a script owns (a chart, a map, an editor), as LiveView's phx-update="ignore".
  const UPDATE_IGNORE = '[tether-update="ignore"]';

  function updateIgnored(node) {
    return node.nodeType === ELEMENT_NODE && node.getAttribute("tether-update") === "ignore";
  }

  // Whether a morph leaves attribute `name` of `node` alone: `tether-keep="style class"` names
  // attributes a script owns (an explicit patch still sets them).
  function keptAttribute(node, name) {
    const keep = node.getAttribute("tether-keep");
    return keep !== null && keep.split(/\s+/).includes(name);
  }

  // An ignored element still takes its new `data-*` attributes (LiveView's rule): they carry
  // data for the script that owns the element.
  function syncData(old, node) {
    if (!(node instanceof Element)) return;
    for (const attr of [...old.attributes]) {
      if (attr.name.startsWith("data-") && !node.hasAttribute(attr.name)) old.removeAttribute(attr.name);
    }
    for (const attr of node.attributes) {
      if (attr.name.startsWith("data-") && old.getAttribute(attr.name) !== attr.value) old.setAttribute(attr.name, attr.value);
    }
  }

  // The Idiomorph options of morph(el, …), on either path: `morphStyle` is "innerHTML" for the
  // whole of `el`, "outerHTML" for one child of it.
  function morphOptions(el, morphStyle) {
    const keep = new WeakSet();
    return {
      morphStyle,
      ignoreActiveValue: true,
      restoreFocus: true,
      callbacks: {
        beforeNodeMorphed(oldNode, newNode) {
          if (nestedRegion(el, oldNode, newNode)) return false;
          if (updateIgnored(oldNode)) {
            syncData(oldNode, newNode);
            return false;
          }
          if (sameRenderedState(oldNode, newNode)) keep.add(oldNode);
          return true;
        },
        beforeAttributeUpdated(attr, node) {
          if (keptAttribute(node, attr)) return false;
          return !(keep.has(node) && LIVE_STATE.has(attr));
        },
      },
    };
  }

  const ELEMENT_NODE = 1;
  const TEXT_NODE = 3;
  const COMMENT_NODE = 8;
  // What Idiomorph parses as a whole document rather than as a fragment.
  const DOCUMENT_MARKUP = /<\/(?:html|head|body)\b/i;

  // morph()'s keyed path: false, with `el` untouched, when it does not apply.
  function keyedMorph(el, html) {
    // The children of `el` first: when they rule the keyed path out, nothing is parsed twice.
    const oldById = new Map();
    const oldPos = new Map(); // old child -> its place among the element children
    for (let node = el.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === ELEMENT_NODE) {
        const id = node.getAttribute("id"); // not .id: a form's input named "id" shadows it
        if (!id || oldById.has(id)) return false;
        oldById.set(id, node);
        oldPos.set(node, oldPos.size);
      } else if (node.nodeType !== TEXT_NODE && node.nodeType !== COMMENT_NODE) {
        return false;
      }
    }
    if (DOCUMENT_MARKUP.test(html)) return false;
    const doc = el.ownerDocument;
    const template = doc.createElement("template");
    template.innerHTML = html;
    const content = template.content;
    const fresh = []; // the new element children, in order
    const gaps = [[]]; // gaps[k]: the text and comments before fresh[k]; the last one after all
    const freshIds = new Set();
    for (let node = content.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === ELEMENT_NODE) {
        const id = node.getAttribute("id");
        if (!id || freshIds.has(id)) return false;
        freshIds.add(id);
        fresh.push(node);
        gaps.push([]);
      } else if (node.nodeType === TEXT_NODE || node.nodeType === COMMENT_NODE) {
        gaps[gaps.length - 1].push(node);
      } else {
        return false;
      }
    }
    const below = belowTop(el, content, fresh, oldById);
    if (!below) return false;

    // The child with the focus in it stays where it is (the others move around it): moveBefore
    // would scroll it into view, insertBefore would blur it (and run the page's blur handlers).
    const active = doc.activeElement;
    const focusTop = active && active !== el && el.contains(active) ? topChild(el, active) : null;
    let pin = -1;
    const options = morphOptions(el, "outerHTML");
    const placed = new Array(fresh.length); // the node that ends up at each new place
    const sources = new Array(fresh.length); // its old place, -1 for a new node
    for (let k = 0; k < fresh.length; k++) {
      const node = fresh[k];
      const id = node.getAttribute("id");
      const old = oldById.get(id);
      if (old && old.tagName === node.tagName) {
        oldById.delete(id); // what is left in oldById at the end goes
        placed[k] = old;
        sources[k] = oldPos.get(old);
        if (old === focusTop) pin = k;
        const flags = (below.get(old) || 0) | (below.get(node) || 0);
        if (flags & HAS_TEMPLATE) {
          if (!nestedRegion(el, old, node)) Idiomorph.morph(old, node, options);
        } else {
          morphKept(el, old, node, options, !(flags & HAS_IDS));
        }
      } else {
        placed[k] = node;
        sources[k] = -1;
      }
    }
    for (const old of oldById.values()) old.remove();

    // Order: the children on a longest run of old places already in order stay; from the last
    // new child back, each other one goes right before its successor. With a focused child,
    // the run is the longest one through it: only the children that can be on a run with it
    // compete (every longest run of those has it).
    const stays = longestIncreasing(pin < 0 ? sources : sources.map((place, k) =>
      k === pin || (k < pin ? place < sources[pin] : place > sources[pin]) ? place : -1));
    const move = typeof el.moveBefore === "function";
    for (let k = placed.length - 1, next = null; k >= 0; next = placed[k], k--) {
      const node = placed[k];
      if (sources[k] < 0) {
        el.insertBefore(node, next);
      } else if (!stays[k] && !(move && moveWithin(el, node, next))) {
        el.insertBefore(node, next);
      }
    }

    // The text and comments between the children, as the new markup has them.
    let cursor = el.firstChild;
    for (let k = 0; k <= placed.length; k++) {
      const stop = k < placed.length ? placed[k] : null;
      const olds = [];
      for (; cursor && cursor !== stop; cursor = cursor.nextSibling) olds.push(cursor);
      syncGap(el, olds, gaps[k], stop);
      if (stop) cursor = stop.nextSibling;
    }
    return true;
  }

  const HAS_IDS = 1;
  const HAS_TEMPLATE = 2;

  // What is below the top level of `el` and of the new markup, as flags of the top-level
  // children: HAS_IDS when an element with an id is below a new one (Idiomorph matches those
  // by id, not by place), HAS_TEMPLATE when a <template> is in or below an old one (isEqualNode
  // does not look into template contents; a new one without its old counterpart differs in
  // any case, and morphKept gives templates to Idiomorph). Null when `el` must be morphed as a
  // whole: an id of the new markup is, on an element of `el` with the same tag (what
  // Idiomorph keeps and moves), under another child or at another level, or on more than one
  // element of `el`.
  function belowTop(el, content, fresh, oldById) {
    const flags = new Map();
    const mark = (top, flag) => flags.set(top, (flags.get(top) || 0) | flag);
    let inside = null; // id -> the element of `el` with it (null: more than one)
    const lookup = (id) => {
      if (!inside) {
        inside = new Map();
        for (const node of el.querySelectorAll("[id]")) {
          const key = node.getAttribute("id");
          inside.set(key, inside.has(key) ? null : node);
        }
      }
      return inside.get(id);
    };
    for (const node of fresh) {
      const id = node.getAttribute("id");
      if (!oldById.has(id) && lookup(id) !== undefined) return null; // it would come up a level
    }
    for (const node of content.querySelectorAll("* [id]")) { // below the top level
      const id = node.getAttribute("id");
      if (!id) continue;
      const newTop = topChild(content, node);
      mark(newTop, HAS_IDS);
      const old = lookup(id);
      if (old === null) return null;
      if (old === undefined || old.tagName !== node.tagName) continue; // Idiomorph makes it anew
      const oldTop = topChild(el, old);
      if (oldTop === old || oldById.get(newTop.getAttribute("id")) !== oldTop || oldTop.tagName !== newTop.tagName) return null;
    }
    for (const node of el.querySelectorAll("template")) mark(topChild(el, node), HAS_TEMPLATE);
    return flags;
  }

  // Elements that keep state of their own (Idiomorph's business) or hide their content from
  // isEqualNode: morphKept hands them to Idiomorph whole.
  const MORPHED_WHOLE = new Set(["INPUT", "TEXTAREA", "SELECT", "OPTION", "TEMPLATE"]);

  // Morphs `old`, a kept node of `el`, into `node` (same tag), touching only what differs. A
  // nested live region is left alone, an equal one (isEqualNode) untouched. While both have the
  // same attributes and their children pair up by place (same kinds, tags and ids), it goes
  // down to the children that differ (text and comments take the new data); any other element
  // that differs is morphed by Idiomorph, as are form controls and the focused element, and,
  // when `byPlace` is false (ids below it, which Idiomorph matches by id), `old` itself. For
  // children without ids that pair up by place, this is what Idiomorph does, with less work.
  function morphKept(el, old, node, options, byPlace) {
    if (nestedRegion(el, old, node) || old.isEqualNode(node)) return;
    if (updateIgnored(old)) {
      syncData(old, node);
      return;
    }
    if (!byPlace || !pairsUp(old, node)) {
      Idiomorph.morph(old, node, options);
      return;
    }
    for (let a = old.firstChild, b = node.firstChild; a; a = a.nextSibling, b = b.nextSibling) {
      if (a.nodeType === ELEMENT_NODE) morphKept(el, a, b, options, true);
      else if (a.data !== b.data) a.data = b.data;
    }
  }

  function pairsUp(old, node) {
    if (MORPHED_WHOLE.has(old.tagName) || old === old.ownerDocument.activeElement) return false;
    const attributes = old.attributes;
    if (attributes.length !== node.attributes.length) return false;
    for (let i = 0; i < attributes.length; i++) {
      const attr = attributes[i];
      if (node.getAttributeNS(attr.namespaceURI, attr.localName) !== attr.value) return false;
    }
    if (old.childNodes.length !== node.childNodes.length) return false;
    for (let a = old.firstChild, b = node.firstChild; a; a = a.nextSibling, b = b.nextSibling) {
      if (a.nodeType !== b.nodeType) return false;
      if (a.nodeType === ELEMENT_NODE) {
        if (a.tagName !== b.tagName || a.getAttribute("id") !== b.getAttribute("id")) return false;
      } else if (a.nodeType !== TEXT_NODE && a.nodeType !== COMMENT_NODE) {
        return false;
      }
    }
    return true;
  }

  function topChild(parent, node) {
    while (node.parentNode !== parent) node = node.parentNode;
    return node;
  }

  // For each index of `sources`, whether it is on a longest run of increasing values (the
  // negative ones, new nodes, are never on it).
  function longestIncreasing(sources) {
    const tails = []; // tails[n]: the index ending the increasing run of length n + 1 with the least last value
    const before = new Int32Array(sources.length); // the previous index on the run ending at an index
    for (let k = 0; k < sources.length; k++) {
      const value = sources[k];
      if (value < 0) continue;
      let lo = 0;
      let hi = tails.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sources[tails[mid]] < value) lo = mid + 1;
        else hi = mid;
      }
      before[k] = lo > 0 ? tails[lo - 1] : -1;
      tails[lo] = k;
    }
    const on = new Uint8Array(sources.length);
    for (let k = tails.length > 0 ? tails[tails.length - 1] : -1; k >= 0; k = before[k]) on[k] = 1;
    return on;
  }

  // moveBefore keeps a moved node's state (a focused control's focus too, but Chromium then
  // scrolls it into view: keyedMorph never moves that one); false when it refused (its first
  // versions wanted `parent` connected).
  function moveWithin(parent, node, next) {
    try {
      parent.moveBefore(node, next);
      return true;
    } catch (_) {
      return false;
    }
  }

  // Makes the text and comment nodes `olds` (in `parent`, before `next`) those of `news`: the
  // same nodes with their data updated when they pair up, the new ones otherwise.
  function syncGap(parent, olds, news, next) {
    let pairs = olds.length === news.length;
    for (let i = 0; pairs && i < olds.length; i++) pairs = olds[i].nodeType === news[i].nodeType;
    if (pairs) {
      for (let i = 0; i < olds.length; i++) if (olds[i].data !== news[i].data) olds[i].data = news[i].data;
      return;
    }
    for (const node of olds) node.remove();
    for (const node of news) parent.insertBefore(node, next);
  }

  const LIVE_STATE = new Set(["checked", "value", "selected"]);

  // Whether `newNode` renders form control `oldNode` in the state it was last rendered in.
  function sameRenderedState(oldNode, newNode) {
    if (!(oldNode instanceof Element) || !(newNode instanceof Element) || oldNode.tagName !== newNode.tagName) return false;
    switch (oldNode.tagName) {
      case "INPUT":
        return oldNode.hasAttribute("checked") === newNode.hasAttribute("checked") &&
          oldNode.getAttribute("value") === newNode.getAttribute("value");
      case "OPTION": return oldNode.hasAttribute("selected") === newNode.hasAttribute("selected");
      case "TEXTAREA": return oldNode.defaultValue === newNode.textContent;
      default: return false;
    }
  }

  // calls.mjs — round trips: the server asks the page (a `call` event) and waits for its
  // `call_reply`: run script (`js`), read elements (`query`), wait for a DOM event (`wait`),
  // ask in a modal dialog (`modal`), read the cookies (`cookies`); `call_cancel` drops one.
  //
  // For: the page, which hands it `call` and `call_cancel` and cancels every call when the
  // join is lost.
  // Never: answers twice, or for a join that is gone; runs script unless the join reply
  // enabled exec_js; reads a forbidden property; puts a plain string into markup (a modal's
  // body is markup only when the server sent Html); or keeps a listener or dialog after its
  // call was answered or cancelled.


  // `value` as it travels in JSON (undefined is null); throws when it is not JSON at all
  // (a function, a symbol, a cycle, a BigInt).
  function toJson(value) {
    if (value === undefined) return null;
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error(`a ${typeof value} is not JSON`);
    return JSON.parse(text);
  }

  // A modal's buttons as [value, label] string pairs (a bare string is both); one "OK"
  // button when there are none, so the dialog can always be answered.
  function modalButtons(buttons) {
    const pairs = (Array.isArray(buttons) ? buttons : [])
      .map((b) => (Array.isArray(b) ? [String(b[0]), String(b.length > 1 ? b[1] : b[0])] : [String(b), String(b)]));
    return pairs.length > 0 ? pairs : [["ok", "OK"]];
  }

  // `document.cookie` as {name: value}, values as they are; the first of two same-named
  // cookies (the more specific path) wins. Null prototype: `__proto__` is just a name.
  function parseCookies(text) {
    const cookies = Object.create(null);
    for (const part of String(text || "").split(";")) {
      if (!part.trim()) continue;
      const eq = part.indexOf("=");
      const name = eq < 0 ? "" : part.slice(0, eq).trim();
      if (!(name in cookies)) cookies[name] = (eq < 0 ? part : part.slice(eq + 1)).trim();
    }
    return cookies;
  }


  // `#<id>` of an element that has an id, else its stamped `[tether-id="…"]`.
  function selectorOf(el) {
    return el.id ? `#${CSS.escape(el.id)}` : stampSelector(el);
  }

  // Property `name` of `el` for a `query` round trip: the four structured ones, else a
  // property holding a string, number, boolean or null (anything else reads as null).
  function readProp(el, name) {
    if (FORBIDDEN_PROPS.has(name)) return null;
    switch (name) {
      case "dataset": return { ...el.dataset };
      case "attributes": return Object.fromEntries([...el.attributes].map((a) => [a.name, a.value]));
      case "classList": return [...el.classList];
      case "style": {
        const style = {};
        if (el.style) for (let i = 0; i < el.style.length; i++) style[el.style[i]] = el.style.getPropertyValue(el.style[i]);
        return style;
      }
    }
    const value = el[name];
    return value === null || ["string", "number", "boolean"].includes(typeof value) ? value : null;
  }

  function readProps(el, names) {
    const props = Object.create(null); // a name such as "__proto__" is just a name
    for (const name of names) props[name] = readProp(el, name);
    return props;
  }

  function validSelector(sel) {
    if (typeof sel !== "string") return false;
    try {
      document.createDocumentFragment().querySelector(sel);
      return true;
    } catch (_) {
      return false;
    }
  }

  // Sets a modal form's fields from `{name: value}` (the call's optional `fields`).
  function fillFields(form, fields) {
    if (!isObject(fields)) return;
    for (const field of form.elements) {
      const name = field.name || field.id;
      if (!name || !Object.prototype.hasOwnProperty.call(fields, name)) continue;
      const value = fields[name];
      const wanted = (Array.isArray(value) ? value : [value]).map(String);
      if (field.type === "checkbox" || field.type === "radio") {
        field.checked = value === true || wanted.includes(field.value);
      } else if (field.type === "select-multiple") {
        for (const option of field.options) option.selected = wanted.includes(option.value);
      } else if (field.type !== "submit" && field.type !== "button") {
        field.value = value == null ? "" : String(value);
      }
    }
  }

  // <dialog class="tether-modal"><form method="dialog"><h2>title</h2><div>body</div>
  // <div><button value=…>label</button>…</div></form></dialog>
  function buildModal({ title, html, text, buttons, fields }) {
    const dialog = document.createElement("dialog");
    dialog.className = "tether-modal";
    const form = document.createElement("form");
    form.method = "dialog";
    const heading = document.createElement("h2");
    heading.textContent = title == null ? "" : String(title);
    const body = document.createElement("div");
    body.className = "tether-modal-body";
    if (html != null) body.innerHTML = String(html); // Html the server vouches for
    else body.textContent = text == null ? "" : String(text);
    const footer = document.createElement("div");
    footer.className = "tether-modal-buttons";
    for (const [value, label] of modalButtons(buttons)) {
      const button = document.createElement("button");
      button.type = "submit";
      button.value = value;
      button.textContent = label;
      footer.append(button);
    }
    form.append(heading, body, footer);
    dialog.append(form);
    fillFields(form, fields);
    return dialog;
  }

  // The round trips waiting for the page's answer, by id, on behalf of `page` (its channel,
  // whether it is joined, whether exec_js is on).
  class Calls {
    constructor(page) {
      this.page = page;
      this.entries = new Map(); // id → {cancel}
    }

    // A `call` event.
    start(call) {
      const id = call && call.id;
      this.cancel(id); // a repeated id replaces the call it names
      const joinRef = this.page.channel.joinRef;
      let done = false;
      const entry = { cleanup: () => {} };
      entry.cancel = () => {
        done = true;
        entry.cleanup();
      };
      // Answers once; an answer for a join that is gone has no one waiting for it.
      const answer = (result) => {
        if (done) return;
        entry.cancel();
        if (this.entries.get(id) === entry) this.entries.delete(id);
        if (!this.page.isJoined() || this.page.channel.joinRef !== joinRef) return;
        let body;
        try {
          body = "error" in result ? { id, error: String(result.error) } : { id, ok: toJson(result.ok) };
        } catch (err) {
          body = { id, error: `the answer is not JSON: ${errorMessage(err)}` };
        }
        this.page.channel.push("call_reply", body).receive("error", (reply) => report("call_reply", reply && reply.reason));
      };
      this.entries.set(id, entry);
      try {
        switch (call.op) {
          case "js": this.callJs(call, answer); break;
          case "query": this.callQuery(call, answer); break;
          case "wait": this.callWait(call, answer, entry); break;
          case "modal": this.callModal(call, answer, entry); break;
          case "cookies": answer({ ok: parseCookies(document.cookie) }); break;
          default: answer({ error: `unknown op ${call.op}` });
        }
      } catch (err) {
        answer({ error: errorMessage(err) });
      }
    }

    // call_cancel: the server stopped waiting; drop the call's listeners or dialog.
    cancel(id) {
      const entry = this.entries.get(id);
      if (!entry) return;
      this.entries.delete(id);
      entry.cancel();
    }

    async callJs(call, answer) {
      if (!this.page.execJs) {
        answer({ error: "exec_js is disabled" });
        return;
      }
      try {
        answer({ ok: await (0, eval)(String(call.js)) });
      } catch (err) {
        answer({ error: errorMessage(err) });
      }
    }

    callQuery(call, answer) {
      if (!validSelector(call.sel)) {
        answer({ error: "invalid selector" });
        return;
      }
      const names = Array.isArray(call.props) ? call.props.map(String) : [];
      const found = [...document.querySelectorAll(call.sel)];
      answer({ ok: found.map((el) => ({ sel: selectorOf(el), props: readProps(el, names) })) });
    }

    // Listens (capturing, on the document) for the [sel, type] pairs; the first match
    // answers and the listeners go.
    callWait(call, answer, entry) {
      const pairs = Array.isArray(call.events) ? call.events : [];
      if (pairs.length === 0) {
        answer({ error: "no events to wait for" });
        return;
      }
      for (const pair of pairs) {
        if (!Array.isArray(pair) || typeof pair[1] !== "string" || pair[1] === "") {
          answer({ error: "events must be [selector, type] pairs" });
          return;
        }
        if (!validSelector(pair[0])) {
          answer({ error: "invalid selector" });
          return;
        }
      }
      const listener = (event) => {
        if (!(event.target instanceof Element)) return;
        for (let index = 0; index < pairs.length; index++) {
          const [sel, type] = pairs[index];
          if (type !== event.type) continue;
          const el = event.bubbles ? event.target.closest(sel) : event.target.matches(sel) ? event.target : null;
          if (!el) continue;
          let arg = null;
          try {
            arg = argumentOf(el);
          } catch (_) {
            // an invalid tether-arg only loses the argument here: there is no handler to refuse
          }
          answer({ ok: { index, sender: describe(el, event, arg) } });
          return;
        }
      };
      const types = [...new Set(pairs.map((pair) => pair[1]))];
      for (const type of types) document.addEventListener(type, listener, true);
      entry.cleanup = () => {
        for (const type of types) document.removeEventListener(type, listener, true);
      };
    }

    // A native modal dialog: a button answers its value, Escape (cancel) answers null; the
    // fields are read before the dialog goes.
    callModal(call, answer, entry) {
      const dialog = buildModal(call);
      const form = dialog.querySelector("form");
      const finish = (button) => answer({ ok: { button, fields: formValues(form, true) } });
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        finish(event.submitter ? event.submitter.value : null);
      });
      dialog.addEventListener("cancel", (event) => {
        event.preventDefault();
        finish(null);
      });
      dialog.addEventListener("close", () => finish(null)); // closed by something else
      entry.cleanup = () => {
        if (dialog.open) dialog.close();
        dialog.remove();
      };
      (document.body || document.documentElement).append(dialog);
      dialog.showModal();
    }

    // The join is gone: no call of it will be answered.
    cancelAll() {
      for (const entry of [...this.entries.values()]) entry.cancel();
      this.entries.clear();
    }
  }

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


  const MAX_COMMANDS = 64;
  const OPS = new Set([
    "show", "hide", "toggle", "add_class", "remove_class", "toggle_class", "set_attr", "remove_attr",
    "transition", "dispatch", "focus", "push", "navigate", "patch",
  ]);
  const HIDDEN = "tetherHidden"; // dataset key: the inline display a `hide` replaced

  // Whether a handler attribute's text is a command list rather than a handler name.
  function isCommandList(text) {
    return /^\s*\[/.test(String(text));
  }

  // The list in `text`, checked; throws with the reason otherwise.
  function parseCommands(text) {
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
  function commandsRefusal(commands) {
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

  function show$1(node, display) {
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
  function runList(text, el, page) {
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
  function runsOffline(el) {
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
  function runCommands(commands, el, page) {
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
        case "show": show$1(node, args.display); break;
        case "hide": hide(node); break;
        case "toggle": if (isHidden(node)) show$1(node, args.display); else hide(node); break;
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
  function showState(state) {
    const root = document.documentElement;
    for (const name of STATES) root.classList.remove(`tether-${name}`);
    root.classList.add(`tether-${state}`);
    if (state === "stale") root.classList.add("tether-disconnected");
  }

  // Dispatches `tether:<name>` (joined, disconnected, reconnected) on the document.
  function announce(name) {
    document.dispatchEvent(new CustomEvent(`tether:${name}`, { bubbles: true }));
  }

  // controls.mjs — the controls tether.js disables: a clicked control or a form's submit
  // buttons while the event is processed (its typed fields read-only meanwhile), and every
  // control with a handler while the page is not joined; what the join reply's `disable` says
  // about it.
  //
  // For: the page, which holds and releases controls as events go and the join comes and goes.
  // Never: enables a control it did not disable (one the page had disabled, or whose
  // `disabled` a patch set, is the page's), sends anything, or listens for events.


  const DEFAULT_DISABLE = { events: ["click", "submit"]};

  // The join reply's `disable`, with the defaults for what it leaves out.
  function disableOptions(disable) {
    const d = isObject(disable) ? disable : {};
    return {
      while_processing: d.while_processing !== false,
      events: Array.isArray(d.events) ? d.events.map(String) : DEFAULT_DISABLE.events.slice(),
      when_disconnected: d.when_disconnected !== false,
    };
  }

  // The fields of a form a person types into (made read-only while the form's event is
  // processed, so nothing typed meanwhile is lost to the handler's answer).
  const TYPED = new Set(["text", "search", "email", "url", "tel", "password", "number", "textarea"]);
  function typedFields(form) {
    return [...form.elements].filter((f) => TYPED.has(f.type));
  }

  // A form's submit buttons (input type=image is not in form.elements).
  function submitButtons(form) {
    return [...form.elements].filter((c) => c.type === "submit").concat([...form.querySelectorAll("input[type=image]")]);
  }

  // What to disable for an element with handlers: itself when it can be, a form's submit
  // buttons when the form handles submit; nothing else (a link or a div has no `disabled`).
  function controlsOf(el) {
    if (el.tagName === "FORM") return handlersOf(el, "submit").length > 0 ? submitButtons(el) : [];
    return "disabled" in el ? [el] : [];
  }

  // The controls tether.js disabled, and why: `busy` counts the events of the control being
  // processed, `offline` holds while the page is not joined. A control is enabled again only
  // when neither holds, and one that was already disabled is never taken: tether.js only
  // undoes what it did.
  class Controls {
    constructor() {
      this.held = new Map(); // element → {busy: n, offline: bool}
      this.locked = new Map(); // typed field → events of its form being processed
    }

    // Disables `el` for `reason`; false when the page had disabled it (then it is not ours).
    hold(el, reason) {
      let entry = this.held.get(el);
      if (!entry) {
        if (el.disabled) return false;
        entry = { busy: 0, offline: false };
        this.held.set(el, entry);
        el.disabled = true;
      }
      if (reason === "busy") entry.busy += 1;
      else entry.offline = true;
      return true;
    }

    release(el, reason) {
      const entry = this.held.get(el);
      if (!entry) return;
      if (reason === "busy") entry.busy = Math.max(0, entry.busy - 1);
      else entry.offline = false;
      if (entry.busy === 0 && !entry.offline) {
        this.held.delete(el);
        el.disabled = false;
      }
    }

    // Makes a typed field read-only while an event of its form is processed; false when the
    // page had made it read-only (then it is not ours).
    lock(field) {
      const count = this.locked.get(field);
      if (count === undefined) {
        if (field.readOnly) return false;
        field.readOnly = true;
      }
      this.locked.set(field, (count || 0) + 1);
      return true;
    }

    unlock(field) {
      const count = this.locked.get(field);
      if (count === undefined) return;
      if (count > 1) {
        this.locked.set(field, count - 1);
      } else {
        this.locked.delete(field);
        field.readOnly = false;
      }
    }

    // The page set `disabled` itself: leave the element as it is from now on.
    disown(el) {
      this.held.delete(el);
    }

    releaseOffline() {
      for (const el of [...this.held.keys()]) this.release(el, "offline");
    }
  }

  // forms.mjs — what tether.js does for forms and their feedback: loading states while a
  // handler runs, which fields of a form a person has used, flash messages, and the values a
  // form sends again when the page rejoins after losing its socket.
  //
  //   tether-disable-with="Saving…"     the element's text (a button input's value) while its
  //                                     event is processed; for a submit, on the form's submit
  //                                     buttons that have it
  //   tether-loading                    the class on the sender and its form meanwhile
  //   tether-loading-class="busy"       another class than `tether-loading` for this element
  //   tether-flash / tether-flash="error"   a container of flash messages (of every kind, or of
  //                                     the kinds named, space-separated)
  //   tether-auto-recover="ignore" | "<handler>"   on a form: no recovery, or another handler
  //
  // A field is used once a person typed in it and left it (input, then blur), once its
  // `change` event fired (a ticked box, a chosen option, a text field left changed), or once
  // its form was submitted; a form's `reset` forgets. Every event of a form sends its used
  // fields (`sender.used`), so a handler shows errors only where a person has been.
  //
  // For: the page (page.mjs), which starts and ends loading states around its events, asks
  // for the used fields of a sender and for the forms to recover, and hands `flash` events
  // here; `clearFlash()` for navigation.
  // Never: sends anything (closing a flash costs no frame), reads a field's value for itself,
  // puts a flash text anywhere but `textContent`, fills a container in a `tether-ignore`
  // subtree, or restores a text the server changed while the handler ran.


  const LOADING_CLASS = "tether-loading";
  // Field names remembered per form: a form's fields are already bounded by the DOM, this
  // bounds what a form whose fields are renamed over and over could make it keep.
  const MAX_USED = 1000;
  const FLASH = "[tether-flash]";
  const CLOSE = "tether-flash-close";

  function loadingClass(el) {
    return el.getAttribute("tether-loading-class") || LOADING_CLASS;
  }

  // The text a `tether-disable-with` control shows: a button input's `value`, else its text.
  function isValueButton(el) {
    return el.tagName === "INPUT" && ["submit", "button", "reset"].includes(el.type);
  }

  function shown(el) {
    return isValueButton(el) ? el.value : el.textContent;
  }

  function show(el, text) {
    if (isValueButton(el)) el.value = text;
    else el.textContent = text;
  }

  // Loading states: per element, how many of its events are in flight, the class it got, and
  // the text `tether-disable-with` replaced.
  class Loading {
    constructor() {
      this.busy = new Map(); // element → {count, cls, text: null | {was, with}}
    }

    // Starts the loading state of an event at `el` (of `type`); returns the function that
    // ends it (on the reply, an error, or the join lost). Calling it twice ends it once.
    start(el, type, event) {
      const form = formOf(el, event);
      const withText = [el];
      if (type === "submit" && form) {
        for (const button of form.elements) if (button !== el && button.type === "submit") withText.push(button);
      }
      const taken = [];
      for (const target of new Set([el, form].filter(Boolean))) taken.push(this.take(target, false));
      for (const target of withText) if (target.hasAttribute("tether-disable-with")) taken.push(this.take(target, true));
      let ended = false;
      return () => {
        if (ended) return;
        ended = true;
        for (const target of taken) this.release(target);
      };
    }

    take(el, withText) {
      let entry = this.busy.get(el);
      if (!entry) {
        entry = { count: 0, cls: loadingClass(el), text: null };
        this.busy.set(el, entry);
        el.classList.add(entry.cls);
      }
      entry.count += 1;
      if (withText && entry.text === null) {
        const text = el.getAttribute("tether-disable-with");
        entry.text = { was: shown(el), with: text };
        show(el, text);
      }
      return el;
    }

    release(el) {
      const entry = this.busy.get(el);
      if (!entry) return;
      entry.count -= 1;
      if (entry.count > 0) return;
      this.busy.delete(el);
      el.classList.remove(entry.cls);
      // A text the server changed meanwhile is the server's: left as it is.
      if (entry.text !== null && shown(el) === entry.text.with) show(el, entry.text.was);
    }
  }

  function fieldName(field) {
    return field.name || field.id || "";
  }

  const CHOSEN = new Set(["checkbox", "radio", "select-one", "select-multiple", "file", "range", "color", "date", "time"]);

  // Which fields a person has used, per form (fields outside a form under `null`).
  class UsedFields {
    constructor(root) {
      this.used = new WeakMap(); // form → Set(name)
      this.loose = new Set(); // used fields outside a form
      this.typed = new WeakSet(); // fields typed in and not left yet
      root.addEventListener("input", (e) => this.input(e.target), true);
      root.addEventListener("change", (e) => this.mark(e.target), true);
      root.addEventListener("blur", (e) => this.left(e.target), true);
      root.addEventListener("submit", (e) => this.submitted(e.target), true);
      root.addEventListener("reset", (e) => this.reset(e.target), true);
    }

    setOf(form) {
      if (!form) return this.loose;
      let set = this.used.get(form);
      if (!set) this.used.set(form, (set = new Set()));
      return set;
    }

    add(form, name) {
      const set = this.setOf(form);
      if (name && (set.has(name) || set.size < MAX_USED)) set.add(name);
    }

    input(field) {
      if (!(field instanceof Element) || !("form" in field)) return;
      if (CHOSEN.has(field.type)) this.mark(field);
      else this.typed.add(field);
    }

    mark(field) {
      if (!(field instanceof Element) || !("form" in field)) return;
      this.typed.delete(field);
      this.add(field.form, fieldName(field));
    }

    left(field) {
      if (field instanceof Element && this.typed.has(field)) this.mark(field);
    }

    submitted(form) {
      if (!(form instanceof HTMLFormElement)) return;
      for (const field of form.elements) this.add(form, fieldName(field));
    }

    reset(form) {
      if (form instanceof HTMLFormElement) this.used.delete(form);
    }

    // The used fields an event at `el` sends: those of its form, or itself when it has none.
    of(el, event) {
      const form = formOf(el, event);
      if (form) return [...this.setOf(form)];
      const name = fieldName(el);
      return name && this.loose.has(name) ? [name] : [];
    }
  }

  // The forms a rejoin recovers: with an id and a change handler (or `tether-auto-recover`
  // naming another handler), not in a tether-ignore subtree; as [{form, handler}].
  function formsToRecover(root) {
    const forms = [];
    for (const form of root.querySelectorAll("form[id]")) {
      if (ignored(form)) continue;
      const recover = form.getAttribute("tether-auto-recover");
      if (recover === "ignore") continue;
      const handler = recover || handlersOf(form, "change")[0];
      if (handler) forms.push({ form, handler });
    }
    return forms;
  }

  // ---- flash ----

  function containers(root, kind) {
    return [...root.querySelectorAll(FLASH)].filter((c) => {
      if (ignored(c)) return false;
      const kinds = c.getAttribute("tether-flash").split(/\s+/).filter(Boolean);
      return kinds.length === 0 || kinds.includes(kind);
    });
  }

  // Shows `text` (as text) as the `kind` flash in every container that takes it, replacing
  // the one of that kind it showed.
  function putFlash(root, kind, text) {
    if (typeof kind !== "string" || kind === "" || typeof text !== "string") return;
    for (const container of containers(root, kind)) {
      removeKind(container, kind);
      const message = document.createElement("div");
      message.className = "tether-flash-message";
      message.dataset.kind = kind;
      message.setAttribute("role", kind === "error" ? "alert" : "status");
      const span = document.createElement("span");
      span.className = "tether-flash-text";
      span.textContent = text;
      // The close button: classes `tether-flash-close` and `close`, an "×" drawn in SVG (no
      // text: the container's text is the message alone).
      const close = document.createElement("button");
      close.type = "button";
      close.className = `${CLOSE} close`;
      close.setAttribute("aria-label", "Close");
      close.append(crossIcon());
      message.append(span, close);
      container.appendChild(message);
    }
  }

  const SVG = "http://www.w3.org/2000/svg";

  // `<svg viewBox="0 0 10 10" width="10" height="10" aria-hidden="true"><path d="M2 2L8 8M8 2L2 8"
  // stroke="currentColor" stroke-width="1.5"></path></svg>`
  function crossIcon() {
    const svg = document.createElementNS(SVG, "svg");
    for (const [name, value] of [["viewBox", "0 0 10 10"], ["width", "10"], ["height", "10"], ["aria-hidden", "true"]]) {
      svg.setAttribute(name, value);
    }
    const path = document.createElementNS(SVG, "path");
    for (const [name, value] of [["d", "M2 2L8 8M8 2L2 8"], ["stroke", "currentColor"], ["stroke-width", "1.5"]]) {
      path.setAttribute(name, value);
    }
    svg.append(path);
    return svg;
  }

  function removeKind(container, kind) {
    for (const message of [...container.children]) {
      if (message.classList.contains("tether-flash-message") && (kind === null || message.dataset.kind === kind)) {
        message.remove();
      }
    }
  }

  // Removes the flash messages of `kind` (all kinds with null) from every container.
  function clearFlash(root = document, kind = null) {
    for (const container of root.querySelectorAll(FLASH)) {
      if (!ignored(container)) removeKind(container, kind);
    }
  }

  // A click on a flash's close button removes that message, in the browser only.
  function closeFlashOnClick(root) {
    root.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest(`.${CLOSE}`) : null;
      const message = button && button.closest(".tether-flash-message");
      if (message && message.parentElement && message.parentElement.matches(FLASH)) message.remove();
    });
  }

  // lists.mjs — what a page keeps current from server data with no commander code: templated
  // presence lists (`data-tether-presence`, filled from `presence_list` updates) and live
  // counters (`data-tether-topic`, set from `count` broadcasts).
  //
  // For: the page, which asks for the lists and counters on its join and hands it the updates.
  // Never: renders markup from the server (entries become text in copies of the page's own
  // `<template>`), wires or fills anything in a tether-ignore subtree, or talks to the socket.


  // The presence lists a page shows, for its join: the signed spec the server rendered into
  // each (`data-tether-list`: topic, fields, key form; the server honours nothing else); each once.
  function presenceListSpecs(root) {
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
  function renderPresenceLists(root, { topic, fields, keys, entries }) {
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
  function showRenderedLists(root) {
    for (const el of root.querySelectorAll("[data-tether-presence][data-tether-entries]")) {
      if (!ignored(el)) fillPresenceList(el, parseEntries(el.dataset.tetherEntries));
    }
  }

  // The live counters of the page (`data-tether-topic`), but those in tether-ignore subtrees.
  function counterElements(root) {
    return [...root.querySelectorAll("[data-tether-topic]")].filter((el) => !ignored(el));
  }

  // A `count` broadcast: every live counter of its topic shows its users or connections (a
  // counter naming neither, or a count that is not a number, is left as it is).
  const COUNTS = new Set(["users", "connections"]);
  function renderCount(root, payload) {
    for (const el of counterElements(root)) {
      const which = el.dataset.tetherCount;
      if (el.dataset.tetherTopic !== payload.topic || !COUNTS.has(which) || typeof payload[which] !== "number") continue;
      el.textContent = String(payload[which]);
    }
  }

  // navigation.mjs — live navigation of a commander's page (docs/page-channel.md, *Navigation*):
  // links and GET forms that opt in (`tether-patch`, `tether-navigate`), the server's
  // `navigate` frames (`push_patch`, `push_navigate`), and Back and Forward.
  //
  // - A patch keeps the page: the URL changes (a history entry) and the page channel is told
  //   (`params`), so the commander's `handle_params` runs; while the page is not joined only
  //   the URL changes, and the next join carries it.
  // - A navigate moves to another page over the same socket: the URL's server-rendered HTML is
  //   fetched through the app's route, the page leaves its channel, the new body is morphed in
  //   (its scripts are not run), the title follows, and the new page's channel is joined with
  //   the new page token. HTML without a page token, of another socket, another origin or an
  //   error status is loaded as a whole document instead.
  // - Every history entry this page makes carries a key (`history.state.tether.key`) of the
  //   page it belongs to: Back or Forward to an entry of the same page is a patch, to an entry
  //   of another page a navigate (the page then takes that entry's key).
  //
  // For: page.mjs (one Navigation per Page).
  // Never: follows a link or form of another origin, with a target, a download, a modifier key
  // or a handler that already took the click (tether-click: defaultPrevented), runs a script
  // of the fetched page, or keeps a navigation going once a newer one started.


  // The URL (path, query) of `href` when it is on this page's origin; else null.
  function localUrl(href) {
    let url;
    try {
      url = new URL(href, location.href);
    } catch (_) {
      return null;
    }
    if (url.origin !== location.origin) return null;
    return url.pathname + url.search;
  }

  // What an element opts into: "patch", "navigate" or null.
  function navKind(el) {
    if (el.hasAttribute("tether-patch")) return "patch";
    if (el.hasAttribute("tether-navigate")) return "navigate";
    return null;
  }

  function newKey() {
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  class Navigation {
    constructor(page) {
      this.page = page;
      this.key = newKey();
      this.busy = null; // the AbortController of the navigation under way
      this.shown = localUrl(location.href); // the URL the page's commander was last told of
      // The entry the page was loaded in is this page's too (its fragment kept).
      this.record("replace", location.href);
      // Bubbling: tether.js's own (capturing) listener and the page's handlers come first.
      document.addEventListener("click", (event) => this.onClick(event));
      document.addEventListener("submit", (event) => this.onSubmit(event));
      window.addEventListener("popstate", (event) => this.onPopState(event));
    }

    // A history entry of this page ("push", "replace"; "none" leaves history alone).
    record(mode, url) {
      this.shown = localUrl(url);
      if (mode === "none") return;
      const state = Object.assign({}, isObject(history.state) ? history.state : {}, { tether: { key: this.key } });
      if (mode === "replace") history.replaceState(state, "", url);
      else history.pushState(state, "", url);
    }

    onClick(event) {
      if (event.defaultPrevented || event.button !== 0) return;
      if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
      if (!link || ignored(link)) return;
      const kind = navKind(link);
      if (!kind || link.hasAttribute("download")) return;
      if (link.target && link.target !== "_self") return;
      const url = localUrl(link.href);
      if (!url) return;
      event.preventDefault();
      this.go(kind, url, "push");
    }

    // A GET form that opts in: its fields become the action's query.
    onSubmit(event) {
      const form = event.target;
      if (event.defaultPrevented || !(form instanceof HTMLFormElement) || ignored(form)) return;
      const kind = navKind(form);
      if (!kind || (form.getAttribute("method") || "get").toLowerCase() !== "get") return;
      let action;
      try {
        action = new URL(form.getAttribute("action") || location.href, location.href);
      } catch (_) {
        return;
      }
      const query = new URLSearchParams();
      for (const [name, value] of new FormData(form, event.submitter || null)) {
        if (typeof value === "string") query.append(name, value);
      }
      action.search = query.toString();
      const url = localUrl(action.href);
      if (!url) return;
      event.preventDefault();
      this.go(kind, url, "push");
    }

    onPopState(event) {
      const state = isObject(event.state) && isObject(event.state.tether) ? event.state.tether : null;
      if (!state || typeof state.key !== "string") return; // not an entry of tether's
      const url = localUrl(location.href);
      // While a navigate is on its way, the page it goes to is not there yet: navigate anew.
      if (state.key === this.key && !this.busy) {
        // Only the fragment changed (a link to #section and back): the commander knows this URL.
        if (url !== this.shown) this.page.pushParams(url);
        this.shown = url;
        return;
      }
      this.key = state.key;
      this.navigate(url, "none");
    }

    // The server's `navigate` frame: {kind: "patch" | "navigate", url, replace}.
    serverSays({ kind, url, replace } = {}) {
      const local = typeof url === "string" ? localUrl(url) : null;
      if (!local) return;
      if (kind === "patch") this.record(replace === true ? "replace" : "push", local); // handle_params ran
      else if (kind === "navigate") this.navigate(local, "push");
    }

    go(kind, url, mode) {
      if (kind === "navigate") {
        this.navigate(url, mode);
        return;
      }
      this.record(mode, url);
      this.page.pushParams(url);
    }

    // Fetches `url` and moves to its page (or loads it as a document); `mode` is what it does
    // to history ("push", or "none" for Back and Forward).
    async navigate(url, mode) {
      if (this.busy) this.busy.abort();
      const busy = (this.busy = new AbortController());
      let response;
      let html;
      try {
        response = await fetch(url, { credentials: "same-origin", signal: busy.signal, headers: { accept: "text/html" } });
        html = await response.text();
      } catch (_) {
        if (!busy.signal.aborted) location.assign(url);
        return;
      }
      if (this.busy !== busy) return;
      this.busy = null;
      const landed = localUrl(response.url) || (response.redirected ? null : url);
      if (!landed) {
        location.assign(response.url); // redirected off this origin
        return;
      }
      const type = response.headers.get("content-type") || "";
      const doc = response.ok && type.includes("text/html") ? new DOMParser().parseFromString(html, "text/html") : null;
      const tag = doc && doc.querySelector("script[data-tether-token]");
      if (!tag || tag.dataset.tetherSocket !== this.page.socketPath) {
        location.assign(landed);
        return;
      }
      for (const script of doc.querySelectorAll("script")) script.remove();
      if (mode === "push") this.key = newKey();
      this.record(mode, landed);
      if (doc.title) document.title = doc.title;
      this.page.switchTo(tag.dataset, doc.body.innerHTML);
      if (mode === "push") window.scrollTo(0, 0);
    }
  }

  // patches.mjs — checking and applying the patches the server sends (`patch` events and
  // broadcasts): html, morph, text, prop, props, insert, remove, js, redirect, set_url,
  // console, cookie.
  //
  // For: the page, which hands it every patch; `refusal` is the one check every patch goes
  // through, the same rules the server applies (Patch::check), so a patch injected on the way
  // cannot run script in the page.
  // Never: applies a patch that refusal() refused, runs script unless the join reply enabled
  // exec_js, lets a throwing patch escape (it is reported, the socket's frame loop goes on),
  // fills an element in a tether-ignore subtree through a selector tether built from an
  // attribute, changes what is inside a tether-update="ignore" element, or talks to the socket
  // itself.


  const CONSOLE_LEVELS = new Set(["log", "info", "warn", "error", "debug"]);

  // The same rules the server applies to every patch (Patch::check): script only when the
  // join reply said exec_js is on, and no plain value into a property that would parse it
  // as markup or script (only an `html` value, which the server sends for Html, may go there).
  const URL_PROPS = new Set(["href", "src", "action", "formaction"]);
  // The keys of a `props` patch that hold an object of their own rather than a property value.
  const PROPS_GROUPS = new Set(["style", "dataset", "attributes", "classList"]);
  const CLASS_LIST_OPS = ["add", "remove", "toggle"];
  // The server's cookie rules (Patch::check): a name is an RFC 6265 token, a value and a path
  // are cookie-octets (printable ASCII but `"`, `,`, `;`, `\`), so none can smuggle an
  // attribute (`; domain=…`) into document.cookie.
  const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const COOKIE_OCTETS = /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/;
  const ELEMENT_OPS = new Set(["html", "morph", "text", "prop", "props", "insert", "remove"]);

  // Why a plain value (not Html) must not go into property `prop`, or null.
  function plainPropRefusal(prop, value) {
    const name = String(prop);
    if (FORBIDDEN_PROPS.has(name)) return `property ${name} is forbidden`;
    const lower = name.toLowerCase();
    if (MARKUP_NAMES.has(lower) || lower.startsWith("on")) return `property ${name} takes only Html`;
    if (URL_PROPS.has(lower) && typeof value === "string" && isScriptUrl(value)) return `property ${name} takes only Html`;
    return null;
  }

  // Why attribute `name` must not be set to `value` (null removes it), or null: the property
  // rules, and xlink:href is a URL too.
  function attributeRefusal(name, value) {
    const lower = String(name).toLowerCase();
    if (FORBIDDEN_PROPS.has(String(name))) return `attribute ${name} is forbidden`;
    if (MARKUP_NAMES.has(lower) || lower.startsWith("on")) return `attribute ${name} is refused (markup or script)`;
    if (URL_ATTRIBUTES.has(lower) && value != null && isScriptUrl(value)) return `attribute ${name} is refused (script URL)`;
    return null;
  }

  // A `props` patch obeys the `prop` rules key by key, and attribute names are held to the same.
  function propsRefusal(props) {
    if (!isObject(props)) return "props must be an object";
    for (const key of Object.keys(props)) {
      const value = props[key];
      if (!PROPS_GROUPS.has(key)) {
        const refused = plainPropRefusal(key, value);
        if (refused) return refused;
        continue;
      }
      if (!isObject(value)) return `props.${key} must be an object`;
      for (const name of Object.keys(value)) {
        if (FORBIDDEN_PROPS.has(name)) return `${key} ${name} is forbidden`;
        if (key === "attributes") {
          const refused = attributeRefusal(name, value[name]);
          if (refused) return refused;
        } else if (key === "classList" && (!CLASS_LIST_OPS.includes(name) || !Array.isArray(value[name]))) {
          return `classList takes add, remove and toggle arrays, not ${name}`;
        }
      }
    }
    return null;
  }

  function urlRefusal(op, url) {
    if (typeof url !== "string") return `${op} needs a url`;
    return isScriptUrl(url) ? `${op} to a script URL is refused` : null;
  }

  function cookieRefusal({ name, value, path, max_age: maxAge }) {
    if (typeof name !== "string" || !COOKIE_NAME.test(name)) return `cookie name ${name} is not a token`;
    if (value != null && (typeof value !== "string" || !COOKIE_OCTETS.test(value))) return `cookie ${name}: value is not cookie-octets`;
    if (path != null && (typeof path !== "string" || !COOKIE_OCTETS.test(path))) return `cookie ${name}: path is not cookie-octets`;
    if (maxAge != null && !Number.isInteger(maxAge)) return `cookie ${name}: max_age must be an integer`;
    return null;
  }

  // Why `patch` must not be applied, or null. The one check every patch goes through.
  function refusal(patch, execJs) {
    switch (patch.op) {
      case "js": return execJs ? null : "script patches are disabled (exec_js)";
      case "morph": return typeof patch.html === "string" ? null : "morph takes html";
      case "prop":
        if (FORBIDDEN_PROPS.has(String(patch.prop))) return `property ${patch.prop} is forbidden`;
        if (patch.html != null) return null;
        // A value may be null (`el.prop = null`), but it must be there: never "undefined".
        if (!("value" in patch)) return "prop takes a value or html";
        return plainPropRefusal(patch.prop, patch.value);
      case "insert":
        return typeof patch.html === "string" || typeof patch.text === "string" ? null : "insert takes html or text";
      case "props": return propsRefusal(patch.props);
      case "redirect":
      case "set_url": return urlRefusal(patch.op, patch.url);
      case "console": return CONSOLE_LEVELS.has(patch.level) ? null : `console level ${patch.level} is not allowed`;
      case "cookie": return cookieRefusal(patch);
      default: return null;
    }
  }

  // `name=value; path=…; max-age=…` for a cookie patch that refusal() passed: the value goes
  // as it is (cookie-octets, what the server reads back), without a path the page's default
  // applies, and a null value deletes the cookie.
  function cookieString({ name, value, path, max_age: maxAge }) {
    const parts = [`${name}=${value == null ? "" : value}`];
    if (path != null) parts.push(`path=${path}`);
    if (value == null) parts.push("max-age=0");
    else if (maxAge != null) parts.push(`max-age=${maxAge}`);
    return parts.join("; ");
  }

  // Applies `patch` after refusal() passed it. `disowned(el)` is told of each element whose
  // `disabled` the patch sets: from then on that is the page's state, not tether.js's to undo.
  function applyPatch(patch, execJs, disowned = () => {}) {
    const refused = refusal(patch, execJs);
    if (refused) {
      report("patch", refused);
      return;
    }
    try {
      applyChecked(patch, disowned);
    } catch (err) {
      // A throwing patch must not break the frame loop of the socket.
      report("patch", `${patch.op}: ${errorMessage(err)}`);
    }
  }

  function applyChecked(patch, disowned) {
    switch (patch.op) {
      case "js": (0, eval)(patch.js); return;
      case "redirect": globalThis.location.assign(patch.url); return;
      case "set_url": globalThis.history.pushState(null, "", patch.url); return; // throws cross-origin
      case "console": console[patch.level](patch.msg); return;
      case "cookie": document.cookie = cookieString(patch); return;
    }
    if (!ELEMENT_OPS.has(patch.op)) {
      report("patch", `unknown op ${patch.op}`);
      return;
    }
    let elements;
    try {
      elements = document.querySelectorAll(patch.sel);
    } catch (_) {
      report("patch", `invalid selector ${patch.sel}`);
      return;
    }
    // A selector tether built from an attribute (a live region, a presence list,
    // Sender::this or within) never reaches into markup the page does not vouch for.
    const built = /^\s*\[(data-)?tether-/.test(patch.sel);
    for (const el of elements) {
      if (built && ignored(el)) continue;
      if (leftAlone(el, patch)) continue;
      switch (patch.op) {
        case "html": el.innerHTML = patch.html; break;
        case "morph": morph(el, patch.html); break;
        case "text": el.textContent = patch.text; break;
        case "prop":
          if (patch.prop === "disabled") disowned(el);
          el[patch.prop] = patch.html != null ? patch.html : patch.value;
          break;
        case "props": applyProps(el, patch.props, disowned); break;
        case "insert":
          if (patch.html != null) el.insertAdjacentHTML(patch.position, patch.html);
          else el.insertAdjacentText(patch.position, patch.text);
          break;
        case "remove": el.remove(); break;
      }
    }
  }
  // Whether `patch` must leave `el` alone: inside a `tether-update="ignore"` element nothing is
  // patched; the element itself keeps its children (its attributes and properties may still
  // be set by a patch aimed at it).
  function leftAlone(el, patch) {
    const frozen = el.closest(UPDATE_IGNORE);
    if (!frozen) return false;
    if (frozen !== el) return true;
    switch (patch.op) {
      case "html": case "morph": case "text": return true;
      case "insert": return patch.position === "afterbegin" || patch.position === "beforeend";
      case "prop": return INNER_PROPS.has(String(patch.prop).toLowerCase());
      case "props": return Object.keys(patch.props).some((key) => INNER_PROPS.has(key.toLowerCase()));
      default: return false;
    }
  }

  const INNER_PROPS = new Set(["innerhtml", "innertext", "textcontent"]);

  function applyProps(el, props, disowned) {
    for (const key of Object.keys(props)) {
      const value = props[key];
      if (key === "style") {
        for (const name of Object.keys(value)) setStyle(el.style, name, value[name]);
      } else if (key === "dataset") {
        for (const name of Object.keys(value)) {
          if (value[name] == null) delete el.dataset[name];
          else el.dataset[name] = String(value[name]);
        }
      } else if (key === "attributes") {
        for (const name of Object.keys(value)) {
          if (name.toLowerCase() === "disabled") disowned(el);
          if (value[name] == null) el.removeAttribute(name);
          else el.setAttribute(name, String(value[name]));
        }
      } else if (key === "classList") {
        for (const op of CLASS_LIST_OPS) {
          for (const name of value[op] || []) el.classList[op](String(name));
        }
      } else {
        if (key === "disabled") disowned(el);
        el[key] = value;
      }
    }
  }

  // Dashed names (`background-color`, `--gap`) go through setProperty, camelCase ones are
  // style properties; null removes either.
  function setStyle(style, name, value) {
    if (name.includes("-")) {
      if (value == null) style.removeProperty(name);
      else style.setProperty(name, String(value));
    } else {
      style[name] = value == null ? "" : String(value);
    }
  }

  // socket.mjs — the WebSocket speaking Phoenix Channels V2 JSON: connect, reconnect with
  // jittered backoff, heartbeats, refs, and routing each frame to its channel and its pending
  // push.
  //
  // For: `Tether.Socket`, the transport of any app (`new Tether.Socket("/socket", {params})`)
  // and of a commander's page; wire-compatible with phoenix.js's Socket.
  // The latency simulator (latency.mjs) delays frames both ways when a developer turned it on.
  //
  // Never: interprets a channel's events (patches, presence, round trips are for the modules
  // above it), touches the DOM, or imports anything of the page part.


  const VSN = "2.0.0";
  const HEARTBEAT_MS = 30000;

  class Socket {
    constructor(endpoint, options = {}) {
      this.endpoint = endpoint;
      this.params = options.params || {};
      this.heartbeatMs = options.heartbeatIntervalMs || HEARTBEAT_MS;
      this.channels = [];
      this.pending = new Map();
      this.ref = 0;
      this.conn = null;
      this.tries = 0;
      this.closedByUser = false;
      this.heartbeatTimer = null;
      this.heartbeatRef = null;
      this.reconnectTimer = null;
      this.callbacks = { open: [], close: [], error: [], message: [] };
    }

    onOpen(callback) { this.callbacks.open.push(callback); }
    onClose(callback) { this.callbacks.close.push(callback); }
    onError(callback) { this.callbacks.error.push(callback); }
    onMessage(callback) { this.callbacks.message.push(callback); }

    url() {
      const base = this.endpoint.startsWith("ws")
        ? this.endpoint
        : `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${this.endpoint}`;
      const params = typeof this.params === "function" ? this.params() : this.params;
      const query = new URLSearchParams({ ...params, vsn: VSN });
      return `${base}/websocket?${query}`;
    }

    makeRef() {
      this.ref += 1;
      return String(this.ref);
    }

    isConnected() {
      return this.conn !== null && this.conn.readyState === WebSocket.OPEN;
    }

    connect() {
      this.closedByUser = false;
      if (this.conn) return;
      const conn = new WebSocket(this.url());
      this.conn = conn;
      conn.onopen = () => {
        this.tries = 0;
        this.startHeartbeat();
        for (const cb of this.callbacks.open) cb();
        for (const channel of this.channels) channel.socketOpened();
      };
      conn.onerror = (error) => {
        for (const cb of this.callbacks.error) cb(error);
      };
      // The latency simulator (latency.mjs) may hold each frame; one of a closed connection
      // is dropped.
      conn.onmessage = (event) => delayed(() => {
        if (this.conn === conn) this.receive(event.data);
      });
      conn.onclose = (event) => this.closed(conn, event);
    }

    disconnect(code = 1000) {
      this.closedByUser = true;
      clearTimeout(this.reconnectTimer);
      if (this.conn) this.conn.close(code);
    }

    closed(conn, event) {
      if (conn !== this.conn) return;
      this.conn = null;
      clearInterval(this.heartbeatTimer);
      this.heartbeatRef = null;
      for (const push of [...this.pending.values()]) push.cancel();
      for (const channel of this.channels) channel.socketLost();
      for (const cb of this.callbacks.close) cb(event);
      // 1000 is a deliberate close; anything else means "come back".
      if (!this.closedByUser && event.code !== 1000) {
        this.tries += 1;
        this.reconnectTimer = setTimeout(() => this.connect(), backoff(this.tries));
      }
    }

    startHeartbeat() {
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = setInterval(() => {
        if (this.heartbeatRef) {
          // The previous heartbeat was never answered: the connection is dead.
          this.heartbeatRef = null;
          if (this.conn) this.conn.close(4000, "heartbeat timeout");
          return;
        }
        this.heartbeatRef = this.makeRef();
        this.send([null, this.heartbeatRef, "phoenix", "heartbeat", {}]);
      }, this.heartbeatMs);
    }

    send(frame) {
      if (!this.isConnected()) return;
      const conn = this.conn;
      const text = JSON.stringify(frame);
      delayed(() => {
        if (this.conn === conn && this.isConnected()) conn.send(text);
      });
    }

    channel(topic, params) {
      const channel = new Channel(this, topic, params);
      this.channels.push(channel);
      return channel;
    }

    remove(channel) {
      this.channels = this.channels.filter((c) => c !== channel);
    }

    receive(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch (_) {
        return;
      }
      if (!Array.isArray(frame) || frame.length !== 5) return;
      const [joinRef, ref, topic, event, payload] = frame;
      for (const cb of this.callbacks.message) cb({ join_ref: joinRef, ref, topic, event, payload });
      if (event === "phx_reply") {
        if (topic === "phoenix" && ref === this.heartbeatRef) this.heartbeatRef = null;
        const push = ref && this.pending.get(ref);
        if (push) push.settle(payload.status, payload.response);
      }
      for (const channel of this.channels) {
        if (channel.topic === topic) channel.dispatch(joinRef, event, payload);
      }
    }
  }

  // version.mjs — the version of this tether.js: the crate's version (Cargo.toml), checked by
  // a test of src/commander/navigation.rs. A page sends it when it joins; a server with a newer
  // tether.js refuses the join with "outdated client" and the page reloads once (page.mjs).
  //
  // For: page.mjs's join payload, and `Tether.version`.
  // Never: is changed by hand without Cargo.toml's version (the test says so).

  const VERSION = "0.1.0";

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
  class Page {
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

  // presence.mjs — the presence view of a channel: applies presence_state and presence_diff
  // and reports joins, leaves and syncs.
  //
  // For: `Tether.Presence`, the same API and semantics as phoenix.js's Presence
  // (tests/node/tether_presence.test.mjs compares both on random event sequences).
  // Never: pushes anything, touches the socket or the DOM; it only listens to the channel it
  // was given.

  // The presence view of a channel: applies presence_state and presence_diff; diffs that
  // arrive before the state of the current join are held until it comes.
  class Presence {
    constructor(channel, options = {}) {
      const events = options.events || { state: "presence_state", diff: "presence_diff" };
      this.state = Object.create(null);
      this.pendingDiffs = [];
      this.joinRef = null;
      this.channel = channel;
      this.callbacks = { join: () => {}, leave: () => {}, sync: () => {} };
      channel.on(events.state, (newState) => {
        this.joinRef = channel.joinRef;
        this.state = Presence.syncState(this.state, newState, this.callbacks.join, this.callbacks.leave);
        for (const diff of this.pendingDiffs) {
          this.state = Presence.syncDiff(this.state, diff, this.callbacks.join, this.callbacks.leave);
        }
        this.pendingDiffs = [];
        this.callbacks.sync();
      });
      channel.on(events.diff, (diff) => {
        if (this.inPendingSyncState()) {
          this.pendingDiffs.push(diff);
        } else {
          this.state = Presence.syncDiff(this.state, diff, this.callbacks.join, this.callbacks.leave);
          this.callbacks.sync();
        }
      });
    }

    onJoin(callback) { this.callbacks.join = callback; }
    onLeave(callback) { this.callbacks.leave = callback; }
    onSync(callback) { this.callbacks.sync = callback; }

    list(chooser) {
      return Presence.list(this.state, chooser);
    }

    inPendingSyncState() {
      return !this.joinRef || this.joinRef !== this.channel.joinRef;
    }

    static refs(metas) {
      return new Set(metas.map((m) => m.phx_ref));
    }

    // Replaces `current` by `next`, reporting what joined and left per key.
    static syncState(current, next, onJoin, onLeave) {
      const state = Presence.clone(current);
      // Null-prototype maps: a key such as "__proto__" is just a key.
      const joins = Object.create(null);
      const leaves = Object.create(null);
      for (const key of Object.keys(state)) {
        if (!Object.prototype.hasOwnProperty.call(next, key)) leaves[key] = state[key];
      }
      for (const key of Object.keys(next)) {
        const nextEntry = next[key];
        const currentEntry = state[key];
        if (!currentEntry) {
          joins[key] = nextEntry;
          continue;
        }
        const nextRefs = Presence.refs(nextEntry.metas);
        const currentRefs = Presence.refs(currentEntry.metas);
        const joined = nextEntry.metas.filter((m) => !currentRefs.has(m.phx_ref));
        const left = currentEntry.metas.filter((m) => !nextRefs.has(m.phx_ref));
        if (joined.length > 0) joins[key] = { ...nextEntry, metas: joined };
        if (left.length > 0) leaves[key] = { ...currentEntry, metas: left };
      }
      return Presence.syncDiff(state, { joins, leaves }, onJoin, onLeave);
    }

    // Applies a diff: joins first, then leaves. A joined meta replaces a known meta with the
    // same ref; leaves of unknown refs are ignored; a key with no metas left is removed.
    // Callbacks get the diff's own entry, as phoenix.js does.
    static syncDiff(current, diff, onJoin, onLeave) {
      const state = Presence.clone(current);
      const joins = diff.joins || {};
      const leaves = diff.leaves || {};
      for (const key of Object.keys(joins)) {
        const entry = joins[key];
        const before = state[key];
        const joinedRefs = Presence.refs(entry.metas || []);
        const kept = before ? before.metas.filter((m) => !joinedRefs.has(m.phx_ref)) : [];
        state[key] = { ...entry, metas: kept.concat(entry.metas || []) };
        if (onJoin) onJoin(key, before, entry);
      }
      for (const key of Object.keys(leaves)) {
        const before = state[key];
        if (!before) continue;
        const gone = Presence.refs(leaves[key].metas || []);
        const remaining = { ...before, metas: before.metas.filter((m) => !gone.has(m.phx_ref)) };
        state[key] = remaining;
        if (onLeave) onLeave(key, remaining, leaves[key]);
        if (remaining.metas.length === 0) delete state[key];
      }
      return state;
    }

    static list(state, chooser) {
      const choose = chooser || ((key, entry) => entry);
      return Object.keys(state).map((key) => choose(key, state[key]));
    }

    static clone(state) {
      const out = Object.create(null);
      for (const key of Object.keys(state)) out[key] = { ...state[key], metas: state[key].metas.slice() };
      return out;
    }
  }

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


  // Read while this script runs: document.currentScript is null once it has.
  const script = typeof document !== "undefined" ? document.currentScript : null;
  let page = null;
  if (script && script.dataset.tetherToken) {
    page = new Page(script);
  }

  // Hooks a page defined before this (deferred) script ran: `window.Tether = {hooks: {…}}`.
  const early = (typeof window !== "undefined" ? window : globalThis).Tether;
  if (early && typeof early.hooks === "object" && early.hooks !== null) Object.assign(registry, early.hooks);

  (typeof window !== "undefined" ? window : globalThis).Tether = {
    Socket, Channel, Presence, page,
    // client hooks: Tether.hooks.Name = {mounted() {…}, …} (hooks.mjs), or registerHook(name, hook)
    registerHook: (name, hook) => { registry[String(name)] = hook; },
    // morph(el, html): what a `morph` patch does, for pages that render client-side too
    morph,
    // A developer aid: delay every frame both ways by `ms`, for this tab's session.
    enableLatencySim, disableLatencySim,
    // the version of this tether.js (the crate's)
    version: VERSION,
  };
  // `Tether.hooks = {…}` adds to the registry rather than replacing it.
  Object.defineProperty((typeof window !== "undefined" ? window : globalThis).Tether, "hooks", {
    get: () => registry,
    set: (more) => { Object.assign(registry, more); },
    enumerable: true,
  });

})();
