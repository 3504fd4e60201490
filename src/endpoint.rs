//! actix-web integration: the WebSocket routes, the origin check, the connect hook, and a
//! ready-made server loop with clean shutdown.
//!
//! An [`Endpoint`] owns the configuration, the pub/sub and every live connection. Mount it
//! in an actix-web `App` with [`Endpoint::configure`], or let [`serve`] run the whole server
//! (bind `127.0.0.1:$PORT`, print `listening on …`, stop on SIGTERM/SIGINT after every
//! connection has run its leave callbacks).
//!
//! An upgrade is refused with HTTP 403 when the `Origin` fails the check, when `vsn` is not
//! 2.x, or when the connect hook refuses; nothing is upgraded, and nothing else is affected.
//!
//! ```no_run
//! use tether::{Config, Endpoint, SocketRoute, channel::{Assigns, Router}, endpoint::ConnectError};
//!
//! # async fn run() -> std::io::Result<()> {
//! let router = Router::new(); // .channel("room:*", Room)
//! let socket = SocketRoute::new("/socket", router).connect(|info| {
//!     let user_id = info.param("user_id").ok_or(ConnectError::new("user_id required"))?;
//!     let mut assigns = Assigns::default();
//!     assigns.insert("user_id", user_id);
//!     Ok(assigns)
//! });
//! let endpoint = Endpoint::builder(Config::from_env().unwrap()).socket(socket).build().unwrap();
//! tether::serve(endpoint, |_routes| {}).await
//! # }
//! ```

use std::{any::Any, collections::HashMap, sync::Arc, time::Duration};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::{BodyStream, MessageBody},
    dev::Extensions,
    http::header,
    web,
};
use serde::Serialize;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    channel::{Assigns, ChannelSession, Router, socket::Conn},
    config::{CheckOrigin, Config},
    presence::Presence,
    pubsub::PubSub,
    transport::{self, Limits, Outbox, body::OutboxBody, frame::encode},
};

/// The browser client, served at `/tether.js`.
pub const TETHER_JS: &str = include_str!("../assets/tether.js");

/// Why a connect hook refused a connection (logged; the client sees HTTP 403).
#[derive(Debug, Clone, thiserror::Error)]
#[error("connection refused: {0}")]
pub struct ConnectError(String);

impl ConnectError {
    /// A refusal with a reason for the log.
    pub fn new(reason: impl Into<String>) -> ConnectError {
        ConnectError(reason.into())
    }
}

/// Errors building an [`Endpoint`].
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// A socket path must start with `/` and not end with one.
    #[error("invalid socket path `{0}`: it must start with `/` and not end with `/`")]
    InvalidPath(String),
    /// The pub/sub adapter could not be set up.
    #[error(transparent)]
    PubSub(#[from] crate::pubsub::PubSubError),
}

/// What the connect hook sees of an upgrade request.
pub struct ConnectInfo<'a> {
    request: &'a HttpRequest,
    params: &'a HashMap<String, String>,
}

impl ConnectInfo<'_> {
    /// A query parameter of the socket URL (`/socket/websocket?user_id=…`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// All query parameters.
    pub fn params(&self) -> &HashMap<String, String> {
        self.params
    }

    /// The request itself: headers, cookies (`request().cookie(name)`), peer address.
    pub fn request(&self) -> &HttpRequest {
        self.request
    }
}

