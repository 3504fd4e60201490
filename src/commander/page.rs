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
    /// Set a DOM property (`value`, `checked`, `disabled`, …).
    Prop {
        /// CSS selector.
        sel: String,
        /// Property name.
        prop: String,
        /// New value.
        value: Value,
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

/// Why a patch was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The page's connection is gone.
    #[error(transparent)]
    Closed(#[from] PushError),
    /// `exec_js` is off in the config.
    #[error("exec_js is disabled ([commander] exec_js = false)")]
    JsDisabled,
}

/// A page's topics, signed for the browser to send back on rejoin.
#[derive(Debug, serde::Deserialize, Serialize)]
pub(crate) struct TopicClaims {
    /// Commander.
    pub(crate) c: String,
    /// Path.
    pub(crate) p: String,
    /// Topics.
    pub(crate) t: Vec<String>,
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

    /// Sets a store value; the browser keeps the store, encrypted, and sends it back on
    /// every join (effective for presence on the next load).
    pub fn put_store(&mut self, key: &str, value: impl Serialize) -> Result<(), PushError> {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.state.store.insert(key.to_string(), value);
        let token = self
            .hub
            .keys
            .encrypt("store", &self.state.store, unix_now());
        self.socket.push("store", &json!({ "token": token }))
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

    /// Refuses a script patch unless `[commander] exec_js` is on.
    fn allow(&self, patch: &Patch) -> Result<(), PatchError> {
        if matches!(patch, Patch::Js { .. }) && !self.hub.config.commander.exec_js {
            return Err(PatchError::JsDisabled);
        }
        Ok(())
    }

    /// Applies `patch` to this page.
    pub fn patch(&mut self, patch: &Patch) -> Result<(), PatchError> {
        self.allow(patch)?;
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

    /// Sets a DOM property on this page.
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
        self.allow(patch)?;
        self.hub.broadcast(topic, patch, None);
        Ok(())
    }

    /// Applies `patch` on every page on `topic` except this one.
    pub fn broadcast_from(&self, topic: &str, patch: &Patch) -> Result<(), PatchError> {
        self.allow(patch)?;
        self.hub
            .broadcast(topic, patch, Some(self.socket.join_id()));
        Ok(())
    }

    /// Sets the content of `selector` on every page on `topic`.
    pub fn broadcast_html(&self, topic: &str, selector: &str, content: impl Into<Content>) {
        self.hub
            .broadcast(topic, &Patch::set(selector, content), None);
    }

    /// Sets a DOM property on every page on `topic`.
    pub fn broadcast_prop(&self, topic: &str, selector: &str, prop: &str, value: impl Serialize) {
        self.hub
            .broadcast(topic, &Patch::prop(selector, prop, value), None);
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
        self.remember_topics();
        true
    }

    /// Gives the browser a signed copy of this page's topics, which tether.js sends back
    /// when it rejoins (after a reconnect), so runtime subscriptions survive it.
    fn remember_topics(&mut self) {
        let claims = TopicClaims {
            c: self.state.commander.to_string(),
            p: self.state.path.clone(),
            t: self.state.topics.clone(),
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
