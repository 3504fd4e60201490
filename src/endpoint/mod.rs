//! actix-web integration: one [`Endpoint`] owns the pub/sub, presence, the commanders, the
//! WebSocket routes and every background task, from start to an orderly shutdown.
//!
//! Build it with [`Endpoint::builder`]: the builder creates the pub/sub (in-process, or Redis
//! when `[pubsub] url` is set) and presence once, hands out [`EndpointBuilder::presence`] to
//! channels that track, and takes sockets ([`SocketRoute`]), commanders and presence hooks.
//! Nothing runs until the endpoint is started ([`Endpoint::start`], which [`serve`] and
//! [`Endpoint::configure`] call), and [`Endpoint::shutdown`] stops it all in order: connections
//! close (their channels terminate, so presences leave), peers are told goodbye, then the
//! presence, counter and bus tasks stop.
//!
//! Mount it with [`serve`] (a whole server on a listener you bound), or into your own
//! actix-web `App` with [`Endpoint::configure`] and your own `HttpServer` tuned by
//! [`Endpoint::tune_server`].
//!
//! An upgrade is refused with HTTP 403 when the `Origin` fails the check, when `vsn` is not
//! 2.x, or when the connect hook refuses; nothing is upgraded, and nothing else is affected.
//! The dashboard's own socket also needs the dashboard's credentials (401 without them, 429
//! while its client is locked out after wrong guesses).
//!
//! # Layering
//!
//! The endpoint is the top layer: it imports every layer below it (pub/sub, transport,
//! channel, presence, commander) and the [`dashboard`](crate::dashboard), which sits beside
//! it and below it. The endpoint builds the dashboard, starts it and mounts its routes,
//! handing it the upgrade of its socket as a function; nothing below imports the endpoint.
//! The dashboard's constants are re-exported here ([`DASHBOARD_PATH`], [`METRICS_PATH`]).
//!
//! This module prints nothing to stdout (the examples print their `listening on` line).
//!
//! ```no_run
//! use tether::{Config, Endpoint, SocketRoute, channel::{Assigns, Router}, endpoint::ConnectError};
//!
//! # async fn run() -> std::io::Result<()> {
//! let builder = Endpoint::builder(Config::from_env().unwrap()).unwrap();
//! let router = Router::new(); // .channel("room:*", Room { presence: builder.presence() })
//! let socket = SocketRoute::new("/socket", router).connect(|info| {
//!     let user_id = info.param("user_id").ok_or(ConnectError::new("user_id required"))?;
//!     let mut assigns = Assigns::default();
//!     assigns.insert("user_id", user_id);
//!     Ok(assigns)
//! });
//! let endpoint = builder.socket(socket).build().unwrap();
//! let listener = std::net::TcpListener::bind(("127.0.0.1", 4000))?;
//! tether::serve(endpoint, listener, |_routes| {}).await
//! # }
//! ```

mod origin;
mod serve;

