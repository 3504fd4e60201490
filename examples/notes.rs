//! The app tour: a small notes app with what an app of today needs beyond Drab — live
//! navigation and URL state, a form with validation feedback and a loading state, flash,
//! client-side commands, a JS hook, markup the page's own script owns, and a live count of
//! the pages showing each note. Notes live in the server's memory.
//!
//! Run `cargo run --example notes`, then open <http://127.0.0.1:4000/notes> in two tabs.
//!
//! The contract (also in `docs/contracts.md`; uploads, the long list's frame size and the
//! async job come with the next part of the tour):
//! - `GET /` redirects to `/notes`. `GET /notes` is the list, `GET /notes?q=<text>` the list
//!   filtered, `GET /notes/<id>` a note (`id` decimal; unknown id → 404). Each loads fully on
//!   its own and shows the same as navigating there.
//! - `<ul id="notes">`: one `<li id="note-<id>">` per note, newest first, holding
//!   `<a class="note-link" href="/notes/<id>">` with the title (as text).
//!   `<span id="note_count">`: the number of notes matching the current filter.
//! - Clicking a `.note-link` shows the note without loading a new document: `location.pathname`
//!   becomes `/notes/<id>`, `document.title` `<title> · notes`, and the page shows
//!   `<h1 id="note_title">` and `<div id="note_body">` (text). `<a id="back" href="/notes">`
//!   returns the same way. Back and Forward move between these views without a document load.
//! - `<input id="search">`: as the person types, within 1 s of the last keystroke the list
//!   shows only notes whose title or body contains the text (case-insensitive) and the address
//!   bar's query is `?q=<text>` (no document load); loading `/notes?q=<text>` shows that list
//!   with `#search` holding the text; an empty search shows all and drops `q`.
//! - `<form id="new_note">` (list page): `<input name="title">`, `<textarea name="body">`,
//!   `<button id="save" type="submit">Save</button>`. The title must be 3–80 characters after
//!   trimming. `<p id="title_error">` stays empty until the title field has been used (typed
//!   in and left, or the form submitted); from then on it says why while the title is
//!   invalid, and empties once it is valid.
//! - Saving takes at least 500 ms on the server. Meanwhile `#save` is disabled and reads
//!   `Saving…`; then it reads `Save` and is enabled, the form is empty, and
//!   `<div id="flash" role="status">` says `Note saved`. The note appears at the top of
//!   `#notes` on every open list page (filters apply) within 1 s. An invalid submit saves
//!   nothing and shows the error.
//! - The flash goes when the person navigates away and back, or clicks `#flash .close`;
//!   closing it sends nothing to the server.
//! - `<button id="menu_button">` shows and hides `<nav id="menu">` (hidden at first) on each
//!   click, entirely in the browser: no frame goes over the socket for it.
//! - `<div id="widget">` sits inside the part of the list page that the server re-renders when
//!   notes change, and is marked so that re-renders leave it alone.
//! - `<canvas id="chart">` is driven by a client hook: mounted, it sets `data-mounted="true"`;
//!   whenever the notes change, the server pushes the lengths of the newest 20 titles (newest
//!   first) as an event, which the hook stores in `data-points` (comma-separated) and draws.
//! - `POST /notes/seed?n=<n>` (n ≤ 20,000; for development) adds n notes titled `seed <i>`.
//! - `<span id="viewers">` on a note's page: a live count of pages showing that note.
//!
//! What each part teaches:
//! - live navigation: `tether-navigate` links (another page over the same socket) and
//!   `Page::replace_patch` + `Commander::handle_params` for the search's URL;
//! - forms: `tether-disable-with`, `Sender::used` for feedback only on used fields,
//!   `put_flash` into a `tether-flash` container;
//! - a `Js` command list for the menu (no frame), `tether-update="ignore"` for the widget,
//!   a client hook fed by `push_event`;
//! - a per-page filter applied to broadcast news in `Commander::handle_info`.

mod support;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tether::{
    Config, Endpoint,
    channel::BoxError,
    commander::{
        Broadcasting, Commander, Commanders, Count, Handlers, Html, Info, Js, Page, Patch,
        Position, Sender, same_path,
    },
};

