//! Commanders: the Drab layer. Server-side Rust that reacts to a page's connects,
//! disconnects and DOM events, and patches that page or every page on a topic.
//!
//! A page rendered by the server includes [`Commanders::script`] (the tether.js tag with a
//! signed page token). tether.js joins the page channel `tether:page:<commander>` with that
//! token, the page's signed browser id and its encrypted store. The commander then:
//!
//! 1. tracks the page in presence on each of its broadcasting topics (when presence is
//!    enabled) — **before** `on_connect`, so a count taken there includes this page;
//! 2. runs [`Commander::on_connect`] (every join, also after reconnects) and, on the first
//!    join of a page load, [`Commander::on_load`];
//! 3. dispatches DOM events to **declared** handlers only ([`Commander::HANDLERS`]), between
//!    [`Commander::before_handler`] and [`Commander::after_handler`];
//! 4. when the page goes away, untracks it and **then** runs [`Commander::on_disconnect`]
//!    with its last store and session, so a count taken there excludes it.
//!
//! Broadcasting topics: [`Broadcasting::SamePath`] (pages with the same path),
//! [`Broadcasting::SameCommander`], [`Broadcasting::Named`]; name them from outside a page
//! with [`same_path`], [`same_commander`], [`same_topic`].
//!
//! This module builds on the channel, presence and pub/sub layers' public APIs; it must
//! never import the endpoint (which mounts it).
//!
#![doc = include_str!("../../docs/page-channel.md")]

pub mod html;
mod page;
mod page_channel;
#[cfg(feature = "fuzzing")]
pub(crate) use page_channel::decode_payloads;
mod revocations;
pub mod session;
pub mod token;

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix_web::HttpRequest;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use html::Html;
pub use page::{Content, MAX_STORE_BYTES, Page, Patch, PatchError, Position};

use crate::{
    channel::{Assigns, BoxError, Router, SocketRoute, TETHER_JS_ROUTE, socket_route_name},
    config::{Config, IdSource},
    presence::Presence,
    pubsub::PubSub,
    transport::frame::encode_broadcast,
};
use page_channel::PageChannel;
use token::{Keys, unix_now};

/// Pages sharing broadcasts (and presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcasting {
    /// Every page with the same request path.
    SamePath,
    /// Every page of the same commander.
    SameCommander,
    /// Every page of every commander that names this topic.
    Named(String),
}

/// The topic shared by pages broadcasting [`Broadcasting::Named`]`(name)`.
pub fn same_topic(name: &str) -> String {
    format!("tether:topic:{name}")
}

/// The topic shared by pages of `path` ([`Broadcasting::SamePath`]).
pub fn same_path(path: &str) -> String {
    format!("tether:path:{path}")
}

/// The topic shared by pages of commander `name` ([`Broadcasting::SameCommander`]).
pub fn same_commander(name: &str) -> String {
    format!("tether:commander:{name}")
}

/// What a DOM event sends: the element and, inside a form, the form's values.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Sender {
    /// The element's `id`.
    pub id: String,
    /// The element's `name`.
    pub name: String,
    /// The element's `value` (inputs, selects, buttons).
    pub value: String,
    /// The element's `data-*` attributes.
    pub dataset: Map<String, Value>,
    /// The enclosing form's fields (name or id → value; checked boxes only).
    pub form: Map<String, Value>,
    /// The DOM event: `type`, and `key` for keyboard events.
    pub event: Map<String, Value>,
}

/// What is left of a page once it is gone; handed to [`Commander::on_disconnect`].
#[derive(Debug, Clone, PartialEq)]
pub struct Disconnected {
    /// The page's request path.
    pub path: String,
    /// The page's browser id.
    pub browser_id: String,
    /// The page's last store.
    pub store: Map<String, Value>,
    /// The page's session (allowed keys).
    pub session: Map<String, Value>,
    /// The topics the page was on.
    pub topics: Vec<String>,
}

