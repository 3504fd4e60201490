//! A WebSocket mount point: its path, the channels reachable through it, and the connect
//! hook that turns an upgrade request into a connection's assigns (or refuses it).
//!
//! This is the channel layer's description of a socket; the endpoint serves it. It must
//! never touch HTTP beyond reading the upgrade request.

use std::{collections::HashMap, sync::Arc};

use actix_web::HttpRequest;

use super::{Assigns, Router};

/// The name under which the endpoint mounts `tether.js` (for `HttpRequest::url_for_static`,
/// so a page finds the script where the endpoint is mounted).
pub const TETHER_JS_ROUTE: &str = "tether.js";

/// The name under which the endpoint mounts the socket at `path` (for
/// `HttpRequest::url_for_static`).
pub fn socket_route_name(path: &str) -> String {
    format!("tether.socket:{path}")
}

/// Why a connect hook refused a connection (logged; the client sees HTTP 403).
#[derive(Debug, Clone, thiserror::Error)]
#[error("connection refused: {0}")]
pub struct ConnectError(pub(crate) String);

impl ConnectError {
    /// A refusal with a reason for the log.
    pub fn new(reason: impl Into<String>) -> ConnectError {
        ConnectError(reason.into())
    }
}

/// What the connect hook sees of an upgrade request.
pub struct ConnectInfo<'a> {
    pub(crate) request: &'a HttpRequest,
    pub(crate) params: &'a HashMap<String, String>,
}

impl std::fmt::Debug for ConnectInfo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectInfo")
            .field("path", &self.request.path())
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
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

pub(crate) type ConnectHook =
    dyn Fn(&ConnectInfo<'_>) -> Result<Assigns, ConnectError> + Send + Sync;

/// A WebSocket mount point: a path, the channels reachable through it, and a connect hook.
///
/// Served at `<path>/websocket` (phoenix.js appends `/websocket` to the socket path).
pub struct SocketRoute {
    pub(crate) path: String,
    pub(crate) router: Arc<Router>,
    pub(crate) connect: Arc<ConnectHook>,
    /// This route's own inbound message limit, in place of `endpoint.max_frame_bytes`.
    pub(crate) max_frame_bytes: Option<usize>,
}

impl std::fmt::Debug for SocketRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketRoute")
            .field("path", &self.path)
            .field("router", &self.router)
            .finish_non_exhaustive()
    }
}

impl SocketRoute {
    /// Mounts `router` at `path` (e.g. `/socket`). Without a connect hook every connection
    /// is accepted with empty assigns.
    pub fn new(path: &str, router: Router) -> SocketRoute {
        SocketRoute {
            path: path.to_string(),
            router: Arc::new(router),
            connect: Arc::new(|_| Ok(Assigns::default())),
            max_frame_bytes: None,
        }
    }

    /// Sets this route's largest inbound WebSocket message, in bytes (by default
    /// `endpoint.max_frame_bytes`); a larger message closes the connection with 1009. The
    /// commanders' page socket uses `commander.max_frame_bytes` (64 KiB by default).
    ///
    /// ```
    /// use tether::{SocketRoute, channel::Router};
    /// let route = SocketRoute::new("/socket", Router::new()).max_frame_bytes(16 * 1024);
    /// # let _ = route;
    /// ```
    pub fn max_frame_bytes(mut self, bytes: usize) -> SocketRoute {
        self.max_frame_bytes = Some(bytes);
        self
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
