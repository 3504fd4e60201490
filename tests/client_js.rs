//! The server side of JavaScript that coexists and of client-side commands, driven by
//! `tether::testing`: `Js` lists in handler attributes run on the page's model (only `push`
//! sends an event), `page.exec` runs a list from the server, `push_event` (to a page and to
//! a topic) is recorded by the kit, lists with script are refused on both sides,
//! `tether-update="ignore"` and `tether-keep` hold under morphs and patches, and local lists
//! keep working while the page is disconnected. Run with `cargo test --features testing
//! --test client_js`; the browser side is tests/node/js_lab.test.mjs.
#![cfg(feature = "testing")]

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use tether::{
    Endpoint,
    channel::BoxError,
    commander::{
        Broadcasting, Commander, Commanders, Handlers, Html, Js, Page, Patch, PatchError, Sender,
        same_topic,
    },
    testing::{self, TestApp},
};

/// How many times `echo` ran on this page.
#[derive(Default)]
struct Echoes(u32);

struct Client;

impl Client {
    async fn echo(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let echoes = page.get_mut::<Echoes>();
        echoes.0 += 1;
        let n = echoes.0;
        page.apply(Patch::set(
            "#echo",
            json!({"arg": sender.arg, "id": sender.id, "n": n}).to_string(),
        ))?;
        Ok(())
    }

    async fn flash(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.exec(
            &Js::new()
                .show("#flash")
                .add_class("#flash", "shown")
                .push("echo", json!("from exec")),
        )?;
        page.push_event("points", json!({"x": [1, 2]}))?;
        page.to(&same_topic("charts"))
            .push_event("everyone", json!(7))?;
        Ok(())
    }

    /// Script in a list is refused by the server before it is sent.
    async fn unsafe_exec(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let refused = page.exec(&Js::new().set_attr("#flash", "onclick", "alert(1)"));
        let text = match refused {
            Err(PatchError::UnsafeProp(what)) => format!("refused {what}"),
            other => format!("{other:?}"),
        };
        page.apply(Patch::set("#echo", text))?;
        Ok(())
    }

    async fn rerender(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        page.apply(Patch::morph(
            "#region",
            Html::trusted(
                r#"<div id="chart" tether-update="ignore" data-n="2"><span id="inner">server 2</span></div><div id="kept" tether-keep="class" class="server" title="t2">kept 2</div>"#,
            ),
        ))?;
        page.apply(Patch::set("#inner", "patched"))?;
        page.apply(Patch::set("#chart", "patched"))?;
        page.apply(Patch::attr("#chart", "aria-label", Some("chart")))?;
        Ok(())
    }
}

impl Commander for Client {
    fn name(&self) -> &'static str {
        "client"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("echo", Self::echo)
            .on("flash", Self::flash)
            .on("unsafe_exec", Self::unsafe_exec)
            .on("rerender", Self::rerender)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::Named("charts".into())]
    }
}

async fn index(req: HttpRequest, commanders: web::Data<Commanders>) -> HttpResponse {
    let attr = |js: Js| js.to_html().as_str().to_string();
    let body = format!(
        r#"<button id="menu_btn" tether-click="{menu}">menu</button>
<ul id="menu" style="display: none"><li>one</li></ul>
<button id="attrs" tether-click="{attrs}">attrs</button>
<div id="target" class="a" data-x="1">target</div>
<button id="push" tether-click="{push}">push</button>
<button id="dispatch" tether-click="{dispatch}">dispatch</button>
<span id="listener" tether-on="lab:ping:echo">listener</span>
<button id="bad" tether-click="{bad}">bad</button>
<button id="flash_btn" tether-click="flash">flash</button> <div id="flash" style="display: none">saved</div>
<button id="unsafe" tether-click="unsafe_exec">unsafe</button>
<button id="rerender" tether-click="rerender">rerender</button>
<div id="region"><div id="chart" tether-update="ignore" data-n="1"><canvas id="canvas"></canvas></div><div id="kept" tether-keep="class" class="mine" title="t1">kept 1</div></div>
<pre id="echo"></pre>"#,
        menu = attr(Js::new().toggle("#menu").toggle_class("", "open")),
        attrs = attr(
            Js::new()
                .add_class("#target", "b c")
                .remove_class("#target", "a")
                .set_attr("#target", "aria-expanded", "true")
                .remove_attr("#target", "data-x")
        ),
        push = attr(
            Js::new()
                .add_class("", "sent")
                .push("echo", json!({"n": 5}))
        ),
        dispatch = attr(Js::new().dispatch("#listener", "lab:ping", json!(1))),
        bad = Html::escape(r##"[["set_attr",{"to":"#target","attr":["onclick","alert(1)"]}]]"##)
            .as_str(),
    );
    let script = commanders.script_with(
        "client",
        &req,
        &tether::commander::PageOptions::new().events(&["lab:ping"]),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html><head><title>js</title></head><body>{body}{}</body></html>",
            script.as_str()
        ))
}

