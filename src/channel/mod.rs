//! Channels: per-topic conversations multiplexed on one socket, routed by topic pattern.
//!
//! A [`Channel`] is shared by every connection (like a Phoenix channel module); the state of
//! one join lives in its [`Socket`] (assigns). A [`Router`] maps topic patterns such as
//! `room:*` to channels. Per connection, the joined channels are owned by the connection's
//! task; a slow handler therefore delays only its own connection — long work belongs in a
//! spawned task that answers through a [`SocketHandle`].
//!
//! Semantics, as in Phoenix:
//! - a join of a topic no route matches gets the error reply `{"reason": "unmatched topic"}`;
//! - a second join of a joined topic replaces the first (`phx_close` for the old join ref);
//! - frames carrying a stale join ref are ignored;
//! - pushes made inside [`Channel::join`] reach the client right after the join reply;
//! - a handler returning `Err` (or panicking) crashes only its channel: the client gets
//!   `phx_error` and rejoins; the connection and its other channels carry on;
//! - when a channel ends for any reason, [`Channel::terminate`] runs and its subscription ends.
//!
//! This layer must never know about commanders or the Drab protocol.
//!
//! ```
//! use serde_json::{Value, json};
//! use tether::channel::{Channel, HandleResult, JoinResult, Reply, Router, Socket};
//!
//! struct Room;
//!
//! impl Channel for Room {
//!     type Info = ();
//!     async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
//!         Ok(json!({}))
//!     }
//!
//!     async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
//!         match event {
//!             "shout" => {
//!                 socket.broadcast("shout", &payload);
//!                 Ok(Reply::None)
//!             }
//!             _ => Ok(Reply::unhandled()),
//!         }
//!     }
//! }
//!
//! let router = Router::new().channel("room:*", Room);
//! # let _ = router;
//! ```

use std::future::Future;

use serde_json::{Value, json};

mod joined;
mod rate;
mod route;
mod router;
pub(crate) mod socket;

pub(crate) use joined::JoinedChannels;
pub(crate) use rate::{RateConfig, RateLimits};
pub use route::{ConnectError, ConnectInfo, SocketRoute, TETHER_JS_ROUTE, socket_route_name};
pub use router::Router;
pub use socket::{Assigns, ReplyRef, Socket, SocketHandle};

/// Any error a handler may return; it crashes the channel (the client gets `phx_error`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`Channel::join`] returns: the ok response, or a refusal.
pub type JoinResult = Result<Value, JoinError>;

/// What [`Channel::handle_in`] returns.
pub type HandleResult = Result<Reply, BoxError>;

/// A refused join; the response is sent to the client as the error reply.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinError(pub Value);

impl From<crate::transport::PushError> for JoinError {
    fn from(err: crate::transport::PushError) -> JoinError {
        JoinError::reason(&err.to_string())
    }
}

impl JoinError {
    /// A refusal with `{"reason": reason}`, the shape phoenix.js apps expect.
    pub fn reason(reason: &str) -> JoinError {
        JoinError(json!({ "reason": reason }))
    }
}

/// The answer to a client push.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// No reply (the client's push times out if it waits for one).
    None,
    /// `{"status": "ok", "response": …}`
    Ok(Value),
    /// `{"status": "error", "response": …}`
    Error(Value),
}

impl Reply {
    /// An ok reply with an empty response.
    pub fn ok() -> Reply {
        Reply::Ok(json!({}))
    }

    /// The error reply for an event the channel does not handle:
    /// `{"reason": "unhandled event"}`.
    pub fn unhandled() -> Reply {
        Reply::Error(json!({ "reason": "unhandled event" }))
    }
}

/// Why a channel ended; handed to [`Channel::terminate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateReason {
    /// The client sent `phx_leave`.
    Leave,
    /// The client joined the same topic again; this join was replaced.
    Rejoin,
    /// A handler failed or panicked (the text says how).
    Crash(String),
    /// The connection ended.
    Disconnect(crate::transport::Disconnect),
}

/// One kind of channel, shared by every connection that joins a matching topic.
///
/// Only `join` is required. Defaults: `handle_in` replies [`Reply::unhandled`],
/// `handle_info` logs and drops the message, `terminate` does nothing.
pub trait Channel: Send + Sync + 'static {
    /// The messages its joins receive in [`Channel::handle_info`] (sent with
    /// [`SocketHandle::send_info`]); `()` for a channel that takes none. A message of another
    /// type is dropped with a log line.
    type Info: Send + 'static;

    /// Authorizes a join. `Ok(response)` joins (the client receives `response` in the ok
    /// reply); `Err` refuses with the error reply. The socket's assigns start as the
    /// connection's assigns and may be changed here.
    fn join(
        &self,
        topic: &str,
        payload: Value,
        socket: &mut Socket,
    ) -> impl Future<Output = JoinResult>;

    /// Handles an event pushed by the client.
    fn handle_in(
        &self,
        event: &str,
        payload: Value,
        socket: &mut Socket,
    ) -> impl Future<Output = HandleResult> {
        let _ = (payload, socket);
        tracing::debug!(event, "unhandled event");
        async { Ok(Reply::unhandled()) }
    }

    /// Handles a message sent with [`SocketHandle::send_info`].
    fn handle_info(
        &self,
        message: Self::Info,
        socket: &mut Socket,
    ) -> impl Future<Output = Result<(), BoxError>> {
        let _ = message;
        tracing::debug!(topic = socket.topic(), "unhandled info message");
        async { Ok(()) }
    }

    /// Runs once when the channel ends, whatever the reason.
    fn terminate(&self, reason: &TerminateReason, socket: &mut Socket) -> impl Future<Output = ()> {
        let _ = (reason, socket);
        async {}
    }
}
