//! [`PageHandle`]: one connected page, reachable from any task — patches to it
//! ([`PageHandle::apply`]) or aimed from it at a topic ([`PageHandle::to`],
//! [`PageHandle::others`]), counts, and messages to its commander; its questions to the
//! browser (round trips) are in `calls`.
//!
//! Invariant: once the page is gone, everything here fails (`PatchError::Closed`,
//! `PushError::Closed`) instead of reaching a later page.
//! It must never touch the page's own state (store, topics): that belongs to [`Page`],
//! which only the page's task holds.
//!
//! [`Page`]: super::Page

use std::{
    borrow::Borrow,
    sync::{Arc, Mutex, PoisonError},
};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Count, Info, Patch, PatchError, Target, calls::Calls, hub::Hub, runtime::Work};
use crate::{
    channel::SocketHandle,
    presence::{OwnerId, TrackError},
    transport::PushError,
};

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

    /// The key the page is tracked under on `topic`.
    pub(crate) fn tracked_key(&self, topic: &str) -> Option<String> {
        let tracked = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
        tracked
            .as_ref()?
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, key)| key.clone())
    }

    /// Replaces the page's meta on `topic` (see [`PageHandle::update_presence`]).
    pub(crate) fn update(&self, topic: &str, meta: serde_json::Value) -> Result<(), TrackError> {
        let presence = self.hub.presence.as_ref().ok_or(TrackError::NotTracked)?;
        let key = self.tracked_key(topic).ok_or(TrackError::NotTracked)?;
        let meta = match meta {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("value".to_string(), other)]),
        };
        presence.update_owner(topic, self.owner(), &key, |_| meta)
    }

    /// The meta presence holds for the page on `topic` (on this node), if tracked there.
    pub(crate) fn tracked_meta(&self, topic: &str) -> Option<(String, serde_json::Value)> {
        let presence = self.hub.presence.as_ref()?;
        let key = self.tracked_key(topic)?;
        let meta = presence.meta_of_owner(topic, self.owner(), &key)?;
        Some((key, serde_json::Value::Object(meta)))
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

impl PageHandle {
    pub(crate) fn hub(&self) -> &Hub {
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

    /// Moves the page to another page at `url` (a local path and query) over the same
    /// socket, without loading a document (LiveView's `push_navigate`): tether.js fetches the
    /// URL's server-rendered HTML through the app's route, leaves this page (its
    /// `on_disconnect` runs, its presences leave), morphs the new body and title in and joins
    /// the new page's channel. A URL whose page has no page token, or another socket, is
    /// loaded as a whole document. Refused (`UnsafeProp("url")`) for anything but a local URL.
    pub fn push_navigate(&self, url: &str) -> Result<(), PatchError> {
        super::navigation::send(self, super::navigation::NavKind::Navigate, url).map(|_| ())
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

    /// Runs client-side commands in the page (LiveView's `JS.exec` from the server): the
    /// same commands an attribute holds, checked the same way (no script, ever).
    ///
    /// ```
    /// # use tether::commander::{Js, Page, PatchError};
    /// # fn f(page: &Page) -> Result<(), PatchError> {
    /// page.exec(&Js::new().show("#saved").transition("#saved", "flash", 600))?;
    /// # Ok(()) }
    /// ```
    pub fn exec(&self, js: &super::Js) -> Result<(), PatchError> {
        self.apply(Patch::exec(js))
    }

    /// Pushes event `name` with `payload` to the page's JavaScript: each hook's
    /// `this.handleEvent(name, callback)` and `window` listeners of `tether:event:<name>`
    /// get the payload. Data, never script: it works with `exec_js` off. To every page on a
    /// topic: `page.to(topic).push_event(name, payload)`.
    ///
    /// ```
    /// # use tether::commander::{Page, PatchError};
    /// # fn f(page: &Page) -> Result<(), PatchError> {
    /// page.push_event("points", serde_json::json!({"x": [1, 2, 3]}))?;
    /// # Ok(()) }
    /// ```
    pub fn push_event(&self, name: &str, payload: impl Serialize) -> Result<(), PatchError> {
        self.apply(Patch::push_event(name, payload))
    }

    /// Replaces this page's presence meta on `topic` with `meta` (Phoenix's
    /// `Presence.update` for a commander's page): every list, counter and presence client of
    /// the topic sees the change, on every node. Only this page's entry changes, not the other
    /// tabs of its key: a presence list shows, for a key with several tabs, the meta of the
    /// tab that joined or updated last (see the README, *Presence from a page*). The meta
    /// lasts until the page leaves the topic; a rejoin (a reconnect, another tab) tracks what
    /// [`Commander::presence`](super::Commander::presence) returns, so keep a change that
    /// must last where it reads from (the store: call `update_presence` first, then
    /// `put_store`).
    ///
    /// Fails with [`TrackError::NotTracked`] when the page is not tracked on `topic` (not on
    /// it, its commander's `presence` returned `None`, or pages are not tracked),
    /// [`TrackError::MetaTooLarge`], or [`TrackError::RateLimited`] (`[presence]
    /// max_updates_per_s`); nothing changes then.
    ///
    /// ```
    /// # use tether::commander::Page;
    /// # use serde_json::json;
    /// # fn f(page: &mut Page, topic: &str) -> Result<(), Box<dyn std::error::Error>> {
    /// page.update_presence(topic, json!({"name": "Ada"}))?;
    /// page.put_store("name", "Ada")?; // what `presence` reads when the page joins again
    /// # Ok(()) }
    /// ```
    pub fn update_presence(&self, topic: &str, meta: serde_json::Value) -> Result<(), TrackError> {
        self.0.update(topic, meta)
    }

    /// Shows `text` as the page's `kind` flash message (LiveView's `put_flash`): in every
    /// `[tether-flash]` container of the page that takes the kind (`tether-flash` takes every
    /// kind, `tether-flash="error warning"` those named), replacing the message of that kind it
    /// showed. The text is text, never markup; each message has a close button that removes it
    /// in the browser without a round trip; navigation clears them. `kind` is 1 to 32 ASCII
    /// letters, digits, `_` or `-` (`info`, `error`), else [`PatchError::InvalidFlashKind`].
    ///
    /// ```
    /// # use tether::commander::{Page, PatchError};
    /// # fn f(page: &Page) -> Result<(), PatchError> {
    /// page.put_flash("info", "Saved.")?;
    /// page.clear_flash(Some("error"))?; // an earlier error is over
    /// # Ok(()) }
    /// ```
    pub fn put_flash(&self, kind: &str, text: impl Into<String>) -> Result<(), PatchError> {
        check_flash_kind(kind)?;
        let text: String = text.into();
        Ok(self.push("flash", &serde_json::json!({"kind": kind, "text": text}))?)
    }

    /// Removes the page's flash messages of `kind`, or of every kind with `None`.
    pub fn clear_flash(&self, kind: Option<&str>) -> Result<(), PatchError> {
        if let Some(kind) = kind {
            check_flash_kind(kind)?;
        }
        Ok(self.push("flash_clear", &serde_json::json!({"kind": kind}))?)
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
}

/// A flash kind: 1 to 32 ASCII letters, digits, `_` or `-`.
fn check_flash_kind(kind: &str) -> Result<(), PatchError> {
    let fine = (1..=32).contains(&kind.len())
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if fine {
        Ok(())
    } else {
        Err(PatchError::InvalidFlashKind(
            crate::text::for_log(kind).to_string(),
        ))
    }
}
