//! [`PageHandle`]: one connected page, reachable from any task — patches to it, broadcasts
//! from it, messages to its commander, and questions to its browser (Drab.Core,
//! Drab.Element, Drab.Browser, Drab.Waiter and Drab.Modal in one place).
//!
//! Invariant: once the page is gone, everything here fails (`PatchError::Closed`,
//! `CallError::Disconnected`, `PushError::Closed`) instead of reaching a later page.
//! It must never touch the page's own state (store, topics): that belongs to [`Page`],
//! which only the page's task holds.
//!
//! [`Page`]: super::Page

use std::{
    borrow::Borrow,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Content, Count, Html, Info, Patch, PatchError, Sender, Target,
    calls::{CallError, Calls},
    hub::Hub,
    runtime::Work,
};
use crate::{channel::SocketHandle, presence::OwnerId, transport::PushError};

/// How long a [`Modal`] waits for the person unless told otherwise.
pub const DEFAULT_MODAL_TIMEOUT: Duration = Duration::from_secs(600);

/// What the page's task and every handle of one page share.
pub(crate) struct PageShared {
    pub(crate) hub: Arc<Hub>,
    pub(crate) commander: &'static str,
    /// The shared commanders the page's token allows (registered and shared).
    pub(crate) shared_commanders: Vec<&'static str>,
    pub(crate) socket: SocketHandle,
    pub(crate) queue: mpsc::Sender<Work>,
    pub(crate) calls: Calls,
    /// (topic, key) tracked in presence; `None` once the page is gone.
    pub(crate) tracked: Mutex<Option<Vec<(String, String)>>>,
    /// Cancelled when the page goes away.
    pub(crate) gone: CancellationToken,
}

impl PageShared {
    /// The page is gone: untrack it everywhere, fail its pending calls, wake its task.
    pub(crate) fn close(&self) {
        self.untrack(None);
        self.calls.close();
        self.gone.cancel();
    }

    /// The shared commanders the page may call, after its own in every callback.
    pub(crate) fn shared_commanders(&self) -> Vec<Arc<dyn super::callbacks::DynCommander>> {
        self.shared_commanders
            .iter()
            .filter_map(|name| self.hub.commanders.get(name).cloned())
            .collect()
    }

    /// The owner of the page's presences: its join.
    fn owner(&self) -> OwnerId {
        OwnerId(self.socket.join_id().get())
    }

    /// Tracks the page on `topic` under `key`, unless it is gone.
    pub(crate) fn track(&self, topic: &str, key: String, meta: serde_json::Value) {
        let Some(presence) = &self.hub.presence else {
            return;
        };
        let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tracked) = tracked.as_mut() else {
            return;
        };
        match presence.track_owner(topic, self.owner(), &key, meta) {
            Ok(()) => tracked.push((topic.to_string(), key)),
            Err(err) => tracing::warn!(%topic, %key, "cannot track page: {err}"),
        }
    }

    /// Untracks the page from `topic`; from every topic, and for good, with `None` (the page
    /// is gone: later tracks are refused).
    pub(crate) fn untrack(&self, topic: Option<&str>) {
        let mut tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        let gone = topic.is_none();
        let leaving = match topic {
            None => tracked.take().unwrap_or_default(),
            Some(topic) => match tracked.as_mut() {
                Some(entries) => {
                    let (leaving, staying) = std::mem::take(entries)
                        .into_iter()
                        .partition(|(t, _)| t == topic);
                    *entries = staying;
                    leaving
                }
                None => Vec::new(),
            },
        };
        if let Some(presence) = &self.hub.presence {
            for (topic, key) in leaving {
                if gone {
                    // The connection is gone: a reconnect within the leave grace adopts it.
                    presence.leave_owner(&topic, self.owner(), Some(&key));
                } else {
                    let _ = presence.untrack_owner(&topic, self.owner(), &key);
                }
            }
        }
    }
}

