//! Commanders over real sockets: page tokens, browser ids, store, session, callbacks and
//! their order, declared handlers, patches and broadcasts.

mod support;

use std::sync::{Arc, Mutex};

use actix_web::{
    cookie::{Cookie, CookieJar},
    test::TestRequest,
};
use serde_json::{Value, json};
use support::{Client, TestServer, reply, test_config};
use tether::{
    Config, Endpoint,
    channel::BoxError,
    commander::{
        Broadcasting, Commander, Commanders, Disconnected, Handlers, Html, Outcome, Page, Patch,
        Sender, same_path, same_topic, token::unix_now,
    },
    config::{IdSource, SessionCookieSecurity},
};

type Log = Arc<Mutex<Vec<String>>>;

struct Probe {
    log: Log,
}

impl Probe {
    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    async fn dispatch(
        &self,
        handler: &str,
        page: &mut Page,
        sender: Sender,
    ) -> Result<(), BoxError> {
        match handler {
            "echo" => page.apply(Patch::set("#out", sender.value))?,
            "html" => page.apply(Patch::set("#out", Html::escape(&sender.value)))?,
            "fail" => return Err("boom".into()),
            "store" => page.put_store("k", sender.value)?,
            "whoami" => {
                let who = json!({
                    "browser": page.browser_id(),
                    "key": page.presence_key(),
                    "store": page.get_store("k"),
                    "session": page.session("current_user_id"),
                    "form": sender.form,
                });
                page.apply(Patch::set("#who", who.to_string()))?;
            }
            "js" => page.apply(Patch::js("alert(1)"))?,
            "shout" => page
                .others(&same_path(page.path()))
                .apply(Patch::set("#shout", sender.value))?,
            "sub" => {
                page.subscribe(&same_topic(&sender.value));
            }
            "unsub" => {
                page.unsubscribe(&same_topic(&sender.value));
            }
            // The property is the sender's `name`, the value its `value`.
            "prop" => page.set_prop("#out", &sender.name, sender.value)?,
            "prop_html" => page.apply(Patch::prop_html(
                "#out",
                &sender.name,
                Html::escape(&sender.value),
            ))?,
            "panic" => panic!("handler panicked on purpose"),
            "broadcast_js" => page.to(&same_topic("lobby")).apply(Patch::Js {
                js: "alert(1)".into(),
            })?,
            _ => unreachable!("only declared handlers arrive here"),
        }
        Ok(())
    }
}

const HANDLERS: [&str; 14] = [
    "echo",
    "html",
    "fail",
    "store",
    "whoami",
    "blocked",
    "js",
    "shout",
    "sub",
    "unsub",
    "prop",
    "prop_html",
    "panic",
    "broadcast_js",
];

impl Commander for Probe {
    fn handlers() -> Handlers<Self> {
        let mut table = Handlers::new();
        for name in HANDLERS {
            table = table.on(
                name,
                async move |probe: &Probe, page: &mut Page, sender: Sender| {
                    probe.dispatch(name, page, sender).await
                },
            );
        }
        table
    }

    fn name(&self) -> &'static str {
        "probe"
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::SamePath, Broadcasting::Named("lobby".into())]
    }

    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        self.note(format!(
            "connect {}",
            page.count_connections(&same_topic("lobby"))
        ));
        Ok(())
    }

    async fn on_load(&self, _page: &mut Page) -> Result<(), BoxError> {
        self.note("load".into());
        Ok(())
    }

    async fn on_disconnect(&self, gone: &Disconnected, commanders: &Commanders) {
        let left = commanders.count_connections(&same_topic("lobby"));
        self.note(format!(
            "disconnect {left} {}",
            Value::Object(gone.store.clone())
        ));
    }

    async fn before_handler(&self, handler: &str, _page: &mut Page, _sender: &Sender) -> bool {
        handler != "blocked"
    }

    async fn after_handler(
        &self,
        handler: &str,
        _page: &mut Page,
        _sender: &Sender,
        outcome: &Outcome,
    ) {
        self.note(format!(
            "after {handler} {}",
            if outcome.is_ok() { "ok" } else { "err" }
        ));
    }
}

/// Another commander, to check that tokens are not interchangeable.
struct Other;

impl Commander for Other {
    fn name(&self) -> &'static str {
        "other"
    }
}

/// A commander whose presence meta shows the name the page keeps in its store (a names
/// list, as in docs/guide.md).
struct Named;

impl Named {
    async fn set_name(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        Ok(page.put_store("name", sender.value)?)
    }
}

impl Commander for Named {
    fn name(&self) -> &'static str {
        "named"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new().on("set_name", Self::set_name)
    }

    fn presence(&self, page: &Page, _topic: &str) -> Option<(String, Value)> {
        let name = page.get_store("name").cloned().unwrap_or(json!("guest"));
        Some((page.presence_key(), json!({ "name": name })))
    }
}

