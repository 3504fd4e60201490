// controls.mjs — the controls tether.js disables: a clicked control or a form's submit
// buttons while the event is processed (its typed fields read-only meanwhile), and every
// control with a handler while the page is not joined; what the join reply's `disable` says
// about it.
//
// For: the page, which holds and releases controls as events go and the join comes and goes.
// Never: enables a control it did not disable (one the page had disabled, or whose
// `disabled` a patch set, is the page's), sends anything, or listens for events.

import { handlersOf } from "./events.mjs";
import { isObject } from "./shared.mjs";

const DEFAULT_DISABLE = { while_processing: true, events: ["click", "submit"], when_disconnected: true };

// The join reply's `disable`, with the defaults for what it leaves out.
export function disableOptions(disable) {
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
export function typedFields(form) {
  return [...form.elements].filter((f) => TYPED.has(f.type));
}

// A form's submit buttons (input type=image is not in form.elements).
export function submitButtons(form) {
  return [...form.elements].filter((c) => c.type === "submit").concat([...form.querySelectorAll("input[type=image]")]);
}

// What to disable for an element with handlers: itself when it can be, a form's submit
// buttons when the form handles submit; nothing else (a link or a div has no `disabled`).
export function controlsOf(el) {
  if (el.tagName === "FORM") return handlersOf(el, "submit").length > 0 ? submitButtons(el) : [];
  return "disabled" in el ? [el] : [];
}

// The controls tether.js disabled, and why: `busy` counts the events of the control being
// processed, `offline` holds while the page is not joined. A control is enabled again only
// when neither holds, and one that was already disabled is never taken: tether.js only
// undoes what it did.
export class Controls {
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
