//! Test a commander in `cargo test`, without a browser.
//!
//! (Guide to be written.)

mod dom;
