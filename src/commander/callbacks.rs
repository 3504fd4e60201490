//! The [`Commander`] trait (a page's behaviour on the server), its object-safe form, and
//! what callbacks receive: [`Sender`] for DOM events, [`Info`] for messages, [`Disconnected`]
//! for a page gone.
//!
//! It must never run a callback itself (the page's task does, see `runtime`).

use std::{any::Any, future::Future};

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Broadcasting, Commanders, Handlers, Page};
use crate::channel::BoxError;

/// What a DOM event sends: the element, its argument, and, inside a form, the form's values.
/// The fields are described in the wire protocol (module docs, *Events*).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Sender {
    /// The element's `id`.
    pub id: String,
    /// The `tether-id` tether.js stamped on the element (see [`Sender::this`]).
    pub tether_id: String,
    /// The element's `name`.
    pub name: String,
    /// The element's `class` attribute.
    pub class: String,
    /// The element's text (trimmed, at most 1,000 characters).
    pub text: String,
    /// The element's `value` (inputs, selects, buttons).
    pub value: String,
    /// Whether a checkbox or radio button is checked (`None` for other elements).
    pub checked: Option<bool>,
    /// The element's `data-*` attributes.
    pub dataset: Map<String, Value>,
    /// The enclosing form's fields (name or id → value; checked boxes only).
    pub form: Map<String, Value>,
    /// The DOM event: `type`, and what it has of `key`, `code`, `altKey`, `ctrlKey`,
    /// `shiftKey`, `metaKey`, `button`, `clientX`, `clientY`.
    pub event: Map<String, Value>,
    /// The handler's argument: `tether-click="remove(42)"` gives `42`; else the nearest
    /// `tether-arg` of the element or an ancestor; else `null`.
    pub arg: Value,
    /// The selector `[tether-id="…"]` of the enclosing `tether-commander` region (`""`
    /// outside one), built by the server: on the wire the page sends only the region's
    /// `tether-id`, and one that is not a tether id (at most 64 ASCII letters, digits, `_`,
    /// `-`, `:` or `.`) reads as `""`. So a page cannot make [`Sender::within`] select
    /// anything but one region.
    #[serde(deserialize_with = "scope_from_wire", serialize_with = "scope_to_wire")]
    pub scope: String,
    /// The names of the fields of the sender's form a person has used: typed in and left,
    /// changed (a ticked box, a chosen option), or the form submitted (all its fields); a
    /// form's `reset` forgets them. Outside a form, the sender itself once used. Read it with
    /// [`Sender::used`] to show a field's errors only once a person has been there.
    #[serde(rename = "used")]
    pub used_fields: Vec<String>,
    /// Whether this is a form's recovery: after the page lost its socket and joined again,
    /// each form with an `id` and a `tether-change` handler sends its values again (as a
    /// `change` event), so a handler can rebuild what a restarted server forgot.
    pub recovery: bool,
}

/// Whether `id` is a `tether-id` as tether.js stamps it (`t1`) or a page author writes it.
fn is_tether_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':' | b'.'))
}

/// The wire's `scope` (a region's `tether-id`) as the selector [`Sender::scope`] holds.
fn scope_from_wire<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let id = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    Ok(if is_tether_id(&id) {
        super::patch::attr_selector("tether-id", &id)
    } else {
        String::new()
    })
}