use std::{
    any::Any,
    collections::HashMap,
    fmt,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix_service::IntoServiceFactory;
use actix_web::{
    HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{AppConfig, Extensions, Response, Service, ServiceFactory},
    http::header,
    web,
};
use serde::Serialize;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use crate::channel::{ConnectError, ConnectInfo, SocketRoute};
use crate::channel::{TETHER_JS_ROUTE, socket_route_name};
pub use crate::dashboard::{DASHBOARD_PATH, METRICS_PATH};
pub use crate::render::render;
#[cfg(feature = "testing")]
pub(crate) use serve::server;
pub use serve::{serve, shutdown_signal};

use crate::{
    channel::{JoinedChannels, RateConfig, RateLimits, socket::Conn},
    commander::{Commander, Commanders, CommandersBuilder},
    config::Config,
    dashboard::Dashboard,
    presence::{Presence, PresenceHooks},
    pubsub::{FLUSH_TIMEOUT, PubSub},
    transport::{
        connection::Limits,
        frame::encode_broadcast,
        upgrade::{Runtime, upgrade},
    },
};
use origin::{check_origin, normalize_origin};

/// The browser client, served at `tether.js` where the endpoint is mounted: the bundled
/// libraries of `assets/vendor/` (idiomorph, for `morph` patches; see `scripts/refresh-vendor`)
/// followed by `assets/tether.js`, the bundle of the ES modules in `assets/src/` (committed,
/// rebuilt by `scripts/build-js`; cargo never runs npm).
pub const TETHER_JS: &str = concat!(
    include_str!("../../assets/vendor/idiomorph.js"),
    "\n",
    include_str!("../../assets/tether.js")
);

/// `TCP_NOTSENT_LOWAT` of every accepted socket ([`Endpoint::tune_server`]): the kernel
/// holds at most about this much *unsent* output per connection, and reports the socket
/// writable again once less than half of it is left.
///
/// Without it the kernel holds up to `net.ipv4.tcp_wmem`'s maximum (4 MiB by default) per
/// socket and wakes the writer only when a third of its send buffer is free: a client that
/// reads steadily but slowly (under ~1 MB/s; a load generator holding 10,000 clients on one
/// thread reads each at tens of KB/s) then shows no write progress for longer than the write
/// timeout, and was dropped while reading. With it, every ~64 KiB the client reads lets a
/// write through, which is progress; output waits in the outbox instead, where a frame
/// shared by many connections (a `presence_state`, a broadcast) is held once, not copied
/// into every socket's send buffer. Unsent output is not a cap on what is in flight, so
/// throughput on long links is unchanged as long as the outbox has data to refill with.
pub const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Errors building an [`Endpoint`].
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A socket path must start with `/` and not end with one.
    #[error("invalid socket path `{0}`: it must start with `/` and not end with `/`")]
    InvalidPath(String),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The pub/sub adapter could not be set up.
    #[error(transparent)]
    PubSub(#[from] crate::pubsub::PubSubError),
    /// The commanders could not be built.
    #[error(transparent)]
    Commanders(#[from] crate::commander::BuildError),
}

/// Builds an [`Endpoint`]; see the module docs.
pub struct EndpointBuilder {
    config: Config,
    pubsub: Arc<dyn PubSub>,
    presence: Presence,
    sockets: Vec<SocketRoute>,
    commanders: CommandersBuilder,
    has_commanders: bool,
}

impl fmt::Debug for EndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointBuilder")
            .field("sockets", &self.sockets.len())
            .field("has_commanders", &self.has_commanders)
            .finish_non_exhaustive()
    }
}

impl EndpointBuilder {
    /// The endpoint's presence, for channels that track (there is one per endpoint).
    pub fn presence(&self) -> Presence {
        self.presence.clone()
    }

    /// The endpoint's pub/sub, for code that broadcasts from outside any channel.
    pub fn pubsub(&self) -> Arc<dyn PubSub> {
        self.pubsub.clone()
    }

    /// Uses `hooks` (`fetch`, `init`, `handle_metas`) for the endpoint's presence.
    pub fn presence_hooks(self, hooks: impl PresenceHooks) -> EndpointBuilder {
        self.presence.set_hooks(hooks);
        self
    }

    /// Adds a socket route.
    pub fn socket(mut self, route: SocketRoute) -> EndpointBuilder {
        self.sockets.push(route);
        self
    }

    /// Adds a commander; its pages connect to `[commander] socket_path` and are tracked in
    /// the endpoint's presence (unless `[presence] enabled = false`).
    pub fn commander(mut self, commander: impl Commander) -> EndpointBuilder {
        self.commanders = self.commanders.commander(commander);
        self.has_commanders = true;
        self
    }

