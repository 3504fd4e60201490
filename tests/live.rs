//! Live regions over real sockets: a controller renders a region with typed assigns, a handler
//! peeks and pokes them (re-rendered on the server, morphed in the page), the page keeps the
//! encrypted assigns and brings them back on a reconnect — also to another node — and a
//! tampered, foreign or oversized token is refused.

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use actix_web::test::TestRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::{Client, TestServer, reply, test_config};
use tether::{
    Config,
    channel::BoxError,
    commander::{
        Commander, Commanders, Handlers, Html, ListKeys, LiveError, Page, PageOptions, Sender,
        same_path, token::unix_now,
    },
};

#[derive(askama::Template, Serialize, Deserialize)]
#[template(source = "<b>{{ count }}</b> {{ label }}", ext = "html")]
struct Cart {
    count: u64,
    label: String,
}

/// Renders counted, to check that a broadcast renders once.
static BOARD_RENDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[derive(askama::Template, Serialize, Deserialize)]
#[template(source = "score {{ score }}{{ self.counted() }}", ext = "html")]
struct Board {
    score: u64,
}

impl Board {
    fn counted(&self) -> &'static str {
        BOARD_RENDERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ""
    }
}

struct Shop;

impl Shop {
    async fn add(&self, page: &mut Page, sender: Sender) -> Result<u64, BoxError> {
        let by = sender.arg.as_u64().unwrap_or(1);
        page.poke::<Cart>("cart", |cart| cart.count += by)?;
        Ok(page.peek::<Cart>("cart")?.count)
    }

    async fn peek(&self, page: &mut Page, _: Sender) -> Result<u64, BoxError> {
        Ok(page.peek::<Cart>("cart")?.count)
    }

    async fn label(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.poke::<Cart>("cart", |cart| cart.label = sender.value)?;
        Ok(())
    }

    /// Tries to make the assigns `arg` characters long; reports how it went.
    async fn grow(&self, page: &mut Page, sender: Sender) -> Result<String, BoxError> {
        let size = sender.arg.as_u64().unwrap_or(0) as usize;
        Ok(
            match page.poke::<Cart>("cart", |cart| cart.label = "x".repeat(size)) {
                Ok(()) => "grown".into(),
                Err(LiveError::TooLarge { .. }) => "too large".into(),
                Err(err) => err.to_string(),
            },
        )
    }

    async fn score(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.broadcast_poke::<Board>(&same_path("/shop"), "board", |board| board.score += 1)?;
        Ok(())
    }

    /// Sets the board on the pages of the path aimed at from this page as "the others".
    async fn board_for_others(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let topic = same_path("/shop");
        page.others(&topic)
            .put_live("shop", "board", &Board { score: 100 })?;
        Ok(())
    }

    async fn peek_board(&self, page: &mut Page, _: Sender) -> Result<u64, BoxError> {
        Ok(page.peek::<Board>("board")?.score)
    }

    async fn start(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.put_live(
            "cart",
            &Cart {
                count: 10,
                label: "fresh".into(),
            },
        )?;
        Ok(())
    }
}

impl Commander for Shop {
    fn name(&self) -> &'static str {
        "shop"
    }
    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("add", Self::add)
            .on("peek", Self::peek)
            .on("label", Self::label)
            .on("grow", Self::grow)
            .on("start", Self::start)
            .on("score", Self::score)
            .on("peek_board", Self::peek_board)
            .on("board_for_others", Self::board_for_others)
    }
    /// A name for the templated presence list, and a field it must never show.
    fn presence(&self, page: &Page, _topic: &str) -> Option<(String, Value)> {
        let key = page.presence_key();
        let name = format!("reader {}", &key[..4]);
        Some((key, json!({"name": name, "email": "private@example.com"})))
    }
}

struct Other;

impl Commander for Other {
    fn name(&self) -> &'static str {
        "other"
    }
}

fn start(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let mut config = test_config();
    // These tests read the error texts handlers fail with.
    config.commander.debug_errors = true;
    adjust(&mut config);
    TestServer::start_with(config, |builder| builder.commander(Shop).commander(Other))
}

fn commanders(server: &TestServer) -> Commanders {
    server.endpoint.commanders().clone()
}

/// An HTML attribute's value from `html`, unescaped.
fn attribute(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
            .replace("&#38;", "&"),
    )
}

