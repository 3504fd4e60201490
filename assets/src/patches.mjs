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

import { UPDATE_IGNORE, morph } from "./morph.mjs";
import {
  FORBIDDEN_PROPS, MARKUP_NAMES, URL_ATTRIBUTES, errorMessage, ignored, isObject, isScriptUrl, report,
} from "./shared.mjs";

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
export function refusal(patch, execJs) {
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
export function cookieString({ name, value, path, max_age: maxAge }) {
  const parts = [`${name}=${value == null ? "" : value}`];
  if (path != null) parts.push(`path=${path}`);
  if (value == null) parts.push("max-age=0");
  else if (maxAge != null) parts.push(`max-age=${maxAge}`);
  return parts.join("; ");
}

// Applies `patch` after refusal() passed it. `disowned(el)` is told of each element whose
// `disabled` the patch sets: from then on that is the page's state, not tether.js's to undo.
export function applyPatch(patch, execJs, disowned = () => {}) {
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
