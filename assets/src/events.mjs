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

import { ignored } from "./shared.mjs";

export const SHORTHANDS = ["click", "dblclick", "change", "input", "submit", "keyup", "keydown", "focus", "blur"];
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
export const HANDLER_ATTRIBUTES = SHORTHANDS.map((type) => `tether-${type}`).concat("tether-on");
// A selector of the elements with a handler attribute.
export const BOUND = HANDLER_ATTRIBUTES.map((name) => `[${name}]`).join(",");
const EVENT_FIELDS = ["type", "key", "code", "altKey", "ctrlKey", "shiftKey", "metaKey", "button", "clientX", "clientY"];
const TEXT_MAX = 1000;

// More tether-on types than the gestures, allowed by the page's own script tag
// (`data-tether-events`, space-separated).
export function allowEvents(types) {
  for (const type of String(types || "").split(/\s+/)) if (type) allowedEvents.add(type);
}

// What a live navigation's new page allows (navigation.mjs): the gestures and its own
// script tag's types, nothing the page before it allowed.
export function allowOnlyEvents(types) {
  allowedEvents.clear();
  for (const type of GESTURE_EVENTS) allowedEvents.add(type);
  allowEvents(types);
}

// Whether `tether-on` may listen for `type`.
export function isAllowed(type) {
  return allowedEvents.has(type);
}

// A handler attribute, `name` or `name(<JSON>)`, as {name, hasArg, arg}. The argument is
// JSON.parse'd, never evaluated; `name()` has none. Throws on anything else.
export function parseHandler(text) {
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
export function parseOn(text) {
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
export function handlersOf(el, type) {
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
export function boundElement(target, type, bubbles) {
  if (!(target instanceof Element)) return null;
  if (!bubbles) return handlersOf(target, type).length > 0 && !ignored(target) ? target : null;
  for (let el = target.closest(BOUND); el; el = el.parentElement && el.parentElement.closest(BOUND)) {
    if (handlersOf(el, type).length > 0 && !ignored(el)) return el;
  }
  return null;
}

// What the handler attribute `text` of `el` calls: {handler, arg}; the argument is the
// attribute's own, else the nearest tether-arg, else null. Throws on invalid JSON.
export function handlerCall(el, text) {
  const { name, hasArg, arg } = parseHandler(text);
  return { handler: name, arg: hasArg ? arg : argumentOf(el) };
}

export function argumentOf(el) {
  const holder = el.closest("[tether-arg]");
  if (!holder) return null;
  try {
    return JSON.parse(holder.getAttribute("tether-arg"));
  } catch (err) {
    throw new Error(`invalid JSON in tether-arg: ${err.message}`);
  }
}

// The fields of EVENT_FIELDS that `event` has.
export function eventFields(event) {
  const fields = {};
  if (!event) return fields;
  for (const name of EVENT_FIELDS) if (name in event && event[name] !== undefined) fields[name] = event[name];
  return fields;
}

// At most `max` code points: a surrogate pair is never cut in two (the server's JSON
// parser refuses a lone surrogate), and the work is bounded by `max`, not the text.
export function truncate(text, max) {
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

export function stampSelector(el) {
  return `[tether-id="${CSS.escape(stamp(el))}"]`;
}

export function formOf(el, event) {
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
export function describe(el, event, arg) {
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
export function bareSender(arg) {
  return {
    id: "", name: "", class: "", tether_id: "", text: "", value: "", checked: null,
    dataset: {}, form: {}, event: { type: "run" }, arg: arg === undefined ? null : arg, scope: "",
  };
}

// Clicks that would navigate away: links and submit buttons.
export function navigates(el) {
  if (el.tagName === "A" || el.tagName === "AREA") return el.hasAttribute("href");
  if (el.tagName === "BUTTON") return el.type === "submit";
  return el.tagName === "INPUT" && (el.type === "submit" || el.type === "image");
}

// A form's fields as {name: value}. Password and file fields only when the form says so
// (`tether-include-passwords`, `tether-include-files`) or `secrets` (a modal the server
// built and asks for).
export function formValues(form, secrets = false) {
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
