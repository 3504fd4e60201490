//! # tether
//!
//! Server-driven web pages for [actix-web], in the style of Elixir's Drab, with presence as
//! good as Phoenix's. Pages stay connected to the server over one WebSocket speaking the
//! **Phoenix Channels V2 JSON protocol**, so the official `phoenix` npm client works against a
//! tether server unchanged.
//!
//! ## Start here
//!
//! Six types, in the order the README meets them; everything else is reachable from them.
//!
//! | type | what you do with it |
//! |---|---|
//! | [`Endpoint`] | wire the app: [`Endpoint::builder`] takes the [`Config`], your sockets and commanders, and [`serve`] runs it (the one wiring path) |
//! | [`Commander`](commander::Commander) | write a page's server side: callbacks (`on_connect`, `on_load`, `on_disconnect`, `handle_info`) and the DOM event handlers a page may call |
//! | [`Page`](commander::Page) | the connected page a callback is given: its session, store, presence key and a [`PageHandle`](commander::PageHandle) to reach it later |
//! | [`Patch`](commander::Patch) | what changes in the browser: `Patch::set`, `html`, `morph`, `props`, `style`, `attr`, `insert`, `remove`, `js`, …, sent with `page.apply(patch)`, `page.to(topic).apply(patch)` or `page.others(topic).apply(patch)` |
//! | [`Commanders`](commander::Commanders) | reach pages from outside a page (a background task, an HTTP handler): `commanders.to(topic).apply(patch)`, live counters, presence lists, the page's script tag |
//! | [`Presence`](presence::Presence) | who is on a topic: `track`, `list`, `count_users`, … (pages are tracked for you) |
//!
//! The README and `docs/guide.md` walk through them with code; `examples/` has one program
//! per idea. To test a commander without a browser, `testing` (cargo feature `testing`):
//! `TestApp::serve(endpoint, routes)`, `app.open("/")`, `page.click("#add")`,
//! `page.wait_until(…)`.
//!
//! ## The pieces, bottom up
//!
//! | module | job |
//! |---|---|
//! | [`config`] | one [`Config`] from a TOML file (`TETHER_CONFIG`) and environment overrides |
//! | [`pubsub`] | the [`PubSub`](pubsub::PubSub) trait; [`LocalPubSub`](pubsub::LocalPubSub) in-process; the Redis adapter (feature `redis`, on by default) with an authenticated bus |
//! | [`transport`] | Phoenix V2 frames (public: [`transport::frame`]); the rest — one task per connection, bounded outbound queues, the write timeout — is internal |
//! | [`channel`] | the [`Channel`](channel::Channel) trait, topic [`Router`](channel::Router), [`Socket`](channel::Socket) |
//! | [`presence`] | the Phoenix Presence API over a replicated tracker with per-node ownership |
//! | [`commander`] | the Drab layer: [`Commander`](commander::Commander)s, pages, patches, browser id, session, store |
//! | [`dashboard`] | the live dashboard and `/metrics` (a commander page of its own, off without a password or token); built and mounted by the endpoint, never importing it |
//! | [`endpoint`] | the owner of it all: [`Endpoint::builder`] creates the pub/sub and presence once, takes sockets and commanders, starts and stops every task; actix-web routes, origin check, [`serve`], [`Endpoint::tune_server`] |
//! | `testing` | (feature `testing`) drive a commander's pages from `cargo test`: the app served on a loopback port, pages joined as tether.js joins them, a DOM model applying tether.js's rules |
//!
//! Lower layers never import higher ones: pub/sub knows nothing of frames, the transport
//! nothing of channels, presence nothing of commanders, commanders nothing of the dashboard
//! or the endpoint, the dashboard nothing of the endpoint (which builds and mounts it). Each
//! takes its own config section.
//!
//! ## A chat room in a few lines
//!
//! ```no_run
//! use serde_json::{Value, json};
//! use tether::channel::{Assigns, Channel, HandleResult, JoinResult, Reply, Router, Socket};
//! use tether::{Config, Endpoint, SocketRoute, endpoint::ConnectError};
//!
//! struct Room;
//!
//! impl Channel for Room {
//!     type Info = ();
//!     async fn join(&self, _topic: &str, _payload: Value, _socket: &mut Socket) -> JoinResult {
//!         Ok(json!({}))
//!     }
//!
//!     async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
//!         match event {
//!             "shout" => {
//!                 socket.broadcast("shout", &payload); // encoded once for every subscriber
//!                 Ok(Reply::None)
//!             }
//!             _ => Ok(Reply::unhandled()),
//!         }
//!     }
//! }
//!
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let config = Config::from_env().expect("invalid config");
//!     let socket = SocketRoute::new("/socket", Router::new().channel("room:*", Room))
//!         .connect(|info| match info.param("user_id") {
//!             Some(id) if !id.is_empty() => {
//!                 let mut assigns = Assigns::default();
//!                 assigns.insert("user_id", id);
//!                 Ok(assigns)
//!             }
//!             _ => Err(ConnectError::new("user_id required")),
//!         });
//!     let endpoint = Endpoint::builder(config)
//!         .and_then(|builder| builder.socket(socket).build())
//!         .expect("endpoint");
//!     let listener = std::net::TcpListener::bind(("127.0.0.1", 4000))?;
//!     tether::serve(endpoint, listener, |_app_routes| {}).await
//! }
//! ```
//!
//! From the browser (or Node), the official client connects as to Phoenix:
//!
//! ```js
//! import { Socket } from "phoenix";
//! const socket = new Socket("/socket", { params: { user_id: "alice" } });
//! socket.connect();
//! const room = socket.channel("room:lobby", {});
//! room.on("shout", (msg) => console.log(msg));
//! room.join().receive("ok", () => room.push("shout", { body: "hi" }));
//! ```
//!
//! ## Presence
//!
//! [`presence::Presence`] tracks who is on a topic (`track`, `untrack`, `update`, `list`,
//! `get_by_key`, `count_users`, `count_connections`, `fetch` and `handle_metas` hooks). A
//! socket that calls `subscribe` receives `presence_state` and `presence_diff` exactly as the
//! phoenix.js `Presence` client expects; diffs are coalesced per topic so join storms cost far
//! less than N² frames. Several nodes share one view through the pub/sub (each node owns its
//! own entries; see [`presence::tracker`]).
//!
//! ## Commanders
//!
//! A [`commander::Commander`] drives server-rendered pages: `on_connect`, `on_load`,
//! `on_disconnect`, `handle_info`, and DOM event handlers declared once in a
//! [`commander::Handlers`] table (with arguments from the page: `tether-click="remove(42)"`).
//! Each page runs its callbacks in its own task, in order, while the connection keeps
//! reading, so a handler can ask the browser and wait:
//! [`exec_js`](commander::PageHandle::exec_js), [`query`](commander::PageHandle::query),
//! [`wait_for`](commander::PageHandle::wait_for), [`modal`](commander::PageHandle::modal).
//! A [`commander::Patch`] (`Patch::set`, `Patch::morph`, `Patch::props`, …) goes to one page
//! ([`page.apply(patch)`](commander::PageHandle::apply)), to every page on a topic
//! ([`page.to(topic).apply(patch)`](commander::PageHandle::to)), to all of them but this page
//! ([`others`](commander::PageHandle::others)), or from anywhere
//! ([`commanders.to(topic)`](commander::Commanders::to)), also from a spawned task through a
//! [`commander::PageHandle`]. Pages are tracked in presence automatically, keyed by
//! store value, session value or the signed browser id, as configured. Register commanders on
//! the endpoint (`builder.commander(Counter)`); the page channel's wire protocol is in the
//! [`commander`] docs. See the README's "Writing a commander" (with a Drab and LiveView → tether table),
//! `examples/online_counter.rs` and `examples/live_todo.rs`.
//!
//! ## Guarantees
//!
//! - **Broadcasts are encoded once**: the frame bytes are shared by every subscriber.
//! - **Every queue is bounded**: every queued outbound item (pongs and empty frames included)
//!   is charged its size plus 48 bytes against `endpoint.max_outbound_bytes` (4 MiB); a client
//!   whose outbound queue exceeds it is disconnected (close 1008) and logged; nobody else
//!   waits. At most one pong is pending per connection.
//! - **A client that sends faster than it reads is slowed, not cut**: its frames are not read
//!   while its own outbox is over half of `max_outbound_bytes` (resumed at a quarter).
//! - **The publisher pays**: when a client's message makes broadcasts that push other
//!   connections' outboxes (on this node) over half of `max_outbound_bytes`, that client is
//!   not read again until they are back at a quarter, closed, or stalled for the write
//!   timeout. A flooder is slowed to its slowest reader; a reader that keeps reading is not
//!   cut because of it; a reader that stops is still dropped by the write timeout.
//! - **A client that stops reading is released; one that reads slowly is not**: pending
//!   output that does not move at all (no byte taken by the socket, which `TCP_NOTSENT_LOWAT`
//!   makes happen every ~64 KiB the client reads) for `endpoint.write_timeout_ms` (10 s)
//!   ends the connection and frees its queue, and the
//!   socket is dropped by the kernel (`TCP_USER_TIMEOUT`, set by [`serve`] and
//!   [`Endpoint::tune_server`]).
//! - **Bad input costs one connection at most**: a frame whose header declares more than
//!   `endpoint.max_frame_bytes` (1 MiB; also the running total of a fragmented message)
//!   closes with 1009 before its payload is read; undecodable frames, topics or events over
//!   255 bytes and refs over 64 bytes close with 1007, binary frames with 1003; unknown
//!   topics and events get an error reply; a failing or panicking handler crashes only its
//!   channel (`phx_error`). Client strings in logs are cut to 256 bytes.
//! - **Origin checked by default**: a browser upgrade whose `Origin` is not `endpoint.url`
//!   (or, unset, where [`serve`] listens) is refused (403); the `Host` header is not trusted.
//! - **Presence is bounded**: a meta is at most `presence.max_meta_bytes` (4 KiB) encoded;
//!   a `presence_state` is exempt from the outbound limit, so a room of any size stays
//!   joinable; slow hooks never delay gossip.
//! - **The cluster bus is authenticated**: every Redis message carries an HMAC under a key
//!   derived from `secret_key_base`, on a channel derived from it; anything else is dropped
//!   and counted.
//! - **Pages run only what the server allows**: every patch passes one check (script only
//!   with `exec_js`, no plain string into `innerHTML`-like properties or `javascript:` URLs),
//!   and tether.js applies the same rules.
//!
//! [actix-web]: https://docs.rs/actix-web

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::print_stdout
)]