    /// Checks the routes and builds the endpoint; starts nothing. With
    /// `endpoint.dashboard_password` (or `endpoint.metrics_token`) set, the dashboard (its
    /// own commanders and socket) is built here.
    pub fn build(self) -> Result<Endpoint, EndpointError> {
        let dashboard = Dashboard::new(&self.config, self.presence.clone(), self.pubsub.clone())?;
        let commanders = self.commanders.build()?;
        let mut sockets = self.sockets;
        if self.has_commanders {
            sockets.push(commanders.socket_route());
        }
        for route in &sockets {
            if !crate::config::valid_socket_path(&route.path) {
                return Err(EndpointError::InvalidPath(route.path.clone()));
            }
        }
        let origins = OnceLock::new();
        if let Some(url) = &self.config.endpoint.url {
            let _ = origins.set(vec![normalize_origin(url)]);
        }
        let e = &self.config.endpoint;
        let runtime = Runtime {
            limits: Limits {
                max_frame_bytes: e.max_frame_bytes,
                idle_timeout: Duration::from_millis(e.idle_timeout_ms),
                write_timeout: Duration::from_millis(e.write_timeout_ms),
            },
            max_outbound_bytes: e.max_outbound_bytes,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
        };
        Ok(Endpoint {
            inner: Arc::new(Inner {
                origins,
                runtime,
                pubsub: self.pubsub,
                presence: self.presence,
                commanders,
                dashboard,
                sockets: sockets.into_iter().map(Arc::new).collect(),
                background: TaskTracker::new(),
                stop_background: CancellationToken::new(),
                started: AtomicBool::new(false),
                config: self.config,
            }),
        })
    }
}

struct Inner {
    config: Config,
    /// The origins browsers may connect from under `check_origin = true`: `endpoint.url`,
    /// or, unset, the addresses [`serve`] listens on (set when it binds).
    origins: OnceLock<Vec<String>>,
    runtime: Runtime,
    pubsub: Arc<dyn PubSub>,
    presence: Presence,
    commanders: Commanders,
    /// The dashboard and `/metrics`, when `endpoint.dashboard_password` (or
    /// `endpoint.metrics_token`) is set.
    dashboard: Option<Dashboard>,
    sockets: Vec<Arc<SocketRoute>>,
    /// The pub/sub, presence and counter tasks.
    background: TaskTracker,
    stop_background: CancellationToken,
    started: AtomicBool,
}