fn serve() -> TestApp {
    let endpoint = Endpoint::builder(testing::config())
        .and_then(|builder| builder.commander(Client).build())
        .expect("the endpoint builds");
    let commanders = endpoint.commanders().clone();
    TestApp::serve(endpoint, move |routes| {
        routes
            .app_data(web::Data::new(commanders.clone()))
            .route("/", web::get().to(index));
    })
}

fn echo(page: &tether::testing::TestPage) -> Value {
    serde_json::from_str(&page.text("#echo")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn lists_run_on_the_model_and_only_push_calls_a_handler() {
    let app = serve();
    let mut page = app.open("/").await;
    assert_eq!(page.click("#menu_btn").await, None);
    assert_eq!(page.attr("#menu", "style").as_deref(), Some(""));
    assert_eq!(page.attr("#menu_btn", "class").as_deref(), Some("open"));
    page.click("#menu_btn").await;
    assert_eq!(
        page.attr("#menu", "style").as_deref(),
        Some("display: none;")
    );
    page.click("#attrs").await;
    assert_eq!(page.attr("#target", "class").as_deref(), Some("b c"));
    assert_eq!(
        page.attr("#target", "aria-expanded").as_deref(),
        Some("true")
    );
    assert_eq!(page.attr("#target", "data-x"), None);
    assert_eq!(page.text("#echo"), "", "no handler ran for local commands");
    page.click("#push").await;
    assert_eq!(page.attr("#push", "class").as_deref(), Some("sent"));
    assert_eq!(echo(&page), json!({"arg": {"n": 5}, "id": "push", "n": 1}));
    // dispatch fires a custom event that a tether-on handler (allowed by the page) hears.
    page.click("#dispatch").await;
    assert_eq!(echo(&page)["id"], "listener");
    assert_eq!(echo(&page)["n"], 2);
}

#[tokio::test]
async fn exec_runs_a_list_from_the_server_and_push_events_are_recorded() {
    let app = serve();
    let mut page = app.open("/").await;
    page.click("#flash_btn").await;
    page.wait_until(|page| page.text("#echo").contains("from exec"))
        .await;
    assert_eq!(page.attr("#flash", "class").as_deref(), Some("shown"));
    assert_eq!(page.attr("#flash", "style").as_deref(), Some(""));
    assert_eq!(
        echo(&page)["arg"],
        "from exec",
        "exec's push calls the handler"
    );
    page.wait_until(|page| page.events().len() == 2).await;
    assert_eq!(
        page.events(),
        [
            ("points".to_string(), json!({"x": [1, 2]})),
            ("everyone".to_string(), json!(7)),
        ]
    );
}

#[tokio::test]
async fn lists_with_script_are_refused_on_both_sides() {
    let app = serve();
    let mut page = app.open("/").await;
    page.click("#unsafe").await;
    assert!(
        page.text("#echo").starts_with("refused"),
        "{}",
        page.text("#echo")
    );
    page.allow_errors();
    page.click("#bad").await;
    assert_eq!(page.attr("#target", "onclick"), None);
    assert_eq!(page.errors(), ["js: js: attribute onclick is refused"]);
}

#[tokio::test]
async fn ignored_elements_and_kept_attributes_hold_under_morphs_and_patches() {
    let app = serve();
    let mut page = app.open("/").await;
    page.click("#rerender").await;
    assert_eq!(page.text("#kept"), "kept 2");
    assert_eq!(page.html("#chart"), r#"<canvas id="canvas"></canvas>"#);
    assert_eq!(page.attr("#chart", "data-n").as_deref(), Some("2"));
    assert_eq!(
        page.attr("#chart", "aria-label").as_deref(),
        Some("chart"),
        "a patch aimed at it sets attributes"
    );
    assert!(!page.exists("#inner"));
    assert_eq!(page.attr("#kept", "class").as_deref(), Some("mine"));
    assert_eq!(page.attr("#kept", "title").as_deref(), Some("t2"));
}

#[tokio::test]
async fn local_lists_work_while_disconnected() {
    let app = serve();
    let mut page = app.open("/").await;
    assert_eq!(
        page.attr("html", "class").as_deref(),
        Some("tether-connected")
    );
    page.disconnect().await;
    assert_eq!(
        page.attr("html", "class").as_deref(),
        Some("tether-disconnected")
    );
    assert!(!page.is_disabled("#menu_btn"));
    assert!(
        page.is_disabled("#push"),
        "a list with push needs the socket"
    );
    page.click("#menu_btn").await;
    assert_eq!(page.attr("#menu", "style").as_deref(), Some(""));
    page.connect().await;
    assert_eq!(
        page.attr("html", "class").as_deref(),
        Some("tether-connected")
    );
    assert!(!page.is_disabled("#push"));
}
