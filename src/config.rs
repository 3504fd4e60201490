//! One [`Config`] for the whole framework: a TOML file plus environment overrides.
//!
//! The file is named by `TETHER_CONFIG`; every key has a default, so no file is needed in
//! development. Environment variables override the file (see [`Config::from_env`] for the list).
//! Invalid values fail at start with a [`ConfigError`] that names the key, never later.
//!
//! This module only parses and validates; it must never open sockets or start tasks.
//!
//! ```
//! let config = tether::Config::from_toml_str(r#"
//!     [endpoint]
//!     check_origin = ["https://example.com"]
//!     [presence]
//!     id = [{ session = "current_user_id" }]
//! "#).unwrap();
//! assert_eq!(config.presence.broadcast_period_ms, 1500);
//! ```

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

/// Where a configuration value was wrong, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `TETHER_CONFIG` could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path from `TETHER_CONFIG`.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not parse, or had an unknown key or a value of the wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value parsed but is not acceptable; `key` is the TOML key or environment variable.
    #[error("invalid config value for `{key}`: {reason}")]
    Invalid {
        /// `section.key` in the file, or the environment variable's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The whole configuration; see the module docs and the README's "Configuration".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The socket endpoint: secrets, origin policy, limits.
    pub endpoint: EndpointConfig,
    /// Which pub/sub carries broadcasts between processes.
    pub pubsub: PubSubConfig,
    /// Presence tracking.
    pub presence: PresenceConfig,
    /// Commanders (the page layer).
    pub commander: CommanderConfig,
}

/// `[commander]`: pages driven by commanders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommanderConfig {
    /// Path of the pages' socket (the client connects to `<path>/websocket`).
    pub socket_path: String,
    /// Name of the session cookie (actix-session's default is `id`).
    pub session_cookie: String,
    /// Session keys commanders may read (presence `session` keys are added automatically).
    pub session_keys: Vec<String>,
    /// Whether `exec_js` may run JavaScript in pages (off by default).
    pub exec_js: bool,
    /// Page tokens older than this are refused (seconds).
    pub page_token_max_age_s: u64,
    /// How often live counters embedded in pages are refreshed, at most.
    pub counter_interval_ms: u64,
    /// How long a browser round trip (`exec_js`, `query`, `cookies`) may take before it fails
    /// with `CallError::Timeout`.
    pub browser_response_timeout_ms: u64,
    /// Most DOM events and messages waiting for one page's commander; beyond it an event gets
    /// the error reply `{"reason": "too many pending events"}` and a message is refused.
    pub max_queued_events: usize,
    /// Whether tether.js disables a control while its handler runs (`tether-no-disable`
    /// opts one out).
    pub disable_while_processing: bool,
    /// The DOM events whose element is disabled while their handler runs.
    pub disable_events: Vec<String>,
    /// Whether tether.js disables the page's controls while its socket is down.
    pub disable_when_disconnected: bool,
    /// Largest encrypted assigns of one live region (the token the page keeps), in bytes.
    pub max_live_bytes: usize,
    /// Topics tokens (a page's runtime topics, sent back on rejoin) older than this are
    /// refused (seconds), and leaves (`unsubscribe`) are remembered this long. A connected
    /// page gets a fresh one every half of it; a page away longer rejoins with its
    /// broadcasting topics only.
    pub topics_token_max_age_s: u64,
    /// Store tokens older than this are refused (seconds): a store lives this long after its
    /// last `put_store`. Within it, an older store of the same browser can be replayed.
    pub store_token_max_age_s: u64,
    /// Most presence lists (distinct topic, fields and key form) one node keeps current; a page
    /// asking for a new one past it does not get it (logged).
    pub max_presence_lists: usize,
    /// Largest inbound WebSocket message on the pages' socket, in bytes (the page socket's
    /// own `endpoint.max_frame_bytes`); larger closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Most bytes of DOM events waiting for one page's commander (each counted as its
    /// sender's JSON); beyond it an event gets `{"reason": "too many pending bytes"}`.
    pub max_queued_bytes: usize,
    /// Most bytes of DOM events waiting on one connection, all its pages together.
    pub max_connection_queued_bytes: usize,
    /// Largest `arg`, `form`, `dataset` or `event` of one event's sender, as JSON; a larger
    /// one gets `{"reason": "event too large"}` and is not queued.
    pub max_event_field_bytes: usize,
    /// Whether a failed handler's or callback's error text reaches the browser (its reply's
    /// `reason`, the `error` push). Off by default: the browser gets `"handler failed"` or
    /// `"callback failed"` and the text is only logged. Env `TETHER_DEBUG_ERRORS`.
    pub debug_errors: bool,
    /// How the app's actix-session cookie is protected, as given to actix-session's
    /// `cookie_content_security`: only a cookie protected that way is read.
    pub session_cookie_security: SessionCookieSecurity,
}

/// How actix-session protects its cookie (`[commander] session_cookie_security`): `"private"`
/// (encrypted, actix-session's default) or `"signed"`. tether reads only the one configured,
/// so an app that chose encryption never accepts a merely signed session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionCookieSecurity {
    /// Encrypted and authenticated (AES-256-GCM).
    #[default]
    Private,
    /// Authenticated only (HMAC-SHA256).
    Signed,
}

