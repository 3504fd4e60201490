//! Mounting tether into an actix-web app that owns its `HttpServer`, under a scope.
//!
//! Run `cargo run --example own_server`; the socket is at `/live/socket` (phoenix.js:
//! `new Socket("/live/socket", {params: {user_id: "alice"}})`), the client script at
//! `/live/tether.js`, and the app's own page at `/`. Channel `room:*` broadcasts `shout`.
//!
//! What it shows: `App::configure(|cfg| endpoint.configure(cfg))` inside a `web::scope`
//! (tether's routes follow the scope), `endpoint.tune_server(HttpServer::new(…))` (the same
//! memory behaviour and write timeout as `tether::serve`), and an orderly shutdown on
//! SIGTERM/SIGINT: `endpoint.shutdown()` before the server stops. With
//! `TETHER_DASHBOARD_PASSWORD` set, the dashboard and `/metrics` are at the root
//! (`endpoint.configure_dashboard`), like every example's. Binds `127.0.0.1:$PORT`
//! and prints `listening on http://127.0.0.1:<port>`, like every example.

mod support;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use tether::{
    Config, Endpoint, SocketRoute,
    channel::{Assigns, Channel, HandleResult, JoinResult, Reply, Router, Socket},
    endpoint::ConnectError,
};

/// The `room:*` channel: `shout` goes to everyone in the room.
struct Room;

impl Channel for Room {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
        Ok(json!({}))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "shout" => {
                socket.broadcast("shout", &payload);
                Ok(Reply::None)
            }
            _ => Ok(Reply::unhandled()),
        }
    }
}

fn connect(info: &tether::endpoint::ConnectInfo<'_>) -> Result<Assigns, ConnectError> {
    let user_id = info
        .param("user_id")
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .ok_or_else(|| ConnectError::new("user_id must be 1 to 128 bytes"))?;
    let mut assigns = Assigns::default();
    assigns.insert("user_id", user_id);
    Ok(assigns)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let config = Config::from_env().map_err(std::io::Error::other)?;
    let port = config.endpoint.port;
    let socket =
        SocketRoute::new("/socket", Router::new().channel("room:*", Room)).connect(connect);
    let endpoint = Endpoint::builder(config)
        .and_then(|builder| builder.socket(socket).build())
        .map_err(std::io::Error::other)?;
    let app_endpoint = endpoint.clone();
    let server = HttpServer::new(move || {
        let endpoint = app_endpoint.clone();
        App::new()
            .configure(|cfg| endpoint.configure_dashboard(cfg))
            .service(web::scope("/live").configure(move |cfg| endpoint.configure(cfg)))
            .route(
                "/",
                web::get().to(|| async { HttpResponse::Ok().body("tether lives under /live") }),
            )
    })
    .disable_signals();
    let server = endpoint
        .tune_server(server)
        .listen(support::listen(port)?)?
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        tether::endpoint::shutdown_signal().await;
        endpoint.shutdown().await;
        handle.stop(true).await;
    });
    server.await
}
