//! [`Page`]: what a commander's callbacks and handlers work with — the page's identity,
//! session, store and assigns, its topics and presence, what its browser said at connect;
//! and, through [`PageHandle`] (which it derefs to), patches and questions to the browser.
//!
//! A `Page` is owned by the page's task (see `runtime`): only the running callback or
//! handler holds it, so nothing here is locked. It must never be shared with another task
//! (hand out [`Page::handle`] instead).

use std::{collections::HashMap, ops::Deref, sync::Arc};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    PageHandle, PatchError,
    hub::Hub,
    runtime::{Feed, FeedSubscription, LiveUpdate},
    token::unix_now,
};
use crate::config::IdSource;

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

/// Per-join state of a page.
pub(crate) struct PageState {
    /// The page's commander.
    pub(crate) commander: &'static str,
    pub(crate) path: String,
    /// The URL the page shows (path and query): from the join, then every patch navigation.
    pub(crate) url: String,
    pub(crate) browser_id: String,
    pub(crate) session: Map<String, Value>,
    pub(crate) store: Map<String, Value>,
    /// Signed by the controller into the page token (see `PageOptions::assign`).
    pub(crate) assigns: Map<String, Value>,
    /// Assigns of the page's live regions, by name (see `live`).
    pub(crate) live: Map<String, Value>,
    /// Broadcast live assigns not decoded yet, oldest first (see `PageState::note_live`).
    pub(crate) live_frames: Vec<bytes::Bytes>,
    /// Broadcasting and subscribed topics, in order.
    pub(crate) topics: Vec<String>,
    /// From the upgrade request and the join.
    pub(crate) browser: BrowserInfo,
    /// This page load (`PageClaims::load`): live tokens made for the page carry it.
    pub(crate) load: u64,
}

/// Most broadcast live frames a page keeps undecoded; beyond it the oldest are decoded.
const MAX_LIVE_FRAMES: usize = 16;

impl PageState {
    /// Keeps a broadcast live frame for later: decoding it costs only when the page's live
    /// regions are read. Past [`MAX_LIVE_FRAMES`], the oldest is applied now.
    pub(crate) fn note_live(&mut self, frame: bytes::Bytes) {
        if self.live_frames.len() >= MAX_LIVE_FRAMES {
            let oldest = self.live_frames.remove(0);
            self.apply_live(&oldest);
        }
        self.live_frames.push(frame);
    }

    /// The current assigns of live region `name`: the newest broadcast kept for it, else the
    /// page's own copy.
    pub(crate) fn live_value(&self, name: &str) -> Option<Value> {
        let broadcast = self.live_frames.iter().rev().find_map(|frame| {
            decode_live(frame).filter(|u| u.commander == self.commander && u.name == name)
        });
        match broadcast {
            Some(update) => Some(update.assigns),
            None => self.live.get(name).cloned(),
        }
    }

    /// Keeps `value` as region `name`'s assigns, after every broadcast received before it.
    pub(crate) fn keep_live(&mut self, name: &str, value: Value) {
        self.settle_live();
        self.live.insert(name.to_string(), value);
    }

    /// Applies every kept broadcast live frame, oldest first.
    fn settle_live(&mut self) {
        for frame in std::mem::take(&mut self.live_frames) {
            self.apply_live(&frame);
        }
    }

    fn apply_live(&mut self, frame: &[u8]) {
        if let Some(update) = decode_live(frame) {
            if update.commander == self.commander {
                self.live.insert(update.name, update.assigns);
            }
        }
    }
}

/// A presence meta without the refs presence adds (`phx_ref`, `phx_ref_prev`).
fn without_refs(meta: &Value) -> Value {
    match meta {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| *k != "phx_ref" && *k != "phx_ref_prev")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The update in a broadcast live frame (`[null, null, topic, "live", update]`).
fn decode_live(frame: &[u8]) -> Option<LiveUpdate> {
    let (_, _, _, _, update) =
        serde_json::from_slice::<(Value, Value, Value, Value, LiveUpdate)>(frame).ok()?;
    Some(update)
}

/// What the browser told about itself when the page connected.
#[derive(Debug, Clone, Default)]
pub(crate) struct BrowserInfo {
    pub(crate) user_agent: String,
    pub(crate) languages: Vec<String>,
    pub(crate) utc_offset_minutes: Option<i32>,
}

/// One connected page, as its commander sees it in a callback or handler. Derefs to its
/// [`PageHandle`] (patches, broadcasts, browser round trips).
pub struct Page {
    pub(crate) handle: PageHandle,
    pub(crate) state: PageState,
    /// Topics listened to with [`Page::listen`].
    listens: HashMap<String, FeedSubscription>,
    /// Per topic, broadcast assigns of live regions (once the page has a live region).
    live_feeds: HashMap<String, FeedSubscription>,
    /// The commander's own per-page values (see [`Page::insert`]).
    extensions: actix_http::Extensions,
    /// Whether the browser has a topics token (it brought one to the join, or was given one
    /// by [`Page::remember_topics`]), which the page's task then keeps fresh.
    pub(crate) topics_given: bool,
    /// Whether [`Page::push_patch`] changed the URL since `handle_params` last ran.
    pub(crate) patched: bool,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("commander", &self.handle.commander())
            .field("path", &self.state.path)
            .field("browser_id", &self.state.browser_id)
            .field("topics", &self.state.topics)
            .finish_non_exhaustive()
    }
}