impl Default for CommanderConfig {
    fn default() -> Self {
        CommanderConfig {
            socket_path: "/tether/socket".to_string(),
            session_cookie: "id".to_string(),
            session_keys: Vec::new(),
            exec_js: false,
            page_token_max_age_s: 86_400,
            counter_interval_ms: 250,
            browser_response_timeout_ms: 5_000,
            max_queued_events: 64,
            disable_while_processing: true,
            disable_events: vec!["click".to_string(), "submit".to_string()],
            disable_when_disconnected: true,
            max_live_bytes: 65_536,
            topics_token_max_age_s: 600,
            store_token_max_age_s: 2_592_000,
            max_presence_lists: 1_000,
            max_frame_bytes: 65_536,
            max_queued_bytes: 256 * 1024,
            max_connection_queued_bytes: 1024 * 1024,
            max_event_field_bytes: 32 * 1024,
            debug_errors: false,
            session_cookie_security: SessionCookieSecurity::Private,
        }
    }
}

/// `[endpoint]`: the HTTP/WebSocket side. Its `Debug` prints `[redacted]` for the secrets
/// (`secret_key_base`, `dashboard_password`, `metrics_token`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// Key for signing and encrypting tokens; at least 64 bytes. Env `TETHER_SECRET_KEY_BASE`.
    /// Empty means "generate one at start" (development only; a warning is logged).
    pub secret_key_base: String,
    /// Origin policy for WebSocket upgrades.
    pub check_origin: CheckOrigin,
    /// The public origin of the app (`https://example.com`), as browsers see it. With
    /// `check_origin = true` a browser upgrade must come from exactly this origin; unset,
    /// [`serve`](crate::serve) allows the origins it is bound to
    /// (`http://127.0.0.1:<port>`, `http://localhost:<port>`). Set it behind a proxy.
    pub url: Option<String>,
    /// TCP port the examples bind on 127.0.0.1. Env `PORT`.
    pub port: u16,
    /// Largest inbound WebSocket message, in bytes; larger closes the connection with 1009.
    pub max_frame_bytes: usize,
    /// Most bytes queued for one connection before it is disconnected as too slow.
    pub max_outbound_bytes: usize,
    /// Most channels one connection may have joined at once.
    pub max_channels: usize,
    /// A connection that sends nothing (not even a heartbeat) for this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection whose pending output makes no progress for this long is dropped and its
    /// socket released (also when its close frame cannot be written).
    pub write_timeout_ms: u64,
    /// How long a new connection may take to send its request head (the WebSocket upgrade
    /// request) before it is answered 408. actix-web's default of 5 s expires under a join
    /// storm on a saturated worker, before the worker reads a head that arrived in time.
    pub handshake_timeout_ms: u64,
    /// How long a shutdown waits for connections to run their leave callbacks.
    pub shutdown_timeout_ms: u64,
    /// The password of the live dashboard (`/tether/dashboard`) and of `/metrics`, user
    /// `admin` (HTTP Basic); at least [`MIN_SECRET_CHARS`] characters. Env
    /// `TETHER_DASHBOARD_PASSWORD` (the examples read only the environment). `None` (the
    /// default): no dashboard (and no `/metrics` without `metrics_token`).
    pub dashboard_password: Option<String>,
    /// Joins (and rejoins) one connection may make per second, on average (a token bucket;
    /// see [`EndpointConfig::join_burst`]). A join over the limit gets the error reply
    /// `{"reason": "rate limited"}`. Env `TETHER_JOIN_RATE`.
    pub join_rate: f64,
    /// How many joins a connection may make at once before `join_rate` applies. Env
    /// `TETHER_JOIN_BURST`.
    pub join_burst: u32,
    /// Client pushes (every frame but joins, leaves and heartbeats) one connection may send
    /// per second, on average; over it, the error reply `{"reason": "rate limited"}`. Env
    /// `TETHER_EVENT_RATE`.
    pub event_rate: f64,
    /// How many pushes a connection may send at once before `event_rate` applies. Env
    /// `TETHER_EVENT_BURST`.
    pub event_burst: u32,
    /// Refused frames a connection may accumulate (one forgiven per second) before it is
    /// closed with 1008 "rate limit exceeded".
    pub rate_limit_strikes: u32,
    /// A Bearer token for `/metrics` alone (`Authorization: Bearer <token>`), so a scraper
    /// need not hold the dashboard password; at least [`MIN_SECRET_CHARS`] characters. Env
    /// `TETHER_METRICS_TOKEN`. It never opens the dashboard. `None` (the default): `/metrics`
    /// takes the dashboard's credentials only.
    pub metrics_token: Option<String>,
}

/// The fewest characters `endpoint.dashboard_password` and `endpoint.metrics_token` may have.
pub const MIN_SECRET_CHARS: usize = 16;

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named: a new one does not compile until it is printed here, or
        // redacted if it is a secret.
        let EndpointConfig {
            secret_key_base: _,
            check_origin,
            url,
            port,
            max_frame_bytes,
            max_outbound_bytes,
            max_channels,
            idle_timeout_ms,
            write_timeout_ms,
            handshake_timeout_ms,
            shutdown_timeout_ms,
            dashboard_password,
            metrics_token,
            join_rate,
            join_burst,
            event_rate,
            event_burst,
            rate_limit_strikes,
        } = self;
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| Redacted);
        f.debug_struct("EndpointConfig")
            .field("secret_key_base", &Redacted)
            .field("check_origin", check_origin)
            .field("url", url)
            .field("port", port)
            .field("max_frame_bytes", max_frame_bytes)
            .field("max_outbound_bytes", max_outbound_bytes)
            .field("max_channels", max_channels)
            .field("idle_timeout_ms", idle_timeout_ms)
            .field("write_timeout_ms", write_timeout_ms)
            .field("handshake_timeout_ms", handshake_timeout_ms)
            .field("shutdown_timeout_ms", shutdown_timeout_ms)
            .field("dashboard_password", &redacted(dashboard_password))
            .field("metrics_token", &redacted(metrics_token))
            .field("join_rate", join_rate)
            .field("join_burst", join_burst)
            .field("event_rate", event_rate)
            .field("event_burst", event_burst)
            .field("rate_limit_strikes", rate_limit_strikes)
            .finish()
    }
}

