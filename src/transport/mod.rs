//! The wire: Phoenix V2 frames, one task per WebSocket connection, its outbound queue, and
//! the response body that writes that queue to the socket.
//!
//! This layer knows frames, heartbeats, limits and close codes. It must never know channels,
//! presence or commanders: decoded frames are handed to a [`connection::Handler`] that the
//! channel layer implements.

pub(crate) mod assembler;
pub mod body;
pub mod connection;
pub mod frame;
pub mod outbox;

pub use connection::{Disconnect, Handler, Limits};
pub use frame::{Frame, FrameError};
pub use outbox::{Close, Outbox, PushError};
