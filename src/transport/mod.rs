//! The wire: Phoenix V2 frames, one task per WebSocket connection, and its outbound queue.
//!
//! This layer knows frames, heartbeats, limits and close codes. It must never know channels,
//! presence or commanders: decoded frames are handed to a [`connection::Handler`] that the
//! channel layer implements.

pub mod connection;
pub mod frame;
pub mod outbox;

pub use connection::{Disconnect, Handler, Limits};
pub use frame::{Frame, FrameError};
pub use outbox::{Outbox, OutboxReceiver, PushError};
