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

import { ignored, isObject } from "./shared.mjs";

// The URL (path, query) of `href` when it is on this page's origin; else null.
export function localUrl(href) {
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
export function navKind(el) {
  if (el.hasAttribute("tether-patch")) return "patch";
  if (el.hasAttribute("tether-navigate")) return "navigate";
  return null;
}

function newKey() {
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

export class Navigation {
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
