//! A page's task over real sockets: handlers run off the connection's loop, in order, and
//! can ask the browser (exec_js, query, modal, wait_for) and wait for its answer; a
//! PageHandle keeps working from a spawned task until the page is gone; messages reach
//! handle_info; shared commanders are called only where the page token allows.

mod support;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use support::{Client, TestServer, reply, test_config};
use tether::{
    Config,
    channel::BoxError,
    commander::{
        CallError, Commander, Commanders, Disconnected, Handlers, Info, Modal, Page, PageOptions,
        Patch, Sender,
    },
};

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, line: impl Into<String>) {
    log.lock().unwrap().push(line.into());
}

/// A message a handler sends to its own page.
struct Ping(String);

struct Lab {
    log: Log,
}

impl Lab {
    async fn ask_js(&self, page: &mut Page, sender: Sender) -> Result<Value, BoxError> {
        Ok(page.exec_js(&sender.value).await?)
    }

    async fn ask_width(&self, page: &mut Page, _: Sender) -> Result<Value, BoxError> {
        let props = page.query_one("#items", &["offsetWidth"]).await?;
        let width = props.get("offsetWidth").cloned().unwrap_or(Value::Null);
        page.apply(Patch::set("#width", width.to_string()))?;
        Ok(width)
    }

    /// Waits for the browser and notes how the wait ended.
    async fn ask_and_note(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let answer = page.exec_js("1").await;
        note(&self.log, format!("answer {answer:?}"));
        Ok(())
    }

    async fn slow(&self, page: &mut Page, sender: Sender) -> Result<&'static str, BoxError> {
        note(&self.log, format!("start {}", sender.value));
        tokio::time::sleep(Duration::from_millis(sender.arg.as_u64().unwrap_or(0))).await;
        note(&self.log, format!("end {}", sender.value));
        page.apply(Patch::set("#slow", sender.value))?;
        Ok("done")
    }

    async fn progress(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let handle = page.handle();
        let log = self.log.clone();
        tokio::task::spawn(async move {
            for percent in [20, 40, 60, 80, 100] {
                if handle.set_prop("#progress", "value", percent).is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            handle.gone().await;
            let after = handle.set_prop("#progress", "value", 0);
            note(&log, format!("after gone: {}", after.is_err()));
        });
        Ok(())
    }

    async fn send_self(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.send(Ping(sender.value))?;
        Ok(())
    }

    async fn listen(&self, page: &mut Page, sender: Sender) -> Result<bool, BoxError> {
        Ok(page.listen(&sender.value))
    }

    async fn confirm(&self, page: &mut Page, _: Sender) -> Result<Value, BoxError> {
        let answer = page
            .modal(&Modal::confirm("Clear?", "All items go.").field("why", "Why"))
            .await?;
        Ok(json!({"button": answer.button, "fields": answer.fields}))
    }

    async fn wait(&self, page: &mut Page, _: Sender) -> Result<Value, BoxError> {
        match page
            .wait_for(
                &[("#a", "click"), ("#b", "click")],
                Duration::from_millis(300),
            )
            .await
        {
            Ok((index, sender)) => Ok(json!({"index": index, "id": sender.id})),
            Err(CallError::Timeout) => Ok(json!("timeout")),
            Err(err) => Err(err.into()),
        }
    }
}

impl Commander for Lab {
    fn name(&self) -> &'static str {
        "lab"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("ask_js", Self::ask_js)
            .on("ask_width", Self::ask_width)
            .on("ask_and_note", Self::ask_and_note)
            .on("slow", Self::slow)
            .on("progress", Self::progress)
            .on("send_self", Self::send_self)
            .on("listen", Self::listen)
            .on("confirm", Self::confirm)
            .on("wait", Self::wait)
    }

    async fn handle_info(&self, page: &mut Page, info: Info) -> Result<(), BoxError> {
        let text = match info {
            Info::Broadcast {
                topic,
                event,
                payload,
            } => format!("{topic} {event} {payload}"),
            info => format!(
                "ping {}",
                info.message::<Ping>().map(|p| p.0).unwrap_or_default()
            ),
        };
        note(&self.log, format!("info {text}"));
        page.apply(Patch::set("#info", text))?;
        Ok(())
    }

    async fn on_disconnect(&self, _gone: &Disconnected, _commanders: &Commanders) {
        note(&self.log, "disconnect");
    }
}

