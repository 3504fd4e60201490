//! The commander tour: a shared todo list per list name. Every page open on a list sees every
//! change live; the page asks before clearing (a native dialog), runs an import job in the
//! background with a progress bar, filters as you type (debounced), measures itself in the
//! browser, and disables its controls while they work or while the socket is down.
//!
//! Run `cargo run --example live_todo`, then open <http://127.0.0.1:4000/lists/home> in two
//! tabs.
//!
//! The contract the tests drive (also in `docs/contracts.md`):
//! - `GET /` redirects to `/lists/home`; `GET /lists/<name>` (`name`: 1–32 of `[a-z0-9-]`,
//!   else 404) renders the list's page with askama. The list lives in the server's memory
//!   (lost on restart); at most [`MAX_ITEMS`] items per list and [`MAX_LISTS`] lists.
//! - `<ul id="items">` holds one `<li class="item">` per item, oldest first, each with
//!   `<span class="text">` (the item's text, as text), `<input type="checkbox" class="done">`
//!   and `<button class="remove">`; `<span id="count">` shows the number of items.
//! - `<input id="new_item">` and `<button id="add">`: a click adds the trimmed text on every
//!   page of the list and clears the input on the clicking page only; empty text, or text over
//!   200 characters, adds nothing and shows a message in `<p id="error">` (empty otherwise).
//! - Checking `.done` toggles class `done` on that `li` on every page; `.remove` removes the
//!   item on every page. Re-rendering `#items` never touches `#new_item` or `#filter`, so a
//!   person typing on another page keeps focus and text.
//! - `<input id="filter">` filters this page's items (case-insensitive substring), debounced
//!   (`tether-debounce="300"`); `<span id="filter_calls">` counts the server's filter runs.
//! - `<button id="clear">` opens a `<dialog open>` with `button[value=ok]` and
//!   `button[value=cancel]`; ok empties the list on every page, cancel changes nothing.
//! - `<button id="import">` starts a job (about 2 s) adding `sample 1` … `sample 5` one by one,
//!   moving `<progress id="progress" max="100">` on the clicking page from 0 to 100; `#import`
//!   is disabled while it runs, and `#add` keeps working meanwhile.
//! - `<button id="measure">` reads `#items`' `offsetWidth` in the browser into `<span id="width">`.
//! - `<span id="viewers">` is a live count of pages open on this list.
//! - While the socket is down, `#add` and `#import` are disabled (tether.js), and enabled
//!   again after it reconnects.
//!
//! What each part teaches:
//! - handler arguments (`tether-click="remove(3)"`);
//! - a live region: the list is rendered from typed assigns, and every change is rendered
//!   **once** and morphed into every page of the list (`commanders.to(topic).put_live(..)`), so
//!   focus, typing and ticked boxes survive;
//! - each page's filter is its own: a CSS rule the server writes into that page only, so it
//!   survives the shared re-renders;
//! - a [`PageHandle`] in a spawned job;
//! - the [`PageHandle::confirm`] and [`PageHandle::query_one`] round trips;
//! - assigns in the page token ([`PageOptions`]);
//! - per-page values ([`Page::get_mut`]).

mod support;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tether::{
    Config, Endpoint,
    channel::BoxError,
    commander::{
        Commander, Commanders, Count, Handlers, Html, Page, PageHandle, PageOptions, Patch, Sender,
        same_path,
    },
};

/// Most items one list holds.
const MAX_ITEMS: usize = 500;
/// Most lists the server keeps.
const MAX_LISTS: usize = 1_000;
/// Longest item text, in characters.
const MAX_TEXT_CHARS: usize = 200;

#[derive(Clone, Serialize, Deserialize)]
struct Item {
    id: u64,
    text: String,
    done: bool,
}

/// Every list, by name, in memory.
#[derive(Clone, Default)]
struct Lists(Arc<Mutex<HashMap<String, Vec<Item>>>>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Lists {
    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Vec<Item>>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn items(&self, list: &str) -> Vec<Item> {
        self.with(|lists| lists.get(list).cloned().unwrap_or_default())
    }

    /// Adds an item; the error says why not, for `#error`.
    fn add(&self, list: &str, text: &str) -> Result<(), &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Err("Type something first.");
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err("An item is at most 200 characters.");
        }
        self.with(|lists| {
            if !lists.contains_key(list) && lists.len() >= MAX_LISTS {
                return Err("The server holds too many lists.");
            }
            let items = lists.entry(list.to_string()).or_default();
            if items.len() >= MAX_ITEMS {
                return Err("This list is full.");
            }
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            items.push(Item {
                id,
                text: text.to_string(),
                done: false,
            });
            Ok(())
        })
    }

    fn change(&self, list: &str, change: impl FnOnce(&mut Vec<Item>)) {
        self.with(|lists| {
            if let Some(items) = lists.get_mut(list) {
                change(items);
            }
        })
    }
}

