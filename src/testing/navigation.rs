//! Live navigation in the kit, with navigation.mjs's rules: a tab's history (entries keyed by
//! the live page that made them, and the document they are in), patches (`push_patch`,
//! `tether-patch` links and GET forms: the URL changes and, from the page, a `params` push),
//! live navigations (`push_navigate`, `tether-navigate`: the URL's HTML fetched through the
//! app's routes, the old join left, the new page joined on the same socket), and Back and
//! Forward (a patch within the live page, a live navigation across live pages, a load across
//! documents).
//!
//! For: [`TestPage::back`], [`TestPage::forward`], and the page and its actions (links, forms,
//! the server's `navigate` frames).
//! Never: runs a script of the new page, leaves the app's origin, or waits without the
//! page's bound (every wait goes through `drive_until`).

use std::sync::atomic::{AtomicU64, Ordering};

use kuchikiki::NodeRef;
use serde_json::{Value, json};

use super::page::{Pending, TestPage};

/// One history entry: the URL, the live page that made it, the document it is in.
#[derive(Debug, Clone)]
struct Entry {
    url: String,
    key: u64,
    doc: u64,
}

/// A tab's session history.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    entries: Vec<Entry>,
    index: usize,
}

impl History {
    /// A fresh key for a live page or a document.
    pub(crate) fn new_key() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// A new entry after the current one (the entries after it are dropped).
    pub(crate) fn push(&mut self, url: &str, key: u64, doc: u64) {
        let entry = Entry {
            url: url.to_string(),
            key,
            doc,
        };
        if self.entries.is_empty() {
            self.entries.push(entry);
            self.index = 0;
            return;
        }
        self.entries.truncate(self.index + 1);
        self.entries.push(entry);
        self.index = self.entries.len() - 1;
    }

    /// The current entry becomes `url` (of live page `key`).
    fn replace(&mut self, url: &str, key: u64, doc: u64) {
        match self.entries.get_mut(self.index) {
            Some(entry) => {
                *entry = Entry {
                    url: url.to_string(),
                    key,
                    doc,
                }
            }
            None => self.push(url, key, doc),
        }
    }

    /// Moves `by` entries (negative: back); the entry moved to, if there is one.
    fn go(&mut self, by: isize) -> Option<Entry> {
        let index = self.index.checked_add_signed(by)?;
        let entry = self.entries.get(index)?.clone();
        self.index = index;
        Some(entry)
    }
}

/// What a live page was asked to do to history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Push,
    /// Back or Forward: history already moved.
    Traverse,
}

/// A navigation for the page to follow while it is driven.
#[derive(Debug, Clone)]
pub(crate) enum Nav {
    /// The server's `push_navigate`.
    Navigate(String),
}