/// Most notes the server keeps.
const MAX_NOTES: usize = 50_000;
/// Most notes one seed request adds.
const MAX_SEED: usize = 20_000;
/// How long a save takes on the server (standing in for a database).
const SAVE_TAKES: Duration = Duration::from_millis(500);
/// How many of the newest titles the chart shows.
const CHART_POINTS: usize = 20;

#[derive(Clone, Serialize, Deserialize)]
struct Note {
    id: u64,
    title: String,
    body: String,
}

impl Note {
    fn matches(&self, q: &str) -> bool {
        let q = q.to_lowercase();
        q.is_empty()
            || self.title.to_lowercase().contains(&q)
            || self.body.to_lowercase().contains(&q)
    }
}

/// Every note, oldest first, in memory.
#[derive(Clone, Default)]
struct Notes(Arc<Mutex<Vec<Note>>>);

impl Notes {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<Note>) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn add(&self, title: &str, body: &str) -> Option<Note> {
        self.with(|notes| {
            if notes.len() >= MAX_NOTES {
                return None;
            }
            // Notes are never removed: ids run 1, 2, 3, … per store.
            let note = Note {
                id: notes.len() as u64 + 1,
                title: title.to_string(),
                body: body.to_string(),
            };
            notes.push(note.clone());
            Some(note)
        })
    }

    fn get(&self, id: u64) -> Option<Note> {
        self.with(|notes| notes.iter().find(|n| n.id == id).cloned())
    }

    /// The notes matching `q`, newest first.
    fn matching(&self, q: &str) -> Vec<Note> {
        self.with(|notes| {
            notes
                .iter()
                .rev()
                .filter(|n| n.matches(q))
                .cloned()
                .collect()
        })
    }

    /// The lengths (in characters) of the newest titles, newest first.
    fn points(&self) -> Vec<usize> {
        self.with(|notes| {
            notes
                .iter()
                .rev()
                .take(CHART_POINTS)
                .map(|n| n.title.chars().count())
                .collect()
        })
    }
}

/// Why a title is refused, or `None` (3 to 80 characters after trimming).
fn title_problem(title: &str) -> Option<&'static str> {
    match title.trim().chars().count() {
        0 => Some("A note needs a title."),
        1..=2 => Some("A title has at least 3 characters."),
        81.. => Some("A title has at most 80 characters."),
        _ => None,
    }
}

/// The list page's topic (every list page, whatever its filter).
fn list_topic() -> String {
    same_path("/notes")
}

#[derive(Template)]
#[template(path = "notes_items.html")]
struct Items<'a> {
    notes: &'a [Note],
}

/// The part of the list page re-rendered (morphed) whenever the notes it shows change: the
/// count, and `#widget`, which the page's own script fills and the morph leaves alone
/// (`tether-update="ignore"`). The list itself only gets the new item.
#[derive(Template)]
#[template(path = "notes_summary.html")]
struct Summary {
    count: usize,
}

#[derive(Template)]
#[template(path = "notes_list.html")]
struct ListView<'a> {
    q: &'a str,
    summary: Html,
    items: Html,
    title_error: &'a str,
}

#[derive(Template)]
#[template(path = "notes_note.html")]
struct NoteView<'a> {
    title: &'a str,
    body: &'a str,
    viewers: Html,
}

#[derive(Template)]
#[template(path = "notes.html")]
struct Layout<'a> {
    title: &'a str,
    menu: Html,
    main: Html,
    script: Html,
}

fn rendered(template: &impl Template) -> Result<Html, BoxError> {
    Ok(Html::trusted(template.render()?))
}

/// The `<li>`s of `notes`.
fn items(notes: &[Note]) -> Result<Html, BoxError> {
    rendered(&Items { notes })
}

/// The menu: shown and hidden in the browser, no frame.
fn menu() -> Js {
    Js::new().toggle("#menu")
}

/// The filter a list page shows. The first join of a page load shows what the server rendered
/// (no re-render of a list that may hold thousands of notes); a rejoin re-renders it, since
/// notes may have come meanwhile.
#[derive(Default)]
struct Shown(Option<String>);

/// The commander of both views (the list and a note).
struct NotesApp {
    notes: Notes,
}

impl NotesApp {
    fn q(page: &Page) -> String {
        page.param("q").unwrap_or_default()
    }

