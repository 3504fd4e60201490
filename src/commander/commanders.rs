//! [`Commanders`]: every commander of an app and what they share, as the app sees it — how
//! they are built ([`CommandersBuilder`]), the page socket, counts and presence lists, patches
//! to a topic from outside any page, messages to listening pages, live counters, the script
//! tag a page includes, and live regions for controllers. Each method is here; the work
//! behind the longer ones lives in the file named for its job (counters, presence lists,
//! script tag, live regions, the page socket).
//!
//! It must never hold a page's state (pages hold their own; the hub holds what is shared).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use actix_web::HttpRequest;
use serde_json::Value;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    Commander, Count, Html, ListKeys, LiveError, LiveRegion, LiveTemplate, PageOptions, Target,
    callbacks::{DynCommander, Registered},
    connect,
    hub::Hub,
    revocations, runtime, script,
    token::Keys,
};
use crate::{
    channel::SocketRoute,
    config::{CommanderConfig, IdSource, PresenceConfig},
    presence::{Presence, Presences},
    pubsub::PubSub,
};

/// Why the commanders could not be built (the endpoint's `build` returns it).
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

/// Builds [`Commanders`]: crate-private, as the endpoint is the one wiring path
/// (`Endpoint::builder`), which also builds the dashboard's own commanders with it.
pub(crate) struct CommandersBuilder {
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
    pub(crate) fn commander<C: Commander>(mut self, commander: C) -> CommandersBuilder {
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
    pub(crate) fn presence(mut self, presence: Presence) -> CommandersBuilder {
        self.presence = Some(presence);
        self
    }

    /// Builds; spawns nothing (the live-counter task starts with [`Commanders::start`],
    /// which the endpoint calls). Fails, naming the key, when the secret is too short to
    /// derive keys from, and refuses a contradictory setup instead of running silently
    /// without it: a presence with `[presence] enabled = false`
    /// ([`BuildError::PresenceDisabled`]), or one on another pub/sub
    /// ([`BuildError::TwoPubSubs`]).
    pub(crate) fn build(self) -> Result<Commanders, BuildError> {
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
                dev_warned: Default::default(),
            }),
        };
        Ok(commanders)
    }
}