struct Setup {
    server: TestServer,
    commanders: Commanders,
    log: Log,
}

async fn setup(adjust: impl FnOnce(&mut Config)) -> Setup {
    let mut config = test_config();
    // These tests read the error texts handlers fail with.
    config.commander.debug_errors = true;
    adjust(&mut config);
    let log = Log::default();
    let probe = Probe { log: log.clone() };
    let server = TestServer::start_with(config, |builder| {
        builder.commander(probe).commander(Other).commander(Named)
    });
    let commanders = server.endpoint.commanders().clone();
    Setup {
        server,
        commanders,
        log,
    }
}

impl Setup {
    fn token(&self, commander: &str, path: &str) -> String {
        let req = TestRequest::with_uri(path).to_http_request();
        let html = self.commanders.script(commander, &req).to_string();
        let start = html.find("data-tether-token=\"").unwrap() + "data-tether-token=\"".len();
        let end = start + html[start..].find('"').unwrap();
        html[start..end].replace("&#34;", "\"")
    }

    async fn page(&self, cookie: Option<&str>) -> Client {
        let url = format!(
            "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
            self.server.port
        );
        let headers: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
        Client::try_connect(&url, &headers).await.expect("upgrade")
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A page of `probe` rendered for `path`, joined.
    async fn joined(&self, path: &str) -> (Client, String) {
        let mut page = self.page(None).await;
        let (jr, frame) = join(
            &mut page,
            "probe",
            json!({ "token": self.token("probe", path) }),
        )
        .await;
        reply(&frame, "ok");
        (page, jr)
    }

    async fn wait_log(&self, line: &str) {
        support::wait_for_line(&self.log, line).await;
    }
}

async fn join(client: &mut Client, commander: &str, payload: Value) -> (String, Value) {
    client
        .join(&format!("tether:page:{commander}"), payload)
        .await
}

/// Sends a DOM event; returns the reply and the frames the page received before it
/// (pushes made by a handler reach the page before the handler's reply).
async fn event_with_pushes(
    client: &mut Client,
    join_ref: &str,
    handler: &str,
    sender: Value,
) -> (Value, Vec<Value>) {
    let payload = json!({"handler": handler, "sender": sender});
    client
        .call_with_pushes("tether:page:probe", join_ref, "event", payload)
        .await
}

async fn event(client: &mut Client, join_ref: &str, handler: &str, sender: Value) -> Value {
    event_with_pushes(client, join_ref, handler, sender).await.0
}

/// The one patch a handler pushed to its own page.
async fn patch_of(client: &mut Client, join_ref: &str, handler: &str, sender: Value) -> Value {
    let (frame, frames) = event_with_pushes(client, join_ref, handler, sender).await;
    reply(&frame, "ok");
    let patches: Vec<Value> = frames.into_iter().filter(|f| f[3] == "patch").collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    patches[0].clone()
}

/// What the `whoami` handler reports.
async fn whoami(client: &mut Client, join_ref: &str, sender: Value) -> Value {
    let patch = patch_of(client, join_ref, "whoami", sender).await;
    serde_json::from_str(patch[4]["text"].as_str().unwrap()).unwrap()
}

async fn next_patch(client: &mut Client) -> Value {
    client.recv_until(|f| f[3] == "patch").await
}

#[tokio::test]
async fn a_page_joins_with_its_token_is_tracked_before_on_connect_and_untracked_before_on_disconnect()
 {
    let s = setup(|_| {}).await;
    let mut page = s.page(None).await;
    let (_, frame) = join(
        &mut page,
        "probe",
        json!({"token": s.token("probe", "/x"), "onload": true}),
    )
    .await;
    let response = reply(&frame, "ok");
    assert_eq!(
        response["topics"],
        json!([same_path("/x"), same_topic("lobby")])
    );
    assert!(response["browser_id"].is_string());
    assert_eq!(s.log(), vec!["connect 1", "load"]);
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 1);
    drop(page);
    s.wait_log("disconnect 0 {}").await;
}

#[tokio::test]
async fn forged_expired_and_cross_commander_tokens_are_refused() {
    let s = setup(|_| {}).await;
    let mut page = s.page(None).await;
    let good = s.token("probe", "/x");
    let forged = good.replace("\"/x\"", "\"/admin\"");
    let expired = s.commanders.keys().sign(
        "page",
        &json!({"c": "probe", "p": "/x"}),
        unix_now() - 90_000,
    );
    let wrong_purpose =
        s.commanders
            .keys()
            .sign("browser", &json!({"c": "probe", "p": "/x"}), unix_now());
    // Issued a day from now: would never expire.
    let from_the_future = s.commanders.keys().sign(
        "page",
        &json!({"c": "probe", "p": "/x"}),
        unix_now() + 86_400,
    );
    for token in [
        forged,
        expired,
        from_the_future,
        wrong_purpose,
        s.token("other", "/x"),
        String::new(),
    ] {
        let (_, frame) = join(&mut page, "probe", json!({ "token": token })).await;
        assert_eq!(
            reply(&frame, "error"),
            json!({"reason": "invalid page token"})
        );
    }
    let (_, frame) = join(&mut page, "nosuch", json!({ "token": good })).await;
    assert_eq!(
        reply(&frame, "error"),
        json!({"reason": "unknown commander"})
    );
    assert!(s.log().is_empty(), "no callback ran: {:?}", s.log());
    let (_, frame) = join(&mut page, "probe", json!({ "token": good })).await;
    reply(&frame, "ok");
}

