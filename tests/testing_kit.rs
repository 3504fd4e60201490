//! `tether::testing` driving a small commander: failures of the page fail the test (with the
//! handler's name and message) unless it allows errors; round trips answered by the test;
//! throttle on a paused clock; restart-style reconnects keep what the browser kept; the app's
//! own pub/sub reaches the pages. Run with `cargo test --features testing`.
#![cfg(feature = "testing")]

use std::{panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use serde_json::{Value, json};
use tether::{
    Endpoint,
    channel::BoxError,
    commander::{Broadcasting, Commander, Cookie, Handlers, Page, Patch, Sender, same_topic},
    testing::{self, TestApp},
};

/// How many throttled clicks this page's handler saw.
#[derive(Default)]
struct Ticks(u32);

struct Lab;

impl Lab {
    async fn boom(&self, _: &mut Page, _: Sender) -> Result<(), BoxError> {
        Err("kaboom".into())
    }

    async fn explode(&self, _: &mut Page, _: Sender) -> Result<(), BoxError> {
        panic!("the handler panicked on purpose")
    }

    async fn ask(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let (index, sender) = page
            .wait_for(
                &[("#yes", "click"), ("#no", "click")],
                Duration::from_secs(5),
            )
            .await?;
        page.apply(Patch::set("#answer", format!("{index} {}", sender.id)))?;
        Ok(())
    }

    async fn script(&self, page: &mut Page, _: Sender) -> Result<Value, BoxError> {
        Ok(page.exec_js("6 * 7").await?)
    }

    async fn bake(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.apply(Patch::set_cookie(&Cookie::new(
            "flavour",
            sender.value.as_str(),
        )))?;
        let cookies = page.cookies().await?;
        page.apply(Patch::set("#cookies", Value::Object(cookies).to_string()))?;
        Ok(())
    }

    async fn remember(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.put_store("note", sender.value.as_str())?;
        Ok(())
    }

    async fn submitted(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.apply(Patch::set("#submitted", sender.event["type"].to_string()))?;
        Ok(())
    }

    async fn tick(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let ticks = page.get_mut::<Ticks>();
        ticks.0 += 1;
        let n = ticks.0.to_string();
        page.apply(Patch::set("#ticks", n))?;
        Ok(())
    }
}

impl Commander for Lab {
    fn name(&self) -> &'static str {
        "lab"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("boom", Self::boom)
            .on("explode", Self::explode)
            .on("ask", Self::ask)
            .on("script", Self::script)
            .on("bake", Self::bake)
            .on("remember", Self::remember)
            .on("tick", Self::tick)
            .on("submitted", Self::submitted)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::Named("news".into())]
    }

    /// Every join shows what the store holds: a reconnect brings it back.
    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        let note = page.get_store("note").and_then(Value::as_str).unwrap_or("");
        let note = note.to_string();
        page.apply(Patch::set("#stored", note))?;
        Ok(())
    }
}

const BODY: &str = r#"<button id="boom" tether-click="boom">boom</button>
<button id="explode" tether-click="explode">explode</button>
<button id="nope" tether-click="nope">nope</button>
<button id="ask" tether-click="ask">ask</button> <button id="yes">yes</button> <button id="no">no</button>
<p id="answer"></p>
<button id="script" tether-click="script">script</button>
<input id="flavour" tether-change="bake"> <p id="cookies"></p>
<input id="note" tether-change="remember"> <p id="stored"></p>
<button id="tick" tether-click="tick" tether-throttle="1000" tether-no-disable>tick</button> <p id="ticks">0</p>
<p id="news"></p>
<a id="reload" href="/">reload</a>
<form tether-submit="submitted"><button id="odd" type="odd">odd</button></form> <p id="submitted"></p>"#;

fn serve(exec_js: bool) -> TestApp {
    let mut config = testing::config();
    config.commander.exec_js = exec_js;
    let endpoint = Endpoint::builder(config)
        .and_then(|builder| builder.commander(Lab).build())
        .expect("the endpoint builds");
    TestApp::serve_page(endpoint, "lab", |_| BODY.to_string())
}