/// A shared commander: serves `tether-commander="cart"` regions of pages that allow it.
struct Cart;

impl Cart {
    async fn add(&self, page: &mut Page, sender: Sender) -> Result<Value, BoxError> {
        page.apply(Patch::set(&sender.within(".total"), "1"))?;
        Ok(page.assign("product").cloned().unwrap_or(Value::Null))
    }
}

impl Commander for Cart {
    const SHARED: bool = true;
    fn name(&self) -> &'static str {
        "cart"
    }
    fn handlers() -> Handlers<Self> {
        Handlers::new().on("add", Self::add)
    }
}

/// Like `Cart`, but not shared.
struct Private;

impl Commander for Private {
    fn name(&self) -> &'static str {
        "private"
    }
    fn handlers() -> Handlers<Self> {
        Handlers::new().on("add", Cart::add_private)
    }
}

impl Cart {
    async fn add_private(_: &Private, _: &mut Page, _: Sender) -> Result<(), BoxError> {
        Ok(())
    }
}

struct Lab1 {
    server: TestServer,
    commanders: Commanders,
    log: Log,
}

async fn setup(adjust: impl FnOnce(&mut Config)) -> Lab1 {
    let mut config = test_config();
    // These tests read the error texts handlers fail with.
    config.commander.debug_errors = true;
    config.commander.exec_js = true;
    config.commander.browser_response_timeout_ms = 300;
    adjust(&mut config);
    let log = Log::default();
    let lab = Lab { log: log.clone() };
    let server = TestServer::start_with(config, |builder| {
        builder.commander(lab).commander(Cart).commander(Private)
    });
    let commanders = server.endpoint.commanders().clone();
    Lab1 {
        server,
        commanders,
        log,
    }
}

impl Lab1 {
    fn token(&self, options: &PageOptions) -> String {
        let req = TestRequest::with_uri("/lab").to_http_request();
        let html = self
            .commanders
            .script_with("lab", &req, options)
            .to_string();
        let start = html.find("data-tether-token=\"").unwrap() + "data-tether-token=\"".len();
        let end = start + html[start..].find('"').unwrap();
        html[start..end].replace("&#34;", "\"")
    }

    async fn page_with(&self, options: &PageOptions) -> (Client, String) {
        let url = format!(
            "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
            self.server.port
        );
        let mut client = Client::connect(&url).await;
        let (join_ref, frame) = client
            .join("tether:page:lab", json!({ "token": self.token(options) }))
            .await;
        reply(&frame, "ok");
        (client, join_ref)
    }

