//! The page channel `tether:page:<commander>`: verifies the page token, resolves the browser
//! id, store and session, tracks the page, runs the commander's callbacks and dispatches
//! DOM events to declared handlers.
//!
//! The wire protocol is described once, in `docs/page-channel.md` (included in the
//! `commander` module docs).

use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Broadcasting, Disconnected, Sender,
    callbacks::DynCommander,
    hub::{Hub, PageClaims},
    page::{MAX_STORE_BYTES, Page, PageState, StoreClaims, TopicClaims},
    same_commander, same_path, same_topic,
    token::unix_now,
};
use crate::channel::{
    BoxError, Channel, HandleResult, JoinError, JoinResult, Reply, Socket, TerminateReason,
};

pub(crate) struct PageChannel {
    pub(crate) hub: Arc<Hub>,
}

/// Where a joined page keeps its state (in the socket's extensions). A handler borrows the
/// state out of it through a [`Borrowed`] guard, which puts it back even if the handler
/// panics, so `terminate` always finds it (untracks, runs `on_disconnect`).
#[derive(Clone)]
struct PageSlot(Arc<Mutex<Option<PageState>>>);

impl PageSlot {
    fn new(state: PageState) -> PageSlot {
        PageSlot(Arc::new(Mutex::new(Some(state))))
    }

    fn take(&self) -> Option<PageState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn put(&self, state: PageState) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }
}