/// A connected page, from any task: `Clone + Send + 'static`. Get one with
/// [`Page::handle`](super::Page::handle); a [`Page`](super::Page) derefs to its handle, so
/// everything here is also available on `page` in a callback.
///
/// Everything fails once the page is gone (closed, navigated away, connection lost), so a
/// background job that drives a progress bar stops with an error instead of leaking:
///
/// ```
/// # use tether::commander::{Page, PatchError};
/// # fn f(page: &Page) {
/// let bar = page.handle();
/// tokio::task::spawn(async move {
///     for percent in (0..=100).step_by(20) {
///         bar.set_prop("#progress", "value", percent)?;
///         tokio::time::sleep(std::time::Duration::from_millis(400)).await;
///     }
///     Ok::<_, PatchError>(())
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct PageHandle(pub(crate) Arc<PageShared>);

impl std::fmt::Debug for PageHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageHandle")
            .field("commander", &self.0.commander)
            .field("gone", &self.is_gone())
            .finish_non_exhaustive()
    }
}

/// One element a [`PageHandle::query`] found.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Queried {
    /// A selector for it: `#<id>`, or `[tether-id="…"]` stamped by tether.js.
    #[serde(rename = "sel")]
    pub selector: String,
    /// The properties asked for.
    pub props: Map<String, Value>,
}

/// A dialog for [`PageHandle::modal`]: a native `<dialog>` with a title, a body, optional
/// fields and buttons (Drab.Modal, without a CSS framework).
///
/// ```
/// use tether::commander::Modal;
/// let modal = Modal::new("Rename")
///     .body("Choose a new name.")
///     .field("name", "Name")
///     .button("ok", "Rename")
///     .button("cancel", "Cancel");
/// # let _ = modal;
/// ```
#[derive(Debug, Clone)]
pub struct Modal {
    title: String,
    body: Content,
    fields: Vec<(String, String)>,
    buttons: Vec<(String, String)>,
    timeout: Duration,
}

impl Modal {
    /// A dialog titled `title`, with no body, fields or buttons yet.
    pub fn new(title: &str) -> Modal {
        Modal {
            title: title.to_string(),
            body: Content::Text(String::new()),
            fields: Vec::new(),
            buttons: Vec::new(),
            timeout: DEFAULT_MODAL_TIMEOUT,
        }
    }

    /// A dialog with buttons `ok` ("OK") and `cancel` ("Cancel").
    pub fn confirm(title: &str, body: impl Into<Content>) -> Modal {
        Modal::new(title)
            .body(body)
            .button("ok", "OK")
            .button("cancel", "Cancel")
    }

    /// The body: text, or markup for [`Html`] (which may hold its own form fields).
    pub fn body(mut self, body: impl Into<Content>) -> Modal {
        self.body = body.into();
        self
    }

    /// A text field `name`, labelled `label`; its value comes back in
    /// [`ModalAnswer::fields`].
    pub fn field(mut self, name: &str, label: &str) -> Modal {
        self.fields.push((name.to_string(), label.to_string()));
        self
    }

    /// A button; the answer names the `value` of the one pressed.
    pub fn button(mut self, value: &str, label: &str) -> Modal {
        self.buttons.push((value.to_string(), label.to_string()));
        self
    }

    /// How long to wait for the person (default [`DEFAULT_MODAL_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Modal {
        self.timeout = timeout;
        self
    }

    /// The `call` payload: body and fields rendered as markup, every text escaped.
    fn to_call(&self) -> Value {
        let mut html = match &self.body {
            Content::Html(html) => html.as_str().to_string(),
            Content::Text(text) if text.is_empty() => String::new(),
            Content::Text(text) => format!("<p>{}</p>", Html::escape(text).as_str()),
        };
        for (name, label) in &self.fields {
            html.push_str(&format!(
                r#"<p><label>{} <input name="{}"></label></p>"#,
                Html::escape(label).as_str(),
                Html::escape(name).as_str()
            ));
        }
        json!({"op": "modal", "title": self.title, "html": html, "buttons": self.buttons})
    }
}