/// What `Debug` prints instead of a secret: `[redacted]`.
struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            secret_key_base: String::new(),
            check_origin: CheckOrigin::default(),
            url: None,
            port: 4000,
            max_frame_bytes: 1024 * 1024,
            max_outbound_bytes: 4 * 1024 * 1024,
            max_channels: 100,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 10_000,
            handshake_timeout_ms: 30_000,
            shutdown_timeout_ms: 5_000,
            dashboard_password: None,
            join_rate: 10.0,
            join_burst: 100,
            event_rate: 1_000.0,
            event_burst: 10_000,
            rate_limit_strikes: 200,
            metrics_token: None,
        }
    }
}

/// The origin check applied to WebSocket upgrades.
///
/// In TOML: `check_origin = true` (the default: the `Origin` must be `endpoint.url`, or where
/// [`serve`](crate::serve) listens), `false` (no check), or a list of allowed origins such as
/// `["https://example.com"]`. Requests without an `Origin` header (non-browser clients) are
/// always allowed, as in Phoenix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CheckOrigin {
    /// `true`: `endpoint.url` (or where `serve` listens); `false`: anything.
    Enabled(bool),
    /// Exactly these origins (`scheme://host[:port]`).
    AllowList(Vec<String>),
}

impl Default for CheckOrigin {
    fn default() -> Self {
        CheckOrigin::Enabled(true)
    }
}

/// `[pubsub]`: in-process by default, Redis when `url` is set. `Debug` hides a password in
/// the URL (`redis://:[redacted]@host/`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubSubConfig {
    /// `redis://…` URL. Env `TETHER_PUBSUB_URL`. `None` means in-process only.
    pub url: Option<String>,
    /// This node's name in a cluster. Env `TETHER_NODE`. Defaults to
    /// `<hostname>-<random suffix chosen once per process>` (see [`PubSubConfig::node_name`]).
    pub node: Option<String>,
    /// The Redis channel the nodes share. Env `TETHER_PUBSUB_CHANNEL`. Defaults to `tether:bus:<16 hex digits>` derived
    /// from `secret_key_base`, so apps with different secrets never share a channel.
    pub channel: Option<String>,
    /// How old a message on the Redis bus may be (by the clock of the node that sent it),
    /// in ms: older ones, ones dated more than this in the future, and ones repeating an
    /// earlier message of the same sending process are dropped as replays. Node clocks
    /// must agree to well within this. At least 1000.
    pub replay_window_ms: u64,
}

impl std::fmt::Debug for PubSubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named: a new one does not compile until it is printed here.
        let PubSubConfig {
            url,
            node,
            channel,
            replay_window_ms,
        } = self;
        f.debug_struct("PubSubConfig")
            .field("url", &url.as_deref().map(redact_url_password))
            .field("node", node)
            .field("channel", channel)
            .field("replay_window_ms", replay_window_ms)
            .finish()
    }
}

/// `url` with the password of its userinfo (`scheme://user:password@host`) replaced by
/// `[redacted]`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:[redacted]{}", &rest[at..]),
        None => url.to_string(),
    }
}

impl Default for PubSubConfig {
    fn default() -> Self {
        PubSubConfig {
            url: None,
            node: None,
            channel: None,
            replay_window_ms: 60_000,
        }
    }
}

impl PubSubConfig {
    /// The node name: `[pubsub] node`, or `<hostname>-<suffix>` where the suffix is random
    /// and chosen once per process, so that two processes never share a default name (in
    /// containers every process may be PID 1 on the same image). Set `TETHER_NODE` to keep
    /// a node's name across restarts.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(default_node_name)
    }
}

/// Where a presence key comes from, tried in order; see [`PresenceConfig::id`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum IdSource {
    /// A value in the page's store.
    Store(String),
    /// A value in the session cookie.
    Session(String),
}

