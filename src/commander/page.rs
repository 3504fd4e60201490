//! [`Page`]: what a commander's callbacks and handlers work with — the page's identity,
//! session and store, its topics, and patches to it or to every page on a topic.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Count, Html, Hub, token::unix_now};
use crate::{channel::Socket, config::IdSource, transport::PushError};

/// Markup or text for a patch. Strings are text (shown literally, never parsed as HTML);
/// only [`Html`] is inserted as markup.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Inserted as markup.
    Html(Html),
    /// Inserted as text.
    Text(String),
}

impl From<Html> for Content {
    fn from(html: Html) -> Content {
        Content::Html(html)
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Content {
        Content::Text(text.to_string())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Content {
        Content::Text(text)
    }
}

/// Where [`Patch::insert`] puts content, as in `insertAdjacentHTML`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Before the element.
    BeforeBegin,
    /// Inside, before its first child.
    AfterBegin,
    /// Inside, after its last child.
    BeforeEnd,
    /// After the element.
    AfterEnd,
}

/// One change to a page's DOM, applied by tether.js to every element matching `sel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Patch {
    /// Replace the inner HTML.
    Html {
        /// CSS selector.
        sel: String,
        /// Markup.
        html: String,
    },
    /// Replace the content with text.
    Text {
        /// CSS selector.
        sel: String,
        /// Text.
        text: String,
    },
    /// Set a DOM property (`value`, `checked`, `disabled`, …) to a plain value. A property
    /// that would turn a string into markup or script (`innerHTML`, `outerHTML`, `srcdoc`,
    /// any `on*`, or a `javascript:` URL in `href`, `src`, `action`, `formAction`) is refused
    /// (see [`Patch::prop_html`]).
    Prop {
        /// CSS selector.
        sel: String,
        /// Property name.
        prop: String,
        /// New value.
        value: Value,
    },
    /// Set a DOM property to markup the app vouches for ([`Html`]); the only way to set
    /// `innerHTML`-like properties.
    #[serde(rename = "prop")]
    PropHtml {
        /// CSS selector.
        sel: String,
        /// Property name.
        prop: String,
        /// Markup.
        html: String,
    },
    /// Insert markup or text next to or inside the element.
    Insert {
        /// CSS selector.
        sel: String,
        /// Where.
        position: Position,
        /// Markup, if HTML.
        #[serde(skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        /// Text, if text.
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Remove the elements.
    Remove {
        /// CSS selector.
        sel: String,
    },
    /// Run JavaScript (only when `[commander] exec_js` is on).
    Js {
        /// The script.
        js: String,
    },
}

impl Patch {
    /// Sets the content of `sel`: markup for [`Html`], text for strings.
    pub fn set(sel: &str, content: impl Into<Content>) -> Patch {
        match content.into() {
            Content::Html(html) => Patch::Html {
                sel: sel.to_string(),
                html: html.as_str().to_string(),
            },
            Content::Text(text) => Patch::Text {
                sel: sel.to_string(),
                text,
            },
        }
    }

    /// Sets property `prop` of `sel` to `value`.
    pub fn prop(sel: &str, prop: &str, value: impl Serialize) -> Patch {
        Patch::Prop {
            sel: sel.to_string(),
            prop: prop.to_string(),
            value: serde_json::to_value(value).unwrap_or(Value::Null),
        }
    }

    /// Sets property `prop` of `sel` to markup: the only way to set `innerHTML`,
    /// `outerHTML`, `srcdoc`, an `on*` handler or a script URL, because [`Html`] says the
    /// app made or vetted it.
    ///
    /// ```
    /// use tether::commander::{Html, Patch};
    /// let patch = Patch::prop_html("#frame", "srcdoc", Html::escape("<p>hi</p>"));
    /// assert!(matches!(patch, Patch::PropHtml { .. }));
    /// ```
    pub fn prop_html(sel: &str, prop: &str, html: Html) -> Patch {
        Patch::PropHtml {
            sel: sel.to_string(),
            prop: prop.to_string(),
            html: html.as_str().to_string(),
        }
    }

