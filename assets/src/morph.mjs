// morph.mjs — the DOM morph of `morph` patches (and of `Tether.morph`): a keyed path of our
// own for the usual list of children with ids, and Idiomorph (assets/vendor, bundled ahead
// of tether.js) for everything else, with the same guarantees on both.
//
// For: patches.mjs (`morph` patches, live-region pokes) and `Tether.morph(el, html)`, for
// pages that render client-side too.
// Never: checks a patch (patches.mjs refuses what must not be applied before it gets here),
// touches the socket, or keeps state between calls. Idiomorph is read from the global at
// each call, never captured at load (a page, or a test's spy, may replace it).

import { nestedRegion } from "./live.mjs";

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
export function morph(el, html) {
  if (typeof Idiomorph === "undefined") throw new Error("the DOM morph is not bundled");
  html = String(html);
  if (keyedMorph(el, html)) return;
  Idiomorph.morph(el, html, morphOptions(el, "innerHTML"));
}

// Elements whose children (and attributes, but `data-*`) morphs and patches leave alone:
// markup a script owns (a chart, a map, an editor), as LiveView's phx-update="ignore".
export const UPDATE_IGNORE = '[tether-update="ignore"]';

export function updateIgnored(node) {
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
export function morphOptions(el, morphStyle) {
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
