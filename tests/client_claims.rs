//! What a client cannot claim, over real sockets: a reserved `tether:` topic through an
//! app's catch-all route (issue 21, N5), and a second `on_load` for one page load on a node
//! (issue 21, L5).

mod support;

use std::sync::{Arc, Mutex};

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use support::{Client, TestServer, reply, test_config};
use tether::{
    SocketRoute,
    channel::{BoxError, Channel, HandleResult, JoinResult, Reply, Router, Socket},
    commander::{Broadcasting, Commander, Commanders, Handlers, Page, Sender},
};

/// The Phoenix chat pattern: every topic, and `shout` echoes any event to the topic.
struct Chat;

impl Channel for Chat {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
        Ok(json!({}))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "shout" => {
                let event = payload["event"].as_str().unwrap_or("shout").to_string();
                socket.broadcast(&event, &payload["payload"]);
                Ok(Reply::ok())
            }
            _ => Ok(Reply::unhandled()),
        }
    }
}

type Log = Arc<Mutex<Vec<String>>>;

/// A commander on the `lobby` topic that logs its callbacks.
struct Lobby {
    log: Log,
}

impl Lobby {
    async fn ping(&self, _page: &mut Page, _sender: Sender) -> Result<(), BoxError> {
        Ok(())
    }
}

impl Commander for Lobby {
    fn name(&self) -> &'static str {
        "lobby"
    }

    fn handlers() -> Handlers<Self> {
        Handlers::new().on("ping", Self::ping)
    }

    fn broadcasting(&self) -> Vec<Broadcasting> {
        vec![Broadcasting::Named("lobby".into())]
    }

    async fn on_connect(&self, _page: &mut Page) -> Result<(), BoxError> {
        self.log.lock().unwrap().push("connect".into());
        Ok(())
    }

    async fn on_load(&self, _page: &mut Page) -> Result<(), BoxError> {
        self.log.lock().unwrap().push("load".into());
        Ok(())
    }
}

struct Setup {
    server: TestServer,
    commanders: Commanders,
    log: Log,
}

fn setup() -> Setup {
    let log = Log::default();
    let lobby = Lobby { log: log.clone() };
    let server = TestServer::start_with(test_config(), move |builder| {
        builder
            .socket(SocketRoute::new(
                "/socket",
                Router::new().channel("*", Chat),
            ))
            .commander(lobby)
    });
    let commanders = server.endpoint.commanders().clone();
    Setup {
        server,
        commanders,
        log,
    }
}

impl Setup {
    /// The token of a freshly rendered page of `lobby` (one page load).
    fn token(&self) -> String {
        let req = TestRequest::with_uri("/room").to_http_request();
        let html = self.commanders.script("lobby", &req).to_string();
        let start = html.find("data-tether-token=\"").unwrap() + "data-tether-token=\"".len();
        let end = start + html[start..].find('"').unwrap();
        html[start..end].replace("&#34;", "\"")
    }

    async fn page_socket(&self) -> Client {
        let url = format!(
            "ws://127.0.0.1:{}/tether/socket/websocket?vsn=2.0.0",
            self.server.port
        );
        Client::connect(&url).await
    }

    /// Joins the page channel with `token` and `onload: true`, then waits for the page's
    /// task to have run its connect work (an event's reply comes after it).
    async fn join_page(&self, client: &mut Client, token: &str) {
        let (join_ref, frame) = client
            .join("tether:page:lobby", json!({"token": token, "onload": true}))
            .await;
        reply(&frame, "ok");
        let payload = json!({"handler": "ping", "sender": {}});
        let frame = client
            .call("tether:page:lobby", &join_ref, "event", payload)
            .await;
        reply(&frame, "ok");
    }

    fn loads(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|line| *line == "load").count()
    }
}

#[tokio::test]
async fn a_catch_all_app_route_never_joins_or_publishes_on_tether_topics() {
    let s = setup();
    // A page of the commander, on `tether:topic:lobby`.
    let mut victim = s.page_socket().await;
    s.join_page(&mut victim, &s.token()).await;

    let mut attacker = s.server.client("").await;
    for topic in [
        "tether:topic:lobby",
        "tether:live:lobby:tally",
        "tether:presence:0",
        "tether:count:tether:topic:lobby",
        "tether:page:lobby",
        "tether:",
    ] {
        let (_, frame) = attacker.join(topic, json!({"token": s.token()})).await;
        assert_eq!(
            reply(&frame, "error"),
            json!({"reason": "unmatched topic"}),
            "{topic}"
        );
    }
    // The route still serves every other topic, `shout` included.
    let (join_ref, frame) = attacker.join("room:1", json!({})).await;
    reply(&frame, "ok");
    let mut friend = s.server.client("").await;
    reply(&friend.join("room:1", json!({})).await.1, "ok");
    let shout = json!({"event": "patch", "payload": {"op": "html", "sel": "body", "html": "<img src=x onerror=alert(1)>"}});
    reply(
        &attacker.call("room:1", &join_ref, "shout", shout).await,
        "ok",
    );
    let got = friend.recv_until(|f| f[3] == "patch").await;
    assert_eq!(got[2], "room:1");

    // Nothing reached the page: the only frames before a heartbeat's reply are none.
    let frames = victim.sync().await;
    assert!(frames.is_empty(), "the page received {frames:?}");
}

#[tokio::test]
async fn on_load_runs_once_per_page_load_on_a_node_whatever_the_client_says() {
    let s = setup();
    let token = s.token();
    let mut first = s.page_socket().await;
    s.join_page(&mut first, &token).await;
    assert_eq!(s.loads(), 1, "{:?}", s.log.lock().unwrap());

    // The same page load joining again (a reconnect, or a replay) with `onload: true`.
    first.close().await;
    let mut again = s.page_socket().await;
    s.join_page(&mut again, &token).await;
    s.join_page(&mut again, &token).await; // a rejoin on the same socket too
    let log = s.log.lock().unwrap().clone();
    assert_eq!(log.iter().filter(|l| *l == "connect").count(), 3, "{log:?}");
    assert_eq!(s.loads(), 1, "on_load ran again: {log:?}");

    // Another load of the page (a new render, a new token) runs it.
    let mut other = s.page_socket().await;
    s.join_page(&mut other, &s.token()).await;
    assert_eq!(s.loads(), 2, "{:?}", s.log.lock().unwrap());
}