type ConnectHook = dyn Fn(&ConnectInfo<'_>) -> Result<Assigns, ConnectError> + Send + Sync;

/// A WebSocket mount point: a path, the channels reachable through it, and a connect hook.
///
/// Served at `<path>/websocket` (phoenix.js appends `/websocket` to the socket path).
pub struct SocketRoute {
    path: String,
    router: Arc<Router>,
    connect: Arc<ConnectHook>,
}

impl SocketRoute {
    /// Mounts `router` at `path` (e.g. `/socket`). Without a connect hook every connection
    /// is accepted with empty assigns.
    pub fn new(path: &str, router: Router) -> SocketRoute {
        SocketRoute {
            path: path.to_string(),
            router: Arc::new(router),
            connect: Arc::new(|_| Ok(Assigns::default())),
        }
    }

    /// Sets the connect hook: it sees the params, headers and cookies of the upgrade and
    /// returns the connection's assigns, or refuses (HTTP 403).
    pub fn connect(
        mut self,
        hook: impl Fn(&ConnectInfo<'_>) -> Result<Assigns, ConnectError> + Send + Sync + 'static,
    ) -> SocketRoute {
        self.connect = Arc::new(hook);
        self
    }
}

struct Inner {
    config: Config,
    /// The origins browsers may connect from under `check_origin = true`: `endpoint.url`,
    /// or, unset, the addresses [`serve`] listens on (set when it binds).
    origins: std::sync::OnceLock<Vec<String>>,
    pubsub: Arc<dyn PubSub>,
    sockets: Vec<Arc<SocketRoute>>,
    presences: Vec<Presence>,
    shutdown: CancellationToken,
    connections: TaskTracker,
}

/// Builds an [`Endpoint`].
pub struct EndpointBuilder {
    config: Config,
    pubsub: Option<Arc<dyn PubSub>>,
    sockets: Vec<SocketRoute>,
    presences: Vec<Presence>,
}

impl EndpointBuilder {
    /// Adds a socket route.
    pub fn socket(mut self, route: SocketRoute) -> EndpointBuilder {
        self.sockets.push(route);
        self
    }

    /// Shuts `presence` down with the endpoint: after every connection has closed (so its
    /// presences have left), peers are told to drop this node's entries at once.
    pub fn presence(mut self, presence: Presence) -> EndpointBuilder {
        self.presences.push(presence);
        self
    }

    /// Uses this pub/sub instead of the one the config selects.
    pub fn pubsub(mut self, pubsub: Arc<dyn PubSub>) -> EndpointBuilder {
        self.pubsub = Some(pubsub);
        self
    }

    /// Checks the routes and builds the endpoint.
    pub fn build(self) -> Result<Endpoint, EndpointError> {
        for route in &self.sockets {
            if !route.path.starts_with('/') || route.path.ends_with('/') {
                return Err(EndpointError::InvalidPath(route.path.clone()));
            }
        }
        let pubsub = match self.pubsub {
            Some(pubsub) => pubsub,
            None => crate::pubsub::from_config(&self.config)?,
        };
        let origins = std::sync::OnceLock::new();
        if let Some(url) = &self.config.endpoint.url {
            let _ = origins.set(vec![normalize_origin(url)]);
        }
        Ok(Endpoint {
            inner: Arc::new(Inner {
                origins,
                config: self.config,
                pubsub,
                sockets: self.sockets.into_iter().map(Arc::new).collect(),
                presences: self.presences,
                shutdown: CancellationToken::new(),
                connections: TaskTracker::new(),
            }),
        })
    }
}

/// The running framework: config, pub/sub, sockets and live connections. Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Endpoint {
    /// Starts building an endpoint from `config`.
    pub fn builder(config: Config) -> EndpointBuilder {
        EndpointBuilder {
            config,
            pubsub: None,
            sockets: Vec::new(),
            presences: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The pub/sub every connection subscribes through.
    pub fn pubsub(&self) -> &Arc<dyn PubSub> {
        &self.inner.pubsub
    }

    /// Sends `event` with `payload` to every client joined to `topic`, from outside any
    /// channel. Encoded once.
    pub fn broadcast(&self, topic: &str, event: &str, payload: &(impl Serialize + ?Sized)) {
        let frame = encode(None, None, topic, event, payload);
        self.inner.pubsub.broadcast(topic, frame, None);
    }

    /// Registers the WebSocket routes and `GET /tether.js` (the browser client) on an
    /// actix-web app: `App::new().configure(|cfg| endpoint.configure(cfg))`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.route(
            "/tether.js",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/javascript; charset=utf-8")
                    .insert_header((header::CACHE_CONTROL, "no-cache"))
                    .body(TETHER_JS)
            }),
        );
        for route in &self.inner.sockets {
            let endpoint = self.clone();
            let route = route.clone();
            let path = format!("{}/websocket", route.path);
            cfg.route(
                &path,
                web::get().to(move |req: HttpRequest, body: web::Payload| {
                    let endpoint = endpoint.clone();
                    let route = route.clone();
                    async move { endpoint.upgrade(&route, req, body) }
                }),
            );
        }
    }

    /// Closes every connection (code 1001, so clients reconnect elsewhere), waits up to
    /// `shutdown_timeout_ms` for their channels to terminate, refuses new upgrades, and
    /// shuts down the presences registered with [`EndpointBuilder::presence`].
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.connections.close();
        let timeout = Duration::from_millis(self.inner.config.endpoint.shutdown_timeout_ms);
        if tokio::time::timeout(timeout, self.inner.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.inner.connections.len(),
                "shutdown timed out waiting for connections"
            );
        }
        for presence in &self.inner.presences {
            presence.shutdown().await;
        }
    }

    /// The callback to give `HttpServer::on_connect` (as [`serve`] does): sets
    /// `TCP_USER_TIMEOUT` to `endpoint.write_timeout_ms` on every accepted socket, so that the
    /// kernel releases a socket whose peer stopped reading (a stalled write cannot be
    /// interrupted from above actix-http). Without it a stalled connection's queue is still
    /// freed at the write timeout, but its socket lingers until the peer goes away.
    ///
    /// ```no_run
    /// # async fn run(endpoint: tether::Endpoint) -> std::io::Result<()> {
    /// let app_endpoint = endpoint.clone();
    /// actix_web::HttpServer::new(move || {
    ///     let endpoint = app_endpoint.clone();
    ///     actix_web::App::new().configure(move |cfg| endpoint.configure(cfg))
    /// })
    /// .h1_write_buffer_size(tether::transport::body::H1_WRITE_BUFFER_SIZE)
    /// .on_connect(endpoint.on_connect())
    /// .bind(("127.0.0.1", 4000))?
    /// .run()
    /// .await
    /// # }
    /// ```
    pub fn on_connect(&self) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
        let timeout = Duration::from_millis(self.inner.config.endpoint.write_timeout_ms);
        move |connection, _| {
            if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
                if let Err(err) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout)) {
                    tracing::warn!("cannot set TCP_USER_TIMEOUT: {err}");
                }
            }
        }
    }

    /// Number of live WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.inner.connections.len()
    }

    fn upgrade(
        &self,
        route: &SocketRoute,
        req: HttpRequest,
        body_payload: web::Payload,
    ) -> Result<HttpResponse, actix_web::Error> {
        let forbidden = |reason: &str| {
            tracing::info!(
                peer = ?req.peer_addr(),
                path = crate::text::for_log(req.path()),
                "upgrade refused: {reason}"
            );
            Ok(HttpResponse::Forbidden().finish())
        };
        if self.inner.shutdown.is_cancelled() {
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

        let limits = &self.inner.config.endpoint;
        let mut handshake = actix_http::ws::handshake(req.head())
            .map_err(|err| actix_web::error::ErrorBadRequest(err.to_string()))?;
        let outbox = Outbox::new(limits.max_outbound_bytes);
        let body = BodyStream::new(OutboxBody::new(outbox.shared().clone()));
        let response = HttpResponse::from(handshake.message_body(body.boxed())?);
        let conn = Conn::new(outbox.clone(), self.inner.pubsub.clone());
        let handler = ChannelSession::new(
            route.router.clone(),
            conn,
            Arc::new(assigns),
            limits.max_channels,
        );
        let connection = transport::connection::run(
            body_payload,
            outbox,
            handler,
            Limits {
                max_frame_bytes: limits.max_frame_bytes,
                idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
                write_timeout: Duration::from_millis(limits.write_timeout_ms),
            },
            self.inner.shutdown.clone(),
        );
        actix_web::rt::spawn(self.inner.connections.track_future(connection));
        Ok(response)
    }
}