/// A page's behaviour on the server. Only `name` is required.
///
/// ```
/// use tether::commander::{Broadcasting, Commander, Page, same_topic};
/// use tether::channel::BoxError;
///
/// struct Counter;
///
/// impl Commander for Counter {
///     const HANDLERS: &'static [&'static str] = &[];
///     fn name(&self) -> &'static str { "counter" }
///     fn broadcasting(&self) -> Vec<Broadcasting> { vec![Broadcasting::Named("global".into())] }
///     async fn on_connect(&self, page: &mut Page<'_>) -> Result<(), BoxError> {
///         let users = page.count_users(&same_topic("global"));
///         // A string is text: it is shown literally, never parsed as HTML.
///         page.broadcast_html(&same_topic("global"), "#number_of_users", users.to_string());
///         Ok(())
///     }
/// }
/// ```
pub trait Commander: Send + Sync + 'static {
    /// The handlers a page may call; any other name is refused (error reply, logged).
    const HANDLERS: &'static [&'static str];

    /// The commander's name (in page tokens and topics).
    fn name(&self) -> &'static str;

    /// The topics this commander's pages share. Default: same path.
    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::SamePath]
    }

    /// Every (re)join of a page, after it is tracked.
    fn on_connect(&self, page: &mut Page<'_>) -> impl Future<Output = Result<(), BoxError>> {
        let _ = page;
        async { Ok(()) }
    }

    /// The first join of a page load, after `on_connect`.
    fn on_load(&self, page: &mut Page<'_>) -> impl Future<Output = Result<(), BoxError>> {
        let _ = page;
        async { Ok(()) }
    }

    /// The page is gone (closed, navigated away, connection lost); it is already untracked.
    /// `commanders` reaches the other pages (counts, broadcasts).
    fn on_disconnect(
        &self,
        gone: &Disconnected,
        commanders: &Commanders,
    ) -> impl Future<Output = ()> {
        let _ = (gone, commanders);
        async {}
    }

    /// Runs before each handler; returning `false` skips the handler and `after_handler`.
    fn before_handler(
        &self,
        handler: &str,
        page: &mut Page<'_>,
        sender: &Sender,
    ) -> impl Future<Output = bool> {
        let _ = (handler, page, sender);
        async { true }
    }

    /// Runs a declared handler.
    fn handle_event(
        &self,
        handler: &str,
        page: &mut Page<'_>,
        sender: Sender,
    ) -> impl Future<Output = Result<(), BoxError>> {
        let _ = (page, sender);
        let handler = handler.to_string();
        async move { Err(format!("handler `{handler}` is declared but not implemented").into()) }
    }

    /// Runs after each handler that ran, with its outcome.
    fn after_handler(
        &self,
        handler: &str,
        page: &mut Page<'_>,
        sender: &Sender,
        outcome: &Result<(), String>,
    ) -> impl Future<Output = ()> {
        let _ = (handler, page, sender, outcome);
        async {}
    }

    /// The presence key and meta of `page` on `topic`; `None` does not track it there.
    /// Default: the key from `[presence] id` (falling back to the browser id), meta `{}`.
    fn presence(&self, page: &Page<'_>, topic: &str) -> Option<(String, Value)> {
        let _ = topic;
        Some((page.presence_key(), json!({})))
    }
}

/// Object-safe form of [`Commander`].
pub(crate) trait DynCommander: Send + Sync {
    fn handlers(&self) -> &'static [&'static str];
    fn broadcasting(&self) -> Vec<Broadcasting>;
    fn on_connect<'a>(&'a self, page: &'a mut Page<'_>)
    -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn on_load<'a>(&'a self, page: &'a mut Page<'_>) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn on_disconnect<'a>(
        &'a self,
        gone: &'a Disconnected,
        commanders: &'a Commanders,
    ) -> LocalBoxFuture<'a, ()>;
    fn before_handler<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: &'a Sender,
    ) -> LocalBoxFuture<'a, bool>;
    fn handle_event<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: Sender,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn after_handler<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: &'a Sender,
        outcome: &'a Result<(), String>,
    ) -> LocalBoxFuture<'a, ()>;
    fn presence(&self, page: &Page<'_>, topic: &str) -> Option<(String, Value)>;
}