/// What a controller renders for a `shop` page with a cart of `count`: the page token and the
/// live tokens (`data-tether-live`), as tether.js reads them.
fn render(commanders: &Commanders, commander: &str, count: u64) -> (String, Value) {
    let cart = Cart {
        count,
        label: "cart".into(),
    };
    let region = commanders.live(commander, "cart", &cart).unwrap();
    assert_eq!(region.html().as_str(), format!("<b>{count}</b> cart"));
    let req = TestRequest::with_uri("/shop").to_http_request();
    let script = commanders
        .script_with("shop", &req, &PageOptions::new().live(&region))
        .to_string();
    let token = attribute(&script, "data-tether-token").unwrap();
    let live = serde_json::from_str(&attribute(&script, "data-tether-live").unwrap()).unwrap();
    (token, live)
}

async fn join(server: &TestServer, token: &str, live: &Value) -> (Client, String, Value) {
    let url = format!(
        "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
        server.port
    );
    let mut client = Client::connect(&url).await;
    let (join_ref, frame) = client
        .join("tether:page:shop", json!({ "token": token, "live": live }))
        .await;
    let response = reply(&frame, "ok").clone();
    (client, join_ref, response)
}

/// Runs `handler`; returns the reply frame and the frames pushed before it.
async fn call(
    client: &mut Client,
    join_ref: &str,
    handler: &str,
    sender: Value,
) -> (Value, Vec<Value>) {
    let payload = json!({"handler": handler, "sender": sender});
    client
        .call_with_pushes("tether:page:shop", join_ref, "event", payload)
        .await
}

