//! Topic patterns → channels.
//!
//! A pattern is an exact topic (`"lobby"`) or a prefix ending in `*` (`"room:*"` matches
//! `room:lobby` and `room:`), as in Phoenix. Routes are tried in the order they were added.
//!
//! Topics starting with `tether:` are tether's own (page channels,
//! broadcasting topics, counters, presence lists, live regions): an app's route never
//! matches them, not even `"*"`, so a client of an app socket cannot join them (it gets the
//! `unmatched topic` error reply) and cannot publish on them through an echoing channel. Only
//! tether itself registers routes for them (crate-private).

use std::{any::Any, sync::Arc};

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::{BoxError, Channel, HandleResult, JoinResult, Socket, TerminateReason};

/// Object-safe form of [`Channel`], so routes of different types live in one list.
pub(crate) trait DynChannel: Send + Sync {
    fn join<'a>(
        &'a self,
        topic: &'a str,
        payload: Value,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, JoinResult>;
    fn handle_in<'a>(
        &'a self,
        event: &'a str,
        payload: Value,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, HandleResult>;
    fn handle_info<'a>(
        &'a self,
        message: Box<dyn Any + Send>,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn terminate<'a>(
        &'a self,
        reason: &'a TerminateReason,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, ()>;
}

impl<C: Channel> DynChannel for C {
    fn join<'a>(
        &'a self,
        topic: &'a str,
        payload: Value,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, JoinResult> {
        Box::pin(Channel::join(self, topic, payload, socket))
    }

    fn handle_in<'a>(
        &'a self,
        event: &'a str,
        payload: Value,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, HandleResult> {
        Box::pin(Channel::handle_in(self, event, payload, socket))
    }

    fn handle_info<'a>(
        &'a self,
        message: Box<dyn Any + Send>,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        match message.downcast::<C::Info>() {
            Ok(message) => Box::pin(Channel::handle_info(self, *message, socket)),
            Err(_) => {
                tracing::warn!(
                    topic = socket.topic(),
                    "dropping an info message of another type than the channel's Info"
                );
                Box::pin(async { Ok(()) })
            }
        }
    }

    fn terminate<'a>(
        &'a self,
        reason: &'a TerminateReason,
        socket: &'a mut Socket,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(Channel::terminate(self, reason, socket))
    }
}

#[derive(Debug)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(pattern: &str) -> Pattern {
        match pattern.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(pattern.to_string()),
        }
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == topic,
            Pattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// The prefix of the topics tether reserves for itself; see the module docs.
pub(crate) const RESERVED_PREFIX: &str = "tether:";

/// One route: a pattern, whether it may match reserved topics (tether's own routes only),
/// and its channel.
struct Route {
    pattern: Pattern,
    reserved: bool,
    channel: Arc<dyn DynChannel>,
}

impl Route {
    fn matches(&self, topic: &str) -> bool {
        (self.reserved || !topic.starts_with(RESERVED_PREFIX)) && self.pattern.matches(topic)
    }
}

/// Routes topics to channels.
///
/// A topic starting with `tether:` never matches an app's route:
///
/// ```
/// # use serde_json::{Value, json};
/// # use tether::channel::{Channel, JoinResult, Router, Socket};
/// struct Lobby;
/// impl Channel for Lobby {
///     type Info = ();
///     async fn join(&self, _: &str, _: Value, _: &mut Socket) -> JoinResult { Ok(json!({})) }
/// }
/// let router = Router::new().channel("room:*", Lobby);
/// assert!(router.matches("room:lobby"));
/// assert!(!router.matches("video:1"));
///
/// let everything = Router::new().channel("*", Lobby);
/// assert!(everything.matches("anything"));
/// assert!(!everything.matches("tether:topic:lobby"));
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| (&r.pattern, r.reserved))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Router {
    /// An empty router (every join is refused as an unmatched topic).
    pub fn new() -> Router {
        Router::default()
    }

    /// Routes topics matching `pattern` to `channel`, except the reserved `tether:` topics,
    /// which this route never matches even when `pattern` does.
    ///
    /// Panics if `pattern` starts with `tether:`: such a route could never match anything
    /// (a programming error, caught at startup).
    pub fn channel(self, pattern: &str, channel: impl Channel) -> Router {
        assert!(
            !pattern.starts_with(RESERVED_PREFIX),
            "the topic pattern `{pattern}` is in tether's reserved `{RESERVED_PREFIX}` namespace"
        );
        self.route(pattern, false, channel)
    }

    /// Routes topics matching `pattern`, reserved ones included, to `channel`: tether's
    /// own routes only (the commander's `tether:page:*`).
    pub(crate) fn reserved_channel(self, pattern: &str, channel: impl Channel) -> Router {
        self.route(pattern, true, channel)
    }

    fn route(mut self, pattern: &str, reserved: bool, channel: impl Channel) -> Router {
        self.routes.push(Route {
            pattern: Pattern::parse(pattern),
            reserved,
            channel: Arc::new(channel),
        });
        self
    }

    /// Whether some route matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.find(topic).is_some()
    }

    pub(crate) fn find(&self, topic: &str) -> Option<&Arc<dyn DynChannel>> {
        self.routes
            .iter()
            .find(|route| route.matches(topic))
            .map(|route| &route.channel)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Pattern, Router};
    use crate::channel::{Channel, JoinResult, Socket};

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(Pattern::parse("room:*").matches("room:lobby"));
        assert!(Pattern::parse("room:*").matches("room:"));
        assert!(!Pattern::parse("room:*").matches("rooms"));
        assert!(Pattern::parse("lobby").matches("lobby"));
        assert!(!Pattern::parse("lobby").matches("lobby2"));
        assert!(Pattern::parse("*").matches("anything"));
    }

    struct Nop;

    impl Channel for Nop {
        type Info = ();
        async fn join(&self, _: &str, _: Value, _: &mut Socket) -> JoinResult {
            Ok(json!({}))
        }
    }

    #[test]
    fn app_routes_never_match_reserved_topics_and_tether_routes_do() {
        let router = Router::new()
            .channel("*", Nop)
            .reserved_channel("tether:page:*", Nop);
        assert!(router.matches("room:lobby"));
        assert!(router.matches("tether"));
        assert!(router.matches("tether:page:lab"));
        for reserved in [
            "tether:topic:x",
            "tether:live:x",
            "tether:presence:0",
            "tether:",
        ] {
            assert!(!router.matches(reserved), "{reserved}");
        }
    }

    #[test]
    #[should_panic(expected = "reserved")]
    fn an_app_route_in_the_reserved_namespace_is_a_programming_error() {
        let _ = Router::new().channel("tether:mine:*", Nop);
    }
}
