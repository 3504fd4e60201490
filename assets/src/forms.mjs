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

import { formOf, handlersOf } from "./events.mjs";
import { ignored } from "./shared.mjs";

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
export class Loading {
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
export class UsedFields {
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
export function formsToRecover(root) {
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
export function putFlash(root, kind, text) {
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
export function clearFlash(root = document, kind = null) {
  for (const container of root.querySelectorAll(FLASH)) {
    if (!ignored(container)) removeKind(container, kind);
  }
}

// A click on a flash's close button removes that message, in the browser only.
export function closeFlashOnClick(root) {
  root.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest(`.${CLOSE}`) : null;
    const message = button && button.closest(".tether-flash-message");
    if (message && message.parentElement && message.parentElement.matches(FLASH)) message.remove();
  });
}