    /// The title's feedback: only once the field was used.
    async fn validate(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        if sender.used("title") {
            let title = sender
                .form
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default();
            page.apply(Patch::set(
                "#title_error",
                title_problem(title).unwrap_or(""),
            ))?;
        }
        Ok(())
    }

    async fn save(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let field = |name: &str| {
            sender
                .form
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let (title, body) = (field("title"), field("body"));
        if let Some(problem) = title_problem(&title) {
            page.apply(Patch::set("#title_error", problem))?;
            return Ok(());
        }
        tokio::time::sleep(SAVE_TAKES).await;
        let Some(note) = self.notes.add(&title, &body) else {
            page.apply(Patch::set(
                "#title_error",
                "The server holds too many notes.",
            ))?;
            return Ok(());
        };
        page.apply(Patch::set("#title_error", ""))?;
        page.set_prop("#new_note [name=title]", "value", "")?;
        page.set_prop("#new_note [name=body]", "value", "")?;
        page.put_flash("info", "Note saved")?;
        let commanders = page.commanders();
        commanders.send_info(&list_topic(), "added", &serde_json::to_value(&note)?);
        commanders
            .to(&list_topic())
            .push_event("points", json!({ "points": self.notes.points() }))?;
        Ok(())
    }

    async fn search(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let q: String = sender.value.trim().chars().take(200).collect();
        let url = if q.is_empty() {
            "/notes".to_string()
        } else {
            format!("/notes?q={}", encode(&q))
        };
        page.replace_patch(&url)?;
        Ok(())
    }

    /// The list as this page's filter shows it (unless it shows that filter already).
    fn show_list(&self, page: &mut Page) -> Result<(), BoxError> {
        let q = Self::q(page);
        if page.get_mut::<Shown>().0.as_deref() == Some(q.as_str()) {
            return Ok(());
        }
        let notes = self.notes.matching(&q);
        page.apply(Patch::morph("#notes", items(&notes)?))?;
        page.apply(Patch::morph(
            "#summary",
            rendered(&Summary { count: notes.len() })?,
        ))?;
        page.get_mut::<Shown>().0 = Some(q);
        Ok(())
    }
}

/// `q` for a URL's query: letters, digits and `-._~` as they are, the rest percent-encoded.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Commander for NotesApp {
    fn name(&self) -> &'static str {
        "notes"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new()
            .on("validate", Self::validate)
            .on("save", Self::save)
            .on("search", Self::search)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::SamePath]
    }

    /// The list page listens for new notes (each page applies its own filter).
    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        if page.path() == "/notes" {
            page.listen(&list_topic());
            page.push_event("points", json!({ "points": self.notes.points() }))?;
        }
        Ok(())
    }

    /// The page as the server rendered it: the list of the URL's filter.
    async fn on_load(&self, page: &mut Page) -> Result<(), BoxError> {
        page.get_mut::<Shown>().0 = Some(Self::q(page));
        Ok(())
    }

    /// A search changed the URL (or Back/Forward did): show the list it names.
    async fn handle_params(&self, page: &mut Page, _url: &str) -> Result<(), BoxError> {
        if page.path() == "/notes" {
            self.show_list(page)?;
        }
        Ok(())
    }

    /// A note was added somewhere: at the top of this list, if this page's filter shows it.
    async fn handle_info(&self, page: &mut Page, info: Info) -> Result<(), BoxError> {
        let Info::Broadcast { event, payload, .. } = info else {
            return Ok(());
        };
        if event != "added" || page.path() != "/notes" {
            return Ok(());
        }
        let note: Note = serde_json::from_value(payload)?;
        let q = Self::q(page);
        if note.matches(&q) {
            let li = items(std::slice::from_ref(&note))?;
            page.apply(Patch::insert("#notes", Position::AfterBegin, li))?;
            let count = self.notes.matching(&q).len();
            page.apply(Patch::morph("#summary", rendered(&Summary { count })?))?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
}

async fn list_page(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    notes: web::Data<Notes>,
    commanders: web::Data<Commanders>,
) -> HttpResponse {
    let q = query.q.clone().unwrap_or_default();
    let shown = notes.matching(&q);
    let page = items(&shown).and_then(|items| {
        let summary = rendered(&Summary { count: shown.len() })?;
        let main = rendered(&ListView {
            q: &q,
            summary,
            items,
            title_error: "",
        })?;
        Ok(Layout {
            title: "All notes",
            menu: menu().to_html(),
            main,
            script: commanders.script("notes", &req),
        })
    });
    match page {
        Ok(page) => tether::render(&page),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}

async fn note_page(
    req: HttpRequest,
    id: web::Path<String>,
    notes: web::Data<Notes>,
    commanders: web::Data<Commanders>,
) -> HttpResponse {
    let Some(note) = id.parse::<u64>().ok().and_then(|id| notes.get(id)) else {
        return HttpResponse::NotFound().body("no such note");
    };
    let viewers = commanders.counter(&same_path(req.path()), Count::Connections);
    let page = rendered(&NoteView {
        title: &note.title,
        body: &note.body,
        viewers,
    })
    .map(|main| Layout {
        title: &note.title,
        menu: menu().to_html(),
        main,
        script: commanders.script("notes", &req),
    });
    match page {
        Ok(page) => tether::render(&page),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}

#[derive(Deserialize)]
struct Seed {
    n: usize,
}

async fn seed(query: web::Query<Seed>, notes: web::Data<Notes>) -> HttpResponse {
    if query.n > MAX_SEED {
        return HttpResponse::BadRequest().body(format!("n is at most {MAX_SEED}"));
    }
    let added = (1..=query.n)
        .take_while(|i| notes.add(&format!("seed {i}"), "").is_some())
        .count();
    HttpResponse::Ok().body(format!("added {added}"))
}

async fn home() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/notes"))
        .finish()
}

/// The app: its endpoint (the `notes` commander) and its routes, as `main` serves them and the
/// kit tests below drive them.
fn app(
    config: Config,
) -> Result<
    (
        Endpoint,
        impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ),
    BoxError,
> {
    let notes = Notes::default();
    let endpoint = Endpoint::builder(config)?
        .commander(NotesApp {
            notes: notes.clone(),
        })
        .build()?;
    let commanders = endpoint.commanders().clone();
    let routes = move |routes: &mut web::ServiceConfig| {
        routes
            .app_data(web::Data::new(commanders.clone()))
            .app_data(web::Data::new(notes.clone()))
            .route("/", web::get().to(home))
            .route("/notes", web::get().to(list_page))
            .route("/notes/seed", web::post().to(seed))
            .route("/notes/{id}", web::get().to(note_page));
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

/// The server side of the contract, driven with `tether::testing` (no browser):
/// `cargo test --features testing --example notes`. What needs a browser (no document load,
/// `document.title`, Back/Forward in a real history, frames not sent by the menu and the
/// flash's close button, the widget's script, the chart hook) is in
/// `tests/node/notes.test.mjs`.
#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use tether::testing::{self, TestApp, TestPage};

    use super::app;

    fn serve() -> TestApp {
        let (endpoint, routes) = app(testing::config()).expect("the app builds");
        TestApp::serve(endpoint, routes)
    }

    async fn seed(app: &TestApp, n: usize) {
        let response = app.browser().post(&format!("/notes/seed?n={n}")).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }

    fn titles(page: &TestPage) -> Vec<String> {
        page.texts("#notes li .note-link")
    }

    #[tokio::test]
    async fn routes_redirect_to_the_list_and_refuse_unknown_notes() {
        let app = serve();
        let home = app.get("/").await;
        assert_eq!(
            (home.status, home.header("location")),
            (302, Some("/notes"))
        );
        for bad in ["/notes/999", "/notes/abc", "/notes/-1"] {
            assert_eq!(app.get(bad).await.status, 404, "{bad}");
        }
        assert_eq!(app.browser().post("/notes/seed?n=20001").await.status, 400);
        seed(&app, 3).await;
        let list = app.open("/").await;
        assert_eq!(list.path(), "/notes");
        assert_eq!(titles(&list), ["seed 3", "seed 2", "seed 1"]);
        assert_eq!(list.text("#note_count"), "3");
        let filtered = app.open("/notes?q=SEED%202").await;
        assert_eq!(titles(&filtered), ["seed 2"]);
        assert_eq!(filtered.value("#search"), "SEED 2");
    }

    /// Typing on a paused clock: the debounced search runs once, the URL follows.
    #[tokio::test(start_paused = true)]
    async fn the_search_filters_the_list_and_keeps_the_query_in_the_url() {
        let app = serve();
        seed(&app, 12).await;
        let mut page = app.open("/notes").await;
        page.type_text("#search", "seed 1", Duration::from_millis(60))
            .await;
        page.wait_until(|p| p.path() == "/notes?q=seed%201").await;
        page.wait_until(|p| p.text("#note_count") == "4").await;
        assert_eq!(titles(&page), ["seed 12", "seed 11", "seed 10", "seed 1"]);
        page.fill("#search", "").await;
        page.wait_until(|p| p.path() == "/notes" && p.text("#note_count") == "12")
            .await;
    }

    #[tokio::test]
    async fn title_feedback_shows_only_once_the_field_was_used() {
        let app = serve();
        let mut page = app.open("/notes").await;
        page.fill("#new_note [name=body]", "a body first").await;
        assert_eq!(
            page.text("#title_error"),
            "",
            "an untouched title shows nothing"
        );
        page.fill("#new_note [name=title]", "ab").await;
        page.wait_until(|p| p.text("#title_error") == "A title has at least 3 characters.")
            .await;
        page.fill("#new_note [name=title]", "abc").await;
        page.wait_until(|p| p.text("#title_error").is_empty()).await;
        page.fill("#new_note [name=title]", "").await;
        page.submit("#new_note").await;
        assert_eq!(page.text("#title_error"), "A note needs a title.");
        assert_eq!(
            page.count("#notes li"),
            0,
            "an invalid submit saves nothing"
        );
    }

    #[tokio::test]
    async fn saving_flashes_empties_the_form_and_reaches_every_list_its_filter_shows() {
        let app = serve();
        let mut writer = app.open("/notes").await;
        let mut reader = app.open("/notes").await;
        let mut elsewhere = app.open("/notes?q=zzz").await;
        writer.fill("#new_note [name=title]", "  Groceries  ").await;
        writer.fill("#new_note [name=body]", "milk").await;
        let started = std::time::Instant::now();
        writer.submit("#new_note").await;
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(writer.text("#flash"), "Note saved");
        assert!(writer.exists("#flash .close"));
        assert_eq!(writer.value("#new_note [name=title]"), "");
        assert_eq!(writer.value("#new_note [name=body]"), "");
        assert_eq!(
            (writer.text("#save"), writer.is_disabled("#save")),
            ("Save".into(), false)
        );
        for page in [&mut writer, &mut reader] {
            page.wait_until(|p| titles(p) == ["Groceries"] && p.text("#note_count") == "1")
                .await;
        }
        elsewhere.idle(Duration::from_millis(100)).await;
        assert_eq!(titles(&elsewhere), Vec::<String>::new());
        let points = reader
            .events()
            .iter()
            .rev()
            .find(|(name, _)| name == "points");
        assert_eq!(
            points.map(|(_, p)| p["points"].clone()),
            Some(serde_json::json!([9]))
        );
        writer.click("#flash .close").await;
        assert_eq!(writer.text("#flash"), "");
    }

    #[tokio::test]
    async fn links_move_between_the_list_and_notes_and_viewers_follow() {
        let app = serve();
        seed(&app, 2).await;
        let mut a = app.open("/notes").await;
        a.click("#note-1 .note-link").await;
        assert_eq!(a.path(), "/notes/1");
        assert_eq!(
            (a.text("#note_title"), a.text("#note_body")),
            ("seed 1".into(), String::new())
        );
        let mut b = app.open("/notes/1").await;
        for page in [&mut a, &mut b] {
            page.wait_until(|p| p.text("#viewers").trim() == "2").await;
        }
        b.click("#back").await;
        assert_eq!((b.path(), b.count("#notes li")), ("/notes", 2));
        a.wait_until(|p| p.text("#viewers").trim() == "1").await;
        b.back().await;
        assert_eq!(b.path(), "/notes/1");
        b.forward().await;
        assert_eq!(b.path(), "/notes");
    }

    #[tokio::test]
    async fn the_menu_toggles_in_the_page() {
        let app = serve();
        let mut page = app.open("/notes").await;
        let hidden = |p: &TestPage| {
            p.attr("#menu", "style")
                .unwrap_or_default()
                .contains("none")
        };
        assert!(hidden(&page));
        page.click("#menu_button").await;
        assert!(!hidden(&page));
        page.click("#menu_button").await;
        assert!(hidden(&page));
    }
}