/// `scheme://host[:port]` lowercased, without a trailing slash or a default port.
fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    match origin.split_once("://") {
        Some((scheme, authority)) => {
            format!("{scheme}://{}", strip_default_port(scheme, authority))
        }
        None => origin,
    }
}

/// Applies the origin policy; `Err` says why the origin was refused. `origins` are the
/// allowed origins of `check_origin = true` (`endpoint.url`, or where `serve` listens); when
/// there are none (an app that mounts the endpoint itself and set no `endpoint.url`), the
/// `Origin` is compared with the request's `Host` (logged as a warning once).
fn check_origin(
    policy: &CheckOrigin,
    origins: Option<&[String]>,
    req: &HttpRequest,
) -> Result<(), String> {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return Ok(()); // not a browser: nothing to check, as in Phoenix
    };
    let origin = origin
        .to_str()
        .map_err(|_| "Origin header is not ASCII".to_string())?;
    let origin = normalize_origin(origin);
    let allowed = |list: &[String]| list.iter().any(|a| normalize_origin(a) == origin);
    match policy {
        CheckOrigin::Enabled(false) => Ok(()),
        CheckOrigin::Enabled(true) => match origins {
            Some(origins) if allowed(origins) => Ok(()),
            Some(_) => Err(format!(
                "Origin `{}` is not endpoint.url (or where the server listens)",
                crate::text::for_log(&origin)
            )),
            None => same_host(&origin, req),
        },
        CheckOrigin::AllowList(list) => {
            if allowed(list) {
                Ok(())
            } else {
                Err(format!(
                    "Origin `{}` is not in endpoint.check_origin",
                    crate::text::for_log(&origin)
                ))
            }
        }
    }
}