#[tokio::test]
async fn browser_ids_are_minted_signed_kept_and_forgeries_replaced() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut first = s.page(None).await;
    let (jr, frame) = join(&mut first, "probe", json!({ "token": token })).await;
    let signed = reply(&frame, "ok")["browser_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id = whoami(&mut first, &jr, json!({})).await["browser"].clone();
    assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok());

    // The same browser (another tab) sends the signed id back: same id, same presence key.
    let mut second = s.page(None).await;
    let (jr2, _) = join(
        &mut second,
        "probe",
        json!({ "token": token, "browser_id": signed }),
    )
    .await;
    let me = whoami(&mut second, &jr2, json!({})).await;
    assert_eq!(me["browser"], id);
    assert_eq!(me["key"], id);
    assert_eq!(s.commanders.count_users(&same_topic("lobby")), 1);
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 2);

    // A client-chosen or tampered id is replaced by a fresh one.
    // Tampered: one character of the signature changed (always a change, whatever it was).
    let mut tampered = signed.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for forged in [id.as_str().unwrap().to_string(), tampered] {
        let mut third = s.page(None).await;
        let (jr3, _) = join(
            &mut third,
            "probe",
            json!({ "token": token, "browser_id": forged }),
        )
        .await;
        assert_ne!(whoami(&mut third, &jr3, json!({})).await["browser"], id);
    }
}

#[tokio::test]
async fn the_store_is_encrypted_kept_by_the_browser_and_tampering_is_rejected() {
    let s = setup(|c| c.presence.id = vec![IdSource::Store("k".into())]).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let (frame, pushed) =
        event_with_pushes(&mut page, &jr, "store", json!({"value": "secret-7"})).await;
    reply(&frame, "ok");
    let stored = pushed
        .iter()
        .find(|f| f[3] == "store")
        .expect("a store push")
        .clone();
    let store_token = stored[4]["token"].as_str().unwrap().to_string();
    assert!(!store_token.contains("secret-7"));

    let mut next = s.page(None).await;
    let (jr, frame) = join(
        &mut next,
        "probe",
        json!({ "token": token, "store": store_token, "browser_id": browser }),
    )
    .await;
    assert_eq!(reply(&frame, "ok")["store_rejected"], false);
    let who = whoami(&mut next, &jr, json!({})).await;
    assert_eq!(who["store"], "secret-7");
    assert_eq!(who["key"], "secret-7", "presence keyed by the store value");

    let mut tampered = store_token.into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let mut evil = s.page(None).await;
    let (jr, frame) = join(
        &mut evil,
        "probe",
        json!({ "token": token, "store": String::from_utf8(tampered).unwrap(), "browser_id": browser }),
    )
    .await;
    assert_eq!(reply(&frame, "ok")["store_rejected"], true);
    let who = whoami(&mut evil, &jr, json!({})).await;
    assert_eq!(who["store"], Value::Null);
}

#[tokio::test]
async fn the_session_cookie_is_read_at_upgrade_and_keys_presence() {
    let s = setup(|c| c.presence.id = vec![IdSource::Session("current_user_id".into())]).await;
    // actix-session's cookie store: a private cookie `id` holding a JSON map of JSON values.
    let mut jar = CookieJar::new();
    let state = json!({"current_user_id": "\"42\"", "secret": "\"hidden\""}).to_string();
    jar.private_mut(s.commanders.keys().key())
        .add(Cookie::new("id", state));
    let cookie = format!("id={}", jar.get("id").unwrap().value());
    let token = s.token("probe", "/x");
    for _ in 0..2 {
        let mut page = s.page(Some(&cookie)).await;
        let (jr, _) = join(&mut page, "probe", json!({ "token": token })).await;
        let who = whoami(&mut page, &jr, json!({})).await;
        assert_eq!(who["session"], "42");
        assert_eq!(who["key"], "42");
        std::mem::forget(page); // keep both connected
    }
    assert_eq!(s.commanders.count_users(&same_topic("lobby")), 1);
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 2);
    // A forged cookie is no session: the page falls back to its browser id.
    let mut page = s.page(Some("id=forged")).await;
    let (jr, _) = join(&mut page, "probe", json!({ "token": token })).await;
    let who = whoami(&mut page, &jr, json!({})).await;
    assert_eq!(who["session"], Value::Null);
    assert_eq!(who["key"], who["browser"]);
}

