//! Commanders: the Drab layer. Server-side Rust that reacts to a page's connects,
//! disconnects and DOM events, and patches that page or every page on a topic.
//!
//! A page rendered by the server includes [`Commanders::script`] (the tether.js tag with a
//! signed page token). tether.js joins the page channel `tether:page:<commander>` with that
//! token, the page's signed browser id and its encrypted store. The commander then:
//!
//! 1. tracks the page in presence on each of its broadcasting topics (when presence is
//!    enabled) — **before** `on_connect`, so a count taken there includes this page;
//! 2. runs [`Commander::on_connect`] (every join, also after reconnects), on the first
//!    join of a page load [`Commander::on_load`], then [`Commander::handle_params`] with the
//!    URL the page shows (again after every patch navigation: [`Page::push_patch`],
//!    `tether-patch` links, Back and Forward; [`PageHandle::push_navigate`] moves to another
//!    page over the same socket);
//! 3. dispatches DOM events to **declared** handlers only ([`Commander::handlers`]), between
//!    [`Commander::before_handler`] and [`Commander::after_handler`], and messages to
//!    [`Commander::handle_info`];
//! 4. when the page goes away, untracks it and **then** runs [`Commander::on_disconnect`]
//!    with its last store and session, so a count taken there excludes it.
//!
//! Steps 2–4 run in the page's own task, one at a time and in order, while the connection
//! keeps reading: a handler can ask the browser ([`PageHandle::exec_js`],
//! [`PageHandle::query`], [`PageHandle::wait_for`], [`PageHandle::modal`]) and wait for the
//! answer, and a [`PageHandle`] lets a spawned task keep patching the page.
//!
//! Broadcasting topics: [`Broadcasting::SamePath`] (pages with the same path),
//! [`Broadcasting::SameCommander`], [`Broadcasting::Named`]; name them from outside a page
//! with [`same_path`], [`same_commander`], [`same_topic`].
//!
//! This module builds on the channel, presence and pub/sub layers' public APIs; it must
//! never import the endpoint (which mounts it).
//!
#![doc = include_str!("../../docs/page-channel.md")]

mod callbacks;
mod calls;
mod commanders;
mod connect;
mod counters;
mod dev_warnings;
mod handle;
mod handlers;
mod held;
pub mod html;
mod hub;
mod js;
mod live;
mod navigation;
mod page;
mod page_channel;
mod patch;
mod presence_list;
mod revocations;
mod runtime;
mod script;
pub mod session;
pub(crate) mod spans;
mod target;
pub mod token;
mod topics;
#[cfg(test)]
mod wiring_tests;

#[cfg(feature = "fuzzing")]
pub(crate) use page_channel::{admit_join_payload, decode_payloads};

pub use callbacks::{Commander, Disconnected, Info, Outcome, Sender};
pub use calls::{CallError, DEFAULT_MODAL_TIMEOUT, MAX_PENDING_CALLS, Modal, ModalAnswer, Queried};
pub(crate) use commanders::CommandersBuilder;
pub use commanders::{BuildError, Commanders};
pub use counters::Count;
pub use handle::PageHandle;
pub use handlers::{Handlers, IntoOutcome};
pub use html::Html;
pub use js::{Js, MAX_JS_COMMANDS};
pub use live::{LiveError, LiveRegion, LiveTemplate};
pub use navigation::{CLIENT_VERSION, MAX_URL_BYTES, local_url};
pub use page::{MAX_STORE_BYTES, Page};
pub use patch::{ConsoleLevel, Content, Cookie, Patch, PatchError, Position};
pub use presence_list::{ListKeys, MAX_LIST_FIELDS};
pub use script::PageOptions;
pub use target::Target;
pub use topics::{Broadcasting, same_commander, same_path, same_topic};