/// The fallback without configured origins: the `Origin` must name the request's `Host`.
fn same_host(origin: &str, req: &HttpRequest) -> Result<(), String> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "endpoint.url is not set: the origin check compares the Origin with the request's \
             Host header, which DNS rebinding and some proxies defeat; set endpoint.url"
        )
    });
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| "no Host header to compare the Origin with".to_string())?;
    let (scheme, _) = origin.split_once("://").ok_or_else(|| {
        format!(
            "Origin `{}` is not scheme://host",
            crate::text::for_log(origin)
        )
    })?;
    if normalize_origin(&format!("{scheme}://{host}")) == origin {
        Ok(())
    } else {
        Err(format!(
            "Origin `{}` is not this host `{}`",
            crate::text::for_log(origin),
            crate::text::for_log(host)
        ))
    }
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Runs an actix-web server for `endpoint` on `127.0.0.1:$PORT` (config `endpoint.port`),
/// with the endpoint's routes plus the app's own (`routes`).
///
/// Prints `listening on http://127.0.0.1:<port>` once the socket accepts connections
/// (port 0 picks a free port and prints it). On SIGTERM or SIGINT, closes every connection
/// (their channels terminate, so presences leave first), then stops the server.
pub async fn serve(
    endpoint: Endpoint,
    routes: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
) -> std::io::Result<()> {
    let port = endpoint.config().endpoint.port;
    let app_endpoint = endpoint.clone();
    let server = HttpServer::new(move || {
        let endpoint = app_endpoint.clone();
        App::new()
            .configure(|cfg| endpoint.configure(cfg))
            .configure(routes.clone())
    })
    .disable_signals()
    .backlog(4096)
    // One body chunk per write, so actix-http's per-connection write buffer never grows
    // (see transport::body).
    .h1_write_buffer_size(transport::body::H1_WRITE_BUFFER_SIZE)
    .on_connect(endpoint.on_connect())
    .shutdown_timeout(1)
    .bind(("127.0.0.1", port))?;
    let addrs = server.addrs();
    // Without endpoint.url, browsers may connect from where we listen.
    let served: Vec<String> = addrs
        .iter()
        .flat_map(|addr| {
            let port = addr.port();
            [format!("http://{addr}"), format!("http://localhost:{port}")]
        })
        .collect();
    let _ = endpoint.inner.origins.set(served);
    let server = server.run();
    for addr in addrs {
        println!("listening on http://{addr}");
    }
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        endpoint.shutdown().await;
        handle.stop(true).await;
    });
    server.await
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn request(origin: Option<&str>, host: &str) -> HttpRequest {
        let mut req = TestRequest::default().insert_header((header::HOST, host));
        if let Some(origin) = origin {
            req = req.insert_header((header::ORIGIN, origin));
        }
        req.to_http_request()
    }

    #[test]
    fn configured_origins_not_the_host_header() {
        let policy = CheckOrigin::Enabled(true);
        let url = vec!["https://App.example.com/".to_string()];
        let origins = Some(url.as_slice());
        let ok = |origin, host| check_origin(&policy, origins, &request(Some(origin), host));
        assert!(ok("https://app.example.com", "internal:8080").is_ok());
        assert!(ok("https://app.example.com:443", "x").is_ok());
        // DNS rebinding: Origin and Host both name the attacker's host.
        assert!(ok("http://evil.example", "evil.example").is_err());
        assert!(
            ok("http://app.example.com", "app.example.com").is_err(),
            "scheme counts"
        );
    }

    #[test]
    fn same_host_origin_check() {
        let policy = CheckOrigin::Enabled(true);
        let check_origin =
            |policy: &CheckOrigin, req: &HttpRequest| check_origin(policy, None, req);
        assert!(check_origin(&policy, &request(None, "127.0.0.1:4000")).is_ok());
        assert!(
            check_origin(
                &policy,
                &request(Some("http://127.0.0.1:4000"), "127.0.0.1:4000")
            )
            .is_ok()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("https://Example.com:443"), "example.com")
            )
            .is_ok()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("http://evil.example"), "127.0.0.1:4000")
            )
            .is_err()
        );
        assert!(
            check_origin(
                &policy,
                &request(Some("http://127.0.0.1:4001"), "127.0.0.1:4000")
            )
            .is_err()
        );
        assert!(check_origin(&policy, &request(Some("null"), "127.0.0.1:4000")).is_err());
        assert!(
            check_origin(
                &CheckOrigin::Enabled(false),
                &request(Some("http://evil"), "x")
            )
            .is_ok()
        );
    }

    #[test]
    fn allow_list_origin_check() {
        let check_origin =
            |policy: &CheckOrigin, req: &HttpRequest| check_origin(policy, None, req);
        let policy = CheckOrigin::AllowList(vec!["https://app.example.com".into()]);
        assert!(check_origin(&policy, &request(Some("https://app.example.com/"), "x")).is_ok());
        assert!(check_origin(&policy, &request(Some("http://app.example.com"), "x")).is_err());
    }
}