/// A page's state taken out of its slot; back in the slot when dropped (unwinding too).
struct Borrowed {
    slot: PageSlot,
    state: Option<PageState>,
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let Some(state) = self.state.take() {
            self.slot.put(state);
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JoinPayload {
    token: String,
    browser_id: Option<String>,
    store: Option<String>,
    onload: bool,
    counters: Vec<String>,
    /// Signed topics of this page before a reconnect (see `Page::subscribe`).
    topics: Option<String>,
}

#[derive(Deserialize)]
struct EventPayload {
    handler: String,
    #[serde(default)]
    sender: Sender,
}

/// Tells the page a callback failed (and logs it).
fn report(page: &mut Page<'_>, callback: &str, err: BoxError) {
    tracing::warn!(commander = page.commander(), callback, "{err}");
    let _ = page.socket.push(
        "error",
        &json!({ "callback": callback, "reason": err.to_string() }),
    );
}

impl PageChannel {
    fn commander(&self, name: &str) -> Option<(&'static str, Arc<dyn DynCommander>)> {
        self.hub
            .commanders
            .get_key_value(name)
            .map(|(name, commander)| (*name, commander.clone()))
    }

    /// The path a page token was signed for, if it is genuine, young enough and made for
    /// commander `name`.
    fn verify_page_token(&self, name: &str, token: &str, now: u64) -> Result<String, JoinError> {
        let max_age = Some(self.hub.config.page_token_max_age_s);
        let claims: PageClaims =
            self.hub
                .keys
                .verify("page", token, now, max_age)
                .map_err(|err| {
                    tracing::warn!(commander = name, "page token refused: {err}");
                    JoinError::reason("invalid page token")
                })?;
        if claims.commander != name {
            tracing::warn!(commander = name, token_for = %claims.commander, "page token of another commander refused");
            return Err(JoinError::reason("invalid page token"));
        }
        Ok(claims.path)
    }

    /// The browser's id from its signed token, or a fresh one (none, forged, not a UUID).
    fn browser_id(&self, token: Option<&str>, now: u64) -> String {
        token
            .and_then(|token| {
                self.hub
                    .keys
                    .verify::<String>("browser", token, now, None)
                    .ok()
            })
            .filter(|id| uuid::Uuid::parse_str(id).is_ok())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }

    /// The page's store from its encrypted token: empty without one; `Err` (logged) when
    /// the token is too large, tampered, or made for another browser.
    fn open_store(
        &self,
        name: &str,
        token: Option<&str>,
        browser_id: &str,
        now: u64,
    ) -> Result<Map<String, Value>, ()> {
        let Some(token) = token else {
            return Ok(Map::new());
        };
        let opened = if token.len() > MAX_STORE_BYTES {
            Err(format!("{} bytes, over {MAX_STORE_BYTES}", token.len()))
        } else {
            self.hub
                .keys
                .decrypt::<StoreClaims>("store", token, now, None)
                .map_err(|err| err.to_string())
                .and_then(|claims| {
                    (claims.browser_id == browser_id)
                        .then_some(claims.store)
                        .ok_or_else(|| "made for another browser".to_string())
                })
        };
        opened.map_err(|why| tracing::warn!(commander = name, "store token refused: {why}"))
    }

    /// The topics a rejoining page had, from its signed topics token: only a token made for
    /// this commander, path and browser counts, and never a topic the browser left after the
    /// token was made.
    fn remembered_topics(
        &self,
        name: &str,
        path: &str,
        browser_id: &str,
        payload: &JoinPayload,
        now: u64,
    ) -> Option<Vec<String>> {
        let max_age = Some(self.hub.config.page_token_max_age_s);
        let claims = self
            .hub
            .keys
            .verify::<TopicClaims>("topics", payload.topics.as_deref()?, now, max_age)
            .ok()
            .filter(|t| t.commander == name && t.path == path && t.browser_id == browser_id)?;
        let issued = claims.issued_ms;
        let mut topics = claims.topics;
        topics.retain(|topic| self.hub.may_rejoin(browser_id, topic, issued));
        Some(topics)
    }

    /// Subscribes the page to its topics, and to the counts of those it shows counters of.
    fn subscribe(&self, socket: &mut Socket, topics: &[String], counters: &[String]) {
        for topic in topics {
            socket.subscribe(topic);
        }
        for counted in counters.iter().filter(|c| topics.contains(c)) {
            socket.subscribe(&Hub::counter_topic(counted));
            self.hub.watch_counter(counted);
        }
    }

    /// Tracks the page on its topics, then runs `on_connect` (and `on_load` on the first
    /// join of a page load): tracked first, so counts taken there include this page.
    async fn connect(
        &self,
        commander: &dyn DynCommander,
        socket: &mut Socket,
        state: &mut PageState,
        onload: bool,
    ) {
        let topics = state.topics.clone();
        let mut page = Page {
            socket,
            state,
            hub: &self.hub,
        };
        for topic in &topics {
            page.track(topic);
        }
        if let Err(err) = commander.on_connect(&mut page).await {
            report(&mut page, "on_connect", err);
        }
        if onload {
            if let Err(err) = commander.on_load(&mut page).await {
                report(&mut page, "on_load", err);
            }
        }
    }

    fn topics(commander: &dyn DynCommander, name: &str, path: &str) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for broadcasting in commander.broadcasting() {
            let topic = match broadcasting {
                Broadcasting::SamePath => same_path(path),
                Broadcasting::SameCommander => same_commander(name),
                Broadcasting::Named(n) => same_topic(&n),
            };
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }
}

impl Channel for PageChannel {
    type Info = ();
    async fn join(&self, topic: &str, payload: Value, socket: &mut Socket) -> JoinResult {
        let name = topic.strip_prefix("tether:page:").unwrap_or_default();
        let Some((name, commander)) = self.commander(name) else {
            tracing::warn!(topic = %crate::text::for_log(topic), "join of an unknown commander");
            return Err(JoinError::reason("unknown commander"));
        };
        let payload: JoinPayload = serde_json::from_value(payload)
            .map_err(|_| JoinError::reason("invalid join payload"))?;
        let now = unix_now();
        let path = self.verify_page_token(name, &payload.token, now)?;
        let browser_id = self.browser_id(payload.browser_id.as_deref(), now);
        let opened = self.open_store(name, payload.store.as_deref(), &browser_id, now);
        let store_rejected = opened.is_err();
        let topics = match self.remembered_topics(name, &path, &browser_id, &payload, now) {
            Some(topics) => topics,
            None => PageChannel::topics(&*commander, name, &path),
        };
        self.subscribe(socket, &topics, &payload.counters);
        let session = socket
            .assigns()
            .get("session")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut state = PageState {
            commander: name,
            path,
            browser_id,
            session,
            store: opened.unwrap_or_default(),
            topics: topics.clone(),
            tracked: Vec::new(),
        };
        self.connect(&*commander, socket, &mut state, payload.onload)
            .await;
        let browser_token = self.hub.keys.sign("browser", &state.browser_id, now);
        socket.insert(PageSlot::new(state));
        Ok(json!({
            "browser_id": browser_token,
            "topics": topics,
            "store_rejected": store_rejected,
            "exec_js": self.hub.config.exec_js,
        }))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        if event != "event" {
            return Ok(Reply::unhandled());
        }
        let Ok(EventPayload { handler, sender }) = serde_json::from_value(payload) else {
            return Ok(Reply::Error(json!({"reason": "invalid event payload"})));
        };
        let Some(slot) = socket.get::<PageSlot>().cloned() else {
            return Err("page state missing".into());
        };
        let mut borrowed = Borrowed {
            state: slot.take(),
            slot,
        };
        let Some(state) = borrowed.state.as_mut() else {
            return Err("page state missing".into());
        };
        let Some((_, commander)) = self.commander(state.commander) else {
            return Err("commander vanished".into());
        };
        if !commander.handlers().contains(&handler.as_str()) {
            tracing::warn!(
                commander = state.commander,
                handler = %crate::text::for_log(&handler),
                "call of an undeclared handler refused"
            );
            return Ok(Reply::Error(json!({"reason": "unknown handler"})));
        }
        let mut page = Page {
            socket: &mut *socket,
            state,
            hub: &self.hub,
        };
        let reply = if commander.before_handler(&handler, &mut page, &sender).await {
            let outcome = commander
                .handle_event(&handler, &mut page, sender.clone())
                .await
                .map_err(|err| err.to_string());
            commander
                .after_handler(&handler, &mut page, &sender, &outcome)
                .await;
            match outcome {
                Ok(()) => Reply::ok(),
                Err(reason) => {
                    tracing::warn!(commander = page.commander(), %handler, "handler failed: {reason}");
                    Reply::Error(json!({ "reason": reason }))
                }
            }
        } else {
            Reply::Ok(json!({"skipped": true}))
        };
        Ok(reply)
    }

    async fn terminate(&self, _reason: &TerminateReason, socket: &mut Socket) {
        let Some(mut state) = socket.remove::<PageSlot>().and_then(|slot| slot.take()) else {
            return;
        };
        let Some((_, commander)) = self.commander(state.commander) else {
            return;
        };
        // Untrack first, so that counts taken in on_disconnect exclude this page.
        Page {
            socket: &mut *socket,
            state: &mut state,
            hub: &self.hub,
        }
        .untrack(None);
        let gone = Disconnected {
            path: state.path,
            browser_id: state.browser_id,
            store: state.store,
            session: state.session,
            topics: state.topics,
        };
        let commanders = super::Commanders {
            hub: self.hub.clone(),
        };
        commander.on_disconnect(&gone, &commanders).await;
    }
}

/// Decodes `data` as a client would send it in a page channel's join and event payloads
/// (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_payloads(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = serde_json::from_value::<JoinPayload>(value.clone());
        if let Ok(EventPayload { handler, sender }) = serde_json::from_value(value) {
            let _ = crate::text::for_log(&handler);
            let _ = serde_json::to_value(&sender);
        }
    }
}
