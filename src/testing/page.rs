//! A page of the app as the kit's browser holds it: the DOM model of what the server
//! rendered, the page channel joined exactly as tether.js joins it (page token, browser id,
//! store, topics, live tokens, counters and presence lists), and everything the server sends
//! applied with tether.js's rules as it arrives.
//!
//! The page has no task of its own: frames are read, patches applied, debounce timers fired
//! and round trips answered while the test awaits the page (an action, [`TestPage::wait_until`],
//! [`TestPage::idle`]). Between two awaits nothing changes, so what the test reads is stable.
//!
//! For: tests, through [`TestPage`] (its actions are in `actions.rs`, round trips in `calls.rs`).
//! Never: drops a frame (a broadcast that arrives before a reply is applied in order), waits
//! without a wall-clock bound, or lets a failure of the page (a handler error, a refused patch,
//! an unknown handler, a lost channel) pass unless the test allowed errors.

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use kuchikiki::NodeRef;
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use super::{
    actions::{Controls, Rates},
    app::{Browser, default_cookie_path},
    calls::OpenCall,
    dom::{Dom, Effect},
    forms::{self, Loading, UsedFields},
    navigation::{History, Nav},
    wait::Deadline,
};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the page's script tag says (`<script src="/tether.js" data-tether-…>`).
#[derive(Clone)]
pub(crate) struct ScriptTag {
    pub(crate) socket: String,
    pub(crate) commander: String,
    pub(crate) token: String,
}

/// The join reply's `disable` (controls.mjs `disableOptions`).
#[derive(Clone)]
pub(crate) struct Disable {
    pub(crate) while_processing: bool,
    pub(crate) events: Vec<String>,
    pub(crate) when_disconnected: bool,
}

impl Disable {
    fn from_reply(disable: &Value) -> Disable {
        Disable {
            while_processing: disable["while_processing"] != Value::Bool(false),
            events: match disable["events"].as_array() {
                Some(events) => events
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                    .collect(),
                None => vec!["click".into(), "submit".into()],
            },
            when_disconnected: disable["when_disconnected"] != Value::Bool(false),
        }
    }
}

/// How the test answers `exec_js` round trips ([`TestPage::answer_js`]).
pub(crate) type JsAnswer = dyn FnMut(&str) -> Result<Value, String>;

/// What a sent message waits for.
pub(crate) enum Pending {
    Join,
    Event {
        handler: String,
        held: Vec<NodeRef>,
        locked: Vec<NodeRef>,
        /// What its loading state took (see `forms::Loading`).
        loaded: Vec<NodeRef>,
    },
    CallReply,
    /// A `params` push (the URL changed within the page).
    Params,
}

/// A page open in a kit browser, driven by the test.
///
/// Actions ([`click`](TestPage::click), [`fill`](TestPage::fill), [`submit`](TestPage::submit),
/// …) build the event and its `sender` from the DOM model exactly as tether.js does and wait
/// for the handler's reply; readers ([`text`](TestPage::text), [`count`](TestPage::count), …)
/// read the model as it is now; [`wait_until`](TestPage::wait_until) waits for what other
/// pages, jobs and broadcasts do.
///
/// A failure of the page fails the test (the call panics): a handler's error reply, an
/// `error` push (a callback failed), a refused patch, an unknown handler, an invalid handler
/// attribute, a lost page channel. [`allow_errors`](TestPage::allow_errors) records them in
/// [`errors`](TestPage::errors) instead.
///
/// A `TestPage` is not `Send` (the DOM model is reference counted): keep it in the test's task.
pub struct TestPage {
    pub(crate) browser: Browser,
    pub(crate) path: String,
    pub(crate) dom: Dom,
    pub(crate) socket: Option<Socket>,
    pub(crate) script: Option<ScriptTag>,
    /// The `tether-on` types the page's script tag allows besides the gestures.
    pub(crate) allowed: Vec<String>,
    live: Map<String, Value>,
    topics_token: Option<String>,
    pub(crate) exec_js: bool,
    pub(crate) disable: Disable,
    pub(crate) joined: bool,
    onload: bool,
    next_ref: u64,
    join_ref: String,
    pub(crate) pending: HashMap<String, Pending>,
    /// Replies of events, by ref, until the action that sent them takes them.
    pub(crate) results: HashMap<String, Value>,
    pub(crate) controls: Controls,
    pub(crate) rates: Rates,
    pub(crate) used: UsedFields,
    pub(crate) loading: Loading,
    pub(crate) open_calls: HashMap<String, OpenCall>,
    pub(crate) asked: Vec<Value>,
    pub(crate) js_answer: Option<Box<JsAnswer>>,
    failures: Vec<String>,
    errors: Vec<String>,
    allow_errors: bool,
    warnings: Vec<String>,
    console: Vec<(String, String)>,
    scripts: Vec<String>,
    /// A same-origin `redirect` patch or link click to load.
    pub(crate) navigate_to: Option<String>,
    /// The events the server pushed (`push_event`), in order.
    pub(crate) events: Vec<(String, Value)>,
    /// `exec` commands waiting for an await of the page (`push`, `dispatch`, …).
    pub(crate) queued: Vec<(String, Map<String, Value>, Vec<NodeRef>)>,
    /// A live navigation the server asked for (`navigate` frame) or Back/Forward.
    pub(crate) nav: Option<Nav>,
    /// The tab's history (kept across navigations), and this page's place in it.
    pub(crate) history: History,
    /// The key of this live page's history entries (navigation.mjs).
    pub(crate) key: u64,
    /// The document this page is in (a live navigation keeps it, a load makes a new one).
    pub(crate) doc: u64,
}