/// `[presence]`: tracking and replication periods.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Whether commanders track their pages automatically (on by default; each commander's
    /// `presence` callback still chooses per topic). The
    /// [`Presence`](crate::presence::Presence) API itself works either way.
    pub enabled: bool,
    /// Presence key sources in order; the browser id is the fallback.
    pub id: Vec<IdSource>,
    /// How often a node gossips its deltas. Env `TETHER_PRESENCE_BROADCAST_PERIOD_MS`.
    pub broadcast_period_ms: u64,
    /// Silence after which a peer's presences are hidden. Env `TETHER_PRESENCE_DOWN_PERIOD_MS`.
    pub down_period_ms: u64,
    /// Silence after which a peer is forgotten. Env `TETHER_PRESENCE_PERMDOWN_PERIOD_MS`.
    pub permdown_period_ms: u64,
    /// Window over which a quiet topic's presence changes are merged into one diff (a busy
    /// topic's window grows from it, up to 5 s on a topic of 10,000 members).
    /// Env `TETHER_PRESENCE_COALESCE_MS`.
    pub coalesce_ms: u64,
    /// A topic's window also ends once its changes times the topic's presence subscribers
    /// reach this many metas (or subscribers² / 16, if more), so that what one window's end
    /// queues in all stays bounded (10,000,000, ~760 MB of a `presence_chat` room: a storm's
    /// last diff of 10,000 members holds ~1,000 joins, not up to 5 s of them).
    pub max_window_metas: usize,
    /// How long the entries of a dropped connection wait before they leave; a reconnect of
    /// the same key to the same topic on this node meanwhile takes them over, so nobody sees
    /// a leave. 0 (the default, as in Phoenix): leave at once. Env
    /// `TETHER_PRESENCE_LEAVE_GRACE_MS`.
    pub leave_grace_ms: u64,
    /// Largest meta, encoded as JSON; a larger `track` or `update` is refused.
    pub max_meta_bytes: usize,
    /// Largest presence heartbeat on the bus, in bytes (at least 4096): a broadcast
    /// period's changes that encode larger are sent as several consecutive heartbeats (an
    /// op larger than this, e.g. with a huge key, travels alone).
    pub max_heartbeat_bytes: usize,
    /// Presence updates ([`Presence::update`](crate::presence::Presence::update)) allowed
    /// per second to one owner (a channel join) in one shard, with bursts of twice that; an
    /// update over the budget fails with `TrackError::RateLimited` and changes nothing.
    pub max_updates_per_s: u32,
    /// An entry tracked less than this before its connection (or page) dropped gets no
    /// leave grace (it leaves at once): rapid connect-join-drop cycles cannot pile up
    /// entries. An entry adopted from the grace keeps its age.
    pub grace_min_age_ms: u64,
    /// Entries waiting out the leave grace on one topic (per node), at most; a drop beyond
    /// it leaves at once.
    pub max_grace_per_topic: usize,
    /// Entries of one key waiting out the leave grace on one topic (per node), at most; a
    /// drop beyond it leaves at once.
    pub max_grace_per_key: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            enabled: true,
            id: Vec::new(),
            broadcast_period_ms: 1500,
            down_period_ms: 30_000,
            permdown_period_ms: 1_200_000,
            coalesce_ms: 50,
            max_window_metas: 10_000_000,
            leave_grace_ms: 0,
            max_meta_bytes: 4096,
            max_heartbeat_bytes: 65_536,
            max_updates_per_s: 10,
            grace_min_age_ms: 5_000,
            max_grace_per_topic: 1_000,
            max_grace_per_key: 8,
        }
    }
}

/// Environment variables read by [`Config::from_env`], and the key each overrides: the one
/// list that parsing uses (and that the README's configuration block is checked against).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("TETHER_SECRET_KEY_BASE", "endpoint.secret_key_base"),
    ("PORT", "endpoint.port"),
    ("TETHER_PUBSUB_URL", "pubsub.url"),
    ("TETHER_NODE", "pubsub.node"),
    ("TETHER_PUBSUB_CHANNEL", "pubsub.channel"),
    (
        "TETHER_PRESENCE_BROADCAST_PERIOD_MS",
        "presence.broadcast_period_ms",
    ),
    ("TETHER_PRESENCE_DOWN_PERIOD_MS", "presence.down_period_ms"),
    (
        "TETHER_PRESENCE_PERMDOWN_PERIOD_MS",
        "presence.permdown_period_ms",
    ),
    ("TETHER_PRESENCE_COALESCE_MS", "presence.coalesce_ms"),
    ("TETHER_PRESENCE_LEAVE_GRACE_MS", "presence.leave_grace_ms"),
    ("TETHER_DASHBOARD_PASSWORD", "endpoint.dashboard_password"),
    ("TETHER_JOIN_RATE", "endpoint.join_rate"),
    ("TETHER_JOIN_BURST", "endpoint.join_burst"),
    ("TETHER_EVENT_RATE", "endpoint.event_rate"),
    ("TETHER_EVENT_BURST", "endpoint.event_burst"),
    ("TETHER_DEBUG_ERRORS", "commander.debug_errors"),
    ("TETHER_METRICS_TOKEN", "endpoint.metrics_token"),
];