mod bucket;
pub mod channel;
pub mod commander;
pub mod config;
pub mod dashboard;
mod dev_secret;
mod drops;
pub mod endpoint;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod logging;
mod mac;
pub mod metrics;
pub mod presence;
pub mod pubsub;
mod render;
/// HTML from users cleaned for a page, tether attributes dropped (cargo feature `sanitize`).
#[cfg(feature = "sanitize")]
pub mod sanitize;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
pub mod transport;

/// The README's Rust snippets, compiled and run as doctests (never rendered).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// docs/guide.md's Rust snippets, compiled (and run, but for the server) as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
struct GuideDoctests;

#[doc(inline)]
pub use config::Config;

/// The askama tether is built with (its [`Html`](commander::Html) implements this version's
/// traits), so an app need not depend on askama itself.
///
/// askama's derive writes paths to the crate `::askama`, which an app without its own askama
/// dependency does not have (`can't find crate for 'askama'`). Tell the derive where askama
/// is with `askama = tether::askama` in every `#[template(…)]`:
///
/// ```
/// use tether::askama::Template;
/// use tether::commander::Html;
///
/// #[derive(Template)]
/// #[template(source = "<h1>{{ title }}</h1>{{ script }}", ext = "html", askama = tether::askama)]
/// struct Page {
///     title: String,
///     script: Html, // `endpoint.commanders().script("name", &req)`: inserted as markup
/// }
///
/// let page = Page { title: "<Hi>".into(), script: Html::trusted("<script></script>") };
/// assert_eq!(page.render().unwrap(), "<h1>&#60;Hi&#62;</h1><script></script>");
/// ```
///
/// Or depend on the same askama version (0.16) yourself and derive `askama::Template` as
/// usual; with another version, `{{ script }}` fails to compile with an unsatisfied `askama`
/// trait bound.
pub use askama;
#[doc(inline)]
pub use endpoint::{Endpoint, SocketRoute, serve};
#[doc(inline)]
pub use logging::init_logging;
#[doc(inline)]
pub use render::render;