/// A session cookie `id` holding `current_user_id = "7"`, protected as `signed` says.
fn session_cookie(s: &Setup, signed: bool) -> String {
    let mut jar = CookieJar::new();
    let state = json!({"current_user_id": "\"7\""}).to_string();
    let key = s.commanders.keys().key();
    if signed {
        jar.signed_mut(key).add(Cookie::new("id", state));
    } else {
        jar.private_mut(key).add(Cookie::new("id", state));
    }
    format!("id={}", jar.get("id").unwrap().value())
}

async fn session_seen(s: &Setup, cookie: &str) -> Value {
    let mut page = s.page(Some(cookie)).await;
    let token = s.token("probe", "/x");
    let (jr, _) = join(&mut page, "probe", json!({ "token": token })).await;
    whoami(&mut page, &jr, json!({})).await["session"].clone()
}

#[tokio::test]
async fn only_a_session_cookie_protected_as_configured_is_read() {
    for security in [
        SessionCookieSecurity::Private,
        SessionCookieSecurity::Signed,
    ] {
        let s = setup(|c| {
            c.presence.id = vec![IdSource::Session("current_user_id".into())];
            c.commander.session_cookie_security = security;
        })
        .await;
        let signed = security == SessionCookieSecurity::Signed;
        assert_eq!(session_seen(&s, &session_cookie(&s, signed)).await, "7");
        // An app that encrypts its sessions never accepts a merely signed one (nor the reverse).
        let other = session_cookie(&s, !signed);
        assert_eq!(session_seen(&s, &other).await, Value::Null, "{security:?}");
    }
}

#[tokio::test]
async fn only_declared_handlers_run_between_before_and_after() {
    let s = setup(|_| {}).await;
    let (mut page, jr) = s.joined("/x").await;
    let frame = event(&mut page, &jr, "drop_tables", json!({})).await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "unknown handler"}));
    let frame = event(&mut page, &jr, "fail", json!({})).await;
    assert_eq!(reply(&frame, "error"), json!({"reason": "boom"}));
    let frame = event(&mut page, &jr, "blocked", json!({})).await;
    assert_eq!(reply(&frame, "ok"), json!({"skipped": true}));
    let frame = event(&mut page, &jr, "js", json!({})).await;
    assert!(
        reply(&frame, "error")["reason"]
            .as_str()
            .unwrap()
            .contains("exec_js")
    );
    assert_eq!(s.log()[1..], ["after fail err", "after js err"]);
    // A malformed event payload is an error reply, not a crash.
    let frame = page
        .call("tether:page:probe", &jr, "event", json!({"nohandler": 1}))
        .await;
    assert_eq!(
        reply(&frame, "error"),
        json!({"reason": "invalid event payload"})
    );
    let frame = event(&mut page, &jr, "echo", json!({"value": "still here"})).await;
    reply(&frame, "ok");
}

#[tokio::test]
async fn strings_patch_as_text_html_as_markup_and_broadcasts_reach_the_others() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut a = s.page(None).await;
    let mut b = s.page(None).await;
    let (ja, _) = join(&mut a, "probe", json!({ "token": token })).await;
    join(&mut b, "probe", json!({ "token": token })).await;
    let patch = patch_of(&mut a, &ja, "echo", json!({"value": "<b>x</b>"})).await;
    assert_eq!(
        patch[4],
        json!({"op": "text", "sel": "#out", "text": "<b>x</b>"})
    );
    let patch = patch_of(&mut a, &ja, "html", json!({"value": "<b>x</b>"})).await;
    assert_eq!(
        patch[4],
        json!({"op": "html", "sel": "#out", "html": "&#60;b&#62;x&#60;/b&#62;"})
    );
    event(&mut a, &ja, "shout", json!({"value": "hi"})).await;
    let got = next_patch(&mut b).await;
    assert_eq!(
        got,
        json!([null, null, same_path("/x"), "patch", {"op": "text", "sel": "#shout", "text": "hi"}])
    );
    // broadcast_from skipped the sender: its next frame is the heartbeat reply.
    assert!(a.sync().await.is_empty());
    // From outside any page.
    s.commanders
        .to(&same_topic("lobby"))
        .apply(Patch::set("#all", "ping"))
        .unwrap();
    assert_eq!(next_patch(&mut a).await[2], same_topic("lobby"));
    assert_eq!(next_patch(&mut b).await[4]["text"], "ping");
}

#[tokio::test]
async fn form_values_reach_the_handler() {
    let s = setup(|_| {}).await;
    let (mut page, jr) = s.joined("/x").await;
    let who = whoami(
        &mut page,
        &jr,
        json!({"id": "b", "form": {"store_user_id": "alice"}}),
    )
    .await;
    assert_eq!(who["form"], json!({"store_user_id": "alice"}));
}