    async fn page(&self) -> (Client, String) {
        self.page_with(&PageOptions::new()).await
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    async fn wait_log(&self, line: &str) {
        support::wait_for_line(&self.log, line).await;
    }
}

/// Sends an event; returns its message ref (the reply comes when the handler is done).
async fn send_event(client: &mut Client, join_ref: &str, handler: &str, sender: Value) -> String {
    send_event_to(client, join_ref, None, handler, sender).await
}

async fn send_event_to(
    client: &mut Client,
    join_ref: &str,
    commander: Option<&str>,
    handler: &str,
    sender: Value,
) -> String {
    let msg_ref = client.next_ref();
    let mut payload = json!({"handler": handler, "sender": sender});
    if let Some(commander) = commander {
        payload["commander"] = json!(commander);
    }
    client
        .send(
            Some(join_ref),
            &msg_ref,
            "tether:page:lab",
            "event",
            payload,
        )
        .await;
    msg_ref
}

async fn reply_to(client: &mut Client, msg_ref: &str) -> Value {
    client
        .recv_until(|f| f[3] == "phx_reply" && f[1] == msg_ref)
        .await
}

/// The next `call` the page receives: its id and payload.
async fn next_call(client: &mut Client) -> (u64, Value) {
    let frame = client.recv_until(|f| f[3] == "call").await;
    (frame[4]["id"].as_u64().expect("call id"), frame[4].clone())
}

async fn answer(client: &mut Client, join_ref: &str, answer: Value) {
    let msg_ref = client.next_ref();
    client
        .send(
            Some(join_ref),
            &msg_ref,
            "tether:page:lab",
            "call_reply",
            answer,
        )
        .await;
}

#[tokio::test]
async fn exec_js_returns_the_browser_value_or_its_error() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;

    let asked = send_event(&mut page, &jr, "ask_js", json!({"value": "2 + 2"})).await;
    let (id, call) = next_call(&mut page).await;
    assert_eq!(call["op"], "js");
    assert_eq!(call["js"], "2 + 2");
    answer(&mut page, &jr, json!({"id": id, "ok": 4})).await;
    let done = reply_to(&mut page, &asked).await;
    assert_eq!(reply(&done, "ok")["result"], 4);

    let asked = send_event(&mut page, &jr, "ask_js", json!({"value": "boom()"})).await;
    let (id, _) = next_call(&mut page).await;
    answer(
        &mut page,
        &jr,
        json!({"id": id, "error": "boom is not defined"}),
    )
    .await;
    let failed = reply_to(&mut page, &asked).await;
    let reason = reply(&failed, "error")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("boom is not defined"), "{reason}");
}

#[tokio::test]
async fn without_debug_errors_the_browser_learns_only_that_a_handler_failed() {
    let lab = setup(|config| {
        config.commander.exec_js = false;
        config.commander.debug_errors = false;
    })
    .await;
    let (mut page, jr) = lab.page().await;
    let asked = send_event(&mut page, &jr, "ask_js", json!({"value": "1"})).await;
    let refused = reply_to(&mut page, &asked).await;
    assert_eq!(
        reply(&refused, "error"),
        json!({"reason": "handler failed"})
    );
}

#[tokio::test]
async fn exec_js_is_refused_without_the_setting_but_query_works() {
    let lab = setup(|config| config.commander.exec_js = false).await;
    let (mut page, jr) = lab.page().await;
    let asked = send_event(&mut page, &jr, "ask_js", json!({"value": "1"})).await;
    let refused = reply_to(&mut page, &asked).await;
    let reason = reply(&refused, "error")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("exec_js is disabled"), "{reason}");

    let asked = send_event(&mut page, &jr, "ask_width", json!({})).await;
    let (id, call) = next_call(&mut page).await;
    assert_eq!(call["op"], "query");
    assert_eq!(call["sel"], "#items");
    assert_eq!(call["props"], json!(["offsetWidth"]));
    let found = json!([{"sel": "#items", "props": {"offsetWidth": 321}}]);
    answer(&mut page, &jr, json!({"id": id, "ok": found})).await;
    let patch = page.recv_until(|f| f[3] == "patch").await;
    assert_eq!(
        patch[4],
        json!({"op": "text", "sel": "#width", "text": "321"})
    );
    assert_eq!(
        reply(&reply_to(&mut page, &asked).await, "ok")["result"],
        321
    );

    // query_one: nothing, or more than one, is an error.
    for (found, expected) in [
        (json!([]), "no element matches `#items`"),
        (
            json!([{"sel": "#a", "props": {}}, {"sel": "#b", "props": {}}]),
            "matches 2 elements",
        ),
    ] {
        let asked = send_event(&mut page, &jr, "ask_width", json!({})).await;
        let (id, _) = next_call(&mut page).await;
        answer(&mut page, &jr, json!({"id": id, "ok": found})).await;
        let failed = reply_to(&mut page, &asked).await;
        let reason = reply(&failed, "error")["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(reason.contains(expected), "{reason}");
    }
}

