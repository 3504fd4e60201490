//! Test a commander in `cargo test`, without a browser.
//!
//! (Guide to be written.)

mod actions;
mod app;
mod calls;
mod dom;
mod page;
mod wait;

pub use app::{Browser, DEFAULT_WAIT, Response, TestApp, config};
pub use page::TestPage;