impl<C: Commander> DynCommander for C {
    fn handlers(&self) -> &'static [&'static str] {
        C::HANDLERS
    }
    fn broadcasting(&self) -> Vec<Broadcasting> {
        Commander::broadcasting(self)
    }
    fn on_connect<'a>(
        &'a self,
        page: &'a mut Page<'_>,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Commander::on_connect(self, page))
    }
    fn on_load<'a>(&'a self, page: &'a mut Page<'_>) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Commander::on_load(self, page))
    }
    fn on_disconnect<'a>(
        &'a self,
        gone: &'a Disconnected,
        commanders: &'a Commanders,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(Commander::on_disconnect(self, gone, commanders))
    }
    fn before_handler<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: &'a Sender,
    ) -> LocalBoxFuture<'a, bool> {
        Box::pin(Commander::before_handler(self, handler, page, sender))
    }
    fn handle_event<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: Sender,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(Commander::handle_event(self, handler, page, sender))
    }
    fn after_handler<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page<'_>,
        sender: &'a Sender,
        outcome: &'a Result<(), String>,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(Commander::after_handler(
            self, handler, page, sender, outcome,
        ))
    }
    fn presence(&self, page: &Page<'_>, topic: &str) -> Option<(String, Value)> {
        Commander::presence(self, page, topic)
    }
}

/// What a live counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Distinct presence keys.
    Users,
    /// Tracked pages.
    Connections,
}

/// Claims inside a page token.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PageClaims {
    /// Commander.
    #[serde(rename = "c")]
    pub(crate) commander: String,
    /// Request path.
    #[serde(rename = "p")]
    pub(crate) path: String,
}

pub(crate) struct Hub {
    pub(crate) keys: Keys,
    pub(crate) config: Config,
    pub(crate) commanders: HashMap<&'static str, Arc<dyn DynCommander>>,
    pub(crate) presence: Option<Presence>,
    pub(crate) pubsub: Arc<dyn PubSub>,
    /// Last counts sent per counter topic, to send only changes.
    counters: Mutex<HashMap<String, (usize, usize)>>,
    /// Runtime unsubscribes, shared by every node (see [`Hub::revoke`]).
    revocations: Arc<revocations::Revocations>,
}

/// Why [`CommandersBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration is invalid (e.g. a `secret_key_base` too short to derive keys).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Every commander of an app, with what they share: keys, presence, pub/sub. Cheap to clone.
#[derive(Clone)]
pub struct Commanders {
    pub(crate) hub: Arc<Hub>,
}