impl std::fmt::Debug for TestPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPage")
            .field("path", &self.path)
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl TestPage {
    /// The page of `html`, served at `path` to `browser`; joined when it is a commander's.
    pub(crate) async fn load(browser: Browser, path: String, html: String) -> TestPage {
        let mut page = TestPage::parse(browser, path, html);
        if page.script.is_some() {
            page.hold_offline();
            page.connect().await;
        }
        page
    }

    /// The page of `html` at `path`, not connected: a new document with a history of its own.
    pub(crate) fn parse(browser: Browser, path: String, html: String) -> TestPage {
        let mut dom = Dom::parse(&html);
        dom.show_rendered_lists();
        let tag = dom.select_first("script[data-tether-token]").ok().flatten();
        let script = tag.as_ref().map(|tag| ScriptTag {
            socket: dom.attr(tag, "data-tether-socket").unwrap_or_default(),
            commander: dom.attr(tag, "data-tether-commander").unwrap_or_default(),
            token: dom.attr(tag, "data-tether-token").unwrap_or_default(),
        });
        let mut allowed = Vec::new();
        let mut live = Map::new();
        if let Some(tag) = &tag {
            if let Some(events) = dom.attr(tag, "data-tether-events") {
                allowed.extend(events.split_whitespace().map(str::to_string));
            }
            if let Some(tokens) = dom.attr(tag, "data-tether-live") {
                if let Ok(Value::Object(tokens)) = serde_json::from_str(&tokens) {
                    live = tokens.into_iter().filter(|(_, t)| t.is_string()).collect();
                }
            }
        }
        let mut page = TestPage {
            browser,
            path,
            dom,
            socket: None,
            script,
            allowed,
            live,
            topics_token: None,
            exec_js: false,
            disable: Disable::from_reply(&Value::Null),
            joined: false,
            onload: true,
            next_ref: 0,
            join_ref: String::new(),
            pending: HashMap::new(),
            results: HashMap::new(),
            controls: Controls::default(),
            rates: Rates::default(),
            used: UsedFields::default(),
            loading: Loading::default(),
            open_calls: HashMap::new(),
            asked: Vec::new(),
            js_answer: None,
            failures: Vec::new(),
            errors: Vec::new(),
            allow_errors: false,
            warnings: Vec::new(),
            console: Vec::new(),
            scripts: Vec::new(),
            navigate_to: None,
            events: Vec::new(),
            queued: Vec::new(),
            nav: None,
            history: History::default(),
            key: 0,
            doc: 0,
        };
        page.key = History::new_key();
        page.doc = History::new_key();
        page.history.push(&page.path, page.key, page.doc);
        page
    }

    // ---- the connection ----

    /// Connects the page's socket and joins its page channel (again after
    /// [`disconnect`](TestPage::disconnect)), as tether.js does when it reconnects: the browser
    /// id, store, topics and live tokens it kept, `onload` only on the first join of the load.
    /// Waits for the join reply; a refused join fails the test.
    pub async fn connect(&mut self) {
        let Some(script) = self.script.clone() else {
            panic!(
                "tether::testing: {} is no commander's page (no page token)",
                self.path
            );
        };
        if self.socket.is_some() {
            return;
        }
        let origin = self.browser.app.origin();
        let url = format!(
            "ws://{}{}/websocket?vsn=2.0.0",
            self.browser.app.addr, script.socket
        );
        let mut request = match url.as_str().into_client_request() {
            Ok(request) => request,
            Err(err) => panic!("tether::testing: socket URL {url}: {err}"),
        };
        if let Ok(value) = HeaderValue::from_str(&origin) {
            request.headers_mut().insert("origin", value);
        }
        if let Some(cookies) = self.browser.cookie_header(&script.socket) {
            if let Ok(value) = HeaderValue::from_str(&cookies) {
                request.headers_mut().insert("cookie", value);
            }
        }
        let deadline = Deadline::after(self.browser.app.wait());
        let socket = match deadline
            .bound(tokio_tungstenite::connect_async(request))
            .await
        {
            Some(Ok((socket, _))) => socket,
            Some(Err(err)) => panic!("tether::testing: cannot connect {url}: {err}"),
            None => panic!(
                "tether::testing: {url} did not connect within {:?}",
                deadline.wait()
            ),
        };
        self.socket = Some(socket);
        let rejoin = !self.onload;
        self.join(&script).await;
        if rejoin && self.joined {
            self.recover().await;
        }
    }

    pub(crate) async fn join(&mut self, script: &ScriptTag) {
        let payload = json!({
            "token": script.token,
            "browser_id": self.browser.storage("tether_browser_id"),
            "store": self.browser.storage("tether_store"),
            "onload": self.onload,
            "topics": self.topics_token,
            "counters": self.dom.counter_topics(),
            "presence_lists": self.dom.presence_list_specs(),
            "utc_offset": 0,
            "live": self.live,
            "url": self.path,
            "version": crate::commander::CLIENT_VERSION,
        });
        let reference = self.make_ref();
        self.join_ref = reference.clone();
        let topic = self.topic();
        self.send_frame(json!([reference, reference, topic, "phx_join", payload]))
            .await;
        self.pending.insert(reference, Pending::Join);
        self.drive_until("the join reply", |page| page.joined).await;
    }

    /// Closes the page's socket, as a network failure would: the page is disconnected
    /// (tether.js disables its controls meanwhile) until [`connect`](TestPage::connect).
    pub async fn disconnect(&mut self) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
        self.lost();
    }

    /// [`disconnect`](TestPage::disconnect), then [`connect`](TestPage::connect): a restart of
    /// the connection with the tokens the page kept.
    pub async fn reconnect(&mut self) {
        self.disconnect().await;
        self.connect().await;
    }

    /// Whether the page channel is joined now.
    pub fn is_connected(&self) -> bool {
        self.joined
    }

    /// `tether:page:<commander>`.
    pub(crate) fn topic(&self) -> String {
        let commander = self.script.as_ref().map_or("", |s| s.commander.as_str());
        format!("tether:page:{commander}")
    }

    /// The ref of the page's current join.
    pub(crate) fn join_ref(&self) -> String {
        self.join_ref.clone()
    }

    /// Takes over what the test's view of `old` keeps across a navigation in the same tab
    /// (live or a document load): refs, failures and errors (and whether errors are allowed),
    /// what was recorded, the test's `exec_js` answer.
    pub(crate) fn adopt_from(&mut self, old: &mut TestPage) {
        self.next_ref = old.next_ref;
        self.failures = std::mem::take(&mut old.failures);
        self.errors = std::mem::take(&mut old.errors);
        self.allow_errors = old.allow_errors;
        self.warnings = std::mem::take(&mut old.warnings);
        self.console = std::mem::take(&mut old.console);
        self.scripts = std::mem::take(&mut old.scripts);
        self.js_answer = old.js_answer.take();
    }

    pub(crate) fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    pub(crate) async fn send_frame(&mut self, frame: Value) {
        let Some(socket) = self.socket.as_mut() else {
            self.fail("the page is not connected".to_string());
            return;
        };
        if let Err(err) = socket.send(Message::text(frame.to_string())).await {
            self.fail(format!("cannot send on the socket: {err}"));
        }
    }

    /// Pushes `event` with `payload` on the page channel; returns its ref.
    pub(crate) async fn push(&mut self, event: &str, payload: Value, pending: Pending) -> String {
        let reference = self.make_ref();
        let frame = json!([self.join_ref, reference, self.topic(), event, payload]);
        self.pending.insert(reference.clone(), pending);
        self.send_frame(frame).await;
        reference
    }

    /// The page's channel is gone: nothing in flight will be answered (tether.js `lost`).
    pub(crate) fn lost(&mut self) {
        let was_joined = self.joined;
        self.joined = false;
        if let Some(html) = self.dom.select_first("html").ok().flatten() {
            self.dom
                .set_attr(&html, "data-tether", Some("disconnected"));
            self.show_state("disconnected");
        }
        for (_, pending) in self.pending.drain() {
            if let Pending::Event {
                held,
                locked,
                loaded,
                ..
            } = pending
            {
                self.controls.release(&mut self.dom, &held, &locked);
                self.loading.end(&mut self.dom, &loaded);
            }
        }
        self.cancel_all_calls();
        if was_joined {
            self.hold_offline();
        }
    }

    /// Disables every control with a handler while the page is not joined.
    pub(crate) fn hold_offline(&mut self) {
        if !self.disable.when_disconnected {
            return;
        }
        let bound = self.dom.bound_elements();
        for el in bound {
            if self.dom.ignored(&el) || self.runs_offline(&el) {
                continue;
            }
            let controls = self.dom.controls_of(&el, &self.allowed_fn());
            for control in controls {
                self.controls.hold_offline(&mut self.dom, &control);
            }
        }
    }

    // ---- what the server sends ----

    /// Drives the page (frames, timers, round trips) until `done` holds; panics after the
    /// app's wait timeout with `what` and the page as it is.
    pub(crate) async fn drive_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&mut TestPage) -> bool,
    ) {
        let deadline = Deadline::after(self.browser.app.wait());
        let mut alarm = deadline.alarm();
        loop {
            self.fire_due_rates().await;
            self.run_queued().await;
            if let Some(nav) = self.nav.take() {
                self.follow(nav).await;
            }
            if let Some(path) = self.navigate_to.take() {
                self.navigate(&path).await;
            }
            self.raise();
            if done(self) {
                return;
            }
            let next_rate = self.rates.next_due();
            let woke = {
                let socket = self.socket.as_mut();
                tokio::select! {
                    biased;
                    frame = next_frame(socket) => Some(frame),
                    _ = sleep_until(next_rate) => None,
                    _ = &mut alarm => panic!(
                        "tether::testing: {} {what}: not within {:?}; the page now:\n{}",
                        self.path,
                        deadline.wait(),
                        self.dom.html()
                    ),
                }
            };
            if let Some(frame) = woke {
                self.receive(frame).await;
            }
        }
    }

    async fn receive(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(close))) => {
                self.socket = None;
                self.lost();
                let why = close
                    .map(|c| format!("{} {}", u16::from(c.code), c.reason))
                    .unwrap_or_default();
                self.fail(format!("the server closed the socket ({why})"));
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(err)) => {
                self.socket = None;
                self.lost();
                self.fail(format!("the socket failed: {err}"));
                return;
            }
            None => {
                self.socket = None;
                self.lost();
                self.fail("the server closed the socket".to_string());
                return;
            }
        };
        let Ok(Value::Array(frame)) = serde_json::from_str::<Value>(&text) else {
            self.fail(format!(
                "the server sent a frame that is no Phoenix V2 message: {text}"
            ));
            return;
        };
        let Ok([join_ref, reference, topic, event, payload]) = <[Value; 5]>::try_from(frame) else {
            self.fail(format!(
                "the server sent a frame that is not 5 elements long: {text}"
            ));
            return;
        };
        let (Some(topic), Some(event)) = (topic.as_str(), event.as_str()) else {
            self.fail(format!(
                "the server sent a frame without topic or event: {text}"
            ));
            return;
        };
        // Frames of an earlier join (a page left by a live navigation) are dropped, as
        // channel.mjs drops them.
        if join_ref.as_str().is_some_and(|r| r != self.join_ref) {
            return;
        }
        if topic == self.topic() {
            self.page_event(event, reference.as_str(), payload).await;
        } else {
            self.topic_event(event, payload);
        }
    }

    async fn page_event(&mut self, event: &str, reference: Option<&str>, payload: Value) {
        match event {
            "phx_reply" => self.reply(reference, payload),
            "patch" => self.apply(&payload),
            "store" => {
                if let Some(token) = payload["token"].as_str() {
                    self.browser.set_storage("tether_store", Some(token));
                }
            }
            "topics" => self.topics_token = payload["token"].as_str().map(str::to_string),
            "live" => self.keep_live(&payload),
            "flash" => {
                if let (Some(kind), Some(text)) =
                    (payload["kind"].as_str(), payload["text"].as_str())
                {
                    forms::put_flash(&mut self.dom, kind, text);
                }
            }
            "flash_clear" => forms::clear_flash(&mut self.dom, payload["kind"].as_str()),
            "error" => {
                let callback = payload["callback"].as_str().unwrap_or("?");
                let reason = payload["reason"].as_str().unwrap_or("?");
                self.error(format!("{callback} failed: {reason}"));
            }
            "warning" => {
                if let Some(reason) = payload["reason"].as_str() {
                    self.warnings.push(reason.to_string());
                }
            }
            "call" => self.start_call(payload).await,
            "navigate" => self.server_navigates(&payload),
            "call_cancel" => {
                if let Some(id) = payload["id"].as_str().map(str::to_string) {
                    self.cancel_call(&id);
                } else if let Some(id) = payload["id"].as_u64() {
                    self.cancel_call(&id.to_string());
                }
            }
            "phx_error" | "phx_close" => {
                let running: Vec<String> = self
                    .pending
                    .values()
                    .filter_map(|pending| match pending {
                        Pending::Event { handler, .. } => Some(handler.clone()),
                        _ => None,
                    })
                    .collect();
                self.lost();
                let running = if running.is_empty() {
                    String::new()
                } else {
                    format!(" while handler {} ran (did it panic?)", running.join(", "))
                };
                self.fail(format!("the page channel ended ({event}){running}"));
            }
            _ => {}
        }
    }

    /// A broadcast on one of the page's topics.
    fn topic_event(&mut self, event: &str, payload: Value) {
        match event {
            "patch" => self.apply(&payload),
            "live" => self.keep_live(&payload),
            "presence_list" => self.dom.render_presence_lists(&payload),
            "count" => self.dom.render_count(&payload),
            _ => {}
        }
    }

    fn keep_live(&mut self, payload: &Value) {
        if let (Some(name), Some(token)) = (payload["name"].as_str(), payload["token"].as_str()) {
            self.live
                .insert(name.to_string(), Value::String(token.to_string()));
        }
    }

    fn reply(&mut self, reference: Option<&str>, payload: Value) {
        let Some(reference) = reference else { return };
        let Some(pending) = self.pending.remove(reference) else {
            return;
        };
        let ok = payload["status"] == "ok";
        let response = payload.get("response").cloned().unwrap_or(Value::Null);
        match pending {
            Pending::Join if ok => self.joined_with(&response),
            Pending::Join => {
                let reason = response["reason"].as_str().unwrap_or("?").to_string();
                self.fail(format!("the join was refused: {reason}"));
                // No join to wait for: the page stays disconnected.
                self.socket = None;
            }
            Pending::Event {
                handler,
                held,
                locked,
                loaded,
            } => {
                self.controls.release(&mut self.dom, &held, &locked);
                self.loading.end(&mut self.dom, &loaded);
                if ok {
                    self.results.insert(reference.to_string(), response);
                } else {
                    let reason = response["reason"].as_str().unwrap_or("error").to_string();
                    self.error(format!("handler {handler} failed: {reason}"));
                }
            }
            Pending::CallReply if !ok => {
                let reason = response["reason"].as_str().unwrap_or("error").to_string();
                self.error(format!("the server refused a call_reply: {reason}"));
            }
            Pending::CallReply => {}
            Pending::Params if !ok => {
                let reason = response["reason"].as_str().unwrap_or("error").to_string();
                self.error(format!("the server refused a params push: {reason}"));
            }
            Pending::Params => {}
        }
    }

    fn joined_with(&mut self, reply: &Value) {
        self.onload = false;
        if let Some(warnings) = reply["warnings"].as_array() {
            self.warnings.extend(
                warnings
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
        self.exec_js = reply["exec_js"] == Value::Bool(true);
        self.disable = Disable::from_reply(&reply["disable"]);
        self.browser
            .set_storage("tether_browser_id", reply["browser_id"].as_str());
        if reply["store_rejected"] == Value::Bool(true) {
            self.browser.set_storage("tether_store", None);
        }
        self.controls.release_offline(&mut self.dom);
        if let Some(html) = self.dom.select_first("html").ok().flatten() {
            self.dom.set_attr(&html, "data-tether", Some("connected"));
            self.show_state("connected");
        }
        self.joined = true;
    }

    /// Applies a patch with tether.js's rules; a refused one fails the test.
    fn apply(&mut self, patch: &Value) {
        match patch["op"].as_str() {
            Some("event") => return self.pushed_event(patch),
            Some("exec") => return self.exec_patch(patch),
            _ => {}
        }
        let controls = &mut self.controls;
        let applied = self
            .dom
            .apply_patch(patch, self.exec_js, &mut |el| controls.disown(el));
        match applied {
            Ok(Effect::Done) => {}
            Ok(Effect::Js(js)) => self.scripts.push(js),
            Ok(Effect::Redirect(url)) => match self.browser.same_origin_path(&url) {
                Some(path) => self.navigate_to = Some(path),
                None => self.console.push(("redirect".into(), url)),
            },
            Ok(Effect::SetUrl(url)) => match self.browser.same_origin_path(&url) {
                Some(path) => self.path = path,
                None => self.fail(format!("set_url to another origin: {url}")),
            },
            Ok(Effect::Console { level, msg }) => self.console.push((level, msg)),
            Ok(Effect::Cookie {
                name,
                value,
                path,
                max_age,
            }) => {
                let path = path.unwrap_or_else(|| default_cookie_path(&self.path));
                let value = if max_age.is_some_and(|age| age <= 0) {
                    None
                } else {
                    value
                };
                self.browser
                    .set_script_cookie(&name, value.as_deref(), &path);
            }
            Err(reason) => self.error(format!("patch refused: {reason}: {patch}")),
        }
    }

    /// Loads `path` in this tab: a new document and a new join (a redirect, a link).
    pub(crate) async fn navigate(&mut self, path: &str) {
        if let Some(mut socket) = self.socket.take() {
            let _ = socket.close(None).await;
        }
        let page = Box::pin(self.browser.open(path)).await;
        let mut old = std::mem::replace(self, page);
        // The tab's view carries over, as on Back to another document.
        self.adopt_from(&mut old);
        let mut history = std::mem::take(&mut old.history);
        history.push(&self.path, self.key, self.doc);
        self.history = history;
    }

    // ---- failures ----

    /// A failure of the page: fails the test at the next await of the page.
    pub(crate) fn fail(&mut self, failure: String) {
        self.failures.push(failure);
    }

    /// A failure the test may allow ([`allow_errors`](TestPage::allow_errors)).
    pub(crate) fn error(&mut self, error: String) {
        if self.allow_errors {
            self.errors.push(error);
        } else {
            self.failures.push(error);
        }
    }

    /// Panics with the page's failures, if any.
    pub(crate) fn raise(&mut self) {
        if self.failures.is_empty() {
            return;
        }
        let failures = std::mem::take(&mut self.failures).join("\n  ");
        panic!("tether::testing: {}:\n  {failures}", self.path);
    }

    /// From now on, a handler's error, an `error` push and a refused patch are recorded in
    /// [`errors`](TestPage::errors) instead of failing the test.
    pub fn allow_errors(&mut self) -> &mut Self {
        self.allow_errors = true;
        self
    }

    /// The errors recorded since [`allow_errors`](TestPage::allow_errors), e.g.
    /// `"handler add failed: …"`, `"on_connect failed: …"`, `"patch refused: …"`.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The server's development warnings to this page (a join reply's `warnings`, `warning`
    /// pushes), in order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What `console` patches wrote, as `(level, message)`.
    pub fn console(&self) -> &[(String, String)] {
        &self.console
    }

    /// The scripts `js` patches asked the page to run (with `exec_js` on; the kit runs none).
    pub fn scripts(&self) -> &[String] {
        &self.scripts
    }

    // ---- reading the page ----

    fn first(&self, selector: &str) -> NodeRef {
        match self.dom.select_first(selector) {
            Ok(Some(el)) => el,
            Ok(None) => panic!(
                "tether::testing: {}: nothing matches {selector}; the page:\n{}",
                self.path,
                self.dom.html()
            ),
            Err(err) => panic!("tether::testing: invalid selector {selector}: {err}"),
        }
    }

    /// Every element matching `selector`; panics on an invalid selector.
    pub(crate) fn all(&self, selector: &str) -> Vec<NodeRef> {
        self.dom
            .select_all(selector)
            .unwrap_or_else(|err| panic!("tether::testing: invalid selector {selector}: {err}"))
    }

    /// The path (and query) the page shows: where it was loaded, then what `set_url`
    /// patches, patch navigations (`push_patch`, `tether-patch` links and forms), live
    /// navigations and [`back`](TestPage::back)/[`forward`](TestPage::forward) made it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The browser that holds the page (to open another tab of it).
    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    /// The text (`textContent`) of the first element matching `selector`; panics when none does.
    pub fn text(&self, selector: &str) -> String {
        self.dom.text(&self.first(selector))
    }

    /// The text of every element matching `selector`, trimmed, in document order.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        self.all(selector)
            .iter()
            .map(|el| self.dom.text(el).trim().to_string())
            .collect()
    }

    /// The outer HTML of the first element matching `selector` (the element itself and
    /// what it holds).
    pub fn outer_html(&self, selector: &str) -> String {
        self.dom.outer_html(&self.first(selector))
    }

    /// The inner HTML of the first element matching `selector`.
    pub fn html(&self, selector: &str) -> String {
        self.dom.inner_html(&self.first(selector))
    }

    /// The whole document as it is now.
    pub fn document(&self) -> String {
        self.dom.html()
    }

    /// Attribute `name` of the first element matching `selector`.
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.dom.attr(&self.first(selector), name)
    }

    /// The `value` property of the first element matching `selector` (what a person typed).
    pub fn value(&self, selector: &str) -> String {
        self.dom.value(&self.first(selector))
    }

    /// The `checked` property of the first element matching `selector`.
    pub fn is_checked(&self, selector: &str) -> bool {
        self.dom.checked(&self.first(selector))
    }

    /// Whether the first element matching `selector` is disabled.
    pub fn is_disabled(&self, selector: &str) -> bool {
        self.dom.disabled(&self.first(selector))
    }

    /// How many elements match `selector`.
    pub fn count(&self, selector: &str) -> usize {
        self.all(selector).len()
    }

    /// Whether any element matches `selector`.
    pub fn exists(&self, selector: &str) -> bool {
        self.count(selector) > 0
    }

    /// Waits until `condition` holds for the page, while frames, timers and round trips are
    /// handled; panics after the app's wait timeout with the page as it is then.
    ///
    /// ```no_run
    /// # async fn demo(page: &mut tether::testing::TestPage) {
    /// page.wait_until(|page| page.count("li.item") == 2).await;
    /// # }
    /// ```
    pub async fn wait_until(&mut self, mut condition: impl FnMut(&TestPage) -> bool) {
        self.drive_until("wait_until", |page| condition(page)).await;
    }

    /// Lets `duration` pass on tokio's clock (instantly under a paused clock) while the page
    /// handles what comes, debounce and throttle timers included.
    pub async fn idle(&mut self, duration: std::time::Duration) {
        let until = tokio::time::Instant::now() + duration;
        self.rates.wake_at(until);
        self.drive_until("idle", |_| tokio::time::Instant::now() >= until)
            .await;
        self.rates.forget_wake(until);
    }

    /// The round trips the server asked this page (each `call` payload: `op`, `id` and the
    /// op's fields), in order.
    pub fn asked(&self) -> &[Value] {
        &self.asked
    }
}

async fn next_frame(
    socket: Option<&mut Socket>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match socket {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
