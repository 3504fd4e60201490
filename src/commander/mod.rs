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
//! 3. dispatches DOM events to **declared** handlers only ([`Commander::handlers`]), between
//!    [`Commander::before_handler`] and [`Commander::after_handler`], and messages to
//!    [`Commander::handle_info`];
//! 4. when the page goes away, untracks it and **then** runs [`Commander::on_disconnect`]
//!    with its last store and session, so a count taken there excludes it.
//!
//! Steps 2–4 run in the page's own task, one at a time and in order, while the connection
//! keeps reading: a handler can ask the browser ([`PageHandle::exec_js`],
//! [`PageHandle::query`], [`PageHandle::wait_for`], [`PageHandle::modal`]) and wait for the
//! answer, and a [`PageHandle`] lets a spawned task keep patching the page.
//!
//! Broadcasting topics: [`Broadcasting::SamePath`] (pages with the same path),
//! [`Broadcasting::SameCommander`], [`Broadcasting::Named`]; name them from outside a page
//! with [`same_path`], [`same_commander`], [`same_topic`].
//!
//! This module builds on the channel, presence and pub/sub layers' public APIs; it must
//! never import the endpoint (which mounts it).
//!
#![doc = include_str!("../../docs/page-channel.md")]

mod callbacks;
mod calls;
mod counters;
mod handle;
mod handlers;
mod held;
pub mod html;
mod hub;
mod live;
mod page;
mod page_channel;
mod patch;
mod presence_list;
mod runtime;
mod target;
#[cfg(feature = "fuzzing")]
pub(crate) use page_channel::admit_join_payload;
#[cfg(feature = "fuzzing")]
pub(crate) use page_channel::decode_payloads;
mod revocations;
mod script;
pub mod session;
pub mod token;
mod topics;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;

pub use callbacks::{Commander, Disconnected, Info, Outcome, Sender};
pub use calls::{CallError, MAX_PENDING_CALLS};
pub use handle::{DEFAULT_MODAL_TIMEOUT, Modal, ModalAnswer, PageHandle, Queried};
pub use handlers::{Handlers, IntoOutcome};
pub use html::Html;
pub use live::{LiveError, LiveRegion, LiveTemplate};
pub use page::{MAX_STORE_BYTES, Page};
pub use patch::{ConsoleLevel, Content, Cookie, Patch, PatchError, Position};
pub use presence_list::{ListKeys, MAX_LIST_FIELDS};
pub use script::PageOptions;
pub use target::Target;
pub use topics::{Broadcasting, same_commander, same_path, same_topic};

use crate::{
    channel::{Assigns, Router, SocketRoute},
    config::{CommanderConfig, IdSource, PresenceConfig},
    presence::Presence,
    pubsub::PubSub,
};
use callbacks::{DynCommander, Registered};
use hub::Hub;
use page_channel::PageChannel;
use token::Keys;

/// What a live counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Distinct presence keys.
    Users,
    /// Tracked pages.
    Connections,
}

/// Why [`CommandersBuilder::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The configuration is invalid (e.g. a `secret_key_base` too short to derive keys).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A presence was handed to the builder while `[presence] enabled = false`: pages would
    /// not be tracked and every count would stay 0.
    #[error(
        "a presence was given to the commanders but [presence] enabled = false, so pages would \
         never be tracked and counts would stay 0: set `presence.enabled = true`, or do not \
         call `.presence(..)`"
    )]
    PresenceDisabled,
    /// The presence was built on another pub/sub than the commanders': page broadcasts and
    /// presence would travel on two buses.
    #[error(
        "the presence given to the commanders uses another pub/sub than theirs, so broadcasts \
         and presence would travel on two buses: build both on one pub/sub (Endpoint::builder \
         does)"
    )]
    TwoPubSubs,
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
    config: CommanderConfig,
    /// `[presence] id`: where page presence keys come from.
    presence_id: Vec<IdSource>,
    /// `[presence] enabled`.
    track_pages: bool,
    secret: String,
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
    pub fn commander<C: Commander>(mut self, commander: C) -> CommandersBuilder {
        let name = commander.name();
        let registered = Registered {
            commander,
            handlers: C::handlers(),
        };
        self.commanders.insert(name, Arc::new(registered));
        self
    }

    /// Tracks pages in `presence` (which must use the builder's pub/sub, with
    /// `[presence] enabled = true`; [`CommandersBuilder::build`] refuses otherwise).
    pub fn presence(mut self, presence: Presence) -> CommandersBuilder {
        self.presence = Some(presence);
        self
    }

    /// Builds; spawns nothing (the live-counter task starts with [`Commanders::start`],
    /// which the endpoint calls). Fails, naming the key, when the secret is too short to
    /// derive keys from, and refuses a contradictory setup instead of running silently
    /// without it: a presence with `[presence] enabled = false`
    /// ([`BuildError::PresenceDisabled`]), or one on another pub/sub
    /// ([`BuildError::TwoPubSubs`]).
    pub fn build(self) -> Result<Commanders, BuildError> {
        let keys =
            Keys::from_secret(&self.secret).map_err(|err| crate::config::ConfigError::Invalid {
                key: "endpoint.secret_key_base".into(),
                reason: err.to_string(),
            })?;
        if let Some(presence) = &self.presence {
            if !self.track_pages {
                return Err(BuildError::PresenceDisabled);
            }
            if !Arc::ptr_eq(presence.pubsub(), &self.pubsub) {
                return Err(BuildError::TwoPubSubs);
            }
        }
        let presence = self.presence;
        let max_age_ms = self.config.topics_token_max_age_s.saturating_mul(1000);
        let revocations = revocations::Revocations::start(self.pubsub.clone(), max_age_ms);
        let commanders = Commanders {
            hub: Arc::new(Hub {
                keys,
                config: self.config,
                presence_id: self.presence_id,
                commanders: self.commanders,
                presence,
                pubsub: self.pubsub,
                counters: Mutex::new(HashMap::new()),
                presence_lists: Mutex::new(HashMap::new()),
                revocations,
                refused_lists: crate::drops::DropCounter::new(),
            }),
        };
        Ok(commanders)
    }
}

