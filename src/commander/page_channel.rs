//! The page channel `tether:page:<commander>`: verifies the page token, resolves the browser
//! id, store and session, tracks the page, starts the page's task (which runs the
//! commander's callbacks), queues DOM events for declared handlers, and hands the browser's
//! answers to pending round trips.
//!
//! The wire protocol is described once, in `docs/page-channel.md` (included in the
//! `commander` module docs).

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex, PoisonError},
};

use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Broadcasting, PageHandle, Sender,
    callbacks::DynCommander,
    calls::{CallError, Calls},
    handle::PageShared,
    held::{Budget, Held},
    hub::{Hub, PageClaims},
    page::{BrowserInfo, MAX_STORE_BYTES, Page, PageState, StoreClaims, TopicClaims},
    presence_list::ListSpec,
    runtime::{self, PageCrash, Work},
    same_commander, same_path, same_topic,
    token::unix_now,
};
use crate::channel::{
    BoxError, Channel, HandleResult, JoinError, JoinResult, Reply, Socket, TerminateReason,
};
use crate::metrics::counted_task;

/// Most presence lists one page may show (more in a join are ignored).
const MAX_LISTS_PER_PAGE: usize = 32;
/// Most ignored live counters one join is warned of (development only).
const MAX_WARNED_COUNTERS: usize = 8;

/// Most page loads a node remembers as joined (see [`SeenLoads`]).
const MAX_SEEN_LOADS: usize = 65_536;

/// What a join's payload claims, checked (see `PageChannel::admit`).
struct Admitted {
    claims: PageClaims,
    browser_id: String,
    /// The store, or `Err` when its token was refused (logged).
    store: Result<Map<String, Value>, ()>,
    topics: Vec<String>,
    /// Whether the topics came from a topics token the browser brought.
    topics_given: bool,
    live: Map<String, Value>,
    live_rejected: Vec<String>,
    lists: Vec<ListSpec>,
}

pub(crate) struct PageChannel {
    pub(crate) hub: Arc<Hub>,
    /// The page loads that joined this node, so that `on_load` runs once per load.
    loads: Mutex<SeenLoads>,
}