/// The live region `items`: the whole list, rendered once per change for every page of it.
#[derive(Template, Serialize, Deserialize)]
#[template(path = "live_todo_items.html")]
struct ItemsView {
    items: Vec<Item>,
}

#[derive(Template)]
#[template(path = "live_todo.html")]
struct ListPage<'a> {
    name: &'a str,
    count: usize,
    items: Html,
    viewers: Html,
    script: Html,
}

/// The CSS rule that hides the items of `#items` whose text does not contain `filter`
/// (case-insensitive; each item carries its lowercased text in `data-text`). Every character
/// but letters, digits and spaces is written as a CSS escape, so the filter cannot end the
/// string or the rule.
fn filter_rule(filter: &str) -> String {
    let filter = filter.to_lowercase();
    if filter.is_empty() {
        return String::new();
    }
    let escaped: String = filter
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' {
                c.to_string()
            } else {
                format!("\\{:x} ", c as u32)
            }
        })
        .collect();
    format!(r#"#items li.item:not([data-text*="{escaped}" i]) {{ display: none; }}"#)
}

/// How many times the server ran this page's filter.
#[derive(Default)]
struct FilterCalls(u64);

/// The commander of list pages.
struct Todo {
    lists: Lists,
}

/// The topic every page of `list` is on (the commander broadcasts to its pages' path).
fn list_topic(list: &str) -> String {
    same_path(&format!("/lists/{list}"))
}

/// Renders `list` once and morphs it into every page of it, with its count.
fn publish(commanders: &Commanders, lists: &Lists, list: &str) {
    let items = lists.items(list);
    let count = items.len().to_string();
    let topic = list_topic(list);
    if let Err(err) = commanders
        .to(&topic)
        .put_live("todo", "items", &ItemsView { items })
    {
        tracing::warn!(%list, "cannot publish the list: {err}");
    }
    let _ = commanders.to(&topic).apply(Patch::set("#count", count));
}

