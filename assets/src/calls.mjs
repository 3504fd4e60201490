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

import { argumentOf, describe, formValues, stampSelector } from "./events.mjs";
import { FORBIDDEN_PROPS, errorMessage, isObject, report } from "./shared.mjs";

// `value` as it travels in JSON (undefined is null); throws when it is not JSON at all
// (a function, a symbol, a cycle, a BigInt).
export function toJson(value) {
  if (value === undefined) return null;
  const text = JSON.stringify(value);
  if (text === undefined) throw new Error(`a ${typeof value} is not JSON`);
  return JSON.parse(text);
}

// A modal's buttons as [value, label] string pairs (a bare string is both); one "OK"
// button when there are none, so the dialog can always be answered.
export function modalButtons(buttons) {
  const pairs = (Array.isArray(buttons) ? buttons : [])
    .map((b) => (Array.isArray(b) ? [String(b[0]), String(b.length > 1 ? b[1] : b[0])] : [String(b), String(b)]));
  return pairs.length > 0 ? pairs : [["ok", "OK"]];
}

// `document.cookie` as {name: value}, values as they are; the first of two same-named
// cookies (the more specific path) wins. Null prototype: `__proto__` is just a name.
export function parseCookies(text) {
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
export class Calls {
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