impl Commanders {
    /// Starts registering commanders, configured by `config` (`[commander]`), `presence`
    /// (`[presence]`: whether pages are tracked, and under which key) and `secret`
    /// (`endpoint.secret_key_base`, for tokens).
    pub fn builder(
        config: &CommanderConfig,
        presence: &PresenceConfig,
        secret: &str,
        pubsub: Arc<dyn PubSub>,
    ) -> CommandersBuilder {
        CommandersBuilder {
            config: config.clone(),
            presence_id: presence.id.clone(),
            track_pages: presence.enabled,
            secret: secret.to_string(),
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
        let mut allowed = hub.config.session_keys.clone();
        for source in &hub.presence_id {
            if let IdSource::Session(key) = source {
                if !allowed.contains(key) {
                    allowed.push(key.clone());
                }
            }
        }
        let router = Router::new().reserved_channel("tether:page:*", PageChannel::new(hub.clone()));
        let route = SocketRoute::new(&hub.config.socket_path, router)
            .max_frame_bytes(hub.config.max_frame_bytes);
        route.connect(move |info| {
            let session = session::read(
                info.request(),
                &hub.config.session_cookie,
                hub.config.session_cookie_security,
                &hub.keys,
                &allowed,
            );
            let mut assigns = Assigns::default();
            assigns.insert("session", Value::Object(session));
            let header = |name| {
                info.request()
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| crate::text::truncate_utf8(v, 512).to_string())
                    .unwrap_or_default()
            };
            assigns.insert("user_agent", header(actix_web::http::header::USER_AGENT));
            let languages = accept_language(&header(actix_web::http::header::ACCEPT_LANGUAGE));
            assigns.insert("languages", languages);
            Ok(assigns)
        })
    }

    /// Distinct presence keys on `topic` (0 when presence is off).
    pub fn count_users(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Users)
    }

    /// Tracked pages on `topic` (0 when presence is off).
    pub fn count_connections(&self, topic: &str) -> usize {
        self.hub.count(topic, Count::Connections)
    }

    /// Every page on `topic`, on every node, from outside any page (see [`Target`]):
    /// `commanders.to(topic).apply(patch)`.
    pub fn to<'a>(&'a self, topic: &'a str) -> Target<'a> {
        Target::new(&self.hub, topic, None)
    }

    /// Sends `payload` as `event` to the [`Commander::handle_info`] of every page that
    /// [listens](Page::listen) to `topic`, on every node.
    pub fn send_info(&self, topic: &str, event: &str, payload: &Value) {
        let info_topic = runtime::Feed::Info.topic(topic);
        let frame = crate::transport::frame::encode_broadcast(&info_topic, event, payload);
        self.hub.pubsub.broadcast(&info_topic, frame, None);
    }
}

/// The languages of an `Accept-Language` header, most preferred first (by `q`, then order);
/// at most 16.
fn accept_language(header: &str) -> Vec<String> {
    let mut weighted: Vec<(u16, usize, String)> = header
        .split(',')
        .take(16)
        .enumerate()
        .filter_map(|(at, part)| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            if tag.is_empty() || tag == "*" {
                return None;
            }
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q > 0.0).then(|| ((q.clamp(0.0, 1.0) * 1000.0) as u16, at, tag.to_string()))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    weighted.into_iter().map(|(_, _, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn languages_come_most_preferred_first() {
        assert_eq!(
            super::accept_language("fr;q=0.5, en-GB, de;q=0.8, *;q=0.1, x;q=0"),
            ["en-GB", "de", "fr"]
        );
        assert!(super::accept_language("").is_empty());
    }
}