impl Config {
    /// Loads `TETHER_CONFIG` (if set), applies the environment overrides, fills in a
    /// development secret if none was given, and validates.
    ///
    /// The overrides are [`ENV_OVERRIDES`]; an empty variable counts as unset. The
    /// development secret is kept in `TETHER_DEV_SECRET_FILE` (default
    /// `target/tether-dev-secret`), made on first use, so a restarted server accepts the
    /// tokens of pages that are still open; production sets `TETHER_SECRET_KEY_BASE`.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] with the environment given as a function, for tests.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let mut config = match env("TETHER_CONFIG") {
            Some(path) => Config::read_file(Path::new(&path))?,
            None => Config::default(),
        };
        for (var, key) in ENV_OVERRIDES {
            if let Some(value) = env(var) {
                config
                    .set(key, &value)
                    .map_err(|reason| ConfigError::Invalid {
                        key: (*var).to_string(),
                        reason,
                    })?;
            }
        }
        let dev_secret_file = env("TETHER_DEV_SECRET_FILE");
        config.finish_from_env(
            dev_secret_file
                .as_deref()
                .unwrap_or(crate::dev_secret::DEFAULT_DEV_SECRET_FILE),
        )
    }

    /// Parses a TOML file and validates it (no environment overrides), filling in a
    /// development secret if none is set, like [`Config::from_env`].
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read_file(path)?.finish()
    }

    /// Parses a TOML file without validating it (overrides may still follow).
    fn read_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses TOML text and validates it (no environment overrides).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text)?.finish()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|err| ConfigError::Parse(err.to_string()))
    }

    /// Sets the secret used to sign and encrypt tokens (builder style).
    pub fn with_secret_key_base(mut self, secret: impl Into<String>) -> Self {
        self.endpoint.secret_key_base = secret.into();
        self
    }

    /// Sets the origin policy (builder style).
    pub fn with_check_origin(mut self, check: CheckOrigin) -> Self {
        self.endpoint.check_origin = check;
        self
    }

    /// Sets the idle timeout in milliseconds (builder style).
    pub fn with_idle_timeout_ms(mut self, ms: u64) -> Self {
        self.endpoint.idle_timeout_ms = ms;
        self
    }

    /// Sets the write timeout in milliseconds (builder style).
    pub fn with_write_timeout_ms(mut self, ms: u64) -> Self {
        self.endpoint.write_timeout_ms = ms;
        self
    }

    /// Sets the most bytes queued per connection (builder style).
    pub fn with_max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.endpoint.max_outbound_bytes = bytes;
        self
    }

    /// Sets the most channels per connection (builder style).
    pub fn with_max_channels(mut self, channels: usize) -> Self {
        self.endpoint.max_channels = channels;
        self
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
            value
                .trim()
                .parse()
                .map_err(|_| format!("`{value}` is not a valid number"))
        }
        match key {
            "endpoint.secret_key_base" => self.endpoint.secret_key_base = value.to_string(),
            "endpoint.port" => self.endpoint.port = number(value)?,
            "endpoint.dashboard_password" => {
                self.endpoint.dashboard_password = Some(value.to_string())
            }
            "endpoint.join_rate" => self.endpoint.join_rate = number(value)?,
            "endpoint.join_burst" => self.endpoint.join_burst = number(value)?,
            "endpoint.event_rate" => self.endpoint.event_rate = number(value)?,
            "endpoint.event_burst" => self.endpoint.event_burst = number(value)?,
            "commander.debug_errors" => {
                self.commander.debug_errors = match value.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => return Err(format!("`{other}` is not true or false")),
                }
            }
            "endpoint.metrics_token" => self.endpoint.metrics_token = Some(value.to_string()),
            "pubsub.url" => self.pubsub.url = Some(value.to_string()),
            "pubsub.node" => self.pubsub.node = Some(value.to_string()),
            "pubsub.channel" => self.pubsub.channel = Some(value.to_string()),
            "presence.broadcast_period_ms" => self.presence.broadcast_period_ms = number(value)?,
            "presence.down_period_ms" => self.presence.down_period_ms = number(value)?,
            "presence.permdown_period_ms" => self.presence.permdown_period_ms = number(value)?,
            "presence.coalesce_ms" => self.presence.coalesce_ms = number(value)?,
            "presence.leave_grace_ms" => self.presence.leave_grace_ms = number(value)?,
            other => return Err(format!("no such key {other}")),
        }
        Ok(())
    }

    /// Generates a development secret when none is set, then validates every key.
    fn finish(mut self) -> Result<Config, ConfigError> {
        if self.endpoint.secret_key_base.is_empty() {
            tracing::warn!(
                "no secret_key_base configured (TETHER_SECRET_KEY_BASE): generated a random one; \
                 tokens will not survive a restart and nodes of a cluster will not agree"
            );
            self.endpoint.secret_key_base = random_secret();
        }
        self.validate()?;
        Ok(self)
    }

    /// [`Config::finish`] for a process configured from its environment: without a secret,
    /// the development secret kept in `dev_secret_file` (see `TETHER_DEV_SECRET_FILE`), made
    /// on first use, so that open pages survive a restart.
    fn finish_from_env(mut self, dev_secret_file: &str) -> Result<Config, ConfigError> {
        if self.endpoint.secret_key_base.is_empty() {
            let path = std::path::Path::new(dev_secret_file);
            match crate::dev_secret::load_or_create(path, random_secret) {
                Ok(secret) => {
                    tracing::warn!(
                        "no secret_key_base configured (TETHER_SECRET_KEY_BASE): using the \
                         development secret in {} (made on first use; for development only, \
                         keep it out of version control; set TETHER_SECRET_KEY_BASE in production)",
                        path.display()
                    );
                    self.endpoint.secret_key_base = secret;
                }
                Err(err) => tracing::warn!(
                    "cannot keep a development secret in {}: {err}",
                    path.display()
                ),
            }
        }
        self.finish()
    }

    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.to_string(),
                reason: reason.to_string(),
            })
        };
        let e = &self.endpoint;
        for (key, secret) in [
            ("endpoint.dashboard_password", &e.dashboard_password),
            ("endpoint.metrics_token", &e.metrics_token),
        ] {
            if secret
                .as_deref()
                .is_some_and(|s| s.chars().count() < MIN_SECRET_CHARS)
            {
                return invalid(
                    key,
                    &format!(
                        "must be at least {MIN_SECRET_CHARS} characters long (leave it out to turn \
                         it off)"
                    ),
                );
            }
        }
        if e.secret_key_base.len() < 64 {
            return invalid("endpoint.secret_key_base", "must be at least 64 bytes long");
        }
        if let CheckOrigin::AllowList(origins) = &e.check_origin {
            if let Some(bad) = origins.iter().find(|o| !o.contains("://")) {
                return invalid(
                    "endpoint.check_origin",
                    &format!("`{bad}` is not an origin like https://example.com"),
                );
            }
        }
        if let Some(url) = &e.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "endpoint.url",
                    &format!("`{url}` is not an origin like https://example.com"),
                );
            }
        }
        let positive: BTreeMap<&str, u64> = [
            ("endpoint.max_frame_bytes", e.max_frame_bytes as u64),
            ("endpoint.max_outbound_bytes", e.max_outbound_bytes as u64),
            ("endpoint.max_channels", e.max_channels as u64),
            ("endpoint.idle_timeout_ms", e.idle_timeout_ms),
            ("endpoint.write_timeout_ms", e.write_timeout_ms),
            ("endpoint.handshake_timeout_ms", e.handshake_timeout_ms),
            (
                "presence.max_meta_bytes",
                self.presence.max_meta_bytes as u64,
            ),
            (
                "presence.broadcast_period_ms",
                self.presence.broadcast_period_ms,
            ),
            (
                "presence.max_window_metas",
                self.presence.max_window_metas as u64,
            ),
            (
                "commander.browser_response_timeout_ms",
                self.commander.browser_response_timeout_ms,
            ),
            (
                "commander.max_queued_events",
                self.commander.max_queued_events as u64,
            ),
            (
                "commander.max_live_bytes",
                self.commander.max_live_bytes as u64,
            ),
            (
                "commander.max_frame_bytes",
                self.commander.max_frame_bytes as u64,
            ),
            (
                "commander.max_queued_bytes",
                self.commander.max_queued_bytes as u64,
            ),
            (
                "commander.max_connection_queued_bytes",
                self.commander.max_connection_queued_bytes as u64,
            ),
            (
                "commander.max_event_field_bytes",
                self.commander.max_event_field_bytes as u64,
            ),
            ("endpoint.join_burst", u64::from(e.join_burst)),
            ("endpoint.event_burst", u64::from(e.event_burst)),
            (
                "endpoint.rate_limit_strikes",
                u64::from(e.rate_limit_strikes),
            ),
            (
                "commander.topics_token_max_age_s",
                self.commander.topics_token_max_age_s,
            ),
            (
                "commander.store_token_max_age_s",
                self.commander.store_token_max_age_s,
            ),
            (
                "commander.max_presence_lists",
                self.commander.max_presence_lists as u64,
            ),
        ]
        .into_iter()
        .collect();
        if let Some((key, _)) = positive.iter().find(|(_, value)| **value == 0) {
            return invalid(key, "must be greater than zero");
        }
        for (key, rate) in [
            ("endpoint.join_rate", e.join_rate),
            ("endpoint.event_rate", e.event_rate),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return invalid(
                    key,
                    "must be a number of times per second greater than zero",
                );
            }
        }
        if let Some(url) = &self.pubsub.url {
            if !url.starts_with("redis://") {
                return invalid(
                    "pubsub.url",
                    "must be a redis:// URL (TLS, rediss://, is not built in)",
                );
            }
        }
        if !valid_socket_path(&self.commander.socket_path) {
            return invalid(
                "commander.socket_path",
                "must start with `/` and not end with `/`",
            );
        }
        if self.pubsub.node.as_deref() == Some("") {
            return invalid("pubsub.node", "must not be empty");
        }
        if self.pubsub.channel.as_deref() == Some("") {
            return invalid("pubsub.channel", "must not be empty");
        }
        let p = &self.presence;
        if p.down_period_ms < 2 * p.broadcast_period_ms {
            return invalid(
                "presence.down_period_ms",
                "must be at least twice presence.broadcast_period_ms",
            );
        }
        if p.permdown_period_ms <= p.down_period_ms {
            return invalid(
                "presence.permdown_period_ms",
                "must be greater than presence.down_period_ms",
            );
        }
        if p.max_heartbeat_bytes < 4096 {
            return invalid("presence.max_heartbeat_bytes", "must be at least 4096");
        }
        if p.max_updates_per_s == 0 {
            return invalid("presence.max_updates_per_s", "must be greater than zero");
        }
        if self.pubsub.replay_window_ms < 1000 {
            return invalid("pubsub.replay_window_ms", "must be at least 1000");
        }
        Ok(())
    }
}

