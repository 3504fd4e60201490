//! The wire: Phoenix V2 frames, one task per WebSocket connection, its outbound queue, and
//! the response body that writes that queue to the socket.
//!
//! This layer knows frames, heartbeats, limits and close codes. It must never know channels,
//! presence or commanders: decoded frames are handed to a handler that the channel layer
//! implements, and `upgrade` is how a connection starts. Only the frame
//! format and the few types other layers' public APIs mention are public.

pub(crate) mod assembler;
pub(crate) mod body;
pub(crate) mod connection;
mod disconnect;
pub mod frame;
pub(crate) mod outbox;
pub(crate) mod upgrade;
pub(crate) mod wakes;

pub use disconnect::Disconnect;
pub use frame::{Frame, FrameError};
pub(crate) use outbox::Outbox;
pub use outbox::PushError;