/// [`Sender::scope`] back in its wire form: the region's `tether-id` (`""` for anything
/// else), so a serialized sender reads back the same.
fn scope_to_wire<S: serde::Serializer>(scope: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let id = scope
        .strip_prefix(r#"[tether-id=""#)
        .and_then(|rest| rest.strip_suffix(r#""]"#))
        .filter(|id| is_tether_id(id))
        .unwrap_or_default();
    serializer.serialize_str(id)
}

impl Sender {
    /// Whether a person has used the form field `name` (see [`Sender::used_fields`]): a
    /// validation handler shows an error only for a used field.
    ///
    /// ```
    /// # use serde_json::json;
    /// let sender: tether::commander::Sender =
    ///     serde_json::from_value(json!({"used": ["email"], "form": {"email": "x", "name": ""}})).unwrap();
    /// assert!(sender.used("email"));
    /// assert!(!sender.used("name"), "not touched yet: no error shown for it");
    /// ```
    pub fn used(&self, name: &str) -> bool {
        self.used_fields.iter().any(|used| used == name)
    }

    /// A selector for the sender element, even when it has no `id` (Drab's `this/1`).
    ///
    /// ```
    /// let sender = tether::commander::Sender { tether_id: "t3".into(), ..Default::default() };
    /// assert_eq!(sender.this(), r#"[tether-id="t3"]"#);
    /// ```
    pub fn this(&self) -> String {
        super::patch::attr_selector("tether-id", &self.tether_id)
    }

    /// `selector` within the sender's `tether-commander` region (Drab's `this_commander`),
    /// or `selector` itself outside one.
    ///
    /// ```
    /// # use serde_json::json;
    /// // The page sends the region's tether-id; the server builds the selector.
    /// let sender: tether::commander::Sender = serde_json::from_value(json!({"scope": "t1"})).unwrap();
    /// assert_eq!(sender.within(".total"), r#"[tether-id="t1"] .total"#);
    /// // Anything else is no region at all.
    /// let forged: tether::commander::Sender = serde_json::from_value(json!({"scope": "body"})).unwrap();
    /// assert_eq!(forged.scope, r#"[tether-id="body"]"#);
    /// let forged: tether::commander::Sender = serde_json::from_value(json!({"scope": "*, body"})).unwrap();
    /// assert_eq!(forged.within(".total"), ".total");
    /// ```
    pub fn within(&self, selector: &str) -> String {
        if self.scope.is_empty() {
            selector.to_string()
        } else {
            format!("{} {selector}", self.scope)
        }
    }
}

/// A message for [`Commander::handle_info`].
#[derive(Debug)]
pub enum Info {
    /// Sent to this page with [`PageHandle::send`](super::PageHandle::send).
    Message(Box<dyn Any + Send>),
    /// Sent with [`Commanders::send_info`] to a topic this page listens to
    /// ([`Page::listen`]).
    Broadcast {
        /// The topic.
        topic: String,
        /// The event name.
        event: String,
        /// The payload.
        payload: Value,
    },
}

impl Info {
    /// The message, if it is a `T` sent with [`PageHandle::send`](super::PageHandle::send).
    ///
    /// ```
    /// let info = tether::commander::Info::Message(Box::new(42u32));
    /// assert_eq!(info.message::<u32>(), Some(42));
    /// ```
    pub fn message<T: Any>(self) -> Option<T> {
        match self {
            Info::Message(message) => message.downcast().ok().map(|boxed| *boxed),
            Info::Broadcast { .. } => None,
        }
    }
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

/// What a handler returned, as [`Commander::after_handler`] sees it: the value (also the
/// `result` of the event's reply), or the error's message.
pub type Outcome = Result<Value, String>;

/// A page's behaviour on the server. Only `name` is required.
///
/// Every callback and handler of one page runs in that page's own task, one at a time, in
/// the order the events arrived (as in Drab); the connection keeps reading meanwhile, so a
/// handler may wait for the browser ([`PageHandle::exec_js`](super::PageHandle::exec_js),
/// [`query`](super::PageHandle::query), [`modal`](super::PageHandle::modal), …) and may run
/// for minutes without the page missing a heartbeat.
///
/// ```
/// use tether::commander::{Broadcasting, Commander, Handlers, Page, Patch, Sender, same_topic};
/// use tether::channel::BoxError;
///
/// struct Counter;
///
/// impl Counter {
///     async fn bump(&self, page: &mut Page, sender: Sender) -> Result<u64, BoxError> {
///         let by = sender.arg.as_u64().unwrap_or(1);
///         page.apply(Patch::set("#bumped", format!("+{by}")))?;
///         Ok(by)
///     }
/// }
///
/// impl Commander for Counter {
///     fn name(&self) -> &'static str { "counter" }
///     fn handlers() -> Handlers<Self> { Handlers::new().on("bump", Self::bump) }
///     fn broadcasting(&self) -> Vec<Broadcasting> { vec![Broadcasting::Named("global".into())] }
///     async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
///         let topic = same_topic("global");
///         let users = page.count_users(&topic);
///         // A string is text: it is shown literally, never parsed as HTML.
///         page.to(&topic).apply(Patch::set("#number_of_users", users.to_string()))?;
///         Ok(())
///     }
/// }
/// ```
pub trait Commander: Send + Sync + Sized + 'static {
    /// Whether this commander may also serve regions (`tether-commander="<name>"`) of pages
    /// of other commanders whose token allows it (Drab's shared commanders).
    const SHARED: bool = false;

    /// The commander's name (in page tokens and topics).
    fn name(&self) -> &'static str;

    /// The handlers a page may call, declared once: any other name is refused (error reply,
    /// logged). Default: none.
    fn handlers() -> Handlers<Self> {
        Handlers::new()
    }

    /// The topics this commander's pages share. Default: same path.
    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::SamePath]
    }

    /// Every (re)join of a page, after it is tracked.
    fn on_connect(&self, page: &mut Page) -> impl Future<Output = Result<(), BoxError>> {
        let _ = page;
        async { Ok(()) }
    }

    /// The first join of a page load, after `on_connect`.
    ///
    /// The server decides, not the page: each rendered page (each `script` tag) carries a
    /// random load nonce in its signed token, and a node runs `on_load` for the first join of
    /// that load only (the page's own `onload: false` on a rejoin can skip it, but cannot
    /// make it run again). A node remembers the last 65,536 loads that joined it, so
    /// `on_load` may still run again for one load after a reconnect to **another node**,
    /// after a **restart**, or for a load that old: make it idempotent (safe to run twice).
    fn on_load(&self, page: &mut Page) -> impl Future<Output = Result<(), BoxError>> {
        let _ = page;
        async { Ok(()) }
    }

    /// The page's URL (path and query, [`Page::url`]): on every join, after `on_connect`
    /// and `on_load`, and after every patch navigation — [`Page::push_patch`], a
    /// `tether-patch` link or GET form, Back or Forward within the page (LiveView's
    /// `handle_params`). Read the query with [`Page::param`] and [`Page::params`]; the URL
    /// is the browser's word (checked for shape only), like any query string. Only the
    /// page's own commander gets it, not shared ones. Default: nothing.
    fn handle_params(
        &self,
        page: &mut Page,
        url: &str,
    ) -> impl Future<Output = Result<(), BoxError>> {
        let _ = (page, url);
        async { Ok(()) }
    }

    /// The page is gone (closed, navigated away, connection lost); it is already untracked,
    /// and the handler that was running (if any) has finished. `commanders` reaches the
    /// other pages (counts, broadcasts).
    fn on_disconnect(
        &self,
        gone: &Disconnected,
        commanders: &Commanders,
    ) -> impl Future<Output = ()> {
        let _ = (gone, commanders);
        async {}
    }

    /// A message for this page: from [`PageHandle::send`](super::PageHandle::send), or a
    /// broadcast on a topic it listens to. Runs in order with its events. Default: logs and
    /// drops it.
    fn handle_info(
        &self,
        page: &mut Page,
        info: Info,
    ) -> impl Future<Output = Result<(), BoxError>> {
        tracing::debug!(commander = page.commander(), ?info, "unhandled info");
        async { Ok(()) }
    }

    /// Runs before each handler; returning `false` skips the handler and `after_handler`.
    fn before_handler(
        &self,
        handler: &str,
        page: &mut Page,
        sender: &Sender,
    ) -> impl Future<Output = bool> {
        let _ = (handler, page, sender);
        async { true }
    }

    /// Runs after each handler that ran, with what it returned.
    fn after_handler(
        &self,
        handler: &str,
        page: &mut Page,
        sender: &Sender,
        outcome: &Outcome,
    ) -> impl Future<Output = ()> {
        let _ = (handler, page, sender, outcome);
        async {}
    }

    /// The presence key and meta of `page` on `topic`; `None` does not track it there.
    /// Default: the key from `[presence] id` (falling back to the browser id), meta `{}`.
    fn presence(&self, page: &Page, topic: &str) -> Option<(String, Value)> {
        let _ = topic;
        Some((page.presence_key(), json!({})))
    }
}

/// A commander with its handler table, as registered.
pub(crate) struct Registered<C: Commander> {
    pub(crate) commander: C,
    pub(crate) handlers: Handlers<C>,
}

/// Object-safe form of [`Commander`].
pub(crate) trait DynCommander: Send + Sync {
    fn shared(&self) -> bool;
    fn declares(&self, handler: &str) -> bool;
    fn broadcasting(&self) -> Vec<Broadcasting>;
    fn on_connect<'a>(&'a self, page: &'a mut Page) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn on_load<'a>(&'a self, page: &'a mut Page) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn handle_params<'a>(
        &'a self,
        page: &'a mut Page,
        url: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    fn on_disconnect<'a>(
        &'a self,
        gone: &'a Disconnected,
        commanders: &'a Commanders,
    ) -> LocalBoxFuture<'a, ()>;
    fn handle_info<'a>(
        &'a self,
        page: &'a mut Page,
        info: Info,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>>;
    /// Runs `handler` between the before and after hooks; `None` when `before_handler`
    /// skipped it.
    fn handle_event<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page,
        sender: Sender,
    ) -> LocalBoxFuture<'a, Option<Outcome>>;
    fn presence(&self, page: &Page, topic: &str) -> Option<(String, Value)>;
}