/// Whether `path` can be a socket's mount path: it starts with `/` and does not end with one.
pub(crate) fn valid_socket_path(path: &str) -> bool {
    path.starts_with('/') && !path.ends_with('/')
}

/// `<hostname>-<8 hex digits>`, the same for the whole process.
fn default_node_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_string());
        format!("{host}-{:08x}", rand::random::<u32>())
    })
    .clone()
}

fn random_secret() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 48];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn defaults_are_valid_and_generate_a_secret() {
        let config = Config::from_lookup(env(&[])).unwrap();
        assert_eq!(config.endpoint.port, 4000);
        assert_eq!(config.endpoint.max_frame_bytes, 1024 * 1024);
        assert!(config.endpoint.secret_key_base.len() >= 64);
        assert_eq!(config.endpoint.check_origin, CheckOrigin::Enabled(true));
    }

    #[test]
    fn environment_overrides_file_values() {
        let dir = std::env::temp_dir().join(format!("tether-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.toml");
        std::fs::write(
            &file,
            "[pubsub]\nnode = \"file-node\"\n[presence]\nid = [{ store = \"k\" }, { session = \"s\" }]\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let config = Config::from_lookup(env(&[
            ("TETHER_CONFIG", &path),
            ("TETHER_NODE", "env-node"),
            ("PORT", "4100"),
            ("TETHER_PRESENCE_BROADCAST_PERIOD_MS", "100"),
            ("TETHER_PRESENCE_DOWN_PERIOD_MS", "400"),
            ("TETHER_PRESENCE_COALESCE_MS", "7"),
        ]))
        .unwrap();
        assert_eq!(config.pubsub.node.as_deref(), Some("env-node"));
        assert_eq!(config.endpoint.port, 4100);
        assert_eq!(config.presence.down_period_ms, 400);
        assert_eq!(config.presence.coalesce_ms, 7);
        assert_eq!(
            config.presence.id,
            vec![IdSource::Store("k".into()), IdSource::Session("s".into())]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let short = Config::from_toml_str("[endpoint]\nsecret_key_base = \"short\"").unwrap_err();
        assert!(
            short.to_string().contains("endpoint.secret_key_base"),
            "{short}"
        );

        let unknown = Config::from_toml_str("[endpoint]\nbogus = 1").unwrap_err();
        assert!(unknown.to_string().contains("bogus"), "{unknown}");

        let port = Config::from_lookup(env(&[("PORT", "eighty")])).unwrap_err();
        assert!(port.to_string().contains("PORT"), "{port}");

        let periods =
            Config::from_lookup(env(&[("TETHER_PRESENCE_DOWN_PERIOD_MS", "10")])).unwrap_err();
        assert!(
            periods.to_string().contains("presence.down_period_ms"),
            "{periods}"
        );

        let url = Config::from_lookup(env(&[("TETHER_PUBSUB_URL", "http://x")])).unwrap_err();
        assert!(url.to_string().contains("pubsub.url"), "{url}");

        let origin =
            Config::from_toml_str("[endpoint]\ncheck_origin = [\"example.com\"]").unwrap_err();
        assert!(
            origin.to_string().contains("endpoint.check_origin"),
            "{origin}"
        );
    }

    #[test]
    fn the_readme_example_is_a_valid_config() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("```toml\n")
            .expect("a toml block in the README")
            + 8;
        let end = start + readme[start..].find("```").unwrap();
        let text = readme[start..end].replace("\"...\"", &format!("\"{}\"", "k".repeat(64)));
        let config = Config::from_toml_str(&text).unwrap();
        assert_eq!(config.commander.socket_path, "/tether/socket");
        assert_eq!(config.presence.coalesce_ms, 50);
    }

    #[test]
    fn default_node_names_are_stable_in_a_process_and_not_pid_based() {
        let config = Config::default();
        let name = config.pubsub.node_name();
        assert_eq!(name, Config::default().pubsub.node_name());
        assert_ne!(name, format!("node-{}", std::process::id()));
        let suffix = name.rsplit('-').next().unwrap();
        assert_eq!(suffix.len(), 8, "{name}");
    }

    #[test]
    fn from_file_validates() {
        let dir = std::env::temp_dir().join(format!("tether-config-v-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("short.toml");
        std::fs::write(&file, "[endpoint]\nsecret_key_base = \"too short\"\n").unwrap();
        let err = Config::from_file(&file).unwrap_err();
        assert!(
            err.to_string().contains("endpoint.secret_key_base"),
            "{err}"
        );
        std::fs::write(&file, "[endpoint]\nurl = \"example.com\"\n").unwrap();
        let err = Config::from_file(&file).unwrap_err();
        assert!(err.to_string().contains("endpoint.url"), "{err}");
        std::fs::write(&file, "[presence]\ncoalesce_ms = 5\n").unwrap();
        let config = Config::from_file(&file).unwrap();
        assert!(
            config.endpoint.secret_key_base.len() >= 64,
            "a dev secret is filled in"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_readme_names_every_environment_override() {
        let readme = include_str!("../README.md");
        for (var, key) in ENV_OVERRIDES {
            let field = key.rsplit('.').next().unwrap_or(key);
            let line = readme
                .lines()
                .find(|line| line.starts_with(&format!("{field} ")) && line.contains(var));
            assert!(
                line.is_some(),
                "README's config block lacks `{field} … # env {var}`"
            );
        }
    }

    #[test]
    fn without_a_secret_the_development_secret_survives_a_restart() {
        let file = std::env::temp_dir()
            .join(format!("tether-config-dev-{}", rand::random::<u64>()))
            .join("secret");
        let file = file.to_str().unwrap();
        let first = Config::from_lookup(env(&[("TETHER_DEV_SECRET_FILE", file)])).unwrap();
        let restarted = Config::from_lookup(env(&[("TETHER_DEV_SECRET_FILE", file)])).unwrap();
        assert!(first.endpoint.secret_key_base.len() >= 64);
        assert_eq!(
            first.endpoint.secret_key_base,
            restarted.endpoint.secret_key_base
        );
        // A configured secret wins, and the file is not consulted.
        let set = "s".repeat(64);
        let explicit = Config::from_lookup(env(&[
            ("TETHER_DEV_SECRET_FILE", file),
            ("TETHER_SECRET_KEY_BASE", &set),
        ]))
        .unwrap();
        assert_eq!(explicit.endpoint.secret_key_base, set);
        let _ = std::fs::remove_dir_all(std::path::Path::new(file).parent().unwrap());
    }

    #[test]
    fn the_dashboard_password_comes_from_the_environment_only() {
        let password = "a-dashboard-password";
        assert_eq!(Config::default().endpoint.dashboard_password, None);
        let config = Config::from_lookup(env(&[("TETHER_DASHBOARD_PASSWORD", password)])).unwrap();
        assert_eq!(
            config.endpoint.dashboard_password.as_deref(),
            Some(password)
        );
        let empty = Config::from_lookup(env(&[("TETHER_DASHBOARD_PASSWORD", "")])).unwrap();
        assert_eq!(empty.endpoint.dashboard_password, None);
        let from_file = Config::from_toml_str(&format!(
            "[endpoint]\ndashboard_password = \"{password}\"\n"
        ))
        .unwrap();
        assert_eq!(
            from_file.endpoint.dashboard_password.as_deref(),
            Some(password)
        );
        let err = Config::from_toml_str("[endpoint]\ndashboard_password = \"\"\n").unwrap_err();
        assert!(err.to_string().contains("dashboard_password"), "{err}");
    }

    #[test]
    fn dashboard_passwords_and_metrics_tokens_shorter_than_16_characters_are_refused() {
        for key in ["dashboard_password", "metrics_token"] {
            // 15 characters, several bytes each: characters count, not bytes.
            let short = "é".repeat(MIN_SECRET_CHARS - 1);
            let err =
                Config::from_toml_str(&format!("[endpoint]\n{key} = \"{short}\"\n")).unwrap_err();
            assert!(
                err.to_string().contains(&format!("endpoint.{key}")),
                "{err}"
            );
            assert!(err.to_string().contains("16 characters"), "{err}");
            let long = "é".repeat(MIN_SECRET_CHARS);
            Config::from_toml_str(&format!("[endpoint]\n{key} = \"{long}\"\n")).unwrap();
        }
        let err =
            Config::from_lookup(env(&[("TETHER_DASHBOARD_PASSWORD", "hunter2")])).unwrap_err();
        assert!(err.to_string().contains("dashboard_password"), "{err}");
        let token = "a-metrics-token-for-prometheus";
        let config = Config::from_lookup(env(&[("TETHER_METRICS_TOKEN", token)])).unwrap();
        assert_eq!(config.endpoint.metrics_token.as_deref(), Some(token));
        let err = Config::from_lookup(env(&[("TETHER_METRICS_TOKEN", "short")])).unwrap_err();
        assert!(err.to_string().contains("metrics_token"), "{err}");
    }

    #[test]
    fn debug_hides_a_redis_password() {
        let mut config = Config::default();
        config.pubsub.url = Some("redis://user:hunter2-secret@127.0.0.1:6379/0".into());
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2-secret"), "{printed}");
        assert!(
            printed.contains("redis://user:[redacted]@127.0.0.1:6379/0"),
            "{printed}"
        );
        assert_eq!(
            redact_url_password("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert_eq!(
            redact_url_password("redis://:pw@h/"),
            "redis://:[redacted]@h/"
        );
    }

    #[test]
    fn debug_redacts_every_secret() {
        let (secret, password, token) = (
            "the-secret-key-base-".repeat(4),
            "the-dashboard-password",
            "the-metrics-token-value",
        );
        let mut config = Config::default().with_secret_key_base(secret.clone());
        config.endpoint.dashboard_password = Some(password.to_string());
        config.endpoint.metrics_token = Some(token.to_string());
        for printed in [format!("{config:#?}"), format!("{:?}", config.endpoint)] {
            for leaked in [secret.as_str(), password, token] {
                assert!(!printed.contains(leaked), "{printed}");
            }
        }
        {
            let printed = format!("{config:?}");
            assert!(
                printed.contains(r#"secret_key_base: [redacted]"#),
                "{printed}"
            );
            assert!(
                printed.contains("dashboard_password: Some([redacted])"),
                "{printed}"
            );
            assert!(
                printed.contains("metrics_token: Some([redacted])"),
                "{printed}"
            );
            assert!(printed.contains("max_frame_bytes: 1048576"), "{printed}");
        }
        let unset = format!("{:?}", Config::default().endpoint);
        assert!(unset.contains("dashboard_password: None"), "{unset}");
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let err =
            Config::from_lookup(env(&[("TETHER_CONFIG", "/nonexistent/tether.toml")])).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/tether.toml"),
            "{err}"
        );
    }

    #[test]
    fn the_gossip_bounds_have_defaults_and_are_validated() {
        let secret = format!("[endpoint]\nsecret_key_base = \"{}\"\n", "k".repeat(64));
        for (toml, key) in [
            (
                "[presence]\nmax_heartbeat_bytes = 100",
                "presence.max_heartbeat_bytes",
            ),
            (
                "[presence]\nmax_updates_per_s = 0",
                "presence.max_updates_per_s",
            ),
            ("[pubsub]\nreplay_window_ms = 10", "pubsub.replay_window_ms"),
        ] {
            let err = Config::from_toml_str(&format!("{secret}{toml}")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let config = Config::from_toml_str(&secret).unwrap();
        assert_eq!(config.pubsub.replay_window_ms, 60_000);
        let p = &config.presence;
        assert_eq!(
            (
                p.max_heartbeat_bytes,
                p.max_updates_per_s,
                p.grace_min_age_ms
            ),
            (65_536, 10, 5_000)
        );
        assert_eq!((p.max_grace_per_topic, p.max_grace_per_key), (1_000, 8));
    }
}