/// How the person answered a [`Modal`].
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ModalAnswer {
    /// The `value` of the button pressed; `None` when the dialog was dismissed (Escape).
    pub button: Option<String>,
    /// The dialog's form fields (name → value).
    pub fields: Map<String, Value>,
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, CallError> {
    serde_json::from_value(value).map_err(|err| CallError::BadAnswer(err.to_string()))
}

/// Forgets a call when its caller stops waiting for any reason (timeout, cancellation).
struct Pending<'a> {
    calls: &'a Calls,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.calls.forget(self.id);
    }
}

impl PageHandle {
    fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// The page's commander.
    pub fn commander(&self) -> &str {
        self.0.commander
    }

    /// Every commander of the app (counts, broadcasts, [`Commanders::send_info`]).
    ///
    /// [`Commanders::send_info`]: super::Commanders::send_info
    pub fn commanders(&self) -> super::Commanders {
        super::Commanders {
            hub: self.0.hub.clone(),
        }
    }

    /// Whether the page is gone (everything then fails).
    pub fn is_gone(&self) -> bool {
        self.0.gone.is_cancelled()
    }

    /// Waits until the page is gone.
    pub async fn gone(&self) {
        self.0.gone.cancelled().await
    }

    /// Pushes `event` to the page, unless it is gone.
    pub(crate) fn push(&self, event: &str, payload: &impl Serialize) -> Result<(), PushError> {
        if self.is_gone() {
            return Err(PushError::Closed);
        }
        self.0.socket.push(event, payload)
    }

    /// Applies `patch` to this page (checked like every patch: script only with `exec_js`,
    /// no plain value for a markup property).
    ///
    /// ```
    /// # use tether::commander::{Html, Page, Patch, PatchError};
    /// # fn f(page: &Page) -> Result<(), PatchError> {
    /// page.apply(Patch::set("#status", "saved"))?; // text
    /// page.apply(Patch::morph("#items", Html::trusted("<li id=\"i1\">milk</li>")))?;
    /// page.apply(Patch::style("#bar", "width", Some("40%")))?;
    /// # Ok(()) }
    /// ```
    pub fn apply(&self, patch: impl Borrow<Patch>) -> Result<(), PatchError> {
        let patch = patch.borrow();
        self.hub().check(patch)?;
        Ok(self.push("patch", patch)?)
    }

    /// Every page on `topic`, this one included (see [`Target`]): `page.to(topic).apply(patch)`.
    pub fn to<'a>(&'a self, topic: &'a str) -> Target<'a> {
        Target::new(self.hub(), topic, None)
    }

    /// Every page on `topic` but this one (see [`Target`]).
    pub fn others<'a>(&'a self, topic: &'a str) -> Target<'a> {
        Target::new(self.hub(), topic, Some(self.0.socket.join_id()))
    }

    /// Sets a DOM property to a plain value: Drab's `set_prop`, kept for porters, is
    /// `page.apply(Patch::prop(selector, prop, value))` (refused for properties that would
    /// parse it as markup or script; see [`Patch::prop_html`]).
    pub fn set_prop(
        &self,
        selector: &str,
        prop: &str,
        value: impl Serialize,
    ) -> Result<(), PatchError> {
        self.apply(Patch::prop(selector, prop, value))
    }

    /// Distinct presence keys on `topic`.
    pub fn count_users(&self, topic: &str) -> usize {
        self.hub().count(topic, Count::Users)
    }

    /// Tracked pages on `topic`.
    pub fn count_connections(&self, topic: &str) -> usize {
        self.hub().count(topic, Count::Connections)
    }

    /// Everyone on `topic` (key → metas), as [`Commanders::list`](super::Commanders::list).
    pub fn list(&self, topic: &str) -> crate::presence::Presences {
        self.commanders().list(topic)
    }