#[tokio::test]
async fn an_unanswered_call_times_out_and_is_cancelled_in_the_browser() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    let asked = send_event(&mut page, &jr, "ask_and_note", json!({})).await;
    let (id, _) = next_call(&mut page).await;
    let cancel = page.recv_until(|f| f[3] == "call_cancel").await;
    assert_eq!(cancel[4]["id"], id);
    reply(&reply_to(&mut page, &asked).await, "ok");
    lab.wait_log("answer Err(Timeout)").await;
    // A late answer is ignored, and the page carries on.
    answer(&mut page, &jr, json!({"id": id, "ok": 1})).await;
    assert!(page.sync().await.iter().all(|f| f[3] == "phx_reply"));
}

#[tokio::test]
async fn a_pending_call_fails_with_disconnected_when_the_page_goes_and_on_disconnect_follows() {
    let lab = setup(|config| config.commander.browser_response_timeout_ms = 60_000).await;
    let (mut page, jr) = lab.page().await;
    send_event(&mut page, &jr, "ask_and_note", json!({})).await;
    next_call(&mut page).await;
    page.close().await;
    lab.wait_log("disconnect").await;
    let log = lab.log();
    let answered = log.iter().position(|l| l == "answer Err(Disconnected)");
    let gone = log.iter().position(|l| l == "disconnect");
    assert!(answered.is_some() && answered < gone, "{log:?}");
}

#[tokio::test]
async fn events_of_a_page_run_in_order_while_the_connection_keeps_reading() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    let first = send_event(
        &mut page,
        &jr,
        "slow",
        json!({"value": "first", "arg": 400}),
    )
    .await;
    let second = send_event(&mut page, &jr, "slow", json!({"value": "second", "arg": 0})).await;
    lab.wait_log("start first").await;
    // While the first handler runs, heartbeats are answered: the connection still reads.
    let before = page.sync().await;
    assert!(before.is_empty(), "{before:?}");
    assert!(
        !lab.log().contains(&"start second".to_string()),
        "{:?}",
        lab.log()
    );
    let done = reply_to(&mut page, &first).await;
    assert_eq!(reply(&done, "ok")["result"], "done");
    reply(&reply_to(&mut page, &second).await, "ok");
    assert_eq!(
        lab.log(),
        ["start first", "end first", "start second", "end second"]
    );
}

#[tokio::test]
async fn a_handler_may_wait_for_the_browser_which_answers_on_the_same_connection() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    let asked = send_event(&mut page, &jr, "confirm", json!({})).await;
    let (id, call) = next_call(&mut page).await;
    // The handler is waiting for the person: heartbeats are answered meanwhile.
    for _ in 0..3 {
        assert!(page.sync().await.is_empty());
    }
    assert_eq!(call["op"], "modal");
    assert_eq!(call["title"], "Clear?");
    assert_eq!(call["buttons"], json!([["ok", "OK"], ["cancel", "Cancel"]]));
    let html = call["html"].as_str().unwrap();
    assert!(
        html.contains("All items go.") && html.contains(r#"name="why""#),
        "{html}"
    );
    answer(
        &mut page,
        &jr,
        json!({"id": id, "ok": {"button": "ok", "fields": {"why": "spring"}}}),
    )
    .await;
    let done = reply_to(&mut page, &asked).await;
    assert_eq!(
        reply(&done, "ok")["result"],
        json!({"button": "ok", "fields": {"why": "spring"}})
    );

    // wait_for: the index of the event that fired, or a timeout.
    let asked = send_event(&mut page, &jr, "wait", json!({})).await;
    let (id, call) = next_call(&mut page).await;
    assert_eq!(call["events"], json!([["#a", "click"], ["#b", "click"]]));
    answer(
        &mut page,
        &jr,
        json!({"id": id, "ok": {"index": 1, "sender": {"id": "b"}}}),
    )
    .await;
    let done = reply_to(&mut page, &asked).await;
    assert_eq!(reply(&done, "ok")["result"], json!({"index": 1, "id": "b"}));
    let asked = send_event(&mut page, &jr, "wait", json!({})).await;
    let (id, _) = next_call(&mut page).await;
    let cancel = page.recv_until(|f| f[3] == "call_cancel").await;
    assert_eq!(cancel[4]["id"], id);
    assert_eq!(
        reply(&reply_to(&mut page, &asked).await, "ok")["result"],
        "timeout"
    );
}

