//! Round trips to the browser: [`PageHandle`]'s questions ([`PageHandle::exec_js`],
//! [`PageHandle::query`], [`PageHandle::wait_for`], [`PageHandle::modal`],
//! [`PageHandle::cookies`]) and the calls under way for one page, each with an id, a one-shot
//! slot for the browser's answer, and a deadline kept by the caller.
//!
//! Invariants: an entry lives from the `call` push until its answer, its timeout, the
//! caller giving up (its future dropped), or the page going away — whichever comes first;
//! after [`Calls::close`] no call can start and every pending one has failed with
//! [`CallError::Disconnected`]. At most [`MAX_PENDING_CALLS`] are pending per page.
//!
//! It must never push anything but `call` and `call_cancel`, and only through the page's
//! handle (which fails once the page is gone).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{Content, Html, PageHandle, Sender};

/// Most round trips one page may have pending at once.
pub const MAX_PENDING_CALLS: usize = 64;

/// Why a browser round trip failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The browser did not answer in time (`[commander] browser_response_timeout_ms`, or
    /// the call's own timeout).
    #[error("the browser did not answer in time")]
    Timeout,
    /// The page went away (closed, navigated, connection lost) before answering.
    #[error("the page is gone")]
    Disconnected,
    /// The browser answered with an error: the script's exception message, an invalid
    /// selector, …
    #[error("browser error: {0}")]
    Browser(String),
    /// `exec_js` is off in the config.
    #[error("exec_js is disabled ([commander] exec_js = false)")]
    JsDisabled,
    /// `query_one` matched no element.
    #[error("no element matches `{0}`")]
    NotFound(String),
    /// `query_one` matched several elements.
    #[error("`{selector}` matches {count} elements, not one")]
    Ambiguous {
        /// The selector.
        selector: String,
        /// How many matched.
        count: usize,
    },
    /// The page already has [`MAX_PENDING_CALLS`] round trips pending.
    #[error("too many pending browser calls")]
    TooMany,
    /// The browser's answer did not have the expected shape.
    #[error("unexpected answer from the browser: {0}")]
    BadAnswer(String),
}

type Slot = oneshot::Sender<Result<Value, CallError>>;

#[derive(Default)]
struct Inner {
    next_id: u64,
    pending: HashMap<u64, Slot>,
    closed: bool,
}

/// The pending round trips of one page.
#[derive(Default)]
pub(crate) struct Calls(Mutex<Inner>);

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a call: its id, and where its answer will arrive.
    pub(crate) fn open(
        &self,
    ) -> Result<(u64, oneshot::Receiver<Result<Value, CallError>>), CallError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(CallError::Disconnected);
        }
        if inner.pending.len() >= MAX_PENDING_CALLS {
            return Err(CallError::TooMany);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let (slot, answer) = oneshot::channel();
        inner.pending.insert(id, slot);
        Ok((id, answer))
    }

    /// Forgets call `id` (timed out, or its caller gave up); `true` if it was pending.
    pub(crate) fn forget(&self, id: u64) -> bool {
        self.lock().pending.remove(&id).is_some()
    }

    /// Hands the browser's answer to call `id`; `false` if no such call is pending (late,
    /// unknown or forged ids are ignored).
    pub(crate) fn answer(&self, id: u64, answer: Result<Value, CallError>) -> bool {
        let slot = self.lock().pending.remove(&id);
        match slot {
            Some(slot) => {
                let _ = slot.send(answer);
                true
            }
            None => false,
        }
    }

    /// The page is gone: every pending call fails with `Disconnected`, and no new one opens.
    pub(crate) fn close(&self) {
        let pending = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.pending)
        };
        for (_, slot) in pending {
            let _ = slot.send(Err(CallError::Disconnected));
        }
    }

    /// How many calls are pending.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

/// How long a [`Modal`] waits for the person unless told otherwise.
pub const DEFAULT_MODAL_TIMEOUT: Duration = Duration::from_secs(600);

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
    /// One round trip: pushes `call` with a fresh id, waits for the browser's answer; in a
    /// `tether.round_trip` span.
    async fn call(&self, call: Value, timeout: Duration) -> Result<Value, CallError> {
        let span =
            super::spans::round_trip(self.commander(), call["op"].as_str().unwrap_or_default());
        let answered = self
            .round_trip(call, timeout)
            .instrument(span.span().clone())
            .await;
        span.end(match &answered {
            Ok(_) => "ok",
            Err(CallError::Timeout) => "timeout",
            Err(CallError::Disconnected) => "disconnected",
            Err(_) => "error",
        });
        answered
    }

    /// [`PageHandle::call`] without its span.
    async fn round_trip(&self, mut call: Value, timeout: Duration) -> Result<Value, CallError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_call_once() {
        let calls = Calls::default();
        let (id, answer) = calls.open().unwrap();
        assert!(calls.answer(id, Ok(Value::from(4))));
        assert!(
            !calls.answer(id, Ok(Value::from(5))),
            "a second answer is ignored"
        );
        assert_eq!(answer.await.unwrap(), Ok(Value::from(4)));
        assert_eq!(calls.pending(), 0);
    }

    #[tokio::test]
    async fn closing_fails_every_pending_call_and_refuses_new_ones() {
        let calls = Calls::default();
        let (_, first) = calls.open().unwrap();
        let (_, second) = calls.open().unwrap();
        calls.close();
        assert_eq!(first.await.unwrap(), Err(CallError::Disconnected));
        assert_eq!(second.await.unwrap(), Err(CallError::Disconnected));
        assert_eq!(calls.open().err(), Some(CallError::Disconnected));
        assert_eq!(calls.pending(), 0);
    }

    #[test]
    fn pending_calls_are_bounded() {
        let calls = Calls::default();
        let open: Vec<_> = (0..MAX_PENDING_CALLS)
            .map(|_| calls.open().unwrap())
            .collect();
        assert_eq!(calls.open().err(), Some(CallError::TooMany));
        assert!(calls.forget(open[0].0));
        assert!(calls.open().is_ok());
    }
}