/// The `load` nonces (from page tokens) of the page loads that already joined this node, at
/// most [`MAX_SEEN_LOADS`] (the oldest are forgotten first). Whether `on_load` runs is the
/// server's decision: the join's `onload` flag can only turn it off (a page that says it
/// is rejoining), never make it run twice for one load here. This is per node: a reconnect
/// to another node, a restart, or a load forgotten under the bound may run it again (the
/// `Commander::on_load` docs say so).
#[derive(Default)]
struct SeenLoads {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl SeenLoads {
    /// Whether `load` is joining this node for the first time (it is remembered from now on).
    fn first(&mut self, load: u64) -> bool {
        if !self.seen.insert(load) {
            return false;
        }
        self.order.push_back(load);
        if self.order.len() > MAX_SEEN_LOADS {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

/// What a joined page keeps in its socket: the handle to its task, the task itself, and the
/// page's budget of queued event bytes.
struct PageSlot {
    page: PageHandle,
    task: tokio::task::JoinHandle<()>,
    queued: Budget,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JoinPayload {
    token: String,
    browser_id: Option<String>,
    store: Option<String>,
    onload: bool,
    counters: Vec<String>,
    /// The presence lists the page shows, by the signed specs the server rendered into them
    /// (`data-tether-list` of `Commanders::presence_list`, `presence_list_with`); anything
    /// else is ignored.
    presence_lists: Vec<Value>,
    /// Signed topics of this page before a reconnect (see `Page::subscribe`).
    topics: Option<String>,
    /// The browser's offset from UTC, in minutes.
    utc_offset: Option<i32>,
    /// Live regions' tokens, by name.
    live: Map<String, Value>,
    /// The URL the page shows (path and query); the rendered path without one.
    url: Option<String>,
    /// The version of the page's tether.js (none before 0.1: let in).
    version: Option<String>,
}

/// A `params` push: the URL the page shows now.
#[derive(Deserialize)]
struct ParamsPayload {
    url: String,
}

#[derive(Deserialize)]
struct EventPayload {
    handler: String,
    /// A shared commander serving the region the event came from.
    #[serde(default)]
    commander: Option<String>,
    /// The [`Sender`], checked here but kept as JSON text until the handler runs.
    #[serde(default)]
    sender: Value,
}

/// The parts of a sender whose size is bounded (`commander.max_event_field_bytes`).
const BOUNDED_SENDER_FIELDS: [&str; 5] = ["arg", "form", "dataset", "event", "used"];

/// An event's sender as JSON text, once its shape and the size of its bounded parts (at
/// most `max_field` bytes each) are checked; `Err` is the reason the event is refused.
fn checked_sender(sender: Value, max_field: usize) -> Result<Box<RawValue>, &'static str> {
    let sender = match sender {
        Value::Null => Value::Object(Map::new()),
        sender => sender,
    };
    let too_large = BOUNDED_SENDER_FIELDS
        .iter()
        .filter_map(|field| sender.get(field))
        .any(|part| crate::text::json_len(part) > max_field);
    if too_large {
        return Err("event too large");
    }
    if Sender::deserialize(&sender).is_err() {
        return Err("invalid event payload");
    }
    serde_json::value::to_raw_value(&sender).map_err(|_| "invalid event payload")
}

/// The browser's answer to a round trip: `ok` (any JSON, `null` included) or `error`.
#[derive(Deserialize)]
struct CallReply {
    id: u64,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    ok: Value,
}

impl PageChannel {
    pub(crate) fn new(hub: Arc<Hub>) -> PageChannel {
        PageChannel {
            hub,
            loads: Mutex::default(),
        }
    }

    /// Whether a join of page load `load` runs `on_load`: the client says it is the page's
    /// first join, and this node has not seen that load join before.
    fn runs_on_load(&self, onload: bool, load: u64) -> bool {
        onload
            && self
                .loads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .first(load)
    }

    fn commander(&self, name: &str) -> Option<(&'static str, Arc<dyn DynCommander>)> {
        self.hub
            .commanders
            .get_key_value(name)
            .map(|(name, commander)| (*name, commander.clone()))
    }

    /// What a page token says, if it is genuine, young enough and made for commander `name`.
    fn verify_page_token(
        &self,
        name: &str,
        token: &str,
        now: u64,
    ) -> Result<PageClaims, JoinError> {
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
        Ok(claims)
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
        let max_age = Some(self.hub.config.store_token_max_age_s);
        let opened = if token.len() > MAX_STORE_BYTES {
            Err(format!("{} bytes, over {MAX_STORE_BYTES}", token.len()))
        } else {
            self.hub
                .keys
                .decrypt::<StoreClaims>("store", token, now, max_age)
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
    /// this commander, path and browser, not older than `[commander] topics_token_max_age_s`,
    /// counts, and never a topic the browser left after the token was made (as far as this
    /// node remembers: leaves are kept as long as a topics token lives).
    fn remembered_topics(
        &self,
        name: &str,
        path: &str,
        browser_id: &str,
        payload: &JoinPayload,
        now: u64,
    ) -> Option<Vec<String>> {
        let max_age = Some(self.hub.config.topics_token_max_age_s);
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

    /// Subscribes the page to its topics, and to the counts and presence lists it shows of
    /// them (only of topics it is on; only lists the server signed; at most
    /// `[commander] max_presence_lists` lists per node). Returns the development warnings
    /// for the page (counters of topics it is not on; empty outside development).
    fn subscribe(
        &self,
        socket: &mut Socket,
        admitted: &Admitted,
        payload: &JoinPayload,
    ) -> Vec<String> {
        let topics = &admitted.topics;
        for topic in topics {
            socket.subscribe(topic);
        }
        let (counted, ignored): (Vec<&String>, Vec<&String>) =
            payload.counters.iter().partition(|c| topics.contains(c));
        for counted in counted {
            socket.subscribe(&Hub::counter_topic(counted));
            self.hub.watch_counter(counted);
        }
        for listed in &admitted.lists {
            if !topics.iter().any(|t| t == listed.topic()) {
                continue;
            }
            if let Some(key) = listed.watch_key() {
                if self.hub.watch_presence_list(&key) {
                    socket.subscribe(&Hub::presence_list_topic(&key));
                }
            }
        }
        self.hub
            .ignored_counter_warnings(ignored.into_iter().take(MAX_WARNED_COUNTERS))
    }

    /// The presence lists a join shows, from the list tokens the server signed into its page
    /// (others are ignored, logged).
    fn list_specs(&self, payload: &JoinPayload, now: u64) -> Vec<ListSpec> {
        let shown = payload.presence_lists.iter().take(MAX_LISTS_PER_PAGE);
        let (lists, unsigned): (Vec<_>, Vec<_>) = shown
            .map(|token| self.hub.open_list_spec(token, now))
            .partition(Option::is_some);
        if !unsigned.is_empty() {
            tracing::warn!(
                unsigned = unsigned.len(),
                "presence lists the server did not sign (or too old) ignored"
            );
        }
        lists.into_iter().flatten().collect()
    }

    /// Everything a join's payload claims, checked against the server's keys: the page
    /// token (or the refusal), the browser id, the store, the topics, the live regions and
    /// the presence lists. It changes nothing on the node.
    fn admit(
        &self,
        name: &'static str,
        commander: &dyn DynCommander,
        payload: &JoinPayload,
        now: u64,
    ) -> Result<Admitted, JoinError> {
        let claims = self.verify_page_token(name, &payload.token, now)?;
        let browser_id = self.browser_id(payload.browser_id.as_deref(), now);
        let store = self.open_store(name, payload.store.as_deref(), &browser_id, now);
        let remembered = self.remembered_topics(name, &claims.path, &browser_id, payload, now);
        let topics_given = remembered.is_some();
        let topics =
            remembered.unwrap_or_else(|| PageChannel::topics(commander, name, &claims.path));
        let (live, live_rejected) = self
            .hub
            .open_live(name, &payload.live, claims.load, &topics);
        let lists = self.list_specs(payload, now);
        Ok(Admitted {
            claims,
            browser_id,
            store,
            topics,
            topics_given,
            live,
            live_rejected,
            lists,
        })
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

impl PageChannel {
    /// The shared commanders of `claims` that are registered and shared.
    fn allowed_shared(&self, claims: &PageClaims) -> Vec<&'static str> {
        claims
            .shared
            .iter()
            .filter_map(|name| self.commander(name))
            .filter(|(_, commander)| commander.shared())
            .map(|(name, _)| name)
            .collect()
    }

    /// What the browser said about itself: from the upgrade (connect assigns) and the join.
    fn browser_info(socket: &Socket, payload: &JoinPayload) -> BrowserInfo {
        let assigns = socket.assigns();
        BrowserInfo {
            user_agent: assigns
                .get_str("user_agent")
                .unwrap_or_default()
                .to_string(),
            languages: assigns
                .get("languages")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default(),
            utc_offset_minutes: payload.utc_offset.filter(|m| m.abs() <= 24 * 60),
        }
    }

    /// Which commander an event is for, if the page may call `handler` there: the page's
    /// own, or a shared one its token allows.
    fn target(&self, page: &PageHandle, event: &EventPayload) -> Option<Arc<dyn DynCommander>> {
        let name = match &event.commander {
            None => page.commander(),
            Some(name) => page
                .0
                .shared_commanders
                .iter()
                .copied()
                .find(|a| a == name)?,
        };
        let (_, commander) = self.commander(name)?;
        commander.declares(&event.handler).then_some(commander)
    }
}

impl Channel for PageChannel {
    type Info = PageCrash;

    async fn join(&self, topic: &str, payload: Value, socket: &mut Socket) -> JoinResult {
        let name = topic.strip_prefix("tether:page:").unwrap_or_default();
        let Some((name, commander)) = self.commander(name) else {
            tracing::warn!(topic = %crate::text::for_log(topic), "join of an unknown commander");
            return Err(JoinError::reason("unknown commander"));
        };
        let payload: JoinPayload = serde_json::from_value(payload)
            .map_err(|_| JoinError::reason("invalid join payload"))?;
        if let Some(version) = payload.version.as_deref() {
            if super::navigation::client_is_older(version) {
                // tether.js reloads once (the refused-token loop guard) and gets the new one.
                tracing::info!(commander = name, client = %crate::text::for_log(version),
                    server = super::navigation::CLIENT_VERSION, "outdated tether.js refused");
                return Err(JoinError::reason("outdated client"));
            }
        }
        let now = unix_now();
        let admitted = self.admit(name, &*commander, &payload, now)?;
        let warnings = self.subscribe(socket, &admitted, &payload);
        let Admitted {
            claims,
            browser_id,
            store: opened,
            topics,
            topics_given,
            live,
            live_rejected,
            ..
        } = admitted;
        let path = claims.path.clone();
        let url = payload
            .url
            .as_deref()
            .and_then(super::navigation::local_url)
            .map_or_else(|| path.clone(), str::to_string);
        let store_rejected = opened.is_err();
        let session = socket
            .assigns()
            .get("session")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let allowed = self.allowed_shared(&claims);
        let state = PageState {
            commander: name,
            path,
            url,
            browser_id,
            session,
            store: opened.unwrap_or_default(),
            assigns: claims.assigns,
            live,
            live_frames: Vec::new(),
            topics: topics.clone(),
            browser: PageChannel::browser_info(socket, &payload),
            load: claims.load,
        };
        let browser_token = self.hub.keys.sign("browser", &state.browser_id, now);
        let (queue, work) = mpsc::channel(self.hub.config.max_queued_events);
        let handle = PageHandle(Arc::new(PageShared {
            hub: self.hub.clone(),
            commander: name,
            shared_commanders: allowed,
            socket: socket.handle(),
            queue,
            calls: Calls::default(),
            tracked: Mutex::new(Some(Vec::new())),
            gone: CancellationToken::new(),
        }));
        let mut page = Page::new(handle.clone(), state);
        // Its task renews the topics token the browser brought (a reconnect within its age).
        page.topics_given = topics_given;
        page.follow_live();
        // Tracked here, before `on_connect` runs, so counts taken there include this page.
        for topic in &topics {
            page.track(topic);
        }
        // The task runs once this join has returned: its pushes follow the join reply.
        let _ = handle.0.queue.try_send(Work::Connect {
            onload: self.runs_on_load(payload.onload, claims.load),
        });
        let task = actix_web::rt::spawn(counted_task(runtime::run(page, work)));
        let queued = Budget::new(Arc::default(), self.hub.config.max_queued_bytes);
        socket.insert(PageSlot {
            page: handle,
            task,
            queued,
        });
        let config = &self.hub.config;
        let mut reply = json!({
            "browser_id": browser_token,
            "topics": topics,
            "store_rejected": store_rejected,
            "live_rejected": live_rejected,
            "exec_js": config.exec_js,
            "disable": {
                "while_processing": config.disable_while_processing,
                "events": config.disable_events,
                "when_disconnected": config.disable_when_disconnected,
            },
        });
        if !warnings.is_empty() {
            // Development only: tether.js writes each to the console once.
            reply["warnings"] = json!(warnings);
        }
        Ok(reply)
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        let Some(PageSlot { page, queued, .. }) = socket.get::<PageSlot>() else {
            return Err("page state missing".into());
        };
        match event {
            "event" => {
                let Ok(event) = serde_json::from_value::<EventPayload>(payload) else {
                    return Ok(Reply::Error(json!({"reason": "invalid event payload"})));
                };
                let Some(commander) = self.target(page, &event) else {
                    tracing::warn!(
                        commander = page.commander(),
                        handler = %crate::text::for_log(&event.handler),
                        shared = ?event.commander.as_deref().map(crate::text::for_log),
                        "call of an undeclared handler refused"
                    );
                    return Ok(Reply::Error(json!({"reason": "unknown handler"})));
                };
                let max_field = self.hub.config.max_event_field_bytes;
                let sender = match checked_sender(event.sender, max_field) {
                    Ok(sender) => sender,
                    Err(reason) => return Ok(Reply::Error(json!({ "reason": reason }))),
                };
                let connection = Budget::new(
                    socket.connection_queued().clone(),
                    self.hub.config.max_connection_queued_bytes,
                );
                let bytes = sender.get().len() + event.handler.len();
                let Some(held) = Held::take(queued, &connection, bytes) else {
                    return Ok(Reply::Error(json!({"reason": "too many pending bytes"})));
                };
                let work = Work::Event {
                    commander,
                    handler: event.handler,
                    sender,
                    held,
                    reply: socket.reply_ref(),
                };
                match page.0.queue.try_send(work) {
                    Ok(()) => Ok(Reply::None),
                    Err(_) => Ok(Reply::Error(json!({"reason": "too many pending events"}))),
                }
            }
            "params" => {
                let url = serde_json::from_value::<ParamsPayload>(payload)
                    .ok()
                    .and_then(|p| super::navigation::local_url(&p.url).map(str::to_string));
                let Some(url) = url else {
                    return Ok(Reply::Error(json!({"reason": "invalid url"})));
                };
                let work = Work::Params {
                    url,
                    reply: socket.reply_ref(),
                };
                match page.0.queue.try_send(work) {
                    Ok(()) => Ok(Reply::None),
                    Err(_) => Ok(Reply::Error(json!({"reason": "too many pending events"}))),
                }
            }
            "call_reply" => {
                let Ok(answer) = serde_json::from_value::<CallReply>(payload) else {
                    return Ok(Reply::Error(json!({"reason": "invalid call reply"})));
                };
                let result = match answer.error {
                    Some(message) => Err(CallError::Browser(
                        crate::text::truncate_utf8(&message, 1024).to_string(),
                    )),
                    None => Ok(answer.ok),
                };
                if !page.0.calls.answer(answer.id, result) {
                    tracing::debug!(id = answer.id, "answer to no pending call ignored");
                }
                Ok(Reply::ok())
            }
            _ => Ok(Reply::unhandled()),
        }
    }

    async fn handle_info(&self, message: PageCrash, _socket: &mut Socket) -> Result<(), BoxError> {
        let PageCrash::Panicked(reason) = message;
        Err(reason.into())
    }

    async fn terminate(&self, reason: &TerminateReason, socket: &mut Socket) {
        // Untracks the page, fails its pending round trips and wakes its task, which runs
        // `on_disconnect` once the handler it is running (if any) has finished.
        let Some(PageSlot { page, task, .. }) = socket.remove::<PageSlot>() else {
            return;
        };
        page.0.close();
        // When the connection ends, it waits for that, so that a shutdown (which waits for
        // connections, up to `endpoint.shutdown_timeout_ms`) lets `on_disconnect` run. A
        // leave or a rejoin does not: the connection carries on at once.
        if matches!(reason, TerminateReason::Disconnect(_)) {
            let _ = task.await;
        }
    }
}

/// Decodes `data` as a client would send it in a page channel's join and event payloads
/// (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_payloads(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = serde_json::from_value::<JoinPayload>(value.clone());
        let _ = serde_json::from_value::<CallReply>(value.clone());
        if let Ok(params) = serde_json::from_value::<ParamsPayload>(value.clone()) {
            let _ = super::navigation::local_url(&params.url);
        }
        if let Ok(EventPayload {
            handler, sender, ..
        }) = serde_json::from_value(value)
        {
            let _ = crate::text::for_log(&handler);
            if let Ok(raw) = checked_sender(sender, 32 * 1024) {
                let decoded = serde_json::from_str::<Sender>(raw.get());
                assert!(decoded.is_ok(), "a checked sender must decode");
            }
        }
    }
}

/// A page channel of one commander, `lab` (no handlers), on an in-process pub/sub, whose
/// tokens stay valid for a century: what the `page_join` fuzz target and the tests below
/// run join payloads through.
#[cfg(any(test, feature = "fuzzing"))]
fn admission_lab() -> &'static (super::Commanders, PageChannel) {
    static LAB: std::sync::OnceLock<(super::Commanders, PageChannel)> = std::sync::OnceLock::new();
    LAB.get_or_init(|| {
        struct Lab;
        impl super::Commander for Lab {
            fn name(&self) -> &'static str {
                "lab"
            }
        }
        let century = 100 * 365 * 86_400;
        let config = crate::config::CommanderConfig {
            page_token_max_age_s: century,
            topics_token_max_age_s: century,
            store_token_max_age_s: century,
            ..Default::default()
        };
        let pubsub: Arc<dyn crate::pubsub::PubSub> = Arc::new(crate::pubsub::LocalPubSub::new());
        let presence = crate::config::PresenceConfig::default();
        let commanders = super::Commanders::builder(&config, &presence, &"f".repeat(64), pubsub)
            .commander(Lab)
            .build()
            .expect("a valid lab");
        let channel = PageChannel::new(commanders.hub.clone());
        (commanders, channel)
    })
}

/// Runs a join payload, as a client would send it, through every check of a join
/// (`PageChannel::admit`: page token, browser id, store, topics, live regions, presence
/// lists); `true` when it was admitted. For the `page_join` fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn admit_join_payload(data: &[u8]) -> bool {
    let Ok(payload) = serde_json::from_slice::<JoinPayload>(data) else {
        return false;
    };
    let (_, channel) = admission_lab();
    let Some((name, commander)) = channel.commander("lab") else {
        return false;
    };
    channel
        .admit(name, &*commander, &payload, unix_now())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_token(commander: &str) -> String {
        let (commanders, _) = admission_lab();
        let claims = PageClaims {
            commander: commander.into(),
            path: "/p".into(),
            shared: Vec::new(),
            assigns: Map::new(),
            load: 7,
        };
        commanders.hub.keys.sign("page", &claims, unix_now())
    }

    #[test]
    fn a_join_payload_is_admitted_only_with_a_genuine_page_token_of_its_commander() {
        let good = json!({"token": page_token("lab"), "store": "x", "topics": "y",
            "live": {"r": "z"}, "presence_lists": ["w", 1, null]});
        assert!(admit_join_payload(good.to_string().as_bytes()));
        let other = json!({"token": page_token("other")});
        assert!(!admit_join_payload(other.to_string().as_bytes()));
        let forged = json!({"token": page_token("lab").replace('a', "b")});
        assert!(!admit_join_payload(forged.to_string().as_bytes()));
        assert!(!admit_join_payload(b"[1,2"));
        assert!(!admit_join_payload(br#"{"token": 5}"#));
    }

    #[test]
    fn a_senders_used_fields_are_bounded_and_typed() {
        let fine = json!({"used": ["email", "name"], "recovery": true});
        assert!(checked_sender(fine, 100).is_ok());
        let long = json!({"used": ["x".repeat(200)]});
        assert_eq!(checked_sender(long, 100).err(), Some("event too large"));
        let odd = json!({"used": "email"});
        assert_eq!(
            checked_sender(odd, 100).err(),
            Some("invalid event payload")
        );
        let odd = json!({"recovery": "yes"});
        assert_eq!(
            checked_sender(odd, 100).err(),
            Some("invalid event payload")
        );
    }
}