/// The running framework: config, pub/sub, presence, commanders, sockets and live
/// connections. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("sockets", &self.inner.sockets.len())
            .field("connections", &self.connection_count())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Starts building an endpoint from `config` (validated here): creates its pub/sub and
    /// its presence, without starting either.
    pub fn builder(config: Config) -> Result<EndpointBuilder, EndpointError> {
        config.validate()?;
        let pubsub = crate::pubsub::from_config(&config.pubsub, &config.endpoint.secret_key_base)?;
        let node = config.pubsub.node_name();
        let presence = Presence::new(&node, &config.presence, pubsub.clone());
        let mut commanders = Commanders::builder(
            &config.commander,
            &config.presence,
            &config.endpoint.secret_key_base,
            pubsub.clone(),
        );
        if config.presence.enabled {
            commanders = commanders.presence(presence.clone());
        }
        Ok(EndpointBuilder {
            config,
            pubsub,
            presence,
            sockets: Vec::new(),
            commanders,
            has_commanders: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The pub/sub every connection subscribes through.
    pub fn pubsub(&self) -> &Arc<dyn PubSub> {
        &self.inner.pubsub
    }

    /// The endpoint's presence.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// The endpoint's commanders (no commander registered: no page socket, but counts and
    /// broadcasts still work).
    pub fn commanders(&self) -> &Commanders {
        &self.inner.commanders
    }

    /// Starts the background tasks (the pub/sub's connections, presence's gossip and
    /// delivery, live counters) on the current tokio runtime; later calls do nothing.
    /// [`serve`] and [`Endpoint::configure`] call it.
    pub fn start(&self) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (tasks, stop) = (&self.inner.background, &self.inner.stop_background);
        self.inner.pubsub.start(tasks, stop);
        self.inner.presence.start(tasks);
        self.inner.commanders.start(tasks, stop);
        if let Some(dashboard) = &self.inner.dashboard {
            dashboard.start(tasks, stop);
        }
    }

    /// Sends `event` with `payload` to every client joined to `topic`, from outside any
    /// channel. Encoded once.
    pub fn broadcast(&self, topic: &str, event: &str, payload: &(impl Serialize + ?Sized)) {
        let frame = encode_broadcast(topic, event, payload);
        self.inner.pubsub.broadcast(topic, frame, None);
    }

    /// Registers the WebSocket routes and `tether.js` (the browser client) on an actix-web
    /// app, relative to where it is called (works under a `web::scope`), and starts the
    /// endpoint: `App::new().configure(|cfg| endpoint.configure(cfg))`. The dashboard is
    /// mounted apart, with [`Endpoint::configure_dashboard`] ([`serve`] does both).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        self.start();
        cfg.service(
            web::resource("/tether.js")
                .name(TETHER_JS_ROUTE)
                .route(web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/javascript; charset=utf-8")
                        .insert_header((header::CACHE_CONTROL, "no-cache"))
                        .body(TETHER_JS)
                })),
        );
        for route in &self.inner.sockets {
            let endpoint = self.clone();
            let route = route.clone();
            let path = format!("{}/websocket", route.path);
            cfg.service(
                web::resource(path)
                    .name(&socket_route_name(&route.path))
                    .route(web::get().to(move |req: HttpRequest, body: web::Payload| {
                        let endpoint = endpoint.clone();
                        let route = route.clone();
                        async move { endpoint.upgrade(&route, req, body) }
                    })),
            );
        }
    }

    /// With `endpoint.dashboard_password` set, registers the live dashboard
    /// ([`DASHBOARD_PATH`], and its own socket next to it) and the Prometheus metrics
    /// ([`METRICS_PATH`]), behind HTTP Basic (user `admin`, the password compared in constant
    /// time, wrong guesses throttled per client), relative to where it is called (usually the
    /// app's root, also when the sockets live under a scope). `/metrics` also takes
    /// `Authorization: Bearer <endpoint.metrics_token>`, and with only the token set it is
    /// the one route registered. Without either it registers nothing (those paths are 404).
    ///
    /// ```no_run
    /// # fn f(endpoint: tether::Endpoint) {
    /// let app = actix_web::App::new()
    ///     .service(actix_web::web::scope("/live").configure(|cfg| endpoint.configure(cfg)))
    ///     .configure(|cfg| endpoint.configure_dashboard(cfg));
    /// # let _ = app; }
    /// ```
    pub fn configure_dashboard(&self, cfg: &mut web::ServiceConfig) {
        if let Some(dashboard) = &self.inner.dashboard {
            let endpoint = self.clone();
            dashboard.mount(cfg, move |route, req, body| {
                endpoint.upgrade(route, req, body)
            });
        }
    }

    /// Tunes an `HttpServer` you run yourself for tether's connections, as [`serve`] does:
    /// actix-http's per-connection write buffer never grows (one body chunk per write), Nagle's
    /// algorithm is off (`TCP_NODELAY`: a large frame goes out in 8 KiB chunks, which Nagle
    /// would otherwise hold back a delayed ACK, ~40 ms, each), and each accepted socket gets
    /// `TCP_USER_TIMEOUT` = `endpoint.write_timeout_ms`, so the kernel releases a socket whose
    /// peer stopped reading; and a connection has `endpoint.handshake_timeout_ms` (30 s) to
    /// send its request head, instead of actix-web's 5 s, which a join storm on a saturated
    /// worker exceeds (HTTP 408) although the client sent its head in time.
    ///
    /// ```no_run
    /// # async fn run(endpoint: tether::Endpoint) -> std::io::Result<()> {
    /// let app_endpoint = endpoint.clone();
    /// let server = actix_web::HttpServer::new(move || {
    ///     let endpoint = app_endpoint.clone();
    ///     actix_web::App::new().configure(move |cfg| endpoint.configure(cfg))
    /// });
    /// endpoint.tune_server(server).bind(("127.0.0.1", 4000))?.run().await
    /// # }
    /// ```
    pub fn tune_server<F, I, S, B>(&self, server: HttpServer<F, I, S, B>) -> HttpServer<F, I, S, B>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, actix_http::Request>,
        S: ServiceFactory<actix_http::Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<actix_http::Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let handshake = Duration::from_millis(self.inner.config.endpoint.handshake_timeout_ms);
        server
            .client_request_timeout(handshake)
            .h1_write_buffer_size(crate::transport::body::H1_WRITE_BUFFER_SIZE)
            .tcp_nodelay(true)
            .on_connect(self.on_connect())
    }

    /// Sets `TCP_USER_TIMEOUT` to the write timeout on every accepted socket (a stalled
    /// write cannot be interrupted from above actix-http; the kernel can), and
    /// `TCP_NOTSENT_LOWAT` to [`NOTSENT_LOWAT`] (see there: a slow reader's progress shows).
    fn on_connect(&self) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let timeout = Duration::from_millis(self.inner.config.endpoint.write_timeout_ms);
        move |connection, _| {
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let socket = socket2::SockRef::from(tcp);
                if let Err(err) = socket.set_tcp_user_timeout(Some(timeout)) {
                    tracing::warn!("cannot set TCP_USER_TIMEOUT: {err}");
                }
                if let Err(err) = socket.set_tcp_notsent_lowat(NOTSENT_LOWAT) {
                    tracing::warn!("cannot set TCP_NOTSENT_LOWAT: {err}");
                }
            }
        }
    }

    /// Stops everything in order: every connection closes (code 1001, so clients reconnect
    /// elsewhere) and its channels terminate (waiting up to `shutdown_timeout_ms`), new
    /// upgrades are refused, peers are told to drop this node's presences, then the
    /// background tasks stop (the bus sends what is queued first).
    pub async fn shutdown(&self) {
        let runtime = &self.inner.runtime;
        runtime.shutdown.cancel();
        runtime.connections.close();
        let timeout = Duration::from_millis(self.inner.config.endpoint.shutdown_timeout_ms);
        if tokio::time::timeout(timeout, runtime.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = runtime.connections.len(),
                "shutdown timed out waiting for connections"
            );
        }
        self.inner.presence.shutdown().await;
        self.inner.stop_background.cancel();
        self.inner.background.close();
        let background = FLUSH_TIMEOUT + Duration::from_secs(1);
        if tokio::time::timeout(background, self.inner.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown timed out waiting for background tasks");
        }
    }

    /// Number of live WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.inner.runtime.connections.len()
    }

    /// Allows browsers from where a server listens (used by [`serve`] without
    /// `endpoint.url`).
    fn allow_served_origins(&self, addrs: &[std::net::SocketAddr]) {
        let served: Vec<String> = addrs
            .iter()
            .flat_map(|addr| {
                let port = addr.port();
                [format!("http://{addr}"), format!("http://localhost:{port}")]
            })
            .collect();
        let _ = self.inner.origins.set(served);
    }

    fn upgrade(
        &self,
        route: &SocketRoute,
        req: HttpRequest,
        payload: web::Payload,
    ) -> Result<HttpResponse, actix_web::Error> {
        let forbidden = |reason: &str| {
            tracing::info!(
                peer = ?req.peer_addr(),
                path = crate::text::for_log(req.path()),
                "upgrade refused: {reason}"
            );
            Ok(HttpResponse::Forbidden().finish())
        };
        if self.inner.runtime.shutdown.is_cancelled() {
            return Ok(HttpResponse::ServiceUnavailable().finish());
        }
        let Ok(web::Query(params)) =
            web::Query::<HashMap<String, String>>::from_query(req.query_string())
        else {
            return Ok(HttpResponse::BadRequest().body("malformed query string"));
        };
        if params.get("vsn").is_some_and(|vsn| !vsn.starts_with("2.")) {
            return forbidden("unsupported protocol version (only vsn=2.0.0)");
        }
        let origins = self.inner.origins.get().map(Vec::as_slice);
        if let Err(reason) = check_origin(&self.inner.config.endpoint.check_origin, origins, &req) {
            return forbidden(&reason);
        }
        let info = ConnectInfo {
            request: &req,
            params: &params,
        };
        let assigns = match (route.connect)(&info) {
            Ok(assigns) => assigns,
            Err(err) => return forbidden(&err.0),
        };
        let pubsub = self.inner.pubsub.clone();
        let max_channels = self.inner.config.endpoint.max_channels;
        let rate = RateConfig::from_endpoint(&self.inner.config.endpoint);
        let mut limits = self.inner.runtime.limits;
        if let Some(max) = route.max_frame_bytes {
            limits.max_frame_bytes = max;
        }
        upgrade(&req, payload, &self.inner.runtime, limits, |outbox| {
            JoinedChannels::new(
                route.router.clone(),
                Conn::new(outbox, pubsub),
                Arc::new(assigns),
                max_channels,
                RateLimits::new(rate),
            )
        })
    }
}