fn list_of(page: &Page) -> String {
    page.assign("list")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Todo {
    /// Re-renders this page's `#items` and `#count` (after a reconnect: what it missed).
    fn show(&self, page: &mut Page) -> Result<(), BoxError> {
        let items = self.lists.items(&list_of(page));
        let count = items.len().to_string();
        page.put_live("items", &ItemsView { items })?;
        page.apply(Patch::set("#count", count))?;
        Ok(())
    }

    /// Publishes the list after a change, to every page of it.
    fn changed(&self, page: &Page, list: &str) {
        publish(&page.commanders(), &self.lists, list);
    }

    async fn add(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let list = list_of(page);
        let text = sender
            .form
            .get("new_item")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match self.lists.add(&list, text) {
            Ok(()) => {
                page.apply(Patch::set("#error", ""))?;
                page.set_prop("#new_item", "value", "")?;
                self.changed(page, &list);
            }
            Err(why) => page.apply(Patch::set("#error", why))?,
        }
        Ok(())
    }

    async fn toggle(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let id = sender.arg.as_u64().ok_or("toggle takes an item id")?;
        let list = list_of(page);
        self.lists.change(&list, |items| {
            if let Some(item) = items.iter_mut().find(|item| item.id == id) {
                item.done = !item.done;
            }
        });
        self.changed(page, &list);
        Ok(())
    }

    async fn remove(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let id = sender.arg.as_u64().ok_or("remove takes an item id")?;
        let list = list_of(page);
        self.lists
            .change(&list, |items| items.retain(|item| item.id != id));
        self.changed(page, &list);
        Ok(())
    }

    /// This page's filter: a CSS rule written into this page only (a text patch), so the
    /// list's shared re-renders leave it in place.
    async fn filter(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let calls = page.get_mut::<FilterCalls>();
        calls.0 += 1;
        let calls = calls.0;
        let filter: String = sender.value.chars().take(MAX_TEXT_CHARS).collect();
        page.apply(Patch::set("#filter_rule", filter_rule(&filter)))?;
        page.apply(Patch::set("#filter_calls", calls.to_string()))?;
        Ok(())
    }

    /// Asks first; the handler waits for the person's answer.
    async fn clear(&self, page: &mut Page, _: Sender) -> Result<bool, BoxError> {
        let sure = page
            .confirm("Clear the list?", "Every item goes, on every page.")
            .await?;
        if sure {
            let list = list_of(page);
            self.lists.change(&list, Vec::clear);
            self.changed(page, &list);
        }
        Ok(sure)
    }

    /// Starts the job and returns at once: the page keeps handling events (`#add`) while it
    /// runs, and the job drives the page through its handle. tether.js disables `#import` from
    /// the click; the server's own `disabled = true` (sent before the reply) keeps it disabled
    /// after the reply, since tether.js leaves what the server set, until the job enables it.
    async fn import(&self, page: &mut Page, _: Sender) -> Result<(), BoxError> {
        let handle = page.handle();
        handle.set_prop("#import", "disabled", true)?;
        handle.set_prop("#progress", "value", 0)?;
        tokio::task::spawn(import_samples(handle, self.lists.clone(), list_of(page)));
        Ok(())
    }

    /// Reads a live layout property in the browser (no `eval`: works with exec_js off).
    async fn measure(&self, page: &mut Page, _: Sender) -> Result<Value, BoxError> {
        let props = page.query_one("#items", &["offsetWidth"]).await?;
        let width = props.get("offsetWidth").cloned().unwrap_or(Value::Null);
        page.apply(Patch::set("#width", width.to_string()))?;
        Ok(width)
    }
}

/// Adds `sample 1` … `sample 5`, 400 ms apart, moving the clicking page's progress bar. The
/// list changes even if that page goes away meanwhile; only its own patches stop.
async fn import_samples(page: PageHandle, lists: Lists, list: String) {
    let commanders = page.commanders();
    for n in 1..=5u32 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if lists.add(&list, &format!("sample {n}")).is_ok() {
            publish(&commanders, &lists, &list);
        }
        let _ = page.set_prop("#progress", "value", n * 20);
    }
    let _ = page.set_prop("#import", "disabled", false);
}

impl Commander for Todo {
    fn name(&self) -> &'static str {
        "todo"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("add", Self::add)
            .on("toggle", Self::toggle)
            .on("remove", Self::remove)
            .on("filter", Self::filter)
            .on("clear", Self::clear)
            .on("import", Self::import)
            .on("measure", Self::measure)
    }

    /// Every (re)join: catch up with what was missed. An import job of an earlier
    /// connection can no longer enable `#import`: do it here.
    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        page.set_prop("#import", "disabled", false)?;
        self.show(page)
    }
}

/// A list name: 1–32 of `[a-z0-9-]`.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn list_page(
    req: HttpRequest,
    name: web::Path<String>,
    lists: web::Data<Lists>,
    commanders: web::Data<Commanders>,
) -> HttpResponse {
    if !valid_name(&name) {
        return HttpResponse::NotFound().body("no such list");
    }
    let items = lists.items(&name);
    let count = items.len();
    let region = match commanders.live("todo", "items", &ItemsView { items }) {
        Ok(region) => region,
        Err(err) => return HttpResponse::InternalServerError().body(err.to_string()),
    };
    let options = PageOptions::new()
        .assign("list", name.as_str())
        .live(&region);
    let page = ListPage {
        name: &name,
        count,
        items: region.html().clone(),
        viewers: commanders.counter(&same_path(req.path()), Count::Connections),
        script: commanders.script_with("todo", &req, &options),
    };
    tether::render(&page)
}

async fn home() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/lists/home"))
        .finish()
}

/// The app: its endpoint (the `todo` commander) and its routes, as `main` serves them and the
/// kit tests below drive them.
fn app(
    mut config: Config,
) -> Result<
    (
        Endpoint,
        impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ),
    BoxError,
> {
    // A full list (500 items of 200 characters) is about 160 KiB of encrypted assigns.
    config.commander.max_live_bytes = config.commander.max_live_bytes.max(256 * 1024);
    let lists = Lists::default();
    let endpoint = Endpoint::builder(config)?
        .commander(Todo {
            lists: lists.clone(),
        })
        .build()?;
    let commanders = endpoint.commanders().clone();
    let routes = move |routes: &mut web::ServiceConfig| {
        routes
            .app_data(web::Data::new(commanders.clone()))
            .app_data(web::Data::new(lists.clone()))
            .route("/", web::get().to(home))
            .route("/lists/{name}", web::get().to(list_page));
    };
    Ok((endpoint, routes))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let config = Config::from_env().map_err(std::io::Error::other)?;
    let port = config.endpoint.port;
    let (endpoint, routes) = app(config).map_err(std::io::Error::other)?;
    tether::serve(endpoint, support::listen(port)?, routes).await
}