impl std::fmt::Debug for Commanders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commanders")
            .field(
                "commanders",
                &self.hub.commanders.keys().collect::<Vec<_>>(),
            )
            .field("tracks_pages", &self.hub.presence.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds [`Commanders`].
pub struct CommandersBuilder {
    config: Config,
    pubsub: Arc<dyn PubSub>,
    presence: Option<Presence>,
    commanders: HashMap<&'static str, Arc<dyn DynCommander>>,
}

impl std::fmt::Debug for CommandersBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandersBuilder")
            .field("commanders", &self.commanders.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl CommandersBuilder {
    /// Registers a commander.
    pub fn commander(mut self, commander: impl Commander) -> CommandersBuilder {
        self.commanders
            .insert(Commander::name(&commander), Arc::new(commander));
        self
    }

    /// Tracks pages in `presence` (unless `[presence] enabled = false`).
    pub fn presence(mut self, presence: Presence) -> CommandersBuilder {
        self.presence = Some(presence);
        self
    }

    /// Validates the config and builds; spawns nothing (the live-counter task starts with
    /// [`Commanders::start`], which the endpoint calls). Fails, naming the key, on an invalid
    /// config (such as a `secret_key_base` too short to derive keys from).
    pub fn build(self) -> Result<Commanders, BuildError> {
        self.config.validate()?;
        let keys = Keys::from_secret(&self.config.endpoint.secret_key_base).map_err(|err| {
            crate::config::ConfigError::Invalid {
                key: "endpoint.secret_key_base".into(),
                reason: err.to_string(),
            }
        })?;
        let presence = self.presence.filter(|_| self.config.presence.enabled);
        let max_age_ms = self
            .config
            .commander
            .page_token_max_age_s
            .saturating_mul(1000);
        let revocations = revocations::Revocations::start(self.pubsub.clone(), max_age_ms);
        let commanders = Commanders {
            hub: Arc::new(Hub {
                keys,
                config: self.config,
                commanders: self.commanders,
                presence,
                pubsub: self.pubsub,
                counters: Mutex::new(HashMap::new()),
                revocations,
            }),
        };
        Ok(commanders)
    }
}

impl Commanders {
    /// Starts registering commanders.
    pub fn builder(config: &Config, pubsub: Arc<dyn PubSub>) -> CommandersBuilder {
        CommandersBuilder {
            config: config.clone(),
            pubsub,
            presence: None,
            commanders: HashMap::new(),
        }
    }

    /// The keys tokens are made with (hand [`Keys::key`] to actix-session to share it).
    pub fn keys(&self) -> &Keys {
        &self.hub.keys
    }

    /// The socket route pages connect to (`[commander] socket_path`). Its connect hook
    /// reads the session cookie.
    pub fn socket_route(&self) -> SocketRoute {
        let hub = self.hub.clone();
        let mut allowed = hub.config.commander.session_keys.clone();
        for source in &hub.config.presence.id {
            if let IdSource::Session(key) = source {
                if !allowed.contains(key) {
                    allowed.push(key.clone());
                }
            }
        }
        let router = Router::new().channel("tether:page:*", PageChannel { hub: hub.clone() });
        SocketRoute::new(&hub.config.commander.socket_path, router).connect(move |info| {
            let session = session::read(
                info.request(),
                &hub.config.commander.session_cookie,
                &hub.keys,
                &allowed,
            );
            let mut assigns = Assigns::default();
            assigns.insert("session", Value::Object(session));
            Ok(assigns)
        })
    }

    /// The tags a page of `commander` includes (`{{ script }}` in askama): tether.js and
    /// a signed token naming the commander and the request's path. The script and socket
    /// paths are where the endpoint's routes are mounted (under a `web::scope` too).
    ///
    /// Panics if `commander` is not registered (a programming error, caught at the first
    /// render).
    pub fn script(&self, commander: &str, request: &HttpRequest) -> Html {
        assert!(
            self.hub.commanders.contains_key(commander),
            "commander `{commander}` is not registered"
        );
        let claims = PageClaims {
            commander: commander.to_string(),
            path: request.path().to_string(),
        };
        let token = self.hub.keys.sign("page", &claims, unix_now());
        // Where the endpoint is mounted (under a scope, say), as actix knows it.
        let path_of = |name: &str| {
            request
                .url_for_static(name)
                .ok()
                .map(|url| url.path().to_string())
        };
        let socket_path = &self.hub.config.commander.socket_path;
        let src = path_of(TETHER_JS_ROUTE).unwrap_or_else(|| "/tether.js".to_string());
        let socket = path_of(&socket_route_name(socket_path))
            .and_then(|p| p.strip_suffix("/websocket").map(str::to_string))
            .unwrap_or_else(|| socket_path.clone());
        Html::trusted(format!(
            r#"<script src="{}" data-tether-socket="{}" data-tether-commander="{}" data-tether-token="{}" defer></script>"#,
            Html::escape(&src),
            Html::escape(&socket),
            Html::escape(commander),
            Html::escape(&token),
        ))
    }

    /// A live counter for a template: `<span data-tether-count=…>N</span>` showing the
    /// users (or connections) on `topic` now, kept current by tether.js without any
    /// commander code (refreshed at most every `[commander] counter_interval_ms`).
    /// The page must be on `topic` (one of its broadcasting topics).
    pub fn counter(&self, topic: &str, count: Count) -> Html {
        let kind = match count {
            Count::Users => "users",
            Count::Connections => "connections",
        };
        let n = self.hub.count(topic, count);
        Html::trusted(format!(
            r#"<span data-tether-count="{kind}" data-tether-topic="{}">{n}</span>"#,
            Html::escape(topic)
        ))
    }

    /// Distinct presence keys on `topic` (0 when presence is off).
    pub fn count_users(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Users)
    }

    /// Tracked pages on `topic` (0 when presence is off).
    pub fn count_connections(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Connections)
    }

    /// Applies `patch` on every page on `topic`, from outside any page. Refused like any
    /// patch: script without `exec_js`, a plain value for a markup property.
    pub fn broadcast(&self, topic: &str, patch: &Patch) -> Result<(), PatchError> {
        self.hub.broadcast(topic, patch, None)
    }

    /// Sets the inner HTML (or text) of `selector` on every page on `topic`.
    pub fn broadcast_html(
        &self,
        topic: &str,
        selector: &str,
        content: impl Into<Content>,
    ) -> Result<(), PatchError> {
        self.broadcast(topic, &Patch::set(selector, content))
    }

    /// Spawns the live-counter task on `tasks` (when pages are tracked in presence); it runs
    /// until `shutdown`. Needs a tokio runtime; the endpoint calls it once.
    pub fn start(&self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        if self.hub.presence.is_some() {
            tasks.spawn(self.clone().refresh_counters(shutdown.clone()));
        }
    }

    /// Sends changed counts of every counter topic to its pages, every interval.
    async fn refresh_counters(self, shutdown: CancellationToken) {
        let period = Duration::from_millis(self.hub.config.commander.counter_interval_ms);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => self.hub.send_counts(),
            }
        }
    }
}

