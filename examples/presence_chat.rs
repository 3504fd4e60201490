//! The Phoenix Presence guide's chat, served by tether.
//!
//! Run: `cargo run --example presence_chat` then connect a phoenix.js client to
//! `ws://127.0.0.1:4000/socket` with `params: {user_id: "alice"}` and join `room:lobby`.
//!
//! - The connect param `user_id` is required (non-empty, at most 128 bytes); otherwise the
//!   upgrade is refused with HTTP 403.
//! - `room:*`: `shout` broadcasts the same payload to everyone in the room.

use serde_json::{Value, json};
use tether::{
    Config, Endpoint, SocketRoute,
    channel::{Assigns, Channel, HandleResult, JoinResult, Reply, Router, Socket},
    endpoint::{ConnectError, ConnectInfo},
};

/// The `room:*` channel.
struct Room;

impl Channel for Room {
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

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tether::init_logging();
    let config = Config::from_env().map_err(std::io::Error::other)?;
    let socket =
        SocketRoute::new("/socket", Router::new().channel("room:*", Room)).connect(connect);
    let endpoint = Endpoint::builder(config)
        .socket(socket)
        .build()
        .map_err(std::io::Error::other)?;
    tether::serve(endpoint, |_routes| {}).await
}
