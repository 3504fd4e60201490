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

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let mut config = Config::from_env().map_err(std::io::Error::other)?;
    // A full list (500 items of 200 characters) is about 160 KiB of encrypted assigns.
    config.commander.max_live_bytes = config.commander.max_live_bytes.max(256 * 1024);
    let port = config.endpoint.port;
    let lists = Lists::default();
    let endpoint = Endpoint::builder(config)
        .and_then(|builder| {
            builder
                .commander(Todo {
                    lists: lists.clone(),
                })
                .build()
        })
        .map_err(std::io::Error::other)?;
    let commanders = endpoint.commanders().clone();
    tether::serve(endpoint, support::listen(port)?, move |routes| {
        routes
            .app_data(web::Data::new(commanders.clone()))
            .app_data(web::Data::new(lists.clone()))
            .route("/", web::get().to(home))
            .route("/lists/{name}", web::get().to(list_page));
    })
    .await
}