impl Commanders {
    /// Starts registering commanders, configured by `config` (`[commander]`), `presence`
    /// (`[presence]`: whether pages are tracked, and under which key) and `secret`
    /// (`endpoint.secret_key_base`, for tokens).
    pub(crate) fn builder(
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
    pub(crate) fn socket_route(&self) -> SocketRoute {
        connect::socket_route(&self.hub)
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
    /// [listens](super::Page::listen) to `topic`, on every node.
    pub fn send_info(&self, topic: &str, event: &str, payload: &Value) {
        let info_topic = runtime::Feed::Info.topic(topic);
        let frame = crate::transport::frame::encode_broadcast(&info_topic, event, payload);
        self.hub.pubsub.broadcast(&info_topic, frame, None);
    }

    /// Everyone on `topic` (key → metas), as presence tracks them now; empty when pages
    /// are not tracked.
    pub fn list(&self, topic: &str) -> Presences {
        self.hub.list(topic)
    }

    /// A live counter for a template: `<span data-tether-count=…>N</span>` showing the
    /// users (or connections) on `topic`, kept current by tether.js without any commander
    /// code (refreshed at most every `[commander] counter_interval_ms`). The page must be on
    /// `topic` (one of its broadcasting topics).
    ///
    /// The first paint counts the page being served, which is not tracked until its socket
    /// joins: connections are the current number plus one, users at least one (its user may
    /// already be counted through another tab, so not always plus one). A lone reader never
    /// sees "0".
    pub fn counter(&self, topic: &str, count: Count) -> Html {
        self.hub.counter(topic, count)
    }

    /// Spawns the live-counter task on `tasks` (when pages are tracked in presence); it runs
    /// until `shutdown`. Needs a tokio runtime; the endpoint calls it once.
    pub(crate) fn start(&self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        if self.hub.presence.is_some() {
            tasks.spawn(self.hub.clone().refresh_counters(shutdown.clone()));
        }
    }

    /// The tags a page of `commander` includes (`{{ script }}` in askama): tether.js and
    /// a signed token naming the commander and the request's path. The script and socket
    /// paths are where the endpoint's routes are mounted (under a `web::scope` too).
    ///
    /// Panics if `commander` is not registered (a programming error, caught at the first
    /// render).
    pub fn script(&self, commander: &str, request: &HttpRequest) -> Html {
        self.script_with(commander, request, &PageOptions::new())
    }

    /// [`Commanders::script`] with shared commanders and assigns in the token (Drab's
    /// `Drab.Client.run(conn, assigns)`).
    pub fn script_with(
        &self,
        commander: &str,
        request: &HttpRequest,
        options: &PageOptions,
    ) -> Html {
        script::render(&self.hub, commander, request, options)
    }

    /// A live presence list for a template: `<ul data-tether-presence=…>` with one
    /// `<li data-tether-key="<key>">` per presence key on `topic` (its `.key` and its number of
    /// `.connections`), kept current by the server without commander code (at most every
    /// `[commander] counter_interval_ms`, only when it changed), morphed in place. The page
    /// must be on `topic`.
    ///
    /// Presence keys are shown as they are: every page showing the list sees them (use
    /// [`Commanders::presence_list_with_keys`] with [`ListKeys::Hashed`] to keep them).
    pub fn presence_list(&self, topic: &str) -> Html {
        self.hub.presence_list(topic)
    }

    /// A live presence list drawn with the app's own fragment per entry: `item` is markup
    /// whose elements with `data-field="<name>"` show, as text, the entry's `key`, its number
    /// of `connections`, or the field `<name>` of its meta — only the `fields` named here
    /// leave the server (at most [`MAX_LIST_FIELDS`](super::MAX_LIST_FIELDS) plain names), with each entry's presence
    /// key, which is public to every page showing the list (see
    /// [`Commanders::presence_list_with_keys`] to hash it). tether.js keeps it current on the
    /// counters' tick, without commander code; the page must be on `topic`. Entries are in
    /// key order, one per key (`data-tether-key` on each). A key with several tabs shows the
    /// meta of the tab that joined or changed its meta
    /// ([`PageHandle::update_presence`](super::PageHandle::update_presence)) last.
    ///
    /// ```
    /// # use tether::commander::{Commanders, Html};
    /// # fn f(commanders: &Commanders) {
    /// // Put the name in the meta with `Commander::presence`, then:
    /// let readers = commanders.presence_list_with(
    ///     "tether:topic:article-1",
    ///     &["name"],
    ///     Html::trusted(r#"<li><b data-field="name"></b> (<span data-field="connections"></span> tabs)</li>"#),
    /// );
    /// assert!(readers.as_str().starts_with("<ul data-tether-presence="));
    /// # }
    /// ```
    pub fn presence_list_with(&self, topic: &str, fields: &[&str], item: Html) -> Html {
        self.presence_list_with_keys(topic, fields, item, ListKeys::Public)
    }

    /// [`Commanders::presence_list_with`], choosing what browsers learn of each entry's
    /// presence key: itself ([`ListKeys::Public`]) or a keyed hash of it
    /// ([`ListKeys::Hashed`]; `data-field="key"` and `data-tether-key` then show the hash).
    /// Hash the keys when they are browser ids or anything a visitor should not learn of
    /// another; show a name from the meta instead.
    ///
    /// ```
    /// # use tether::commander::{Commanders, Html, ListKeys};
    /// # fn f(commanders: &Commanders) {
    /// let who = commanders.presence_list_with_keys(
    ///     "tether:topic:global",
    ///     &["name"],
    ///     Html::trusted(r#"<li data-field="name"></li>"#),
    ///     ListKeys::Hashed,
    /// );
    /// assert!(who.as_str().contains(r#"data-tether-keys="hashed""#));
    /// # }
    /// ```
    pub fn presence_list_with_keys(
        &self,
        topic: &str,
        fields: &[&str],
        item: Html,
        keys: ListKeys,
    ) -> Html {
        let hashed = keys == ListKeys::Hashed;
        self.hub.templated_list(topic, item, fields, hashed)
    }

    /// Renders live region `name` of a page of `commander` with `assigns`, for the
    /// controller: the markup, and the token the page keeps.
    ///
    /// ```
    /// # use tether::commander::{Commanders, PageOptions};
    /// #[derive(askama::Template, serde::Serialize, serde::Deserialize)]
    /// #[template(source = "{{ count }} in the cart", ext = "html")]
    /// struct Cart { count: u32 }
    /// # fn f(commanders: &Commanders, req: &actix_web::HttpRequest) -> Result<(), Box<dyn std::error::Error>> {
    /// let cart = commanders.live("shop", "cart", &Cart { count: 0 })?;
    /// // In the page: <span tether-live="cart">{{ cart_html }}</span> … {{ script }}
    /// let cart_html = cart.html().clone();
    /// let script = commanders.script_with("shop", req, &PageOptions::new().live(&cart));
    /// # let _ = (cart_html, script); Ok(()) }
    /// ```
    pub fn live<T: LiveTemplate>(
        &self,
        commander: &str,
        name: &str,
        assigns: &T,
    ) -> Result<LiveRegion, LiveError> {
        self.hub.live_region(commander, name, assigns)
    }
}
