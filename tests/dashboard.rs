//! The dashboard's and `/metrics`' guard over real HTTP and real WebSockets: the dashboard
//! socket takes the password at its upgrade and its page tokens die with the password, the
//! metrics token opens `/metrics` only, wrong guesses are throttled per client, and every
//! answer of the page forbids framing.

mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::{Client, Refused, TestServer, http_get_with, reply, test_config};
use tether::{
    Config,
    channel::BoxError,
    commander::{Commander, Page},
};

const PASSWORD: &str = "the-first-dashboard-password";
const NEW_PASSWORD: &str = "the-second-dashboard-password";
const METRICS_TOKEN: &str = "a-token-for-the-prometheus-scraper";

/// An app commander, so that the app's own commander socket (`/tether/socket`) exists.
struct App;

impl Commander for App {
    fn name(&self) -> &'static str {
        "app"
    }

    async fn on_connect(&self, _page: &mut Page) -> Result<(), BoxError> {
        Ok(())
    }
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn config(password: Option<&str>, metrics_token: Option<&str>) -> Config {
    let mut config = test_config();
    config.endpoint.dashboard_password = password.map(str::to_string);
    config.endpoint.metrics_token = metrics_token.map(str::to_string);
    config
}

fn start(config: Config) -> TestServer {
    TestServer::start_with_dashboard(config, |builder| builder.commander(App))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The value of `attribute` in `html` (HTML-unescaped).
fn attribute(html: &str, attribute: &str) -> String {
    let marker = format!("{attribute}=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {attribute} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The dashboard page of `server` with `password`: its socket path and its page token.
async fn dashboard_page(server: &TestServer, password: &str) -> (String, String) {
    let auth = basic("admin", password);
    let (status, _, body) = http_get_with(
        server.port,
        "/tether/dashboard",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        attribute(&body, "data-tether-socket"),
        attribute(&body, "data-tether-token"),
    )
}

async fn connect(
    server: &TestServer,
    socket: &str,
    authorization: Option<&str>,
) -> Result<Client, Refused> {
    let url = format!("ws://127.0.0.1:{}{socket}/websocket?vsn=2.0.0", server.port);
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    Client::try_connect(&url, &headers).await
}

async fn join_dashboard(client: &mut Client, token: &str) -> Value {
    client
        .join("tether:page:tether_dashboard", json!({ "token": token }))
        .await
        .1
}

#[tokio::test]
async fn the_dashboard_socket_takes_the_password_and_its_tokens_die_with_the_password() {
    let server = start(config(Some(PASSWORD), None));
    let (socket, token) = dashboard_page(&server, PASSWORD).await;

    // Without credentials, or with wrong ones, the dashboard's socket is not upgraded.
    for authorization in [
        None,
        Some(basic("admin", NEW_PASSWORD)),
        Some(basic("root", PASSWORD)),
    ] {
        match connect(&server, &socket, authorization.as_deref()).await {
            Err(Refused(status)) => assert_eq!(status, 401, "{authorization:?}"),
            Ok(mut client) => {
                let joined = join_dashboard(&mut client, &token).await;
                panic!("{socket} upgraded with {authorization:?}; the join answered {joined}")
            }
        }
    }
    // The app's own commander socket knows no dashboard.
    let mut app = connect(&server, "/tether/socket", None)
        .await
        .expect("the app's commander socket");
    let refused = reply(&join_dashboard(&mut app, &token).await, "error");
    assert_eq!(refused["reason"], "unknown commander");

    // With the password: joined, and the live view arrives.
    let good = basic("admin", PASSWORD);
    let mut page = connect(&server, &socket, Some(&good))
        .await
        .expect("upgrade with the password");
    reply(&join_dashboard(&mut page, &token).await, "ok");
    let morph = page.recv_until(|frame| frame[3] == "patch").await;
    assert!(morph.to_string().contains("dashboard_live"), "{morph}");
    drop(page);
    drop(app);
    drop(server);

    // The same app restarted with a new password (same secret_key_base).
    let server = start(config(Some(NEW_PASSWORD), None));
    assert!(matches!(
        connect(&server, &socket, Some(&good)).await,
        Err(Refused(401))
    ));
    let (new_socket, _) = dashboard_page(&server, NEW_PASSWORD).await;
    assert_eq!(new_socket, socket);
    let mut page = connect(&server, &socket, Some(&basic("admin", NEW_PASSWORD)))
        .await
        .expect("upgrade with the new password");
    let refused = reply(&join_dashboard(&mut page, &token).await, "error");
    assert_eq!(
        refused["reason"], "invalid page token",
        "the old password's token"
    );
    let mut app = connect(&server, "/tether/socket", None).await.unwrap();
    let refused = reply(&join_dashboard(&mut app, &token).await, "error");
    assert_eq!(refused["reason"], "unknown commander");
}

#[tokio::test]
async fn the_metrics_token_opens_metrics_and_nothing_else() {
    let server = start(config(Some(PASSWORD), Some(METRICS_TOKEN)));
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let (status, headers, body) =
        http_get_with(server.port, "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert!(body.contains("tether_connections"), "{body}");
    // The password still opens /metrics.
    let good = basic("admin", PASSWORD);
    let (status, _, _) = http_get_with(server.port, "/metrics", &[("authorization", &good)]).await;
    assert_eq!(status, 200);
    for wrong in [
        format!("Bearer {METRICS_TOKEN}x"),
        format!("Bearer {PASSWORD}"),
        "Bearer ".to_string(),
    ] {
        let (status, _, _) =
            http_get_with(server.port, "/metrics", &[("authorization", &wrong)]).await;
        assert_eq!(status, 401, "{wrong}");
    }
    // The token opens neither the dashboard page nor its socket.
    let (socket, _) = dashboard_page(&server, PASSWORD).await;
    for authorization in [bearer.clone(), basic("admin", METRICS_TOKEN)] {
        let (status, _, body) = http_get_with(
            server.port,
            "/tether/dashboard",
            &[("authorization", &authorization)],
        )
        .await;
        assert_eq!(status, 401, "{authorization}: {body}");
        assert!(!body.contains("data-tether-token"), "{body}");
        assert!(matches!(
            connect(&server, &socket, Some(&authorization)).await,
            Err(Refused(401))
        ));
    }
    drop(server);

    // The token alone: /metrics and no dashboard.
    let server = start(config(None, Some(METRICS_TOKEN)));
    let (status, headers, _) = http_get_with(server.port, "/metrics", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some(r#"Bearer realm="tether""#)
    );
    let (status, _, _) =
        http_get_with(server.port, "/metrics", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200);
    let (status, _, _) = http_get_with(
        server.port,
        "/tether/dashboard",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wrong_guesses_from_one_client_are_throttled_even_for_the_right_password() {
    let server = start(config(Some(PASSWORD), None));
    let good = basic("admin", PASSWORD);
    // Requests without credentials are no guesses: never throttled.
    for _ in 0..50 {
        let (status, _, _) = http_get_with(server.port, "/tether/dashboard", &[]).await;
        assert_eq!(status, 401);
    }
    let (mut unauthorized, mut throttled) = (0, 0);
    let mut retry_after = None;
    // 20 free guesses, then each guess (also one answered 429) doubles the lockout: after
    // 30 more it is minutes long, however slowly this machine sent them.
    for n in 0..50 {
        let wrong = basic("admin", &format!("guess-number-{n}"));
        let path = if n % 2 == 0 {
            "/tether/dashboard"
        } else {
            "/metrics"
        };
        let (status, headers, body) =
            http_get_with(server.port, path, &[("authorization", &wrong)]).await;
        match status {
            401 => unauthorized += 1,
            429 => {
                throttled += 1;
                retry_after = header(&headers, "retry-after").map(str::to_string);
                assert!(!body.contains("tether_connections"), "{body}");
            }
            other => panic!("guess {n} answered {other}"),
        }
    }
    // The 21st guess is the first to lock; a slow machine may let a few more through as
    // each short lockout ends before the next guess.
    assert!(
        (21..=30).contains(&unauthorized),
        "{unauthorized} guesses answered 401 before the lockout"
    );
    assert_eq!(unauthorized + throttled, 50);
    let retry: u64 = retry_after
        .expect("a Retry-After on the 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1, "{retry}");
    // Locked out: the right password waits too, on every route.
    for path in ["/tether/dashboard", "/metrics"] {
        let (status, headers, body) =
            http_get_with(server.port, path, &[("authorization", &good)]).await;
        assert_eq!(status, 429, "{path}: {body}");
        let retry: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
        assert!(retry >= 60, "the lockout is minutes long by now: {retry}");
    }
    let socket = "/tether/dashboard/socket";
    assert!(matches!(
        connect(&server, socket, Some(&good)).await,
        Err(Refused(429))
    ));
}

#[tokio::test]
async fn dashboard_answers_may_not_be_framed() {
    let server = start(config(Some(PASSWORD), None));
    let good = basic("admin", PASSWORD);
    for (authorization, expected) in [(Some(good.as_str()), 200), (None, 401)] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let (status, headers, _) = http_get_with(server.port, "/tether/dashboard", &headers).await;
        assert_eq!(status, expected);
        assert_eq!(
            header(&headers, "content-security-policy"),
            Some("frame-ancestors 'none'"),
            "{headers:?}"
        );
        assert_eq!(
            header(&headers, "x-frame-options"),
            Some("DENY"),
            "{headers:?}"
        );
        assert_eq!(
            header(&headers, "x-content-type-options"),
            Some("nosniff"),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn dashboard_tokens_age_out_with_the_shorter_of_the_two_limits() {
    // The dashboard's limit is min(commander.page_token_max_age_s, 300 s): with 1 s here a
    // token is refused two seconds later (the point of this test is time passing).
    let mut config = config(Some(PASSWORD), None);
    config.commander.page_token_max_age_s = 1;
    let server = start(config);
    let (socket, token) = dashboard_page(&server, PASSWORD).await;
    let good = basic("admin", PASSWORD);
    let mut page = connect(&server, &socket, Some(&good)).await.unwrap();
    reply(&join_dashboard(&mut page, &token).await, "ok");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let mut late = connect(&server, &socket, Some(&good)).await.unwrap();
    let refused = reply(&join_dashboard(&mut late, &token).await, "error");
    assert_eq!(refused["reason"], "invalid page token");
}
