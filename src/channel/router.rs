//! Topic patterns → channels.
//!
//! A pattern is an exact topic (`"lobby"`) or a prefix ending in `*` (`"room:*"` matches
//! `room:lobby` and `room:`), as in Phoenix. Routes are tried in the order they were added.

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

/// Routes topics to channels.
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
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<(Pattern, Arc<dyn DynChannel>)>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Router {
    /// An empty router (every join is refused as an unmatched topic).
    pub fn new() -> Router {
        Router::default()
    }

    /// Routes topics matching `pattern` to `channel`.
    pub fn channel(mut self, pattern: &str, channel: impl Channel) -> Router {
        self.routes
            .push((Pattern::parse(pattern), Arc::new(channel)));
        self
    }

    /// Whether some route matches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        self.find(topic).is_some()
    }

    pub(crate) fn find(&self, topic: &str) -> Option<&Arc<dyn DynChannel>> {
        self.routes
            .iter()
            .find(|(pattern, _)| pattern.matches(topic))
            .map(|(_, channel)| channel)
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(Pattern::parse("room:*").matches("room:lobby"));
        assert!(Pattern::parse("room:*").matches("room:"));
        assert!(!Pattern::parse("room:*").matches("rooms"));
        assert!(Pattern::parse("lobby").matches("lobby"));
        assert!(!Pattern::parse("lobby").matches("lobby2"));
        assert!(Pattern::parse("*").matches("anything"));
    }
}