#[tokio::test]
async fn runtime_subscriptions_receive_broadcasts_and_are_tracked_until_unsubscribed() {
    let s = setup(|_| {}).await;
    let (mut page, jr) = s.joined("/x").await;
    let extra = same_topic("extra");
    reply(
        &event(&mut page, &jr, "sub", json!({"value": "extra"})).await,
        "ok",
    );
    assert_eq!(s.commanders.count_connections(&extra), 1);
    s.commanders
        .to(&extra)
        .apply(Patch::set("#e", "one"))
        .unwrap();
    assert_eq!(next_patch(&mut page).await[4]["text"], "one");
    reply(
        &event(&mut page, &jr, "unsub", json!({"value": "extra"})).await,
        "ok",
    );
    assert_eq!(s.commanders.count_connections(&extra), 0);
    s.commanders
        .to(&extra)
        .apply(Patch::set("#e", "two"))
        .unwrap();
    assert!(
        page.sync().await.is_empty(),
        "no broadcast after unsubscribe"
    );
    // The page stays on its broadcasting topics.
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 1);
}

#[tokio::test]
async fn runtime_subscriptions_come_back_after_a_reconnect_and_cannot_be_forged() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let (frame, pushed) = event_with_pushes(&mut page, &jr, "sub", json!({"value": "extra"})).await;
    reply(&frame, "ok");
    let topics_token = pushed
        .iter()
        .find(|f| f[3] == "topics")
        .expect("a topics push")[4]["token"]
        .as_str()
        .unwrap()
        .to_string();
    drop(page); // the connection drops; tether.js rejoins with the token and its browser id
    let expected = json!([same_path("/x"), same_topic("lobby"), same_topic("extra")]);
    let mut again = s.page(None).await;
    let (_, frame) = join(
        &mut again,
        "probe",
        json!({ "token": token, "topics": topics_token, "browser_id": browser }),
    )
    .await;
    assert_eq!(reply(&frame, "ok")["topics"], expected);
    s.server
        .eventually("tracked on the extra topic again", |_| {
            s.commanders.count_connections(&same_topic("extra")) == 1
        })
        .await;
    // A forged list, one signed for another path, and the genuine one presented by another
    // browser are all ignored: default topics only.
    let forged = topics_token.replace("extra", "admin");
    let other_path = s.commanders.keys().sign(
        "topics",
        &json!({"c": "probe", "p": "/y", "t": [same_topic("admin")]}),
        unix_now(),
    );
    for (bad, browser_id) in [
        (forged, browser.clone()),
        (other_path, browser.clone()),
        (topics_token.clone(), Value::Null),
    ] {
        let mut evil = s.page(None).await;
        let (_, frame) = join(
            &mut evil,
            "probe",
            json!({ "token": token, "topics": bad, "browser_id": browser_id }),
        )
        .await;
        assert_eq!(
            reply(&frame, "ok")["topics"],
            json!([same_path("/x"), same_topic("lobby")])
        );
    }
}