#[tokio::test]
async fn a_poke_re_renders_on_the_server_morphs_the_region_and_renews_the_token() {
    let server = start(|_| {});
    let (token, live) = render(&commanders(&server), "shop", 1);
    let (mut page, jr, joined) = join(&server, &token, &live).await;
    assert_eq!(joined["live_rejected"], json!([]));

    let (done, pushed) = call(&mut page, &jr, "add", json!({"arg": 2})).await;
    assert_eq!(reply(&done, "ok")["result"], 3);
    let events: Vec<&str> = pushed.iter().map(|f| f[3].as_str().unwrap()).collect();
    assert_eq!(events, ["patch", "live"]);
    assert_eq!(
        pushed[0][4],
        json!({"op": "morph", "sel": r#"[tether-live="cart"]"#, "html": "<b>3</b> cart"})
    );
    assert_eq!(pushed[1][4]["name"], "cart");
    assert_ne!(pushed[1][4]["token"], live["cart"], "a new token");

    // Assigns are escaped by the template like any askama variable.
    let (_, pushed) = call(&mut page, &jr, "label", json!({"value": "<i>x</i>"})).await;
    assert_eq!(pushed[0][4]["html"], "<b>3</b> &#60;i&#62;x&#60;/i&#62;");
}

#[tokio::test]
async fn the_kept_assigns_come_back_on_a_reconnect_and_on_another_node() {
    let server = start(|_| {});
    let (token, live) = render(&commanders(&server), "shop", 1);
    let (mut page, jr, _) = join(&server, &token, &live).await;
    let (_, pushed) = call(&mut page, &jr, "add", json!({"arg": 4})).await;
    let kept = json!({"cart": pushed[1][4]["token"].clone()});
    page.close().await;

    let (mut again, jr, joined) = join(&server, &token, &kept).await;
    assert_eq!(joined["live_rejected"], json!([]));
    let (done, _) = call(&mut again, &jr, "peek", json!({})).await;
    assert_eq!(reply(&done, "ok")["result"], 5);

    // Another node with the same secret restores them too.
    let other_node = start(|_| {});
    let (mut elsewhere, jr, _) = join(&other_node, &token, &kept).await;
    let (done, _) = call(&mut elsewhere, &jr, "peek", json!({})).await;
    assert_eq!(reply(&done, "ok")["result"], 5);
}

#[tokio::test]
async fn a_tampered_or_foreign_token_is_refused_and_the_region_starts_without_assigns() {
    let server = start(|_| {});
    let commanders = commanders(&server);
    let (token, live) = render(&commanders, "shop", 1);
    let good = live["cart"].as_str().unwrap();
    let mut bytes = good.as_bytes().to_vec();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let (_, foreign) = render(&commanders, "other", 1);
    for bad in [
        json!({"cart": tampered}),
        foreign,
        json!({"cart": 42}),
        json!({"basket": good}),
    ] {
        let (mut page, jr, joined) = join(&server, &token, &bad).await;
        let rejected = joined["live_rejected"].as_array().unwrap();
        assert_eq!(rejected.len(), 1, "{bad}: {joined}");
        let (done, _) = call(&mut page, &jr, "peek", json!({})).await;
        let reason = reply(&done, "error")["reason"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(reason.contains("no live region `cart`"), "{reason}");
        // put_live gives the region assigns again.
        let (done, pushed) = call(&mut page, &jr, "start", json!({})).await;
        reply(&done, "ok");
        assert_eq!(pushed[0][4]["html"], "<b>10</b> fresh");
    }
}

#[tokio::test]
async fn assigns_over_the_size_limit_are_refused_and_nothing_changes() {
    let server = start(|config| config.commander.max_live_bytes = 400);
    let (token, live) = render(&commanders(&server), "shop", 1);
    let (mut page, jr, _) = join(&server, &token, &live).await;
    let (done, pushed) = call(&mut page, &jr, "grow", json!({"arg": 1000})).await;
    assert_eq!(reply(&done, "ok")["result"], "too large");
    assert!(pushed.is_empty(), "nothing sent: {pushed:?}");
    let (done, _) = call(&mut page, &jr, "grow", json!({"arg": 10})).await;
    assert_eq!(reply(&done, "ok")["result"], "grown");
    // An oversized token is refused at join, before it is decrypted.
    let huge = json!({"cart": "A".repeat(401)});
    let (_, _, joined) = join(&server, &token, &huge).await;
    assert_eq!(joined["live_rejected"], json!(["cart"]));
}

#[tokio::test]
async fn a_broadcast_poke_renders_once_reaches_every_page_and_their_server_copies() {
    let server = start(|_| {});
    let commanders = commanders(&server);
    let board = commanders
        .live("shop", "board", &Board { score: 7 })
        .unwrap();
    let req = TestRequest::with_uri("/shop").to_http_request();
    let script = commanders
        .script_with("shop", &req, &PageOptions::new().live(&board))
        .to_string();
    let token = attribute(&script, "data-tether-token").unwrap();
    let live: Value =
        serde_json::from_str(&attribute(&script, "data-tether-live").unwrap()).unwrap();
    let (mut a, jr_a, _) = join(&server, &token, &live).await;
    let (mut b, jr_b, _) = join(&server, &token, &live).await;

    let before = BOARD_RENDERS.load(std::sync::atomic::Ordering::SeqCst);
    let (done, pushed_a) = call(&mut a, &jr_a, "score", json!({})).await;
    reply(&done, "ok");
    assert_eq!(
        BOARD_RENDERS.load(std::sync::atomic::Ordering::SeqCst) - before,
        1,
        "rendered once for both pages"
    );
    let pushed_b = vec![
        b.recv_until(|f| f[3] == "patch").await,
        b.recv_until(|f| f[3] == "live").await,
    ];
    for pushed in [pushed_a, pushed_b.clone()] {
        let events: Vec<(&str, &str)> = pushed
            .iter()
            .map(|f| (f[2].as_str().unwrap(), f[3].as_str().unwrap()))
            .collect();
        assert_eq!(
            events,
            [
                ("tether:path:/shop", "patch"),
                ("tether:path:/shop", "live")
            ]
        );
        assert_eq!(pushed[0][4]["html"], "score 8");
        assert_eq!(pushed[1][4]["name"], "board");
    }
    // B's server copy followed: its own handler sees the broadcast state.
    let (done, _) = call(&mut b, &jr_b, "peek_board", json!({})).await;
    assert_eq!(reply(&done, "ok")["result"], 8);
    // The broadcast token is bound to its topic: any page on it may bring it back, a page
    // elsewhere may not.
    let broadcast = json!({"board": pushed_b[1][4]["token"].clone()});
    let (mut again, jr, joined) = join(&server, &token, &broadcast).await;
    assert_eq!(joined["live_rejected"], json!([]));
    let (done, _) = call(&mut again, &jr, "peek_board", json!({})).await;
    assert_eq!(reply(&done, "ok")["result"], 8);
    let req = TestRequest::with_uri("/elsewhere").to_http_request();
    let script = commanders.script("shop", &req).to_string();
    let elsewhere = attribute(&script, "data-tether-token").unwrap();
    let (_, _, joined) = join(&server, &elsewhere, &broadcast).await;
    assert_eq!(joined["live_rejected"], json!(["board"]));
}

/// A live region set on a topic reaches every page on it, also when it was aimed from a page
/// at the others: a page's server copy (which follows the topic's live feed) and its browser
/// must agree, so the page it was aimed from gets the morph and the token too.
#[tokio::test]
async fn a_live_region_set_for_the_others_still_reaches_every_page() {
    let server = start(|_| {});
    let commanders = commanders(&server);
    let board = commanders
        .live("shop", "board", &Board { score: 7 })
        .unwrap();
    let req = TestRequest::with_uri("/shop").to_http_request();
    let script = commanders
        .script_with("shop", &req, &PageOptions::new().live(&board))
        .to_string();
    let token = attribute(&script, "data-tether-token").unwrap();
    let live: Value =
        serde_json::from_str(&attribute(&script, "data-tether-live").unwrap()).unwrap();
    let (mut a, jr_a, _) = join(&server, &token, &live).await;
    let (mut b, _, _) = join(&server, &token, &live).await;

    let (done, pushed_a) = call(&mut a, &jr_a, "board_for_others", json!({})).await;
    reply(&done, "ok");
    let pushed_b = vec![
        b.recv_until(|f| f[3] == "patch").await,
        b.recv_until(|f| f[3] == "live").await,
    ];
    for pushed in [pushed_a, pushed_b] {
        let events: Vec<&str> = pushed.iter().map(|f| f[3].as_str().unwrap()).collect();
        assert_eq!(events, ["patch", "live"]);
        assert_eq!(pushed[0][4]["html"], "score 100");
    }
    let (done, _) = call(&mut a, &jr_a, "peek_board", json!({})).await;
    assert_eq!(
        reply(&done, "ok")["result"],
        100,
        "its server copy followed"
    );
}

/// The signed spec of the presence list rendered as `html` (`data-tether-list`), which a
/// page names in its join.
fn list_token(html: &str) -> String {
    attribute(html, "data-tether-list").expect("a signed list spec")
}

/// What a client needs to open a `/shop` page: its topic, its page token and the socket URL.
struct ShopPage {
    topic: String,
    token: String,
    url: String,
}

fn shop_page(server: &TestServer, commanders: &Commanders) -> ShopPage {
    let req = TestRequest::with_uri("/shop").to_http_request();
    let script = commanders.script("shop", &req).to_string();
    ShopPage {
        topic: same_path("/shop"),
        token: attribute(&script, "data-tether-token").unwrap(),
        url: format!(
            "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
            server.port
        ),
    }
}

#[tokio::test]
async fn a_presence_list_is_kept_current_without_commander_code() {
    let server = start(|config| config.commander.counter_interval_ms = 50);
    let commanders = commanders(&server);
    let ShopPage { topic, token, url } = shop_page(&server, &commanders);
    // The page names the lists it shows by the signed specs rendered into them; one of a
    // topic the page is not on is ignored.
    let shown = list_token(commanders.presence_list(&topic).as_str());
    let elsewhere = list_token(commanders.presence_list("tether:topic:elsewhere").as_str());
    let payload = json!({"token": token, "presence_lists": [shown, elsewhere]});
    let mut a = Client::connect(&url).await;
    let (_, frame) = a.join("tether:page:shop", payload.clone()).await;
    reply(&frame, "ok");
    let items = |frame: &Value| frame[4]["html"].as_str().unwrap().matches("<li ").count();
    let list_topic = format!("tether:plist:{topic}");
    let first = a
        .recv_until(|f| f[3] == "patch" && f[2] == list_topic.as_str())
        .await;
    assert_eq!(first[4]["op"], "morph");
    assert_eq!(
        first[4]["sel"],
        format!(r#"[data-tether-presence="{topic}"]"#)
    );
    assert_eq!(items(&first), 1);

    let mut b = Client::connect(&url).await;
    let (_, frame) = b.join("tether:page:shop", payload).await;
    reply(&frame, "ok");
    let both = a
        .recv_until(|f| f[3] == "patch" && f[2] == list_topic.as_str())
        .await;
    assert_eq!(items(&both), 2);
    assert!(
        both[4]["html"]
            .as_str()
            .unwrap()
            .contains(r#"<span class="connections">1</span>"#)
    );

    b.close().await;
    let one = a
        .recv_until(|f| f[3] == "patch" && f[2] == list_topic.as_str())
        .await;
    assert_eq!(items(&one), 1);
    // The topic the page is not on was ignored: nothing but this list's patches arrive.
    assert!(a.sync().await.iter().all(|f| f[2] == list_topic.as_str()));
    // The controller renders the same list into the page.
    let html = commanders.presence_list(&topic);
    assert!(html.as_str().starts_with(&format!(
        r#"<ul data-tether-presence="{topic}" data-tether-list="#
    )));
    assert_eq!(html.as_str().matches("<li ").count(), 1);
}

#[tokio::test]
async fn a_templated_presence_list_gets_entries_with_only_its_fields() {
    let server = start(|config| config.commander.counter_interval_ms = 50);
    let commanders = commanders(&server);
    let ShopPage { topic, token, url } = shop_page(&server, &commanders);
    let item = Html::trusted(r#"<li data-field="name"></li>"#);
    let list = list_token(
        commanders
            .presence_list_with(&topic, &["name"], item)
            .as_str(),
    );
    let payload = json!({"token": token, "presence_lists": [list]});
    let mut a = Client::connect(&url).await;
    let (_, frame) = a.join("tether:page:shop", payload.clone()).await;
    reply(&frame, "ok");
    let list_topic = format!("tether:plist:name\n{topic}");
    let is_list = |f: &Value| f[3] == "presence_list" && f[2] == list_topic.as_str();
    let first = a.recv_until(is_list).await;
    assert_eq!(first[4]["topic"], topic.as_str());
    assert_eq!(first[4]["fields"], "name");
    let entries = first[4]["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 1, "{first}");
    assert_eq!(entries[0]["connections"], 1);
    assert!(
        entries[0]["meta"]["name"]
            .as_str()
            .unwrap()
            .starts_with("reader ")
    );
    assert!(
        !first.to_string().contains("private@"),
        "only the named fields: {first}"
    );

    let mut b = Client::connect(&url).await;
    let (_, frame) = b.join("tether:page:shop", payload).await;
    reply(&frame, "ok");
    let both = a.recv_until(is_list).await;
    assert_eq!(both[4]["entries"].as_array().unwrap().len(), 2, "{both}");
    b.close().await;
    let one = a.recv_until(is_list).await;
    assert_eq!(one[4]["entries"].as_array().unwrap().len(), 1, "{one}");
    assert!(a.sync().await.iter().all(is_list));
    // The controller renders the element with the first entries and the app's fragment.
    let html = commanders.presence_list_with(
        &topic,
        &["name"],
        Html::trusted(r#"<li data-field="name"></li>"#),
    );
    let html = html.as_str();
    assert!(html.contains(r#"data-tether-fields="name""#), "{html}");
    assert!(
        html.contains(r#"<template><li data-field="name"></li></template>"#),
        "{html}"
    );
    assert!(html.contains("reader "), "{html}");
    assert!(!html.contains("private@"), "{html}");
}

/// Receives frames until one matches `until`; returns every frame received, that one last.
async fn frames_until(client: &mut Client, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.recv().await;
        let done = until(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// A client cannot choose what a presence list shows: a join naming a list the server did
/// not render (an unsigned spec asking for other meta fields, a server-rendered list of
/// keys, a tampered spec) gets nothing of it; the list the page shows still works.
#[tokio::test]
async fn a_join_gets_no_presence_list_the_server_did_not_render() {
    let server = start(|config| config.commander.counter_interval_ms = 50);
    let commanders = commanders(&server);
    let ShopPage { topic, token, url } = shop_page(&server, &commanders);
    // Someone on the topic, whose meta has an email no list shows.
    let mut victim = Client::connect(&url).await;
    let (_, frame) = victim
        .join("tether:page:shop", json!({"token": token}))
        .await;
    reply(&frame, "ok");
    // What the app rendered: names only.
    let item = Html::trusted(r#"<li data-field="name"></li>"#);
    let names = list_token(
        commanders
            .presence_list_with(&topic, &["name"], item)
            .as_str(),
    );
    let tampered = names.replace(r#""name""#, r#""email""#);
    assert_ne!(tampered, names);
    let asked = json!([
        {"topic": topic, "fields": ["email", "name", "phx_ref"]},
        topic,
        tampered,
        names,
    ]);
    let mut attacker = Client::connect(&url).await;
    let payload = json!({"token": token, "presence_lists": asked});
    let (_, frame) = attacker.join("tether:page:shop", payload).await;
    reply(&frame, "ok");
    let names_topic = format!("tether:plist:name\n{topic}");
    let names_with = |n: usize| {
        let names_topic = names_topic.clone();
        move |f: &Value| {
            f[2] == names_topic.as_str() && f[4]["entries"].as_array().map(Vec::len) == Some(n)
        }
    };
    let mut seen = frames_until(&mut attacker, names_with(2)).await;
    // One more page: a later pass of the counter task, so every list the attacker had been
    // given would have been sent before this frame.
    let mut third = Client::connect(&url).await;
    let (_, frame) = third
        .join("tether:page:shop", json!({"token": token}))
        .await;
    reply(&frame, "ok");
    seen.extend(frames_until(&mut attacker, names_with(3)).await);
    seen.extend(attacker.sync().await);
    for frame in &seen {
        assert_eq!(
            frame[2],
            names_topic.as_str(),
            "only the rendered list: {frame}"
        );
        assert!(!frame.to_string().contains("private@"), "{frame}");
    }
}

/// A list with hashed keys sends every page the same stand-ins, never a presence key (here
/// browser ids), in its first paint or its updates.
#[tokio::test]
async fn a_list_with_hashed_keys_never_sends_a_presence_key() {
    let server = start(|config| config.commander.counter_interval_ms = 50);
    let commanders = commanders(&server);
    let ShopPage { topic, token, url } = shop_page(&server, &commanders);
    let mut other = Client::connect(&url).await;
    let (_, frame) = other
        .join("tether:page:shop", json!({"token": token}))
        .await;
    // The other page's browser id, as signed in its browser token.
    let signed = reply(&frame, "ok")["browser_id"]
        .as_str()
        .unwrap()
        .to_string();
    let id_at = signed.find(r#""d":""#).unwrap() + 5;
    let browser_id = signed[id_at..id_at + 36].to_string();
    assert!(uuid_like(&browser_id), "{browser_id}");
    let item = Html::trusted(r#"<li data-field="key"></li>"#);
    let html = commanders.presence_list_with_keys(&topic, &["name"], item, ListKeys::Hashed);
    let html = html.as_str();
    assert!(html.contains(r#"data-tether-keys="hashed""#), "{html}");
    assert!(!html.contains(&browser_id), "{html}");
    let mut page = Client::connect(&url).await;
    let payload = json!({"token": token, "presence_lists": [list_token(html)]});
    let (_, frame) = page.join("tether:page:shop", payload).await;
    reply(&frame, "ok");
    let update = page
        .recv_until(|f| f[3] == "presence_list" && f[4]["entries"].as_array().unwrap().len() == 2)
        .await;
    assert_eq!(update[4]["keys"], "hashed");
    assert!(!update.to_string().contains(&browser_id), "{update}");
    let keys: Vec<&str> = update[4]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    for key in &keys {
        assert!(
            key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
    }
    // The first paint showed the other page under the same stand-in.
    let first = attribute(html, "data-tether-entries").unwrap();
    let first: Value = serde_json::from_str(&first).unwrap();
    assert!(
        keys.contains(&first[0]["key"].as_str().unwrap()),
        "{first} / {keys:?}"
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().filter(|b| *b == b'-').count() == 4
}

/// Live tokens belong to one page load: another load (another tab, another browser) cannot
/// bring them, neither the rendered one nor one a poke gave; the page's own still works.
#[tokio::test]
async fn a_live_token_of_another_page_load_is_refused() {
    let server = start(|_| {});
    let commanders = commanders(&server);
    let (token_a, live_a) = render(&commanders, "shop", 5);
    let (token_b, live_b) = render(&commanders, "shop", 1);
    let (mut a, jr, _) = join(&server, &token_a, &live_a).await;
    let (_, pushed) = call(&mut a, &jr, "add", json!({"arg": 1})).await;
    let poked = json!({"cart": pushed[1][4]["token"].clone()});
    for stolen in [&live_a, &poked] {
        let (mut b, jr, joined) = join(&server, &token_b, stolen).await;
        assert_eq!(joined["live_rejected"], json!(["cart"]), "{joined}");
        let (done, _) = call(&mut b, &jr, "peek", json!({})).await;
        let reason = reply(&done, "error")["reason"].to_string();
        assert!(reason.contains("no live region `cart`"), "{reason}");
    }
    // Each load's own tokens: B's rendered one, A's latest after a reconnect.
    for (token, live, count) in [(&token_b, &live_b, 1), (&token_a, &poked, 6)] {
        let (mut page, jr, joined) = join(&server, token, live).await;
        assert_eq!(joined["live_rejected"], json!([]));
        let (done, _) = call(&mut page, &jr, "peek", json!({})).await;
        assert_eq!(reply(&done, "ok")["result"], count);
    }
}

/// A live token older than a page token may be is refused, whatever its page load.
#[tokio::test]
async fn a_live_token_older_than_a_page_token_may_be_is_refused() {
    let server = start(|config| config.commander.page_token_max_age_s = 60);
    let keys = commanders(&server).keys().clone();
    let now = unix_now();
    // A page token of load 77, and live tokens of that load, as the server makes them.
    let token = keys.sign("page", &json!({"c": "shop", "p": "/shop", "l": 77}), now);
    let assigns = json!({"c": "shop", "n": "cart", "a": {"count": 3, "label": "x"}, "l": 77});
    for (issued, rejected) in [(now, json!([])), (now - 120, json!(["cart"]))] {
        let live = json!({"cart": keys.encrypt("live", &assigns, issued)});
        let (_, _, joined) = join(&server, &token, &live).await;
        assert_eq!(
            joined["live_rejected"],
            rejected,
            "issued {}s ago",
            now - issued
        );
    }
}

/// Two nodes on one real Redis: a region broadcast from node A reaches a page on node B, and
/// that page's server copy follows (it crossed the bus twice: the frames for the browser and
/// the live feed for the page's task).
#[tokio::test]
async fn a_broadcast_live_crosses_nodes_through_redis() {
    let redis = redis_support::Redis::start();
    let node = |name: &str| {
        let (url, name) = (redis.url(), name.to_string());
        start(move |config| {
            config.pubsub.url = Some(url);
            config.pubsub.node = Some(name);
        })
    };
    let (a, b) = (node("live-a"), node("live-b"));
    let board = commanders(&b)
        .live("shop", "board", &Board { score: 0 })
        .unwrap();
    let req = TestRequest::with_uri("/shop").to_http_request();
    let script = commanders(&b)
        .script_with("shop", &req, &PageOptions::new().live(&board))
        .to_string();
    let token = attribute(&script, "data-tether-token").unwrap();
    let live: Value =
        serde_json::from_str(&attribute(&script, "data-tether-live").unwrap()).unwrap();
    let (mut page, jr, _) = join(&b, &token, &live).await;

    // The nodes' Redis connections come up on their own: broadcast until one arrives.
    let topic = same_path("/shop");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut arrived = None;
    for score in 1.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no broadcast crossed Redis"
        );
        commanders(&a)
            .to(&topic)
            .put_live("shop", "board", &Board { score })
            .unwrap();
        let wait = std::time::Duration::from_millis(300);
        if let Ok(frame) = tokio::time::timeout(wait, page.recv()).await {
            assert_eq!(frame[3], "patch", "{frame}");
            arrived = Some((score, frame));
            break;
        }
    }
    // Bus messages keep their order: the last broadcast is the last to arrive.
    let (score, first) = arrived.unwrap();
    let last = format!("score {score}");
    if first[4]["html"] != last.as_str() {
        page.recv_until(|f| f[3] == "patch" && f[4]["html"] == last.as_str())
            .await;
    }
    let kept = page.recv_until(|f| f[3] == "live").await;
    assert_eq!(kept[4]["name"], "board");
    let (done, _) = call(&mut page, &jr, "peek_board", json!({})).await;
    assert_eq!(reply(&done, "ok")["result"], score);
}