#[tokio::test]
async fn a_page_handle_keeps_patching_from_a_spawned_task_until_the_page_is_gone() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    let started = send_event(&mut page, &jr, "progress", json!({})).await;
    reply(&reply_to(&mut page, &started).await, "ok");
    for percent in [20, 40, 60, 80, 100] {
        let patch = page.recv_until(|f| f[3] == "patch").await;
        assert_eq!(patch[4]["value"], percent);
    }
    page.close().await;
    lab.wait_log("after gone: true").await;
}

#[tokio::test]
async fn messages_reach_handle_info_from_the_page_itself_and_from_a_topic() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    let sent = send_event(&mut page, &jr, "send_self", json!({"value": "hello"})).await;
    reply(&reply_to(&mut page, &sent).await, "ok");
    let patch = page.recv_until(|f| f[3] == "patch").await;
    assert_eq!(patch[4]["text"], "ping hello");

    let listening = send_event(&mut page, &jr, "listen", json!({"value": "jobs"})).await;
    assert_eq!(
        reply(&reply_to(&mut page, &listening).await, "ok")["result"],
        true
    );
    lab.commanders
        .send_info("jobs", "finished", &json!({"n": 3}));
    lab.commanders
        .send_info("other", "finished", &json!({"n": 4}));
    let patch = page.recv_until(|f| f[3] == "patch").await;
    assert_eq!(patch[4]["text"], r#"jobs finished {"n":3}"#);
    assert!(
        page.sync().await.is_empty(),
        "only topics listened to arrive"
    );
}

#[tokio::test]
async fn events_beyond_the_queue_bound_are_refused_not_buffered() {
    let lab = setup(|config| config.commander.max_queued_events = 2).await;
    let (mut page, jr) = lab.page().await;
    let mut refs = Vec::new();
    for n in 0..6 {
        let value = format!("e{n}");
        refs.push(send_event(&mut page, &jr, "slow", json!({"value": value, "arg": 200})).await);
    }
    // Refusals come at once, ahead of the replies of the handlers that ran.
    let mut refused = 0;
    let mut replies = 0;
    while replies < refs.len() {
        let frame = page.recv_until(|f| f[3] == "phx_reply").await;
        assert!(refs.iter().any(|r| frame[1] == r.as_str()), "{frame}");
        replies += 1;
        if frame[4]["status"] == "error" {
            assert_eq!(frame[4]["response"]["reason"], "too many pending events");
            refused += 1;
        }
    }
    // At most one runs and two wait (the first may still be queued when the rest arrive):
    // the rest are refused, and nothing refused ever runs.
    assert!(
        (3..=4).contains(&refused),
        "{refused} refused; {:?}",
        lab.log()
    );
    let ran = lab.log().iter().filter(|l| l.starts_with("start")).count();
    assert_eq!(ran, 6 - refused, "{:?}", lab.log());
}

