//! The task that owns one WebSocket connection.
//!
//! It reads client messages (enforcing the frame size limit), decodes Phoenix frames, answers
//! heartbeats itself, hands every other frame to a [`Handler`], writes whatever was queued in
//! the connection's [`Outbox`] in batches, and closes the connection for idleness, bad input,
//! a full outbox or server shutdown — always with a logged reason. It never interprets topics
//! or events beyond the heartbeat: that is the handler's job.
//!
//! Close codes: 1000 answers a client's own close; 1001 idle timeout and server shutdown;
//! 1003 binary frames; 1007 undecodable frames; 1008 outbound queue overflow; 1009 a message
//! over the size limit; 1002 other protocol errors. All but 1000 make phoenix.js reconnect.

use std::{any::Any, future::Future, time::Duration};

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytestring::ByteString;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    frame::{Frame, Status, encode_reply, events},
    outbox::{Outbound, Outbox, OutboxReceiver, Received},
};

/// Why a connection ended; handed to [`Handler::terminate`].
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
    /// A WebSocket protocol error or an I/O error.
    Protocol(String),
    /// The server is shutting down.
    Shutdown,
    /// The connection asked itself to close (e.g. its handler decided so).
    Closed,
}

impl Disconnect {
    /// The close frame sent to the client.
    fn close_reason(&self) -> CloseReason {
        let (code, text) = match self {
            Disconnect::ClientClosed => {
                return CloseReason {
                    code: CloseCode::Normal,
                    description: None,
                };
            }
            Disconnect::IdleTimeout => (CloseCode::Away, "idle timeout".to_string()),
            Disconnect::TooLarge => (CloseCode::Size, "message too large".to_string()),
            Disconnect::Malformed(reason) => (CloseCode::Invalid, reason.clone()),
            Disconnect::Binary => (
                CloseCode::Unsupported,
                "binary frames are not supported".to_string(),
            ),
            Disconnect::SlowConsumer => (CloseCode::Policy, "outbound queue full".to_string()),
            Disconnect::Protocol(reason) => (CloseCode::Protocol, reason.clone()),
            Disconnect::Shutdown => (CloseCode::Away, "server shutting down".to_string()),
            Disconnect::Closed => (CloseCode::Away, "closed by server".to_string()),
        };
        CloseReason {
            code,
            description: Some(text),
        }
    }
}

/// What a connection does with the frames it decodes. Implemented by the channel layer.
///
/// The handler writes through the [`Outbox`] it was built with; the connection task writes
/// whatever is queued there.
pub trait Handler {
    /// A decoded frame other than a heartbeat.
    fn handle_frame(&mut self, frame: Frame) -> impl Future<Output = ()>;
    /// A message queued with [`Outbox::push_info`].
    fn handle_info(&mut self, info: Box<dyn Any + Send>) -> impl Future<Output = ()>;
    /// The connection is over; release everything (subscriptions, presences).
    fn terminate(&mut self, reason: &Disconnect) -> impl Future<Output = ()>;
}

/// Limits one connection runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest inbound message in bytes.
    pub max_frame_bytes: usize,
    /// Close after this long without any inbound message.
    pub idle_timeout: Duration,
}

/// A request from the handler side to close the connection, sent as an info.
#[derive(Debug)]
pub struct CloseRequest;

/// Runs the connection until it ends, then calls [`Handler::terminate`].
///
/// `stream` is actix-ws's message stream; `session` writes to the socket. `shutdown` ends the
/// connection with 1001 when cancelled.
pub async fn run<H: Handler>(
    session: Session,
    stream: AggregatedMessageStream,
    outbox: Outbox,
    outbox_rx: OutboxReceiver,
    handler: H,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let mut connection = Connection {
        session,
        outbox,
        outbox_rx,
        handler,
    };
    let reason = connection.serve(stream, limits, shutdown).await;
    match &reason {
        Disconnect::ClientClosed | Disconnect::Shutdown | Disconnect::Closed => {
            tracing::debug!(?reason, "connection closed")
        }
        _ => tracing::info!(?reason, "connection closed"),
    }
    connection.handler.terminate(&reason).await;
    // A client that does not read may never make room for the close frame: bounded wait.
    let close = connection.session.close(Some(reason.close_reason()));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
}

