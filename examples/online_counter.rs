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

/// The app: its endpoint (the `counter` commander) and its routes, as `main` serves them and
/// the kit tests below drive them.
fn app(
    mut config: Config,
) -> Result<
    (
        Endpoint,
        impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    ),
    BoxError,
> {
    // The session cookie below is signed, not encrypted: tether reads only that kind.
    config.commander.session_cookie_security = SessionCookieSecurity::Signed;
    let endpoint = Endpoint::builder(config)?.commander(Counter).build()?;
    let commanders = endpoint.commanders().clone();
    let key = commanders.keys().key().clone();
    let routes = move |routes: &mut web::ServiceConfig| {
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

/// The contract above, driven with `tether::testing` (no browser): several browsers, each
/// with its own browser id, session and store, on one app. `tests/node/online_counter.test.mjs`
/// keeps what needs a browser or a cluster.
#[cfg(all(test, feature = "testing"))]
mod tests {
    use tether::{
        config::IdSource,
        testing::{self, TestApp, TestPage},
    };

    use super::app;

    fn counts(page: &TestPage) -> (String, String) {
        (
            page.text("#number_of_users"),
            page.text("#number_of_connections"),
        )
    }

    fn shows(users: usize, connections: usize) -> impl Fn(&TestPage) -> bool {
        move |page| counts(page) == (users.to_string(), connections.to_string())
    }

    #[tokio::test]
    async fn tabs_of_one_browser_are_one_user_and_every_page_follows_the_counts() {
        let (endpoint, routes) = app(testing::config()).expect("the app builds");
        let app = TestApp::serve(endpoint, routes);
        let alice = app.browser();
        let mut tab1 = alice.open("/").await;
        let mut tab2 = alice.open("/").await;
        tab1.wait_until(shows(1, 2)).await;
        let mut bob = app.open("/").await;
        for page in [&mut tab1, &mut tab2, &mut bob] {
            page.wait_until(shows(2, 3)).await;
            // The templated list and the live counter, kept by tether.js's own rules.
            page.wait_until(|p| p.count("[data-tether-presence] li[data-tether-key]") == 2)
                .await;
            page.wait_until(|p| p.text("[data-tether-topic]") == "2")
                .await;
        }
        assert_eq!(
            alice.storage("tether_browser_id"),
            tab1.browser().storage("tether_browser_id")
        );
        drop(bob);
        tab1.wait_until(shows(1, 2)).await;
        tab2.disconnect().await;
        tab1.wait_until(shows(1, 1)).await;
    }

    #[tokio::test]
    async fn pages_keyed_by_the_session_count_one_user_across_browsers() {
        let mut config = testing::config();
        config.presence.id = vec![IdSource::Session("current_user_id".into())];
        let (endpoint, routes) = app(config).expect("the app builds");
        let app = TestApp::serve(endpoint, routes);
        let (one, two) = (app.browser(), app.browser());
        for browser in [&one, &two] {
            let login = browser.get("/login?user_id=42").await;
            assert_eq!(login.status, 303);
        }
        let mut a = one.open("/").await;
        let mut b = two.open("/").await;
        assert!(a.text("body").contains("Logged in as 42"));
        for page in [&mut a, &mut b] {
            page.wait_until(shows(1, 2)).await;
        }
        a.wait_until(|p| p.texts("[data-tether-presence] li [data-field=name]") == ["42"])
            .await;
        one.get("/logout").await;
        a.reconnect().await;
        b.wait_until(shows(2, 2)).await;
    }

    #[tokio::test]
    async fn remember_me_keys_the_next_load_by_the_store() {
        let mut config = testing::config();
        config.presence.id = vec![IdSource::Store("current_user_id".into())];
        let (endpoint, routes) = app(config).expect("the app builds");
        let app = TestApp::serve(endpoint, routes);
        let browser = app.browser();
        let mut page = browser.open("/").await;
        page.fill("#store_user_id", "zoe").await;
        page.click("#remember_me").await;
        assert!(
            browser.storage("tether_store").is_some(),
            "the store token is kept"
        );
        let mut next = browser.open("/").await;
        drop(page);
        next.wait_until(|p| p.texts("[data-tether-presence] li [data-field=name]") == ["zoe"])
            .await;
    }
}