#[tokio::test]
async fn an_unsubscribed_topic_cannot_come_back_with_an_older_topics_token() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let topics_token = |pushed: &[Value]| {
        pushed
            .iter()
            .find(|f| f[3] == "topics")
            .expect("a topics push")[4]["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (_, pushed) = event_with_pushes(&mut page, &jr, "sub", json!({"value": "vip"})).await;
    let with_vip = topics_token(&pushed);
    let (_, pushed) = event_with_pushes(&mut page, &jr, "unsub", json!({"value": "vip"})).await;
    let without_vip = topics_token(&pushed);
    drop(page);
    let defaults = json!([same_path("/x"), same_topic("lobby")]);
    for replayed in [with_vip, without_vip] {
        let mut again = s.page(None).await;
        let (_, frame) = join(
            &mut again,
            "probe",
            json!({ "token": token, "topics": replayed, "browser_id": browser }),
        )
        .await;
        assert_eq!(reply(&frame, "ok")["topics"], defaults);
    }
    assert_eq!(s.commanders.count_connections(&same_topic("vip")), 0);
}

#[tokio::test]
async fn exec_js_is_refused_everywhere_when_disabled_and_the_client_is_told() {
    let s = setup(|_| {}).await;
    let mut watcher = s.page(None).await;
    let (_, frame) = join(
        &mut watcher,
        "probe",
        json!({ "token": s.token("probe", "/w") }),
    )
    .await;
    assert_eq!(reply(&frame, "ok")["exec_js"], false);
    let (mut page, jr) = s.joined("/x").await;
    for handler in ["js", "broadcast_js"] {
        let frame = event(&mut page, &jr, handler, json!({})).await;
        let reason = reply(&frame, "error")["reason"].clone();
        assert!(reason.as_str().unwrap().contains("exec_js"), "{reason}");
    }
    let from_outside = s.commanders.to(&same_topic("lobby")).apply(Patch::Js {
        js: "alert(1)".into(),
    });
    assert!(from_outside.is_err());
    // Nothing reached the other page.
    assert!(watcher.sync().await.iter().all(|f| f[3] != "patch"));
}

#[tokio::test]
async fn a_string_never_becomes_markup_through_a_property() {
    let s = setup(|_| {}).await;
    let (mut page, jr) = s.joined("/x").await;
    for (prop, value) in [
        ("innerHTML", "<img src=x onerror=alert(1)>"),
        ("outerHTML", "<b>x</b>"),
        ("srcdoc", "<script>alert(1)</script>"),
        ("onclick", "alert(1)"),
        ("OnMouseOver", "alert(1)"),
        ("href", "javascript:alert(1)"),
        ("src", " \tJaVaScRiPt:alert(1)"),
        ("formAction", "javascript:alert(1)"),
        ("action", "java\nscript:alert(1)"),
    ] {
        let frame = event(
            &mut page,
            &jr,
            "prop",
            json!({"name": prop, "value": value}),
        )
        .await;
        let reason = reply(&frame, "error")["reason"].clone();
        assert!(
            reason.as_str().unwrap().contains("takes only Html"),
            "{prop}: {reason}"
        );
    }
    for (prop, value) in [("value", "<b>x</b>"), ("href", "https://example.com/")] {
        let patch = patch_of(
            &mut page,
            &jr,
            "prop",
            json!({"name": prop, "value": value}),
        )
        .await;
        assert_eq!(patch[4]["value"], value);
    }
    let patch = patch_of(
        &mut page,
        &jr,
        "prop_html",
        json!({"name": "innerHTML", "value": "<b>x</b>"}),
    )
    .await;
    assert_eq!(
        patch[4],
        json!({"op": "prop", "sel": "#out", "prop": "innerHTML", "html": "&#60;b&#62;x&#60;/b&#62;"})
    );
}

#[tokio::test]
async fn a_panicking_handler_still_leaves_the_page_consistent() {
    let s = setup(|_| {}).await;
    let (mut page, jr) = s.joined("/x").await;
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 1);
    page.send(
        Some(&jr),
        "77",
        "tether:page:probe",
        "event",
        json!({"handler": "panic", "sender": {}}),
    )
    .await;
    page.recv_until(|f| f[3] == "phx_error").await;
    // on_disconnect ran, after the page was untracked.
    s.wait_log("disconnect 0 {}").await;
    assert_eq!(s.commanders.count_connections(&same_topic("lobby")), 0);
    assert!(page.sync().await.is_empty(), "the connection carries on");
}

#[tokio::test]
async fn the_store_is_bounded_and_bound_to_its_browser() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let (_, pushed) = event_with_pushes(&mut page, &jr, "store", json!({"value": "v"})).await;
    let store = pushed.iter().find(|f| f[3] == "store").unwrap()[4]["token"].clone();
    // Too large: refused, nothing pushed, the old value kept.
    let (frame, pushed) =
        event_with_pushes(&mut page, &jr, "store", json!({"value": "x".repeat(5000)})).await;
    let reason = reply(&frame, "error")["reason"].clone();
    assert!(
        reason.as_str().unwrap().starts_with("store too large"),
        "{reason}"
    );
    assert!(pushed.iter().all(|f| f[3] != "store"));
    assert_eq!(whoami(&mut page, &jr, json!({})).await["store"], "v");
    // The store token works for its browser, not for another one.
    for (browser_id, rejected) in [(browser, false), (Value::Null, true)] {
        let mut next = s.page(None).await;
        let (_, frame) = join(
            &mut next,
            "probe",
            json!({ "token": token, "store": store, "browser_id": browser_id }),
        )
        .await;
        assert_eq!(reply(&frame, "ok")["store_rejected"], rejected);
    }
    // A token over 4 KiB is refused without being decrypted.
    let mut next = s.page(None).await;
    let (_, frame) = join(
        &mut next,
        "probe",
        json!({ "token": token, "store": "A".repeat(5000) }),
    )
    .await;
    assert_eq!(reply(&frame, "ok")["store_rejected"], true);
}

#[tokio::test]
async fn a_store_token_older_than_its_max_age_is_refused() {
    let s = setup(|c| c.commander.store_token_max_age_s = 60).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let id = whoami(&mut page, &jr, json!({})).await["browser"].clone();
    // Store tokens of this browser as the server makes them, issued now and 2 minutes ago.
    let store = |issued: u64| {
        s.commanders
            .keys()
            .encrypt("store", &json!({"b": id, "s": {"k": "kept"}}), issued)
    };
    for (issued, rejected, kept) in [
        (unix_now(), false, json!("kept")),
        (unix_now() - 120, true, Value::Null),
    ] {
        let mut next = s.page(None).await;
        let (jr, frame) = join(
            &mut next,
            "probe",
            json!({ "token": token, "store": store(issued), "browser_id": browser }),
        )
        .await;
        assert_eq!(reply(&frame, "ok")["store_rejected"], rejected, "{frame}");
        assert_eq!(whoami(&mut next, &jr, json!({})).await["store"], kept);
    }
}

