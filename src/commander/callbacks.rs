//! The [`Commander`] trait (a page's behaviour on the server), its object-safe form, and
//! what callbacks receive: [`Sender`] for DOM events, [`Disconnected`] for a page gone.
//!
//! It must never run a callback itself (the page channel does).

use std::future::Future;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Broadcasting, Commanders, Page};
use crate::channel::BoxError;

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
///         page.broadcast_html(&same_topic("global"), "#number_of_users", users.to_string())?;
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
