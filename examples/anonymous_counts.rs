//! The anonymized counter: only counts ever leave the server.
//! (Its exact contract, which the tests drive: `docs/contracts.md`, "The examples".)
//!
//! Run `cargo run --example anonymous_counts`, connect phoenix.js clients to
//! `ws://127.0.0.1:4000/socket` (param `user_id` optional) and join `video:<id>`.
//!
//! A page with a `user_id` is tracked under the key `"users"` (meta `{"user_id": …}`), one
//! without under `"viewers"` (meta `{}`). A `fetch` hook turns every `presence_state` and
//! both sides of every `presence_diff` into `{"viewers": {"count": n}, "users": {"count": m}}`,
//! so no user id ever reaches a client. A client keeps its totals by adding the state's
//! counts and each diff's joins, and subtracting each diff's leaves: it never receives its
//! own join twice.

mod support;

use serde_json::{Value, json};
use tether::{
    Config, Endpoint, SocketRoute,
    channel::{Assigns, Channel, JoinResult, Router, Socket},
    endpoint::{ConnectError, ConnectInfo},
    presence::{Presence, PresenceHooks, Presences},
};

/// Replaces presences by the number of metas under each of the two keys.
struct CountsOnly;

impl PresenceHooks for CountsOnly {
    async fn fetch(&self, _topic: &str, presences: Presences) -> Value {
        json!({
            "viewers": { "count": presences.metas("viewers").len() },
            "users": { "count": presences.metas("users").len() },
        })
    }
}

/// The `video:*` channel.
struct Video {
    presence: Presence,
}

impl Channel for Video {
    type Info = ();
    async fn join(&self, _topic: &str, _payload: Value, socket: &mut Socket) -> JoinResult {
        let (key, meta) = match socket.assigns().get_str("user_id") {
            Some(id) => ("users", json!({ "user_id": id })),
            None => ("viewers", json!({})),
        };
        self.presence.track(socket, key, meta)?;
        self.presence.subscribe(socket);
        Ok(json!({}))
    }
}

/// `user_id` is optional (1 to 128 bytes when given).
fn connect(info: &ConnectInfo<'_>) -> Result<Assigns, ConnectError> {
    let mut assigns = Assigns::default();
    match info.param("user_id") {
        None | Some("") => {}
        Some(id) if id.len() <= 128 => assigns.insert("user_id", id),
        Some(_) => return Err(ConnectError::new("user_id longer than 128 bytes")),
    }
    Ok(assigns)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    support::init_logging();
    let config = Config::from_env().map_err(std::io::Error::other)?;
    let port = config.endpoint.port;
    let builder = Endpoint::builder(config)
        .map_err(std::io::Error::other)?
        .presence_hooks(CountsOnly);
    let video = Video {
        presence: builder.presence(),
    };
    let router = Router::new().channel("video:*", video);
    let endpoint = builder
        .socket(SocketRoute::new("/socket", router).connect(connect))
        .build()
        .map_err(std::io::Error::other)?;
    tether::serve(endpoint, support::listen(port)?, |_routes| {}).await
}