    /// Checks the patch against the rules every patch obeys, wherever it is sent from:
    /// script only with `exec_js`, and no plain value that a property would turn into
    /// markup or script.
    pub(crate) fn check(&self, exec_js: bool) -> Result<(), PatchError> {
        match self {
            Patch::Js { .. } if !exec_js => Err(PatchError::JsDisabled),
            Patch::Prop { prop, value, .. } => check_plain_prop(prop, value),
            _ => Ok(()),
        }
    }

    /// Inserts `content` at `position` relative to `sel`.
    pub fn insert(sel: &str, position: Position, content: impl Into<Content>) -> Patch {
        let (html, text) = match content.into() {
            Content::Html(html) => (Some(html.as_str().to_string()), None),
            Content::Text(text) => (None, Some(text)),
        };
        Patch::Insert {
            sel: sel.to_string(),
            position,
            html,
            text,
        }
    }

    /// Removes the elements matching `sel`.
    pub fn remove(sel: &str) -> Patch {
        Patch::Remove {
            sel: sel.to_string(),
        }
    }
}

/// Properties whose string value is parsed as markup or script.
fn is_markup_prop(prop: &str) -> bool {
    let prop = prop.to_ascii_lowercase();
    matches!(prop.as_str(), "innerhtml" | "outerhtml" | "srcdoc") || prop.starts_with("on")
}

/// Properties holding a URL that navigates or loads.
fn is_url_prop(prop: &str) -> bool {
    let prop = prop.to_ascii_lowercase();
    matches!(prop.as_str(), "href" | "src" | "action" | "formaction")
}

/// Whether `url` is a script URL once the characters browsers ignore are gone.
fn is_script_url(url: &str) -> bool {
    let scheme: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
        .take(11)
        .collect::<String>()
        .to_ascii_lowercase();
    scheme.starts_with("javascript:") || scheme.starts_with("vbscript:")
}

fn check_plain_prop(prop: &str, value: &Value) -> Result<(), PatchError> {
    let unsafe_string = match value {
        Value::String(text) => is_url_prop(prop) && is_script_url(text),
        _ => false,
    };
    if is_markup_prop(prop) || unsafe_string {
        return Err(PatchError::UnsafeProp(
            crate::text::for_log(prop).to_string(),
        ));
    }
    Ok(())
}

/// Why a patch (or a store change) was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The page's connection is gone.
    #[error(transparent)]
    Closed(#[from] PushError),
    /// `exec_js` is off in the config.
    #[error("exec_js is disabled ([commander] exec_js = false)")]
    JsDisabled,
    /// A plain value for a property that would turn it into markup or script; use
    /// [`Patch::prop_html`] with [`Html`].
    #[error("property `{0}` takes only Html (Patch::prop_html), not a plain value")]
    UnsafeProp(String),
    /// The store would exceed its size limit once encrypted.
    #[error("store too large ({size} bytes encrypted, at most {max})")]
    StoreTooLarge {
        /// The encrypted size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Largest store token (the encrypted store) a page may have, in bytes: a cookie's worth.
pub const MAX_STORE_BYTES: usize = 4096;

/// What a store token holds: the store, bound to the browser it was made for.
#[derive(Debug, serde::Deserialize, Serialize)]
pub(crate) struct StoreClaims {
    /// Browser id.
    #[serde(rename = "b")]
    pub(crate) browser_id: String,
    /// The store.
    #[serde(rename = "s")]
    pub(crate) store: Map<String, Value>,
}

/// A page's topics, signed for the browser to send back on rejoin.
#[derive(Debug, serde::Deserialize, Serialize)]
pub(crate) struct TopicClaims {
    /// Commander.
    #[serde(rename = "c")]
    pub(crate) commander: String,
    /// Path.
    #[serde(rename = "p")]
    pub(crate) path: String,
    /// Browser id the token was made for.
    #[serde(rename = "b")]
    pub(crate) browser_id: String,
    /// Issued at, in unix milliseconds (to compare with unsubscribes).
    #[serde(rename = "ms")]
    pub(crate) issued_ms: u64,
    /// Topics.
    #[serde(rename = "t")]
    pub(crate) topics: Vec<String>,
}

/// Per-join state of a page, kept in the page channel's socket.
pub(crate) struct PageState {
    pub(crate) commander: &'static str,
    pub(crate) path: String,
    pub(crate) browser_id: String,
    pub(crate) session: Map<String, Value>,
    pub(crate) store: Map<String, Value>,
    /// Broadcasting and subscribed topics, in order.
    pub(crate) topics: Vec<String>,
    /// (topic, key) tracked in presence.
    pub(crate) tracked: Vec<(String, String)>,
}

/// One connected page, as its commander sees it.
pub struct Page<'a> {
    pub(crate) socket: &'a mut Socket,
    pub(crate) state: &'a mut PageState,
    pub(crate) hub: &'a Hub,
}

impl std::fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("commander", &self.state.commander)
            .field("path", &self.state.path)
            .field("browser_id", &self.state.browser_id)
            .field("topics", &self.state.topics)
            .finish_non_exhaustive()
    }
}