impl<C: Commander> DynCommander for Registered<C> {
    fn shared(&self) -> bool {
        C::SHARED
    }
    fn declares(&self, handler: &str) -> bool {
        self.handlers.get(handler).is_some()
    }
    fn broadcasting(&self) -> Vec<Broadcasting> {
        self.commander.broadcasting()
    }
    fn on_connect<'a>(&'a self, page: &'a mut Page) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.commander.on_connect(page))
    }
    fn on_load<'a>(&'a self, page: &'a mut Page) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.commander.on_load(page))
    }
    fn handle_params<'a>(
        &'a self,
        page: &'a mut Page,
        url: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.commander.handle_params(page, url))
    }
    fn on_disconnect<'a>(
        &'a self,
        gone: &'a Disconnected,
        commanders: &'a Commanders,
    ) -> LocalBoxFuture<'a, ()> {
        Box::pin(self.commander.on_disconnect(gone, commanders))
    }
    fn handle_info<'a>(
        &'a self,
        page: &'a mut Page,
        info: Info,
    ) -> LocalBoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.commander.handle_info(page, info))
    }
    fn handle_event<'a>(
        &'a self,
        handler: &'a str,
        page: &'a mut Page,
        sender: Sender,
    ) -> LocalBoxFuture<'a, Option<Outcome>> {
        Box::pin(async move {
            let run = self.handlers.get(handler)?;
            let commander = &self.commander;
            if !commander.before_handler(handler, page, &sender).await {
                return None;
            }
            let outcome = run(commander, page, sender.clone())
                .await
                .map_err(|err| err.to_string());
            commander
                .after_handler(handler, page, &sender, &outcome)
                .await;
            Some(outcome)
        })
    }
    fn presence(&self, page: &Page, topic: &str) -> Option<(String, Value)> {
        self.commander.presence(page, topic)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Sender;

    #[test]
    fn the_scope_is_a_tether_id_selector_built_by_the_server() {
        let read = |scope: serde_json::Value| -> String {
            serde_json::from_value::<Sender>(json!({ "scope": scope }))
                .unwrap()
                .scope
        };
        assert_eq!(read(json!("t12")), r#"[tether-id="t12"]"#);
        assert_eq!(
            read(json!("my-region_2:a.b")),
            r#"[tether-id="my-region_2:a.b"]"#
        );
        for forged in [
            json!(r#"[tether-id="t1"], body"#),
            json!("*"),
            json!("t1\"] *"),
            json!(""),
            json!("x".repeat(65)),
            json!(null),
        ] {
            assert_eq!(read(forged.clone()), "", "{forged}");
        }
        assert!(serde_json::from_value::<Sender>(json!({"scope": 3})).is_err());
        assert_eq!(
            serde_json::from_value::<Sender>(json!({})).unwrap().scope,
            ""
        );
    }

    #[test]
    fn a_sender_serializes_back_to_its_wire_form() {
        let sender: Sender = serde_json::from_value(json!({"scope": "t3", "id": "x"})).unwrap();
        let wire = serde_json::to_value(&sender).unwrap();
        assert_eq!(wire["scope"], "t3");
        assert_eq!(serde_json::from_value::<Sender>(wire).unwrap(), sender);
        let odd = Sender {
            scope: ".anything".into(),
            ..Default::default()
        };
        assert_eq!(serde_json::to_value(&odd).unwrap()["scope"], "");
    }
}
