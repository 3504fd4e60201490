//! `page.update_presence(topic, meta)` and the names-list recipe (issue 25, item 6, first
//! half), driven by `tether::testing`: a reader sets a display name and every tab of every
//! reader shows it live; a list shows the newest meta of a key with several tabs; a new tab
//! joins with the name from the store; the development warning of a `put_store` that changes
//! presence stays quiet when `update_presence` already showed it. Run with
//! `cargo test --features testing --test presence_update`.
#![cfg(feature = "testing")]

use serde_json::{Value, json};
use tether::{
    Endpoint,
    channel::BoxError,
    commander::{
        Broadcasting, Commander, Commanders, Handlers, Html, Page, Patch, Sender, same_topic,
    },
    presence::TrackError,
    testing::{self, TestApp, TestPage},
};

fn topic() -> String {
    same_topic("readers")
}

struct Readers;

impl Readers {
    /// The recipe: presence first, then the store (what a later join of the reader reads).
    async fn set_name(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.update_presence(&topic(), json!({"name": sender.value}))?;
        page.put_store("name", &sender.value)?;
        Ok(())
    }

    /// The other order: the store changes what presence would show before presence does.
    async fn set_name_store_first(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        page.put_store("name", &sender.value)?;
        page.update_presence(&topic(), json!({"name": sender.value}))?;
        Ok(())
    }

    /// A topic the page is not on: nothing to update.
    async fn elsewhere(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let outcome = page.update_presence(&same_topic("elsewhere"), json!({"name": "x"}));
        let shown = match outcome {
            Err(TrackError::NotTracked) => "not tracked",
            Ok(()) => "updated",
            Err(_) => "other error",
        };
        page.apply(Patch::set("#elsewhere", shown))?;
        Ok(())
    }
}

impl Commander for Readers {
    fn name(&self) -> &'static str {
        "readers"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("set_name", Self::set_name)
            .on("set_name_store_first", Self::set_name_store_first)
            .on("elsewhere", Self::elsewhere)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::Named("readers".into())]
    }

    fn presence(&self, page: &Page, _topic: &str) -> Option<(String, Value)> {
        let name = page
            .get_store("name")
            .and_then(Value::as_str)
            .unwrap_or("anonymous");
        Some((page.presence_key(), json!({ "name": name })))
    }
}

/// The page: two ways to set a name, and the names list of the topic.
fn body(commanders: &Commanders) -> String {
    let names = commanders.presence_list_with(
        &topic(),
        &["name"],
        Html::trusted(
            r#"<li><span data-field="name"></span> <span data-field="connections"></span></li>"#,
        ),
    );
    format!(
        r#"<input id="name" tether-change="set_name"> <input id="name-late" tether-change="set_name_store_first">
<button id="go-elsewhere" tether-click="elsewhere">elsewhere</button> <p id="elsewhere"></p>
<div id="names">{names}</div>"#
    )
}

fn serve() -> TestApp {
    let endpoint = Endpoint::builder(testing::config())
        .and_then(|builder| builder.commander(Readers).build())
        .expect("the endpoint builds");
    TestApp::serve_page(endpoint, "readers", body)
}

/// The names list as a page shows it: "name connections" per entry, sorted.
fn names(page: &TestPage) -> Vec<String> {
    let mut shown: Vec<String> = page
        .texts("#names li")
        .into_iter()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    shown.sort();
    shown
}

async fn shows(pages: &mut [&mut TestPage], want: &[&str]) {
    for page in pages.iter_mut() {
        page.wait_until(|p| names(p) == want).await;
    }
}

#[tokio::test]
async fn a_name_set_in_one_tab_shows_in_every_tab_of_every_reader() {
    let app = serve();
    let ada = app.browser();
    let bob = app.browser();
    let mut a1 = ada.open("/").await;
    let mut a2 = ada.open("/").await;
    let mut b1 = bob.open("/").await;
    shows(
        &mut [&mut a1, &mut a2, &mut b1],
        &["anonymous 1", "anonymous 2"],
    )
    .await;

    // Ada's second tab names her: her entry (two tabs) shows its newest meta.
    a2.fill("#name", "Ada").await;
    shows(&mut [&mut a1, &mut a2, &mut b1], &["Ada 2", "anonymous 1"]).await;
    // Her first tab, older, still has its own meta: the list shows the newest.
    b1.fill("#name", "Bob").await;
    shows(&mut [&mut a1, &mut a2, &mut b1], &["Ada 2", "Bob 1"]).await;

    // A new tab of Ada joins with the name from her store.
    let mut a3 = ada.open("/").await;
    shows(&mut [&mut a1, &mut a3, &mut b1], &["Ada 3", "Bob 1"]).await;
    assert_eq!(
        a2.warnings(),
        [] as [String; 0],
        "presence already showed it: no warning"
    );
}

#[tokio::test]
async fn the_store_changed_before_presence_is_still_warned_of_in_development() {
    let app = serve();
    let mut page = app.open("/").await;
    page.fill("#name-late", "Ada").await;
    page.wait_until(|p| names(p) == ["Ada 1"]).await;
    assert_eq!(page.warnings().len(), 1, "{:?}", page.warnings());
    assert!(
        page.warnings()[0].contains("update_presence"),
        "{:?}",
        page.warnings()
    );
}

#[tokio::test]
async fn a_topic_the_page_is_not_on_is_not_updated() {
    let app = serve();
    let mut page = app.open("/").await;
    page.click("#go-elsewhere").await;
    assert_eq!(page.text("#elsewhere"), "not tracked");
}
