//! Drab's online-user counter, on tether.
//! (Its exact contract, which the tests drive: `docs/contracts.md`, "The examples".)
//!
//! Run `cargo run --example online_counter` and open <http://127.0.0.1:4000/> in a few tabs
//! and browsers: `#number_of_users` (distinct presence keys on the `global` topic) and
//! `#number_of_connections` (open pages) stay current on every page, through patches the
//! commander broadcasts when a page connects and when one goes away.
//!
//! - The presence key is the browser id by default (two tabs of one browser: 1 user,
//!   2 connections). With `TETHER_CONFIG` pointing at a file with
//!   `[presence] id = [{ session = "current_user_id" }]` (or `store`), pages are keyed by that
//!   value, falling back to the browser id.
//! - `GET /login?user_id=42` puts `current_user_id = "42"` in the session (actix-session's
//!   signed cookie) and redirects to `/`; `GET /logout` clears it.
//! - The `#remember_me` button puts the `#store_user_id` input's value into the page's store
//!   as `current_user_id` (effective for presence on the next load).

mod support;

use actix_session::{
    Session, SessionMiddleware, config::CookieContentSecurity, storage::CookieSessionStore,
};
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use askama::Template;
use serde::Deserialize;
use tether::{
    Config, Endpoint,
    channel::BoxError,
    commander::{
        Broadcasting, Commander, Commanders, Count, Disconnected, Handlers, Html, ListKeys, Page,
        Patch, Sender, same_topic,
    },
    config::SessionCookieSecurity,
};

/// The commander of the counter page.
struct Counter;

fn global() -> String {
    same_topic("global")
}

/// Whether a presence key is a browser id (a UUID) rather than a user id.
fn uuid_like(key: &str) -> bool {
    key.len() == 36 && key.bytes().filter(|b| *b == b'-').count() == 4
}

/// The two patches that show the current counts.
fn counts(users: usize, connections: usize) -> [Patch; 2] {
    [
        Patch::set("#number_of_users", users.to_string()),
        Patch::set("#number_of_connections", connections.to_string()),
    ]
}

impl Commander for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new().on("remember_me", Self::remember_me)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::Named("global".into())]
    }

    /// The page is already tracked here, so it counts itself.
    async fn on_connect(&self, page: &mut Page) -> Result<(), BoxError> {
        let topic = global();
        for patch in counts(page.count_users(&topic), page.count_connections(&topic)) {
            page.to(&topic).apply(patch)?;
        }
        Ok(())
    }

    /// The name the "who is online" list shows: the user id a page is keyed by, or "guest"
    /// and the start of its browser id (4 hex digits: never the whole id, which every
    /// visitor would see).
    fn presence(&self, page: &Page, _topic: &str) -> Option<(String, serde_json::Value)> {
        let key = page.presence_key();
        let name = if uuid_like(&key) {
            format!("guest {}", &key[..4])
        } else {
            key.clone()
        };
        Some((key, serde_json::json!({ "name": name })))
    }

    /// The page is already untracked here, so it is not counted.
    async fn on_disconnect(&self, _gone: &Disconnected, commanders: &Commanders) {
        let topic = global();
        for patch in counts(
            commanders.count_users(&topic),
            commanders.count_connections(&topic),
        ) {
            // Text patches always pass the patch checks.
            let _ = commanders.to(&topic).apply(patch);
        }
    }
}

impl Counter {
    /// The click on `#remember_me`: the input's value goes into the store (keying presence
    /// from the next load on).
    async fn remember_me(&self, page: &mut Page, sender: Sender) -> Result<(), BoxError> {
        let value = sender
            .form
            .get("store_user_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .trim()
            .to_string();
        page.put_store("current_user_id", value)?;
        Ok(())
    }
}

#[derive(Template)]
#[template(path = "online_counter.html")]
struct IndexPage {
    users: usize,
    connections: usize,
    session_user: Option<String>,
    live_users: Html,
    who: Html,
    script: Html,
}

async fn index(
    req: HttpRequest,
    session: Session,
    commanders: web::Data<Commanders>,
) -> HttpResponse {
    let topic = global();
    let page = IndexPage {
        users: commanders.count_users(&topic),
        connections: commanders.count_connections(&topic),
        session_user: session.get::<String>("current_user_id").ok().flatten(),
        live_users: commanders.counter(&topic, Count::Users),
        // One line per user, drawn by tether.js from this fragment; only `name` leaves the
        // server, and keys (browser ids, user ids) only hashed: no visitor learns another's.
        who: commanders.presence_list_with_keys(
            &topic,
            &["name"],
            Html::trusted(
                r#"<li><span data-field="name"></span> · <span data-field="connections"></span> page(s)</li>"#,
            ),
            ListKeys::Hashed,
        ),
        script: commanders.script("counter", &req),
    };
    tether::render(&page)
}

#[derive(Deserialize)]
struct Login {
    user_id: String,
}

fn to_index() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

async fn login(session: Session, query: web::Query<Login>) -> HttpResponse {
    if query.user_id.is_empty() || query.user_id.len() > 128 {
        return HttpResponse::BadRequest().body("user_id must be 1 to 128 bytes");
    }
    match session.insert("current_user_id", &query.user_id) {
        Ok(()) => to_index(),
        Err(err) => HttpResponse::InternalServerError().body(err.to_string()),
    }
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    to_index()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let mut config = Config::from_env().map_err(std::io::Error::other)?;
    // The session cookie below is signed, not encrypted: tether reads only that kind.
    config.commander.session_cookie_security = SessionCookieSecurity::Signed;
    let port = config.endpoint.port;
    let endpoint = Endpoint::builder(config)
        .and_then(|builder| builder.commander(Counter).build())
        .map_err(std::io::Error::other)?;
    let commanders = endpoint.commanders().clone();
    let key = commanders.keys().key().clone();
    tether::serve(endpoint, support::listen(port)?, move |routes| {
        // The session cookie is actix-session's own, signed with the app key (actix-session
        // can also encrypt it: then leave `session_cookie_security` at "private"); the
        // commanders' socket reads it with the same key.
        let sessions = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_content_security(CookieContentSecurity::Signed)
            .cookie_secure(false)
            .build();
        routes.app_data(web::Data::new(commanders.clone())).service(
            web::scope("")
                .wrap(sessions)
                .route("/", web::get().to(index))
                .route("/login", web::get().to(login))
                .route("/logout", web::get().to(logout)),
        );
    })
    .await
}
