//! Why a connection ended, and the close frame each reason sends.
//!
//! It sits below both the assembler (which ends a connection for a frame too large or not
//! WebSocket) and the connection task (which ends it for everything else, and closes with
//! [`Disconnect::close`]'s frame), so neither imports the other both ways. The channel
//! layer receives it in `terminate`.

use actix_http::ws::CloseCode;

use super::outbox::Close;

/// Why a connection ended (the channel layer hands it to every channel that terminates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The client sent a close frame or the stream ended.
    ClientClosed,
    /// Nothing was received for the idle timeout.
    IdleTimeout,
    /// A message exceeded the size limit.
    TooLarge,
    /// A text frame was not a valid Phoenix V2 frame.
    Malformed(String),
    /// The client sent a binary frame.
    Binary,
    /// The outbound queue overflowed: the client could not keep up.
    SlowConsumer,
    /// Pending output made no progress for the write timeout: the client stopped reading.
    WriteTimeout,
    /// A WebSocket protocol error or an I/O error.
    Protocol(String),
    /// The server is shutting down.
    Shutdown,
    /// The client kept pushing past its connection's rate limits.
    RateLimited,
}

impl Disconnect {
    /// The close frame sent to the client.
    pub(super) fn close(&self) -> Close {
        let (code, reason) = match self {
            Disconnect::ClientClosed => (CloseCode::Normal, String::new()),
            Disconnect::IdleTimeout => (CloseCode::Away, "idle timeout".to_string()),
            Disconnect::TooLarge => (CloseCode::Size, "message too large".to_string()),
            Disconnect::Malformed(reason) => (CloseCode::Invalid, reason.clone()),
            Disconnect::Binary => (
                CloseCode::Unsupported,
                "binary frames are not supported".to_string(),
            ),
            Disconnect::SlowConsumer => (CloseCode::Policy, "outbound queue full".to_string()),
            Disconnect::WriteTimeout => (CloseCode::Policy, "write timeout".to_string()),
            Disconnect::Protocol(reason) => (CloseCode::Protocol, reason.clone()),
            Disconnect::Shutdown => (CloseCode::Away, "server shutting down".to_string()),
            Disconnect::RateLimited => (CloseCode::Policy, "rate limit exceeded".to_string()),
        };
        Close { code, reason }
    }
}