/// The contract above, driven with `tether::testing` (no browser): `cargo test --features
/// testing --example live_todo`. What needs a real browser (focus and caret surviving a
/// re-render, the filter's CSS hiding items, layout, tether.js's own reconnect) is in
/// `tests/node/live_todo.test.mjs`.
#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use tether::testing::{self, TestApp, TestPage};

    use super::app;

    fn serve() -> TestApp {
        let (endpoint, routes) = app(testing::config()).expect("the app builds");
        TestApp::serve(endpoint, routes)
    }

    async fn add(page: &mut TestPage, text: &str) {
        page.fill("#new_item", text).await;
        page.click("#add").await;
    }

    fn items(page: &TestPage) -> Vec<String> {
        page.texts("#items li.item .text")
    }

    #[tokio::test]
    async fn routes_redirect_home_and_refuse_bad_names() {
        let app = serve();
        let home = app.get("/").await;
        assert_eq!(
            (home.status, home.header("location")),
            (302, Some("/lists/home"))
        );
        for bad in [
            "/lists/Home",
            "/lists/a_b",
            &format!("/lists/{}", "a".repeat(33)),
        ] {
            assert_eq!(app.get(bad).await.status, 404, "{bad}");
        }
        let page = app.open("/").await;
        assert_eq!(page.path(), "/lists/home");
        assert_eq!(page.count("#items li.item"), 0);
    }

    #[tokio::test]
    async fn adding_shows_on_every_page_of_the_list_and_clears_only_the_clicking_page() {
        let app = serve();
        let mut a = app.open("/lists/shop").await;
        let mut b = app.open("/lists/shop").await;
        let mut other = app.open("/lists/other").await;
        b.fill("#new_item", "half-typed").await;
        add(&mut a, "  <b>milk</b>  ").await;
        for page in [&mut a, &mut b] {
            page.wait_until(|p| items(p) == ["<b>milk</b>"] && p.text("#count") == "1")
                .await;
            assert_eq!(page.count("#items b"), 0, "markup in an item is text");
        }
        assert_eq!(a.value("#new_item"), "");
        assert_eq!(b.value("#new_item"), "half-typed");
        other.idle(Duration::from_millis(50)).await;
        assert_eq!(items(&other), Vec::<String>::new());

        add(&mut a, "   ").await;
        assert_eq!(a.text("#error"), "Type something first.");
        add(&mut a, &"x".repeat(201)).await;
        assert_eq!(a.text("#error"), "An item is at most 200 characters.");
        add(&mut a, &"y".repeat(200)).await;
        assert_eq!(a.text("#error"), "");
        a.wait_until(|p| p.count("#items li.item") == 2).await;
    }

    #[tokio::test]
    async fn done_toggles_and_remove_removes_on_every_page_keeping_typed_text() {
        let app = serve();
        let mut a = app.open("/lists/chores").await;
        let mut b = app.open("/lists/chores").await;
        for text in ["bread", "eggs", "tea"] {
            add(&mut a, text).await;
        }
        b.wait_until(|p| items(p) == ["bread", "eggs", "tea"]).await;
        b.fill("#new_item", "half").await;
        a.check("#items li.item:nth-child(2) input.done", true)
            .await;
        for page in [&mut a, &mut b] {
            page.wait_until(|p| p.count("#items li.item.done") == 1)
                .await;
            assert_eq!(page.texts("#items li.done .text"), ["eggs"]);
            assert!(page.is_checked("#items li.done input.done"));
        }
        a.click("#items li.item:nth-child(1) button.remove").await;
        b.wait_until(|p| items(p) == ["eggs", "tea"]).await;
        a.check("#items li.done input.done", false).await;
        b.wait_until(|p| p.count("#items li.done") == 0).await;
        assert_eq!(
            b.value("#new_item"),
            "half",
            "a re-render keeps what B typed"
        );
    }

    /// 8 keys 50 ms apart on a paused clock: the debounce (300 ms) sends one filter run.
    #[tokio::test(start_paused = true)]
    async fn the_filter_is_debounced_and_written_into_this_page_only() {
        let app = serve();
        let mut a = app.open("/lists/fruit").await;
        let b = app.open("/lists/fruit").await;
        a.type_text("#filter", "strawber", Duration::from_millis(50))
            .await;
        a.wait_until(|p| p.text("#filter_calls") == "1").await;
        a.idle(Duration::from_millis(400)).await;
        assert_eq!(a.text("#filter_calls"), "1");
        assert!(
            a.text("#filter_rule")
                .contains(r#"[data-text*="strawber" i]"#)
        );
        assert_eq!(
            (b.text("#filter_rule"), b.text("#filter_calls")),
            (String::new(), "0".into())
        );
    }

    #[tokio::test]
    async fn clear_asks_first_cancel_keeps_the_list_and_ok_empties_every_page() {
        let app = serve();
        let mut a = app.open("/lists/clearing").await;
        let mut b = app.open("/lists/clearing").await;
        add(&mut a, "one").await;
        b.wait_until(|p| items(p) == ["one"]).await;

        a.click("#clear").await;
        assert!(a.exists("dialog[open] button[value=ok]"));
        assert!(a.is_disabled("#clear"), "busy while the handler waits");
        a.click("dialog[open] button[value=cancel]").await;
        assert!(!a.exists("dialog[open]") && !a.is_disabled("#clear"));
        assert_eq!(a.asked()[0]["op"], "modal");
        assert_eq!(items(&a), ["one"]);

        a.click("#clear").await;
        a.click("dialog[open] button[value=ok]").await;
        b.wait_until(|p| p.count("#items li.item") == 0).await;
        assert_eq!(items(&a), Vec::<String>::new());
    }

    #[tokio::test]
    async fn import_fills_every_page_moves_this_progress_bar_and_keeps_add_working() {
        let app = serve();
        let mut a = app.open("/lists/samples").await;
        let mut b = app.open("/lists/samples").await;
        a.click("#import").await;
        assert!(a.is_disabled("#import"));
        add(&mut a, "during").await;
        a.wait_until(|p| items(p).contains(&"during".to_string()))
            .await;
        a.wait_until(|p| {
            p.value("#progress") == "100" || p.attr("#progress", "value").as_deref() == Some("100")
        })
        .await;
        a.wait_until(|p| !p.is_disabled("#import")).await;
        let samples: Vec<String> = (1..=5).map(|n| format!("sample {n}")).collect();
        b.wait_until(|p| items(p).iter().filter(|t| t.starts_with("sample")).count() == 5)
            .await;
        let shown: Vec<String> = items(&b)
            .into_iter()
            .filter(|t| t.starts_with("sample"))
            .collect();
        assert_eq!(shown, samples, "one by one, in order");
        assert_eq!(
            b.attr("#progress", "value").as_deref(),
            Some("0"),
            "only the clicking page's bar"
        );
    }

    #[tokio::test]
    async fn measure_shows_the_width_the_browser_reports() {
        let app = serve();
        let mut a = app.open("/lists/sizes").await;
        a.set_layout("#items", "offsetWidth", json!(333));
        assert_eq!(a.click("#measure").await, Some(json!(333)));
        assert_eq!(a.text("#width"), "333");
        assert_eq!(a.asked()[0]["props"], json!(["offsetWidth"]));
    }

    #[tokio::test]
    async fn viewers_count_the_pages_open_on_the_list() {
        let app = serve();
        let mut a = app.open("/lists/seen").await;
        a.wait_until(|p| p.text("#viewers").trim() == "1").await;
        let mut b = app.open("/lists/seen").await;
        let mut elsewhere = app.open("/lists/unseen").await;
        for page in [&mut a, &mut b] {
            page.wait_until(|p| p.text("#viewers").trim() == "2").await;
        }
        elsewhere
            .wait_until(|p| p.text("#viewers").trim() == "1")
            .await;
        drop(b);
        a.wait_until(|p| p.text("#viewers").trim() == "1").await;
    }

    #[tokio::test]
    async fn controls_are_disabled_while_the_socket_is_down_and_the_page_catches_up() {
        let app = serve();
        let mut a = app.open("/lists/offline").await;
        let mut b = app.open("/lists/offline").await;
        a.disconnect().await;
        assert!(a.is_disabled("#add") && a.is_disabled("#import"));
        add(&mut b, "while away").await;
        a.reconnect().await;
        assert!(!a.is_disabled("#add") && !a.is_disabled("#import"));
        a.wait_until(|p| items(p) == ["while away"]).await;
    }
}