/// `application/x-www-form-urlencoded`, as URLSearchParams writes it.
fn form_encode(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| {
        let mut out = String::new();
        for byte in text.bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(byte));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl TestPage {
    /// What `el` opts into: `"patch"`, `"navigate"` or `None` (navigation.mjs `navKind`).
    pub(crate) fn nav_kind(&self, el: &NodeRef) -> Option<&'static str> {
        if self.dom.attr(el, "tether-patch").is_some() {
            Some("patch")
        } else if self.dom.attr(el, "tether-navigate").is_some() {
            Some("navigate")
        } else {
            None
        }
    }

    /// A click on link `el` that no handler took: a patch or live navigation when it opts
    /// in (same origin, no target, no download); `false` when it does not.
    pub(crate) async fn follow_link(&mut self, el: &NodeRef) -> bool {
        let Some(kind) = self.nav_kind(el) else {
            return false;
        };
        if self.dom.ignored(el) || self.dom.attr(el, "download").is_some() {
            return false;
        }
        if self.dom.attr(el, "target").is_some_and(|t| t != "_self") {
            return false;
        }
        let Some(url) = self
            .dom
            .attr(el, "href")
            .and_then(|href| self.browser.same_origin_path(&href))
        else {
            return false;
        };
        self.go(kind, &url).await;
        true
    }

    /// A submit of GET form `form` that no handler took: its fields become the action's
    /// query, and it patches or navigates when it opts in; `false` when it does not.
    pub(crate) async fn follow_form(&mut self, form: &NodeRef) -> bool {
        let Some(kind) = self.nav_kind(form) else {
            return false;
        };
        let method = self.dom.attr(form, "method").unwrap_or_default();
        if self.dom.ignored(form) || !(method.is_empty() || method.eq_ignore_ascii_case("get")) {
            return false;
        }
        let action = self.dom.attr(form, "action").unwrap_or_default();
        let base = if action.is_empty() {
            Some(self.path.clone())
        } else {
            self.browser.same_origin_path(&action)
        };
        let Some(base) = base else { return false };
        let path = base
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .to_string();
        let mut pairs = Vec::new();
        for (name, value) in self.dom.form_values(form, false) {
            match value {
                Value::String(v) => pairs.push((name, v)),
                Value::Array(values) => pairs.extend(
                    values
                        .into_iter()
                        .filter_map(|v| v.as_str().map(|v| (name.clone(), v.to_string()))),
                ),
                _ => {}
            }
        }
        let query = form_encode(&pairs);
        let url = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        self.go(kind, &url).await;
        true
    }

    /// A live navigation of `kind` (`navigate` or `patch`) to the local `url`.
    pub(crate) async fn go(&mut self, kind: &str, url: &str) {
        if kind == "navigate" {
            self.live_navigate(url, Mode::Push).await;
        } else {
            self.history.push(url, self.key, self.doc);
            self.path = url.to_string();
            self.push_params().await;
        }
    }

    /// Tells the server the URL changed within the page and waits for its `handle_params`
    /// (tether.js `pushParams`); nothing while the page is not joined (the next join carries
    /// the URL).
    async fn push_params(&mut self) {
        if !self.joined {
            return;
        }
        let url = self.path.clone();
        let reference = self
            .push("params", json!({ "url": url }), Pending::Params)
            .await;
        self.drive_until("the params reply", |page| {
            !page.pending.contains_key(&reference)
        })
        .await;
    }

    /// The server's `navigate` frame: a patch changes the URL (handle_params already ran on
    /// the server); a navigate is followed once the frame is handled.
    pub(crate) fn server_navigates(&mut self, payload: &Value) {
        let Some(url) = payload["url"]
            .as_str()
            .and_then(|url| self.browser.same_origin_path(url))
        else {
            self.fail(format!("a navigate frame without a local url: {payload}"));
            return;
        };
        match payload["kind"].as_str() {
            Some("patch") if payload["replace"] == Value::Bool(true) => {
                self.history.replace(&url, self.key, self.doc);
                self.path = url;
            }
            Some("patch") => {
                self.history.push(&url, self.key, self.doc);
                self.path = url;
            }
            Some("navigate") => self.nav = Some(Nav::Navigate(url)),
            _ => self.fail(format!("a navigate frame of no known kind: {payload}")),
        }
    }

    pub(crate) async fn follow(&mut self, nav: Nav) {
        match nav {
            Nav::Navigate(url) => self.live_navigate(&url, Mode::Push).await,
        }
    }

    /// Moves to the page at `url` over the same socket, as navigation.mjs does: fetched
    /// through the app's routes (redirects followed), the old join left, the new document
    /// in place, the new page joined. A page without a page token, of another socket, or an
    /// answer other than 200 is loaded as a document instead.
    pub(crate) async fn live_navigate(&mut self, url: &str, mode: Mode) {
        let (url, response) = self.browser.follow(url).await;
        let socket_path = self.script.as_ref().map(|s| s.socket.clone());
        let next = TestPage::parse(self.browser.clone(), url.clone(), response.body);
        let same_socket = next.script.as_ref().map(|s| s.socket.clone()) == socket_path;
        if response.status != 200 || next.script.is_none() || !same_socket || self.socket.is_none()
        {
            self.navigate(&url).await;
            return;
        }
        // Leave the old join: its on_disconnect runs, its presences leave.
        let leave = json!([
            self.join_ref(),
            self.make_ref(),
            self.topic(),
            "phx_leave",
            {}
        ]);
        self.send_frame(leave).await;
        self.lost();
        let mut history = std::mem::take(&mut self.history);
        let key = match mode {
            Mode::Push => History::new_key(),
            Mode::Traverse => self.key,
        };
        match mode {
            Mode::Push => history.push(&url, key, self.doc),
            Mode::Traverse => {}
        }
        let mut next = next;
        next.socket = self.socket.take();
        next.history = history;
        next.key = key;
        next.doc = self.doc;
        next.adopt_from(self);
        *self = next;
        self.hold_offline();
        if let Some(script) = self.script.clone() {
            Box::pin(self.join(&script)).await;
        }
    }

    /// Goes back one entry in the tab's history, as the browser's Back button: within the
    /// live page a patch (`handle_params` runs), across live pages a live navigation, across
    /// documents a load. Waits for the page to be joined again; panics when there is no
    /// entry to go back to.
    pub async fn back(&mut self) {
        self.traverse(-1, "back").await;
    }

    /// Goes forward one entry in the tab's history (see [`back`](TestPage::back)).
    pub async fn forward(&mut self) {
        self.traverse(1, "forward").await;
    }

    async fn traverse(&mut self, by: isize, what: &str) {
        let Some(entry) = self.history.go(by) else {
            panic!(
                "tether::testing: {}: no history entry to go {what} to",
                self.path
            );
        };
        if entry.doc != self.doc {
            // Another document: the browser loads it.
            let mut history = std::mem::take(&mut self.history);
            if let Some(mut socket) = self.socket.take() {
                let _ = futures_util::SinkExt::close(&mut socket).await;
            }
            let page = Box::pin(self.browser.open(&entry.url)).await;
            let mut old = std::mem::replace(self, page);
            self.adopt_from(&mut old);
            // Its entries keep their places: the loaded document takes over this one's keys.
            let (key, doc) = (self.key, self.doc);
            for kept in &mut history.entries {
                if kept.doc == entry.doc {
                    kept.doc = doc;
                    if kept.key == entry.key {
                        kept.key = key;
                    }
                }
            }
            self.history = history;
        } else if entry.key == self.key {
            self.path = entry.url;
            self.push_params().await;
        } else {
            self.key = entry.key;
            self.live_navigate(&entry.url, Mode::Traverse).await;
        }
        self.raise();
    }
}