impl Hub {
    /// Users or connections on `topic` (0 when presence is off).
    pub(crate) fn count(&self, topic: &str, count: Count) -> usize {
        self.presence.as_ref().map_or(0, |presence| match count {
            Count::Users => presence.count_users(topic),
            Count::Connections => presence.count_connections(topic),
        })
    }

    /// The one check every patch passes, wherever it is sent from (a page, a broadcast,
    /// [`Commanders`]): see [`Patch`].
    pub(crate) fn check(&self, patch: &Patch) -> Result<(), PatchError> {
        patch.check(self.config.commander.exec_js)
    }

    pub(crate) fn broadcast(
        &self,
        topic: &str,
        patch: &Patch,
        except: Option<crate::pubsub::SubscriberId>,
    ) -> Result<(), PatchError> {
        self.check(patch)?;
        let frame = encode_broadcast(topic, "patch", patch);
        self.pubsub.broadcast(topic, frame, except);
        Ok(())
    }

    /// Records that `browser` left `topic` now: topics tokens of that browser issued
    /// before now no longer bring the topic back (on every node).
    pub(crate) fn revoke(&self, browser: &str, topic: &str) {
        self.revocations.revoke(browser, topic);
    }

    /// Whether a topics token of `browser` issued at `issued_ms` may still name `topic`.
    pub(crate) fn may_rejoin(&self, browser: &str, topic: &str, issued_ms: u64) -> bool {
        !self.revocations.is_revoked(browser, topic, issued_ms)
    }

    /// The issue time for a new topics token of `browser` naming `topics`: now, or just
    /// after the latest time the browser left one of them (a page that leaves and rejoins a
    /// topic within a millisecond keeps it).
    pub(crate) fn topics_issue_ms(&self, browser: &str, topics: &[String]) -> u64 {
        topics
            .iter()
            .filter_map(|topic| self.revocations.left_at(browser, topic))
            .map(|at| at + 1)
            .fold(token::unix_now_ms(), u64::max)
    }

    /// The counter topic of `topic`: pages showing its counts subscribe to it.
    pub(crate) fn counter_topic(topic: &str) -> String {
        format!("tether:count:{topic}")
    }

    /// Registers interest in `topic`'s counts (a page with a counter joined).
    pub(crate) fn watch_counter(&self, topic: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .entry(topic.to_string())
            .or_insert((usize::MAX, usize::MAX));
    }

    fn send_counts(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.retain(|topic, last| {
            let counter_topic = Hub::counter_topic(topic);
            if self.pubsub.local_subscriber_count(&counter_topic) == 0 {
                return false; // nobody shows it any more
            }
            let now = (
                presence.count_users(topic),
                presence.count_connections(topic),
            );
            if now != *last {
                *last = now;
                let payload = json!({"topic": topic, "users": now.0, "connections": now.1});
                let frame = encode_broadcast(&counter_topic, "count", &payload);
                self.pubsub.local_broadcast(&counter_topic, frame, None);
            }
            true
        });
    }
}
