//! The Phoenix Presence guide's chat, served by tether.
//! (Its exact contract, which the tests drive: `docs/contracts.md`, "The examples".)
//!
//! Run `cargo run --example presence_chat`, then open <http://127.0.0.1:4000/?name=Alice> in
//! two tabs and <http://127.0.0.1:4000/?name=Bob> in a third: every page lists
//! `Alice (count: 2)` and `Bob (count: 1)`, and closing a tab updates the counts live.
//!
//! - Socket `/socket`: the connect param `user_id` is required (1 to 128 bytes), otherwise
//!   the upgrade is refused with HTTP 403.
//! - Channel `room:*`: after join, the socket is tracked under its `user_id` with meta
//!   `{"online_at": "<unix seconds>"}` and receives `presence_state`, then `presence_diff`s.
//!   `shout` broadcasts its payload to the room; `update_status` `{"status": s}` updates the
//!   caller's meta (an error reply, and no change, if the meta would exceed
//!   `presence.max_meta_bytes` or the caller updates more often than
//!   `presence.max_updates_per_s`).
//! - `GET /?name=Alice` serves the page (tether.js and its Presence client).

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::{Value, json};
use tether::{
    Config, Endpoint, SocketRoute,
    channel::{Assigns, Channel, HandleResult, JoinResult, Reply, Router, Socket},
    endpoint::{ConnectError, ConnectInfo},
    presence::Presence,
};

/// The `room:*` channel.
struct Room {
    presence: Presence,
}

fn user_id(socket: &Socket) -> String {
    socket
        .assigns()
        .get_str("user_id")
        .unwrap_or_default()
        .to_string()
}

impl Channel for Room {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, socket: &mut Socket) -> JoinResult {
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let user = user_id(socket);
        self.presence
            .track(socket, &user, json!({ "online_at": online_at }))?;
        self.presence.subscribe(socket);
        Ok(json!({}))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "shout" => {
                socket.broadcast("shout", &payload);
                Ok(Reply::None)
            }
            "update_status" => {
                let Some(status) = payload.get("status").cloned() else {
                    return Ok(Reply::Error(json!({"reason": "status required"})));
                };
                let user = user_id(socket);
                let updated = self.presence.update(socket, &user, |meta| {
                    let mut meta = meta.clone();
                    meta.insert("status".into(), status);
                    meta
                });
                match updated {
                    Ok(()) => Ok(Reply::ok()),
                    // e.g. a status that makes the meta larger than presence.max_meta_bytes,
                    // or too many updates (presence.max_updates_per_s)
                    Err(err) => Ok(Reply::Error(json!({"reason": err.to_string()}))),
                }
            }
            _ => Ok(Reply::unhandled()),
        }
    }
}

/// Accepts a connection only with a `user_id` of 1 to 128 bytes.
fn connect(info: &ConnectInfo<'_>) -> Result<Assigns, ConnectError> {
    match info.param("user_id") {
        Some(id) if !id.is_empty() && id.len() <= 128 => {
            let mut assigns = Assigns::default();
            assigns.insert("user_id", id);
            Ok(assigns)
        }
        _ => Err(ConnectError::new("user_id must be 1 to 128 bytes")),
    }
}

#[derive(Template)]
#[template(path = "presence_chat.html")]
struct Page {
    name: String,
}

#[derive(Deserialize)]
struct PageQuery {
    name: Option<String>,
}

async fn page(query: web::Query<PageQuery>) -> HttpResponse {
    let name = query
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "guest".to_string());
    tether::render(&Page { name })
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let config = Config::from_env().map_err(std::io::Error::other)?;
    let port = config.endpoint.port;
    let builder = Endpoint::builder(config).map_err(std::io::Error::other)?;
    let room = Room {
        presence: builder.presence(),
    };
    let socket =
        SocketRoute::new("/socket", Router::new().channel("room:*", room)).connect(connect);
    let endpoint = builder
        .socket(socket)
        .build()
        .map_err(std::io::Error::other)?;
    tether::serve(endpoint, support::listen(port)?, |routes| {
        routes.route("/", web::get().to(page));
    })
    .await
}