    /// Sends `message` to this page's [`Commander::handle_info`](super::Commander::handle_info),
    /// in order with its events. `Err(Closed)` once the page is gone, `Err(Overflowed)` when
    /// `[commander] max_queued_events` are already waiting.
    pub fn send(&self, message: impl std::any::Any + Send) -> Result<(), PushError> {
        if self.is_gone() {
            return Err(PushError::Closed);
        }
        self.0
            .queue
            .try_send(Work::Info(Info::Message(Box::new(message))))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => PushError::Overflowed,
                mpsc::error::TrySendError::Closed(_) => PushError::Closed,
            })
    }

    /// One round trip: pushes `call` with a fresh id, waits for the browser's answer.
    async fn call(&self, mut call: Value, timeout: Duration) -> Result<Value, CallError> {
        let calls = &self.0.calls;
        let (id, answer) = calls.open()?;
        let _pending = Pending { calls, id };
        call["id"] = json!(id);
        self.push("call", &call)
            .map_err(|_| CallError::Disconnected)?;
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::Disconnected),
            Err(_) => {
                crate::metrics::metrics().round_trip_timeouts.inc();
                if calls.forget(id) {
                    let _ = self.push("call_cancel", &json!({ "id": id }));
                }
                Err(CallError::Timeout)
            }
        }
    }

    fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.hub().config.browser_response_timeout_ms)
    }

    /// Runs `js` in the page and returns its value as JSON (a promise is awaited), or the
    /// exception's message as [`CallError::Browser`]. Only with `[commander] exec_js = true`
    /// (else [`CallError::JsDisabled`]); prefer [`PageHandle::query`] to read the page.
    pub async fn exec_js(&self, js: &str) -> Result<Value, CallError> {
        if !self.hub().config.exec_js {
            return Err(CallError::JsDisabled);
        }
        self.call(json!({"op": "js", "js": js}), self.response_timeout())
            .await
    }

    /// Reads `props` of every element matching `selector`, in document order, without
    /// `eval` (so it works with `exec_js = false`). Names: any property holding a string,
    /// number, boolean or null (`value`, `checked`, `offsetWidth`, `innerText`, …), and
    /// `dataset`, `attributes`, `style`, `classList`.
    pub async fn query(&self, selector: &str, props: &[&str]) -> Result<Vec<Queried>, CallError> {
        let answer = self
            .call(
                json!({"op": "query", "sel": selector, "props": props}),
                self.response_timeout(),
            )
            .await?;
        decode(answer)
    }

    /// [`PageHandle::query`] for exactly one element: its properties, or
    /// [`CallError::NotFound`] / [`CallError::Ambiguous`].
    pub async fn query_one(
        &self,
        selector: &str,
        props: &[&str],
    ) -> Result<Map<String, Value>, CallError> {
        let mut found = self.query(selector, props).await?;
        match found.len() {
            1 => Ok(found.remove(0).props),
            0 => Err(CallError::NotFound(selector.to_string())),
            count => Err(CallError::Ambiguous {
                selector: selector.to_string(),
                count,
            }),
        }
    }

    /// Waits for the first of several DOM events (Drab.Waiter): `events` are
    /// `(selector, event type)` pairs; returns the index of the pair that fired and its
    /// sender, or [`CallError::Timeout`] after `timeout`.
    pub async fn wait_for(
        &self,
        events: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<(usize, Sender), CallError> {
        #[derive(Deserialize)]
        struct Fired {
            index: usize,
            #[serde(default)]
            sender: Sender,
        }
        let answer = self
            .call(json!({"op": "wait", "events": events}), timeout)
            .await?;
        let fired: Fired = decode(answer)?;
        if fired.index >= events.len() {
            return Err(CallError::BadAnswer(format!("no event {}", fired.index)));
        }
        Ok((fired.index, fired.sender))
    }

    /// Shows `modal` and waits for the person's answer (Drab.Modal).
    pub async fn modal(&self, modal: &Modal) -> Result<ModalAnswer, CallError> {
        decode(self.call(modal.to_call(), modal.timeout).await?)
    }

    /// Asks with an OK/Cancel dialog; `true` for OK.
    pub async fn confirm(&self, title: &str, body: impl Into<Content>) -> Result<bool, CallError> {
        let answer = self.modal(&Modal::confirm(title, body)).await?;
        Ok(answer.button.as_deref() == Some("ok"))
    }

    /// The browser's cookies for this page (those script can read).
    pub async fn cookies(&self) -> Result<Map<String, Value>, CallError> {
        decode(
            self.call(json!({"op": "cookies"}), self.response_timeout())
                .await?,
        )
    }
}