/// How long the close frame may wait for room in the socket's write queue.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

struct Connection<H> {
    session: Session,
    outbox: Outbox,
    outbox_rx: OutboxReceiver,
    handler: H,
}

impl<H: Handler> Connection<H> {
    async fn serve(
        &mut self,
        mut stream: AggregatedMessageStream,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Disconnect {
        let shutdown = shutdown.cancelled_owned();
        tokio::pin!(shutdown);
        let mut last_seen = Instant::now();
        let idle = tokio::time::sleep(limits.idle_timeout);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Disconnect::Shutdown,
                received = self.outbox_rx.recv() => {
                    let batch = match received {
                        Received::Batch(batch) => batch,
                        Received::Overflowed => return Disconnect::SlowConsumer,
                    };
                    if let Err(reason) = self.write_batch(batch).await {
                        return reason;
                    }
                }
                message = stream.recv() => {
                    last_seen = Instant::now();
                    if let Err(reason) = self.read(message, limits).await {
                        return reason;
                    }
                }
                _ = &mut idle => {
                    let deadline = last_seen + limits.idle_timeout;
                    if Instant::now() >= deadline {
                        return Disconnect::IdleTimeout;
                    }
                    idle.as_mut().reset(deadline);
                }
            }
        }
    }

    async fn write_batch(
        &mut self,
        batch: std::collections::VecDeque<Outbound>,
    ) -> Result<(), Disconnect> {
        for item in batch {
            match item {
                Outbound::Frame(bytes) => {
                    let text = match ByteString::try_from(bytes) {
                        Ok(text) => text,
                        Err(err) => {
                            tracing::error!("dropping a non-UTF-8 outbound frame: {err}");
                            continue;
                        }
                    };
                    // The write waits while the client is not reading; meanwhile the outbox
                    // keeps filling and, past its limit, ends the wait.
                    tokio::select! {
                        biased;
                        sent = self.session.text(text) => {
                            if sent.is_err() {
                                return Err(Disconnect::ClientClosed);
                            }
                        }
                        _ = self.outbox_rx.overflowed() => return Err(Disconnect::SlowConsumer),
                    }
                }
                Outbound::Info(info) => {
                    if info.is::<CloseRequest>() {
                        return Err(Disconnect::Closed);
                    }
                    self.handler.handle_info(info).await;
                }
            }
        }
        Ok(())
    }

    async fn read(
        &mut self,
        message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
        limits: Limits,
    ) -> Result<(), Disconnect> {
        let message = match message {
            None => return Err(Disconnect::ClientClosed),
            Some(Ok(message)) => message,
            Some(Err(actix_ws::ProtocolError::Overflow)) => return Err(Disconnect::TooLarge),
            Some(Err(err)) if err.to_string().contains("continuation size") => {
                return Err(Disconnect::TooLarge);
            }
            Some(Err(err)) => return Err(Disconnect::Protocol(err.to_string())),
        };
        match message {
            AggregatedMessage::Text(text) => {
                if text.len() > limits.max_frame_bytes {
                    return Err(Disconnect::TooLarge);
                }
                let frame = Frame::decode(&text).map_err(|err| {
                    tracing::debug!(frame = %truncate(&text, 200), "{err}");
                    Disconnect::Malformed(err.to_string())
                })?;
                if frame.topic == events::HEARTBEAT_TOPIC && frame.event == events::HEARTBEAT {
                    let reply = encode_reply(
                        None,
                        frame.msg_ref.as_deref(),
                        events::HEARTBEAT_TOPIC,
                        Status::Ok,
                        &json!({}),
                    );
                    let _ = self.outbox.push_frame(reply);
                } else {
                    self.handler.handle_frame(frame).await;
                }
                Ok(())
            }
            AggregatedMessage::Binary(_) => Err(Disconnect::Binary),
            AggregatedMessage::Ping(bytes) => {
                if self.session.pong(&bytes).await.is_err() {
                    return Err(Disconnect::ClientClosed);
                }
                Ok(())
            }
            AggregatedMessage::Pong(_) => Ok(()),
            AggregatedMessage::Close(_) => Err(Disconnect::ClientClosed),
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