/// Awaits `action`, expecting it to fail the test: the panic's message.
async fn failure(action: impl std::future::Future) -> String {
    let caught = AssertUnwindSafe(action).catch_unwind().await;
    let Err(panic) = caught else {
        panic!("the action did not fail the test");
    };
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_handler_error_fails_the_test_with_its_name_and_message() {
    let app = serve(false);
    let mut page = app.open("/").await;
    let message = failure(page.click("#boom")).await;
    assert!(message.contains("handler boom failed: kaboom"), "{message}");
}

#[tokio::test]
async fn an_unknown_handler_fails_the_test() {
    let app = serve(false);
    let mut page = app.open("/").await;
    let message = failure(page.click("#nope")).await;
    assert!(
        message.contains("handler nope failed: unknown handler"),
        "{message}"
    );
}

#[tokio::test]
async fn a_panicking_handler_fails_the_test() {
    let app = serve(false);
    let mut page = app.open("/").await;
    let message = failure(page.click("#explode")).await;
    assert!(message.contains("while handler explode ran"), "{message}");
}

#[tokio::test]
async fn errors_the_test_allows_are_recorded_instead() {
    let app = serve(false);
    let mut page = app.open("/").await;
    page.allow_errors();
    assert_eq!(page.click("#boom").await, None);
    page.click("#nope").await;
    assert_eq!(
        page.errors(),
        [
            "handler boom failed: kaboom",
            "handler nope failed: unknown handler"
        ]
    );
}

/// A patch tether.js would refuse (a plain value into innerHTML) never reaches the model:
/// the server's own `Patch::check` refuses it, so it is sent raw on the page's topic.
#[tokio::test]
async fn a_refused_patch_fails_the_test() {
    let app = serve(false);
    let mut page = app.open("/").await;
    app.endpoint().broadcast(
        &same_topic("news"),
        "patch",
        &json!({"op": "prop", "sel": "#news", "prop": "innerHTML", "value": "<img src=x>"}),
    );
    let message = failure(page.wait_until(|p| p.exists("#news img"))).await;
    assert!(
        message.contains("property innerHTML takes only Html"),
        "{message}"
    );
    assert_eq!(page.html("#news"), "");
}

#[tokio::test]
async fn the_apps_own_broadcasts_reach_every_page_on_the_topic() {
    let app = serve(false);
    let mut a = app.open("/").await;
    let mut b = app.open("/").await;
    let commanders = app.endpoint().commanders().clone();
    commanders
        .to(&same_topic("news"))
        .apply(Patch::set("#news", "<b>extra</b>"))
        .expect("a text patch passes");
    for page in [&mut a, &mut b] {
        page.wait_until(|p| p.text("#news") == "<b>extra</b>").await;
        assert!(!page.exists("#news b"));
    }
}

#[tokio::test]
async fn a_wait_for_round_trip_is_answered_by_the_event_the_test_fires() {
    let app = serve(false);
    let mut page = app.open("/").await;
    page.click("#ask").await;
    assert_eq!(page.asked()[0]["op"], "wait");
    page.click("#no").await;
    page.wait_until(|p| p.text("#answer") == "1 no").await;
}

#[tokio::test]
async fn script_round_trips_are_answered_by_the_test_or_refused_without_exec_js() {
    let app = serve(true);
    let mut page = app.open("/").await;
    page.answer_js(|js| {
        assert_eq!(js, "6 * 7");
        Ok(json!(42))
    });
    assert_eq!(page.click("#script").await, Some(json!(42)));

    let app = serve(false);
    let mut page = app.open("/").await;
    let message = failure(page.click("#script")).await;
    assert!(message.contains("handler script failed"), "{message}");
}

#[tokio::test]
async fn cookie_patches_land_in_the_browser_and_cookies_read_them_back() {
    let app = serve(false);
    let mut page = app.open("/").await;
    page.fill("#flavour", "oat").await;
    page.wait_until(|p| p.text("#cookies") == r#"{"flavour":"oat"}"#)
        .await;
    assert_eq!(page.browser().cookie("flavour").as_deref(), Some("oat"));
}

#[tokio::test]
async fn a_reconnect_rejoins_with_what_the_browser_kept() {
    let app = serve(false);
    let browser = app.browser();
    let mut page = browser.open("/").await;
    let id = browser_id(&browser).expect("a browser id");
    page.fill("#note", "kept").await;
    page.reconnect().await;
    page.wait_until(|p| p.text("#stored") == "kept").await;
    let mut tab = browser.open("/").await;
    tab.wait_until(|p| p.text("#stored") == "kept").await;
    assert_eq!(
        browser_id(&browser),
        Some(id.clone()),
        "one browser, one id"
    );
    let other = app.browser();
    other.open("/").await;
    assert_ne!(browser_id(&other), Some(id), "another browser, another id");
}

/// The id inside the browser's signed browser-id token (`<mac>={"p":…,"t":…,"d":"<id>"}`; the
/// server signs it again, with a new time, at every join).
fn browser_id(browser: &tether::testing::Browser) -> Option<String> {
    let token = browser.storage("tether_browser_id")?;
    let (_, json) = token.split_once('=')?;
    let signed: serde_json::Value = serde_json::from_str(json).ok()?;
    signed["d"].as_str().map(str::to_string)
}

/// Throttle (1 s) on a paused clock: the first click goes at once, the burst's last one at
/// the end of the second, nothing else.
#[tokio::test(start_paused = true)]
async fn throttled_clicks_send_the_first_at_once_and_the_last_at_the_end() {
    let app = serve(false);
    let mut page = app.open("/").await;
    for _ in 0..5 {
        page.click("#tick").await;
        page.idle(Duration::from_millis(100)).await;
    }
    assert_eq!(page.text("#ticks"), "1");
    page.idle(Duration::from_millis(1000)).await;
    page.wait_until(|p| p.text("#ticks") == "2").await;
    page.idle(Duration::from_millis(2000)).await;
    assert_eq!(page.text("#ticks"), "2");
}

/// A `<button>` of an unknown type is a submit button (HTML's rule, and the browser's): a
/// click submits its form.
#[tokio::test]
async fn a_button_of_an_unknown_type_submits_its_form() {
    let app = serve(false);
    let mut page = app.open("/").await;
    page.click("#odd").await;
    assert_eq!(page.text("#submitted"), r#""submit""#);
}

/// A plain link loads a new document in the same tab; what the test's view of the tab holds
/// (allowed and recorded errors) carries over, as on Back to another document.
#[tokio::test]
async fn a_document_load_keeps_the_tabs_recorded_errors() {
    let app = serve(false);
    let mut page = app.open("/").await;
    page.allow_errors();
    page.click("#boom").await;
    page.click("#reload").await;
    assert!(page.is_connected());
    page.click("#boom").await;
    assert_eq!(
        page.errors(),
        ["handler boom failed: kaboom", "handler boom failed: kaboom"]
    );
}