/// Events of `bytes` each queued behind a handler waiting on a modal nobody answers: how
/// many wait, and the refusals of the others.
async fn queue_behind_a_modal(lab: &Lab1, events: usize, bytes: usize) -> (usize, Vec<Value>) {
    let (mut page, jr) = lab.page().await;
    send_event(&mut page, &jr, "confirm", json!({})).await;
    next_call(&mut page).await;
    let value = "v".repeat(bytes);
    let mut refs = Vec::new();
    for _ in 0..events {
        refs.push(send_event(&mut page, &jr, "slow", json!({"value": value})).await);
    }
    // Refusals are answered at once; a sync proves the rest wait, unanswered.
    let before = page.sync().await;
    let refused: Vec<Value> = before
        .into_iter()
        .filter(|f| f[3] == "phx_reply" && refs.iter().any(|r| f[1] == r.as_str()))
        .map(|f| reply(&f, "error"))
        .collect();
    (events - refused.len(), refused)
}

#[tokio::test]
async fn events_queued_behind_a_waiting_handler_are_bounded_in_bytes_per_page() {
    // 256 KiB per page (the default): 40 events of 30 KB may not all wait.
    let lab = setup(|_| {}).await;
    let (waiting, refused) = queue_behind_a_modal(&lab, 40, 30_000).await;
    assert!(
        waiting <= 8,
        "{waiting} events of 30 KB wait (over 256 KiB)"
    );
    assert!(waiting >= 7, "only {waiting} events of 30 KB wait");
    assert!(
        refused
            .iter()
            .all(|r| r == &json!({"reason": "too many pending bytes"})),
        "{refused:?}"
    );
}

#[tokio::test]
async fn events_queued_on_one_connection_are_bounded_in_bytes_all_pages_together() {
    let lab = setup(|config| {
        config.commander.max_queued_bytes = 1024 * 1024;
        config.commander.max_connection_queued_bytes = 100_000;
    })
    .await;
    let (waiting, refused) = queue_behind_a_modal(&lab, 10, 30_000).await;
    assert_eq!(waiting, 3, "{refused:?}");
}

#[tokio::test]
async fn an_oversized_sender_part_is_refused_and_the_page_carries_on() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    for part in ["arg", "form", "dataset", "event"] {
        let big = match part {
            "arg" => json!("a".repeat(40_000)),
            _ => json!({ "field": "a".repeat(40_000) }),
        };
        let asked = send_event(&mut page, &jr, "slow", json!({ part: big })).await;
        let refused = reply_to(&mut page, &asked).await;
        assert_eq!(
            reply(&refused, "error"),
            json!({"reason": "event too large"}),
            "{part}"
        );
    }
    let asked = send_event(&mut page, &jr, "slow", json!({"value": "ok", "arg": 1})).await;
    assert_eq!(
        reply(&reply_to(&mut page, &asked).await, "ok")["result"],
        "done"
    );
    assert_eq!(lab.log(), ["start ok", "end ok"], "nothing refused ran");
}

#[tokio::test]
async fn the_page_socket_closes_a_message_over_64_kib_with_1009() {
    let lab = setup(|_| {}).await;
    let (mut bystander, bystander_ref) = lab.page().await;
    let (mut page, jr) = lab.page().await;
    send_event(&mut page, &jr, "slow", json!({"value": "v".repeat(70_000)})).await;
    assert_eq!(page.expect_close().await.0, 1009);
    let asked = send_event(
        &mut bystander,
        &bystander_ref,
        "slow",
        json!({"value": "b"}),
    )
    .await;
    reply(&reply_to(&mut bystander, &asked).await, "ok");
}

