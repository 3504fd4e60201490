//! Test a commander in `cargo test`, without a browser (cargo feature `testing`, used from
//! `[dev-dependencies]`): Phoenix.LiveViewTest's idea for tether.
//!
//! ```toml
//! [dev-dependencies]
//! tether = { version = "0.1", features = ["testing"] }
//! tokio = { version = "1", features = ["macros", "rt", "test-util"] }
//! ```
//!
//! [`TestApp::serve`] takes what [`crate::serve`] takes (the endpoint and the app's routes)
//! and serves it on `127.0.0.1` and a free port, in a thread of its own: real sockets, the
//! app's own routes, the real page channel ([`TestApp::serve_page`] serves one commander's
//! page at `/` when there are no app routes to test). [`TestApp::open`] (or [`Browser::open`] for
//! several tabs of one browser) fetches a page through the app's routes, parses it into a DOM
//! model and joins its page channel exactly as tether.js does: the page token, the browser id
//! and store the browser kept, the session cookie, live tokens, live counters and presence
//! lists. From then on every patch, morph, live region, presence list and counter the server
//! sends is applied to the model with tether.js's rules (text is never markup; a patch
//! tether.js refuses is refused, and fails the test).
//!
//! ```no_run
//! use tether::testing::{self, TestApp};
//! # fn app(_: tether::Config) -> (tether::Endpoint, fn(&mut actix_web::web::ServiceConfig)) { unimplemented!() }
//!
//! // #[tokio::test]
//! async fn adding_reaches_every_page_of_the_list() {
//!     let (endpoint, routes) = app(testing::config()); // what your `main` serves
//!     let app = TestApp::serve(endpoint, routes);
//!     let mut a = app.open("/lists/home").await;
//!     let mut b = app.open("/lists/home").await;
//!     a.fill("#new_item", "milk").await;
//!     a.click("#add").await; // returns once the handler replied
//!     b.wait_until(|page| page.texts("#items .text") == ["milk"]).await;
//!     assert_eq!(a.value("#new_item"), "", "the clicking page's input is cleared");
//! }
//! ```
//!
//! # Driving a page
//!
//! Actions act as a person would and as tether.js reacts: [`TestPage::click`] (a checkbox
//! ticks, a submit button submits its form, a link without a handler loads its page),
//! [`TestPage::fill`] (`input` and `change`), [`TestPage::type_text`] (key by key, with a gap),
//! [`TestPage::check`], [`TestPage::select`], [`TestPage::submit`], [`TestPage::keydown`],
//! any event with [`TestPage::event`], a handler from "script" with [`TestPage::run`], the
//! browser's Back and Forward with [`TestPage::back`] and [`TestPage::forward`]. Live
//! navigation follows tether.js: a `tether-patch` link or GET form (and the server's
//! `push_patch`) changes [`TestPage::path`] and runs `handle_params`; a `tether-navigate` one
//! (and `push_navigate`) fetches the page through the app's routes, leaves the old join and
//! joins the new page on the same socket (the new document replaces the model's, where
//! tether.js morphs the body: a typed value the new markup renders the same is not kept). Each
//! waits (bounded) until its element exists and is enabled, finds the element whose handler
//! the event calls (`tether-click`, `tether-on`, bubbling, `tether-ignore`), builds the
//! `sender` from the model (form fields, value, dataset, `tether-id`, arguments,
//! `tether-arg`, `tether-commander`), disables the controls tether.js disables while it is
//! processed, and waits for the reply: it returns the handler's result. `tether-debounce` and
//! `tether-throttle` run on tokio's clock: with `#[tokio::test(start_paused = true)]` they
//! take no real time ([`TestPage::idle`] lets time pass).
//!
//! Forms as tether.js's forms.mjs has them: the sender carries the form's used fields
//! (`fill` and `check` change a field, `event(…, "blur")` leaves one typed into, `submit` uses
//! them all), an element and its form have the `tether-loading` class and a
//! `tether-disable-with` text while their event is processed (a handler that `query`s the
//! page sees them), a `flash` shows in the model's `[tether-flash]` containers (clicking
//! its `.tether-flash-close` removes it, sending nothing), and a [`TestPage::reconnect`]
//! recovers the forms with an id and a change handler (and waits for their replies).
//!
//! Reading: [`TestPage::text`], [`TestPage::texts`], [`TestPage::html`], [`TestPage::attr`],
//! [`TestPage::value`], [`TestPage::is_checked`], [`TestPage::is_disabled`],
//! [`TestPage::count`], [`TestPage::exists`], [`TestPage::document`]. What other pages, jobs
//! and broadcasts do arrives while the test awaits the page: [`TestPage::wait_until`] waits
//! for a condition and, when it times out, shows the page as it was.
//!
//! # Client-side commands and pushed events
//!
//! A handler attribute holding a `Js` list runs on the model as tether.js runs it: `show`,
//! `hide` and `toggle` on the inline `display`, classes and attributes; `push` calls its
//! handler (the click waits for its reply), `dispatch` fires its event at its targets (a
//! `tether-on` pair the page allows hears it), `navigate` loads a same-origin page, `patch`
//! changes [`TestPage::path`]; `focus` and `transition` do nothing (no focus, no CSS time).
//! A list tether.js refuses is an error of the page. `exec` patches (`page.exec`) run the
//! same way, and what the server pushes with `push_event` is in [`TestPage::events`]. Such a
//! control stays enabled while the page is disconnected, as in the browser. The root element
//! carries the connection classes (`tether-connected`, `tether-disconnected`).
//!
//! # Round trips
//!
//! The server's questions are answered as a browser would answer them: `query` from the
//! model (layout properties it cannot know, like `offsetWidth`, set by the test with
//! [`TestPage::set_layout`]), `cookies` from the browser's cookies, a `confirm` or `modal`
//! dialog appears in the page (`dialog.tether-modal[open]`) for the test to click,
//! `wait_for` is answered by the event the test fires, `exec_js` by
//! [`TestPage::answer_js`]. [`TestPage::asked`] lists what the page was asked.
//!
//! # Many pages, restarts
//!
//! Each [`TestApp::browser`] has its own cookies (sessions) and `localStorage` (browser id,
//! store); its pages are tabs. [`TestPage::disconnect`], [`TestPage::connect`] and
//! [`TestPage::reconnect`] drop and restore a page's connection with the tokens it kept.
//! [`TestApp::endpoint`] reaches the app's presence, commanders and pub/sub from the test.
//!
//! # Failures
//!
//! A handler's error reply, an `error` push (a callback failed), a refused patch, an unknown
//! handler, an invalid handler attribute or a page channel that ends (a handler panicked)
//! fails the test at the page's next await, with the handler's name and message
//! ([`config`] turns `debug_errors` on so the message reaches the page). A test that expects
//! one says so with [`TestPage::allow_errors`] and reads [`TestPage::errors`].
//!
//! # Waits and clocks
//!
//! Every wait of the kit is bounded by [`TestApp::wait_timeout`] ([`DEFAULT_WAIT`], 10 s)
//! measured on the wall clock, so a test with a paused tokio clock still fails instead of
//! hanging, and a paused clock does not make the kit's own waits fire early. The server runs
//! on its own runtime and real clock (its jobs and timeouts take real time). A page has no
//! task of its own: it reads its socket only while the test awaits it, so between two awaits
//! the model does not change.
//!
//! # What the model does not do
//!
//! No layout (sizes and positions are what the test sets), no CSS (a rule that hides an
//! element does not hide it here), no focus or caret (a morph keeps a person's typed value
//! and ticked boxes as tether.js does, but there is no focused element), no scrolling, no
//! script (`js` patches are recorded in [`TestPage::scripts`], `exec_js` is answered by the
//! test; client hooks never mount: a hook's `pushEvent` is [`TestPage::run`], what the
//! server pushes to it is in [`TestPage::events`], and its browser side is tested in
//! Chromium), no file inputs, no iframes, no heartbeats (keep a test under the server's heartbeat
//! timeout, 60 s by default), no reconnect on its own (call [`TestPage::connect`]). tether.js's
//! rules are ported, and a shared corpus (`tests/fixtures/dom_corpus.json`) runs both in
//! Chromium and in this model so the two cannot drift apart; what needs a real browser stays
//! in the Chromium suites.

mod actions;
mod app;
mod calls;
mod dom;
mod forms;
mod js;
mod navigation;
mod page;
mod wait;

pub use app::{Browser, DEFAULT_WAIT, Response, TestApp, config};
pub use page::TestPage;