impl Page<'_> {
    /// The request path the page was rendered for.
    pub fn path(&self) -> &str {
        &self.state.path
    }

    /// The commander's name.
    pub fn commander(&self) -> &str {
        self.state.commander
    }

    /// The browser's id: a UUID the server minted and signed, shared by every tab of the
    /// browser.
    pub fn browser_id(&self) -> &str {
        &self.state.browser_id
    }

    /// A session value (allowed keys only), read when the page connected.
    pub fn session(&self, key: &str) -> Option<&Value> {
        self.state.session.get(key)
    }

    /// A store value.
    pub fn get_store(&self, key: &str) -> Option<&Value> {
        self.state.store.get(key)
    }

    /// Sets a store value; the browser keeps the store, encrypted and bound to its browser
    /// id, and sends it back on every join (effective for presence on the next load).
    /// Refused, changing nothing, if the encrypted store would exceed [`MAX_STORE_BYTES`].
    pub fn put_store(&mut self, key: &str, value: impl Serialize) -> Result<(), PatchError> {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        let previous = self.state.store.insert(key.to_string(), value);
        let claims = StoreClaims {
            browser_id: self.state.browser_id.clone(),
            store: self.state.store.clone(),
        };
        let token = self.hub.keys.encrypt("store", &claims, unix_now());
        if token.len() > MAX_STORE_BYTES {
            match previous {
                Some(previous) => self.state.store.insert(key.to_string(), previous),
                None => self.state.store.remove(key),
            };
            return Err(PatchError::StoreTooLarge {
                size: token.len(),
                max: MAX_STORE_BYTES,
            });
        }
        Ok(self.socket.push("store", &json!({ "token": token }))?)
    }

    /// The page's topics (broadcasting, then subscribed).
    pub fn topics(&self) -> &[String] {
        &self.state.topics
    }

    /// The page's presence key: the first of `[presence] id` that has a value, else the
    /// browser id.
    pub fn presence_key(&self) -> String {
        for source in &self.hub.config.presence.id {
            let value = match source {
                IdSource::Store(key) => self.state.store.get(key),
                IdSource::Session(key) => self.state.session.get(key),
            };
            match value {
                Some(Value::String(s)) if !s.is_empty() => return s.clone(),
                Some(Value::Number(n)) => return n.to_string(),
                _ => {}
            }
        }
        self.state.browser_id.clone()
    }

    /// Distinct presence keys on `topic`.
    pub fn count_users(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Users)
    }

    /// Tracked pages on `topic`.
    pub fn count_connections(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Connections)
    }

    /// Applies `patch` to this page.
    pub fn patch(&mut self, patch: &Patch) -> Result<(), PatchError> {
        self.hub.check(patch)?;
        Ok(self.socket.push("patch", patch)?)
    }

    /// Sets the content of `selector` on this page (markup for [`Html`], text otherwise).
    pub fn set_html(
        &mut self,
        selector: &str,
        content: impl Into<Content>,
    ) -> Result<(), PatchError> {
        self.patch(&Patch::set(selector, content))
    }

    /// Sets a DOM property on this page to a plain value (refused for properties that
    /// would parse it as markup or script; see [`Patch::prop_html`]).
    pub fn set_prop(
        &mut self,
        selector: &str,
        prop: &str,
        value: impl Serialize,
    ) -> Result<(), PatchError> {
        self.patch(&Patch::prop(selector, prop, value))
    }

    /// Inserts content on this page.
    pub fn insert_html(
        &mut self,
        selector: &str,
        position: Position,
        content: impl Into<Content>,
    ) -> Result<(), PatchError> {
        self.patch(&Patch::insert(selector, position, content))
    }

    /// Removes elements on this page.
    pub fn remove(&mut self, selector: &str) -> Result<(), PatchError> {
        self.patch(&Patch::remove(selector))
    }

    /// Runs JavaScript on this page; refused unless `[commander] exec_js = true`.
    pub fn exec_js(&mut self, js: &str) -> Result<(), PatchError> {
        self.patch(&Patch::Js { js: js.to_string() })
    }

    /// Applies `patch` on every page on `topic` (this one included). Encoded once.
    pub fn broadcast(&self, topic: &str, patch: &Patch) -> Result<(), PatchError> {
        self.hub.broadcast(topic, patch, None)
    }

    /// Applies `patch` on every page on `topic` except this one.
    pub fn broadcast_from(&self, topic: &str, patch: &Patch) -> Result<(), PatchError> {
        self.hub
            .broadcast(topic, patch, Some(self.socket.join_id()))
    }

    /// Sets the content of `selector` on every page on `topic`.
    pub fn broadcast_html(
        &self,
        topic: &str,
        selector: &str,
        content: impl Into<Content>,
    ) -> Result<(), PatchError> {
        self.broadcast(topic, &Patch::set(selector, content))
    }

    /// Sets a DOM property on every page on `topic` (a plain value; see
    /// [`Page::set_prop`]).
    pub fn broadcast_prop(
        &self,
        topic: &str,
        selector: &str,
        prop: &str,
        value: impl Serialize,
    ) -> Result<(), PatchError> {
        self.broadcast(topic, &Patch::prop(selector, prop, value))
    }

    /// Joins `topic` at run time: receives its broadcasts and is tracked on it. Returns
    /// `false` if the page is already on it.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.state.topics.iter().any(|t| t == topic) {
            return false;
        }
        self.socket.subscribe(topic);
        self.state.topics.push(topic.to_string());
        self.track(topic);
        self.remember_topics();
        true
    }

    /// Leaves a topic joined with [`Page::subscribe`] (or a broadcasting one): no more
    /// broadcasts, untracked. Returns `false` if the page was not on it.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let Some(at) = self.state.topics.iter().position(|t| t == topic) else {
            return false;
        };
        self.state.topics.remove(at);
        self.socket.unsubscribe(topic);
        self.untrack(Some(topic));
        // Older topics tokens of this browser still name the topic: refuse it from them.
        self.hub.revoke(&self.state.browser_id, topic);
        self.remember_topics();
        true
    }

    /// Gives the browser a signed copy of this page's topics, which tether.js sends back
    /// when it rejoins (after a reconnect), so runtime subscriptions survive it.
    fn remember_topics(&mut self) {
        let claims = TopicClaims {
            commander: self.state.commander.to_string(),
            path: self.state.path.clone(),
            browser_id: self.state.browser_id.clone(),
            issued_ms: self
                .hub
                .topics_issue_ms(&self.state.browser_id, &self.state.topics),
            topics: self.state.topics.clone(),
        };
        let token = self.hub.keys.sign("topics", &claims, unix_now());
        let _ = self.socket.push("topics", &json!({ "token": token }));
    }

    /// Tracks this page on `topic` per the commander's presence rule.
    pub(crate) fn track(&mut self, topic: &str) {
        let Some(presence) = self.hub.presence.clone() else {
            return;
        };
        let Some(commander) = self.hub.commanders.get(self.state.commander).cloned() else {
            return;
        };
        let Some((key, meta)) = commander.presence(self, topic) else {
            return;
        };
        match presence.track_on(self.socket, topic, &key, meta) {
            Ok(()) => self.state.tracked.push((topic.to_string(), key)),
            Err(err) => tracing::warn!(%topic, %key, "cannot track page: {err}"),
        }
    }

    /// Untracks this page from `topic`, or from every topic.
    pub(crate) fn untrack(&mut self, topic: Option<&str>) {
        let Some(presence) = &self.hub.presence else {
            return;
        };
        let owner = self.socket.join_id().get();
        self.state.tracked.retain(|(t, key)| {
            if topic.is_some_and(|topic| topic != t) {
                return true;
            }
            let _ = presence.untrack_owner(t, owner, key);
            false
        });
    }
}