#[tokio::test]
async fn a_shared_commander_serves_only_pages_whose_token_allows_it() {
    let lab = setup(|_| {}).await;
    let options = PageOptions::new()
        .shared("cart")
        .shared("private")
        .assign("product", 7);
    let (mut page, jr) = lab.page_with(&options).await;
    // The page sends the region's tether-id; the server builds the selector.
    let sender = json!({"scope": "t1"});
    let added = send_event_to(&mut page, &jr, Some("cart"), "add", sender.clone()).await;
    let patch = page.recv_until(|f| f[3] == "patch").await;
    assert_eq!(patch[4]["sel"], r#"[tether-id="t1"] .total"#);
    assert_eq!(reply(&reply_to(&mut page, &added).await, "ok")["result"], 7);

    // Declared but not shared, or shared but not allowed by this page's token: refused.
    let private = send_event_to(&mut page, &jr, Some("private"), "add", sender.clone()).await;
    assert_eq!(
        reply(&reply_to(&mut page, &private).await, "error")["reason"],
        "unknown handler"
    );
    let (mut plain, jr) = lab.page().await;
    let refused = send_event_to(&mut plain, &jr, Some("cart"), "add", sender).await;
    assert_eq!(
        reply(&reply_to(&mut plain, &refused).await, "error")["reason"],
        "unknown handler"
    );
}

/// The page's heartbeats are answered while a handler runs longer than the client's
/// heartbeat timeout and the server's idle timeout (20 s here): the page is not
/// disconnected, and the handler's reply arrives when it ends.
#[tokio::test]
async fn a_seventy_second_handler_does_not_disconnect_the_page() {
    let lab = setup(|config| config.endpoint.idle_timeout_ms = 20_000).await;
    let (mut page, jr) = lab.page().await;
    let long = send_event(
        &mut page,
        &jr,
        "slow",
        json!({"value": "long", "arg": 70_000}),
    )
    .await;
    lab.wait_log("start long").await;
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(10)).await;
        // A heartbeat every 10 s, as phoenix.js sends it (30 s) but stricter: each is
        // answered, and nothing else arrives meanwhile.
        let before = page.sync().await;
        assert!(before.is_empty(), "{before:?}");
    }
    let done = reply_to(&mut page, &long).await;
    assert_eq!(reply(&done, "ok")["result"], "done");
}

/// A shutdown waits (up to `endpoint.shutdown_timeout_ms`) for a page's running handler to
/// finish and for its `on_disconnect`, as it waits for channels' terminate callbacks.
#[tokio::test]
async fn a_shutdown_lets_the_running_handler_finish_and_on_disconnect_run() {
    let lab = setup(|_| {}).await;
    let (mut page, jr) = lab.page().await;
    send_event(&mut page, &jr, "slow", json!({"value": "x", "arg": 300})).await;
    lab.wait_log("start x").await;
    lab.server.endpoint.shutdown().await;
    assert_eq!(lab.log(), ["start x", "end x", "disconnect"]);
}

#[tokio::test]
async fn style_attr_and_data_broadcasts_reach_every_page_of_the_topic() {
    let lab = setup(|_| {}).await;
    let (mut first, _) = lab.page().await;
    let (mut second, _) = lab.page().await;
    let topic = tether::commander::same_path("/lab");
    lab.commanders
        .to(&topic)
        .apply(Patch::style("#bar", "width", Some("40%")))
        .unwrap();
    lab.commanders
        .to(&topic)
        .apply(Patch::attr("#bar", "aria-busy", None))
        .unwrap();
    lab.commanders
        .to(&topic)
        .apply(Patch::data("#bar", "state", Some("running")))
        .unwrap();
    assert!(
        lab.commanders
            .to(&topic)
            .apply(Patch::attr("#bar", "onclick", Some("alert(1)")))
            .is_err(),
        "an event-handler attribute is refused"
    );
    for page in [&mut first, &mut second] {
        let mut props = Vec::new();
        for _ in 0..3 {
            let patch = page.recv_until(|f| f[3] == "patch").await;
            assert_eq!(patch[4]["op"], "props");
            props.push(patch[4]["props"].clone());
        }
        assert_eq!(
            props,
            [
                json!({"style": {"width": "40%"}}),
                json!({"attributes": {"aria-busy": null}}),
                json!({"dataset": {"state": "running"}}),
            ]
        );
    }
}