/// The topics token pushed by a handler (among the frames before its reply).
fn topics_token_in(pushed: &[Value]) -> String {
    pushed
        .iter()
        .find(|f| f[3] == "topics")
        .expect("a topics push")[4]["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Leaves are remembered in memory by the nodes that hear of them: a node that restarted (or
/// a new one) does not know them. A topics token made before a kick then only lives
/// `topics_token_max_age_s`.
#[tokio::test]
async fn a_kicked_browsers_old_topics_token_dies_of_age_on_a_node_that_never_saw_the_kick() {
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let (_, pushed) = event_with_pushes(&mut page, &jr, "sub", json!({"value": "vip"})).await;
    let with_vip = topics_token_in(&pushed);
    // Kicked: this node refuses the older token from now on.
    event_with_pushes(&mut page, &jr, "unsub", json!({"value": "vip"})).await;
    drop(page);
    let rejoin = |server: &TestServer| {
        let url = format!(
            "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
            server.port
        );
        let payload = json!({ "token": token, "topics": with_vip, "browser_id": browser });
        async move {
            let mut client = Client::connect(&url).await;
            let (_, frame) = join(&mut client, "probe", payload).await;
            reply(&frame, "ok")["topics"].clone()
        }
    };
    let defaults = json!([same_path("/x"), same_topic("lobby")]);
    assert_eq!(rejoin(&s.server).await, defaults);
    // Fresh nodes (same secret) never heard of the kick: one with the default age (ten
    // minutes) still takes the token, one with an age of 2 s does not once it is older.
    let fresh = setup(|_| {}).await;
    let short = setup(|c| c.commander.topics_token_max_age_s = 2).await;
    let with = json!([same_path("/x"), same_topic("lobby"), same_topic("vip")]);
    assert_eq!(rejoin(&fresh.server).await, with, "the documented limit");
    // Token ages are whole seconds: 2 s old is still young enough, 3 s is not.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    assert_eq!(rejoin(&short.server).await, defaults);
}

#[tokio::test]
async fn a_connected_page_is_given_fresh_topics_tokens_and_keeps_its_topics_past_the_first_ones_age()
 {
    // Renewed every half age: every second.
    let s = setup(|c| c.commander.topics_token_max_age_s = 2).await;
    let token = s.token("probe", "/x");
    let mut page = s.page(None).await;
    let (jr, frame) = join(&mut page, "probe", json!({ "token": token })).await;
    let browser = reply(&frame, "ok")["browser_id"].clone();
    let (_, pushed) = event_with_pushes(&mut page, &jr, "sub", json!({"value": "extra"})).await;
    let first = topics_token_in(&pushed);
    // Renewals arrive without any event. One made in the same millisecond as the token the
    // event brought is that same token: wait (bounded) for one that differs.
    let renewed = page
        .recv_until(|f| f[3] == "topics" && f[4]["token"].as_str() != Some(first.as_str()))
        .await;
    assert_ne!(renewed[4]["token"].as_str().unwrap(), first);
    // Long enough for the first token to be too old; the page keeps the latest it got.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    let frames = page.sync().await;
    let latest = frames
        .iter()
        .rfind(|f| f[3] == "topics")
        .expect("renewed while connected")[4]["token"]
        .as_str()
        .unwrap()
        .to_string();
    drop(page);
    let with = json!([same_path("/x"), same_topic("lobby"), same_topic("extra")]);
    let defaults = json!([same_path("/x"), same_topic("lobby")]);
    for (topics, expected) in [(latest, with), (first, defaults)] {
        let mut again = s.page(None).await;
        let (_, frame) = join(
            &mut again,
            "probe",
            json!({ "token": token, "topics": topics, "browser_id": browser }),
        )
        .await;
        assert_eq!(reply(&frame, "ok")["topics"], expected);
    }
}

#[tokio::test]
async fn a_secret_too_short_for_keys_is_an_error_not_a_panic() {
    let config = Config::default(); // empty secret
    let err = Endpoint::builder(config)
        .and_then(|builder| builder.commander(Other).build())
        .expect_err("an empty secret must be refused");
    assert!(
        err.to_string().contains("endpoint.secret_key_base"),
        "{err}"
    );
}

#[tokio::test]
async fn exec_js_works_only_when_enabled() {
    let s = setup(|c| c.commander.exec_js = true).await;
    let (mut page, jr) = s.joined("/x").await;
    let patch = patch_of(&mut page, &jr, "js", json!({})).await;
    assert_eq!(patch[4], json!({"op": "js", "js": "alert(1)"}));
}

/// The development warnings a join reply carries for tether.js to write to the console.
fn warnings_of(reply: &Value) -> Vec<String> {
    reply["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| Some(w.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn in_development_a_live_counter_of_a_topic_the_page_is_not_on_is_a_warning() {
    let s = setup(|_| {}).await;
    let lobby = same_topic("lobby");
    let mut page = s.page(None).await;
    let (_, frame) = join(
        &mut page,
        "probe",
        json!({ "token": s.token("probe", "/x"), "counters": [lobby, "tether:topic:elsewhere"] }),
    )
    .await;
    let warnings = warnings_of(&reply(&frame, "ok"));
    assert_eq!(
        warnings.len(),
        1,
        "only the topic it is not on: {warnings:?}"
    );
    assert!(
        warnings[0].contains("tether:topic:elsewhere"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("live counter"), "{warnings:?}");

    // A page whose counters are all of its own topics hears nothing.
    let mut fine = s.page(None).await;
    let (_, frame) = join(
        &mut fine,
        "probe",
        json!({ "token": s.token("probe", "/x"), "counters": [lobby] }),
    )
    .await;
    assert_eq!(reply(&frame, "ok").get("warnings"), None);
}

/// The reason of the `warning` push among `pushed` (panics without one).
fn warning_reason(pushed: &[Value]) -> String {
    let warning = pushed
        .iter()
        .find(|f| f[3] == "warning")
        .unwrap_or_else(|| panic!("a warning push: {pushed:?}"));
    warning[4]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[actix_web::test]
async fn in_development_a_presence_key_put_in_the_store_is_a_warning_until_the_next_load() {
    let s = setup(|c| c.presence.id = vec![IdSource::Store("k".into())]).await;
    let (mut page, jr) = s.joined("/x").await;
    let (frame, pushed) =
        event_with_pushes(&mut page, &jr, "store", json!({"value": "alice"})).await;
    reply(&frame, "ok");
    let reason = warning_reason(&pushed);
    assert!(
        reason.contains("\"k\"") && reason.contains("alice"),
        "{reason}"
    );
    assert!(reason.contains("next load"), "{reason}");

    // The same value again changes nothing presence would see: no warning.
    let mut same = s.page(None).await;
    let (jr, frame) = join(
        &mut same,
        "probe",
        json!({ "token": s.token("probe", "/x") }),
    )
    .await;
    reply(&frame, "ok");
    let who = whoami(&mut same, &jr, json!({})).await;
    let key = who["key"].as_str().unwrap_or_default().to_string();
    let (frame, pushed) = event_with_pushes(&mut same, &jr, "store", json!({"value": key})).await;
    reply(&frame, "ok");
    assert!(pushed.iter().all(|f| f[3] != "warning"), "{pushed:?}");
}

#[actix_web::test]
async fn in_development_a_store_value_shown_in_the_presence_meta_is_a_warning_until_the_next_load()
{
    let s = setup(|_| {}).await;
    let mut page = s.page(None).await;
    let (jr, frame) = join(
        &mut page,
        "named",
        json!({ "token": s.token("named", "/x") }),
    )
    .await;
    reply(&frame, "ok");
    let event = json!({"handler": "set_name", "sender": {"value": "Ada"}});
    let (frame, pushed) = page
        .call_with_pushes("tether:page:named", &jr, "event", event)
        .await;
    reply(&frame, "ok");
    let reason = warning_reason(&pushed);
    assert!(
        reason.contains("\"name\"") && reason.contains("Ada"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_outdated_client_is_refused_and_the_url_is_checked_for_shape() {
    use tether::commander::CLIENT_VERSION;
    let s = setup(|_| {}).await;
    let token = s.token("probe", "/x");
    // Older than the server's tether.js: refused, so that the page reloads.
    let mut page = s.page(None).await;
    let (_, frame) = join(
        &mut page,
        "probe",
        json!({"token": token, "version": "0.0.1"}),
    )
    .await;
    assert_eq!(reply(&frame, "error")["reason"], "outdated client");
    // The same version, a newer one, none at all (an older client, a raw client), or one
    // that does not read as a version: let in.
    for version in [
        json!(CLIENT_VERSION),
        json!("99.0.0"),
        Value::Null,
        json!("dev"),
    ] {
        let mut page = s.page(None).await;
        let payload = json!({"token": token, "version": version, "url": "//evil.example/x"});
        let (join_ref, frame) = join(&mut page, "probe", payload).await;
        reply(&frame, "ok");
        // A params push must carry a local URL.
        for bad in [
            json!({"url": "https://evil.example/"}),
            json!({"url": 5}),
            json!({}),
        ] {
            let frame = page
                .call("tether:page:probe", &join_ref, "params", bad)
                .await;
            assert_eq!(reply(&frame, "error")["reason"], "invalid url");
        }
        let frame = page
            .call(
                "tether:page:probe",
                &join_ref,
                "params",
                json!({"url": "/x?q=1"}),
            )
            .await;
        reply(&frame, "ok");
    }
}