impl Deref for Page {
    type Target = PageHandle;

    fn deref(&self) -> &PageHandle {
        &self.handle
    }
}

impl Page {
    pub(crate) fn new(handle: PageHandle, state: PageState) -> Page {
        Page {
            handle,
            state,
            listens: HashMap::new(),
            live_feeds: HashMap::new(),
            extensions: actix_http::Extensions::new(),
            topics_given: false,
            patched: false,
        }
    }

    /// Keeps `value` with this page (one value per type) for its later callbacks and
    /// handlers, until it goes away — Drab's socket assigns. A reconnect starts afresh.
    ///
    /// ```
    /// # fn f(page: &mut tether::commander::Page) {
    /// #[derive(Default)]
    /// struct Filter(String);
    /// page.insert(Filter("milk".into()));
    /// assert_eq!(page.get::<Filter>().map(|f| f.0.as_str()), Some("milk"));
    /// # }
    /// ```
    pub fn insert<T: 'static>(&mut self, value: T) {
        self.extensions.insert(value);
    }

    /// The value of type `T` kept with [`Page::insert`].
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.extensions.get()
    }

    /// The value of type `T`, mutably; inserted as `T::default()` first if absent.
    pub fn get_mut<T: Default + 'static>(&mut self) -> &mut T {
        if !self.extensions.contains::<T>() {
            self.extensions.insert(T::default());
        }
        self.extensions
            .get_mut()
            .expect("inserted just above when absent")
    }

    fn hub(&self) -> &Arc<Hub> {
        &self.handle.0.hub
    }

    /// A handle to this page for other tasks (`Clone + Send + 'static`).
    pub fn handle(&self) -> PageHandle {
        self.handle.clone()
    }

    /// The request path the page was rendered for.
    pub fn path(&self) -> &str {
        &self.state.path
    }

    /// The URL the page shows, path and query (`/notes?q=milk`): the browser's at the join,
    /// then each patch navigation's. The browser's word, checked for shape only
    /// ([`local_url`](super::local_url)); [`Page::path`] is what the server rendered.
    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// The first value of query parameter `key` in [`Page::url`], decoded.
    ///
    /// ```
    /// # fn f(page: &tether::commander::Page) {
    /// let search = page.param("q").unwrap_or_default();
    /// # let _ = search;
    /// # }
    /// ```
    pub fn param(&self, key: &str) -> Option<String> {
        super::navigation::url_params(&self.state.url)
            .into_iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Every query parameter of [`Page::url`], decoded, in order (a key may repeat).
    pub fn params(&self) -> Vec<(String, String)> {
        super::navigation::url_params(&self.state.url)
    }

    /// Changes the URL of this page to `url` (a local path and query) without leaving it:
    /// the browser pushes a history entry (Back returns to the previous URL, calling
    /// `handle_params` again), and `Commander::handle_params` runs with the new URL once the
    /// running callback or handler has returned — for an event, before its reply (LiveView's
    /// `push_patch`). [`Page::url`] is the new URL at once. Refused (`UnsafeProp("url")`)
    /// for anything but a local URL.
    pub fn push_patch(&mut self, url: &str) -> Result<(), PatchError> {
        self.patch_url(url, super::navigation::NavKind::Patch)
    }

    /// [`Page::push_patch`], replacing the current history entry instead of adding one
    /// (to tidy a URL, say, from `handle_params`).
    pub fn replace_patch(&mut self, url: &str) -> Result<(), PatchError> {
        self.patch_url(url, super::navigation::NavKind::PatchReplace)
    }

    fn patch_url(&mut self, url: &str, kind: super::navigation::NavKind) -> Result<(), PatchError> {
        let url = super::navigation::send(&self.handle, kind, url)?;
        self.state.url = url;
        self.patched = true;
        Ok(())
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

    /// A value the controller signed into the page's token
    /// ([`PageOptions::assign`](super::PageOptions::assign)); the browser can read it but not
    /// change it.
    pub fn assign(&self, key: &str) -> Option<&Value> {
        self.state.assigns.get(key)
    }

    /// The browser's `User-Agent`, from the socket's upgrade request.
    pub fn user_agent(&self) -> &str {
        &self.state.browser.user_agent
    }

    /// The browser's languages, most preferred first, from `Accept-Language`.
    pub fn languages(&self) -> &[String] {
        &self.state.browser.languages
    }

    /// The browser's offset from UTC in minutes (east positive), if it said.
    pub fn utc_offset_minutes(&self) -> Option<i32> {
        self.state.browser.utc_offset_minutes
    }

    /// A store value.
    pub fn get_store(&self, key: &str) -> Option<&Value> {
        self.state.store.get(key)
    }

    /// Sets a store value; the browser keeps the store, encrypted and bound to its browser
    /// id, and sends it back on every join (effective for presence on the next load; see
    /// [`PageHandle::update_presence`] to show it now).
    /// Refused, changing nothing, if the encrypted store would exceed [`MAX_STORE_BYTES`].
    ///
    /// The store is the browser's to keep, as a cookie is: it lives
    /// `[commander] store_token_max_age_s` (30 days) from its last `put_store`, then a join
    /// refuses it (`store_rejected`) and the page starts with an empty store. Within that
    /// age the browser can send back an **older** store of its own instead of the latest
    /// (it cannot read, change or forge one, nor use another browser's): keep anything it
    /// must not roll back (credit, a one-time step) on the server.
    pub fn put_store(&mut self, key: &str, value: impl Serialize) -> Result<(), PatchError> {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        let presence_before = self.presence_now();
        let previous = self.state.store.insert(key.to_string(), value);
        let claims = StoreClaims {
            browser_id: self.state.browser_id.clone(),
            store: self.state.store.clone(),
        };
        let token = self.hub().keys.encrypt("store", &claims, unix_now());
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
        self.handle.push("store", &json!({ "token": token }))?;
        self.warn_if_presence_changed(key, presence_before)
    }

    /// In development, what the commander's `presence` makes of this page on its first
    /// tracked topic now (key and meta); `None` outside development or when untracked.
    fn presence_now(&self) -> Option<(String, Value)> {
        let hub = self.hub();
        if !hub.dev_warnings_on() {
            return None;
        }
        let topic = {
            let tracked = self.handle.0.tracked.lock();
            let tracked = tracked.unwrap_or_else(std::sync::PoisonError::into_inner);
            tracked.as_ref()?.first()?.0.clone()
        };
        hub.commanders
            .get(self.handle.commander())?
            .presence(self, &topic)
    }

    /// What presence holds for this page on its first tracked topic now (key and meta).
    fn presence_tracked_now(&self) -> Option<(String, Value)> {
        let topic = {
            let tracked = self.handle.0.tracked.lock();
            let tracked = tracked.unwrap_or_else(std::sync::PoisonError::into_inner);
            tracked.as_ref()?.first()?.0.clone()
        };
        self.handle.0.tracked_meta(&topic)
    }

    /// In development, when `put_store(key, …)` changed what presence would show of this
    /// page (its key through `[presence] id`, or the meta the commander's `presence` reads
    /// from the store): presence keeps what the page joined with until the next load, which
    /// would otherwise go unnoticed (logged once per name, and a `warning` push for the
    /// browser's console).
    fn warn_if_presence_changed(
        &self,
        key: &str,
        before: Option<(String, Value)>,
    ) -> Result<(), PatchError> {
        let Some(before) = before else {
            return Ok(());
        };
        let Some((next_key, next_meta)) = self.presence_now().filter(|now| *now != before) else {
            return Ok(());
        };
        // Presence already shows it (`update_presence` ran first): nothing goes unnoticed.
        if self.presence_tracked_now().is_some_and(|(key, meta)| {
            key == next_key && without_refs(&meta) == without_refs(&next_meta)
        }) {
            return Ok(());
        }
        let message = format!(
            "store value {key:?} changes this page's presence (key {:?}, meta {}), but presence \
             keeps what the page joined with until the next load or reconnect (call \
             page.update_presence first to show it now)",
            crate::text::for_log(&next_key),
            crate::text::for_log(&next_meta.to_string()),
        );
        match self.hub().dev_warning("store", key, message) {
            Some(reason) => Ok(self.handle.push("warning", &json!({ "reason": reason }))?),
            None => Ok(()),
        }
    }

    /// The page's topics (broadcasting, then subscribed).
    pub fn topics(&self) -> &[String] {
        &self.state.topics
    }

    /// The page's presence key: the first of `[presence] id` that has a value, else the
    /// browser id.
    pub fn presence_key(&self) -> String {
        for source in &self.hub().presence_id {
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

    /// Joins `topic` at run time: receives its broadcasts and is tracked on it. Returns
    /// `false` if the page is already on it (or gone).
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if self.state.topics.iter().any(|t| t == topic) {
            return false;
        }
        if self.handle.0.socket.subscribe(topic) != Ok(true) {
            return false;
        }
        self.state.topics.push(topic.to_string());
        self.follow_live();
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
        self.live_feeds.remove(topic);
        let _ = self.handle.0.socket.unsubscribe(topic);
        self.handle.0.untrack(Some(topic));
        // Older topics tokens of this browser still name the topic: refuse it from them.
        self.hub().revoke(&self.state.browser_id, topic);
        self.remember_topics();
        true
    }

    /// Delivers messages sent with [`Commanders::send_info`](super::Commanders::send_info)
    /// to `topic` (on any node) to this page's
    /// [`Commander::handle_info`](super::Commander::handle_info), until
    /// [`Page::unlisten`] or the page goes away. Returns `false` if already listening.
    ///
    /// Messages share the page's bounded queue (`[commander] max_queued_events`) with its
    /// events; one arriving while the queue is full is dropped (counted and logged), so treat
    /// a message as "something changed", not as a delta to apply.
    pub fn listen(&mut self, topic: &str) -> bool {
        if self.listens.contains_key(topic) || self.handle.is_gone() {
            return false;
        }
        let subscription = FeedSubscription::new(self.hub(), Feed::Info, topic, &self.handle);
        self.listens.insert(topic.to_string(), subscription);
        true
    }

    /// Keeps this page's live regions' assigns current when they are broadcast to one of its
    /// topics (`Target::put_live`): from its first live region on, the page follows
    /// the live feed of every topic it is on.
    pub(crate) fn follow_live(&mut self) {
        if self.state.live.is_empty() || self.handle.is_gone() {
            return;
        }
        let hub = self.hub().clone();
        for topic in &self.state.topics {
            if !self.live_feeds.contains_key(topic) {
                let feed = FeedSubscription::new(&hub, Feed::Live, topic, &self.handle);
                self.live_feeds.insert(topic.clone(), feed);
            }
        }
    }

    /// Stops [`Page::listen`]ing to `topic`; `false` if it was not.
    pub fn unlisten(&mut self, topic: &str) -> bool {
        self.listens.remove(topic).is_some()
    }

    /// Gives the browser a signed copy of this page's topics, which tether.js sends back
    /// when it rejoins (after a reconnect), so runtime subscriptions survive it. A copy is
    /// refused after `[commander] topics_token_max_age_s`: the page's task sends a fresh one
    /// every half of that while the page is connected ([`Page::refresh_topics`]).
    fn remember_topics(&mut self) {
        self.topics_given = true;
        let hub = self.hub();
        let claims = TopicClaims {
            commander: self.handle.commander().to_string(),
            path: self.state.path.clone(),
            browser_id: self.state.browser_id.clone(),
            issued_ms: hub.topics_issue_ms(&self.state.browser_id, &self.state.topics),
            topics: self.state.topics.clone(),
        };
        let token = hub.keys.sign("topics", &claims, unix_now());
        let _ = self.handle.push("topics", &json!({ "token": token }));
    }

    /// Sends the browser a fresh topics token, if it was ever given one (a page that never
    /// changed its topics at run time rejoins with its broadcasting topics anyway).
    pub(crate) fn refresh_topics(&mut self) {
        if self.topics_given && !self.handle.is_gone() {
            self.remember_topics();
        }
    }

    /// Tracks this page on `topic` per its commander's presence rule (not once it is gone).
    pub(crate) fn track(&mut self, topic: &str) {
        let hub = self.hub().clone();
        let Some(commander) = hub.commanders.get(self.handle.commander()) else {
            return;
        };
        if let Some((key, meta)) = commander.presence(self, topic) {
            self.handle.0.track(topic, key, meta);
        }
    }
}
