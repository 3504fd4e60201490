//! [`Page`]: what a commander's callbacks and handlers work with — the page's identity,
//! session and store, its topics, and patches to it or to every page on a topic.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    Count,
    hub::Hub,
    patch::{Content, Patch, PatchError, Position},
    token::unix_now,
};
use crate::{channel::Socket, config::IdSource, presence::OwnerId};

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
        for source in &self.hub.presence_id {
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

    /// Sets the content of `selector` on this page (markup for [`Html`](super::Html), text
    /// otherwise).
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
        let owner = OwnerId::of(self.socket);
        self.state.tracked.retain(|(t, key)| {
            if topic.is_some_and(|topic| topic != t) {
                return true;
            }
            let _ = presence.untrack_owner(t, owner, key);
            false
        });
    }
}
