//! The task that owns one WebSocket connection.
//!
//! It reads WebSocket frames from the request body (enforcing the message size limit, with
//! actix-http's codec), decodes Phoenix frames, answers heartbeats and pings itself, hands
//! every other frame to a [`Handler`], runs the handler's info messages, and closes the
//! connection for idleness, bad input, a full outbox or server shutdown — always with a logged
//! reason. Writing is not its job: the response body writes the [`Outbox`] directly
//! ([`super::body`]). It never interprets topics or events beyond the heartbeat.
//!
//! Bounds it keeps, whatever the client does:
//! - **Message size**: a frame whose header declares more than `max_frame_bytes`, or a
//!   fragment that would take a message's running total past it, closes with 1009 as soon as
//!   its header has arrived, before its payload is read. A partial message therefore never
//!   holds more than `max_frame_bytes`.
//! - **Idle**: only complete text messages (a Phoenix heartbeat at least) count as activity;
//!   pings, pongs and unfinished fragments do not.
//! - **Backpressure**: while the connection's own outbox is above its high-water mark (half
//!   of `max_outbound_bytes`) its client is not read (TCP slows the client down); reading
//!   resumes at a quarter. A client that pushes faster than it reads is slowed, not cut.
//! - **The publisher pays**: when handling a client's message pushed other connections'
//!   outboxes above their high-water mark (a broadcast delivered on this node; see
//!   [`Pacing`]), the client is not read again until each of those has drained to a quarter,
//!   closed, or made no progress for `write_timeout` (its own task then drops it). A client
//!   that publishes faster than its subscribers read is slowed to their pace; a subscriber
//!   that reads, however slowly, is not cut because of it. Time spent not reading a client
//!   does not count towards its idle timeout.
//! - **Write timeout**: when pending output makes no progress for `write_timeout`, the
//!   outbox is abandoned (its queue freed) and the connection ends. Progress is any chunk
//!   the socket takes, not a drained queue; with `TCP_NOTSENT_LOWAT` set on accepted sockets
//!   (by [`crate::endpoint`]) the socket takes one after every ~64 KiB the client reads, so a
//!   slow reader is never mistaken for a stalled one; the same holds after a
//!   close while the close frame cannot be written. The socket itself is released by the
//!   kernel (`TCP_USER_TIMEOUT`, set by [`crate::endpoint`] when it accepts the connection).
//!
//! Close codes: 1000 answers a client's own close; 1001 idle timeout and server shutdown;
//! 1003 binary frames; 1007 undecodable frames; 1008 outbound queue overflow, and rate limits
//! exceeded again and again; 1009 a message over the size limit; 1002 other protocol errors.
//! All but 1000 make phoenix.js reconnect.

use std::{any::Any, future::Future, rc::Rc, time::Duration};

use actix_web::web::Payload;
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    assembler::{Assembler, Message},
    disconnect::Disconnect,
    frame::{Frame, Status, encode_reply, events},
    outbox::{Outbox, Pacing, Received},
};

/// What a connection does with the frames it decodes. Implemented by the channel layer.
///
/// The handler writes through the [`Outbox`] it was built with; the connection task writes
/// whatever is queued there.
pub(crate) trait Handler {
    /// A decoded frame other than a heartbeat; `Err` ends the connection for that reason.
    fn handle_frame(&mut self, frame: Frame) -> impl Future<Output = Result<(), Disconnect>>;
    /// A message queued with [`Outbox::push_info`].
    fn handle_info(&mut self, info: Box<dyn Any + Send>) -> impl Future<Output = ()>;
    /// The connection is over; release everything (subscriptions, presences).
    fn terminate(&mut self, reason: &Disconnect) -> impl Future<Output = ()>;
}

/// Limits one connection runs under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest inbound message in bytes.
    pub(crate) max_frame_bytes: usize,
    /// Close after this long without any inbound message.
    pub(crate) idle_timeout: Duration,
    /// Give up on a connection whose pending output has not moved for this long.
    pub(crate) write_timeout: Duration,
}

/// Runs the connection until it ends, then calls [`Handler::terminate`] and closes the
/// outbox (the body writes the close frame).
///
/// `payload` is the upgraded request's body (the client's frames); `shutdown` ends the
/// connection with 1001 when cancelled.
pub(crate) async fn run<H: Handler>(
    payload: Payload,
    outbox: Outbox,
    mut handler: H,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let metrics = crate::metrics::metrics();
    let _open = OpenConnection::count();
    let mut inbound = Inbound {
        payload,
        assembler: Assembler::new(limits.max_frame_bytes),
    };
    // Wakes this task's handling gives other connections wait until each poll returns.
    let reason =
        super::wakes::batched(serve(&mut inbound, &outbox, &mut handler, limits, shutdown)).await;
    match &reason {
        Disconnect::SlowConsumer => metrics.slow_consumer_closes.inc(),
        Disconnect::WriteTimeout => metrics.write_timeouts.inc(),
        _ => {}
    }
    match &reason {
        Disconnect::ClientClosed | Disconnect::Shutdown => {
            tracing::debug!(?reason, "connection closed")
        }
        _ => tracing::info!(?reason, "connection closed"),
    }
    drop(inbound); // no more reading: release the read buffer and any partial message
    handler.terminate(&reason).await;
    if reason == Disconnect::WriteTimeout {
        outbox.abandon();
        return;
    }
    outbox.close(reason.close());
    // Watch the last writes (queued frames, then the close frame) until the body ends; the
    // deadline moves with every write that makes progress.
    while let Some(since) = outbox.stalled_since() {
        let deadline = since + limits.write_timeout;
        if Instant::now() >= deadline {
            tracing::info!("write timeout while closing; connection abandoned");
            metrics.write_timeouts.inc();
            outbox.abandon();
            break;
        }
        tokio::select! {
            _ = outbox.body_ended() => break,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Counts a connection open in the metrics while it lives (a connection task dropped
/// mid-way still uncounts itself).
struct OpenConnection;

impl OpenConnection {
    fn count() -> OpenConnection {
        let metrics = crate::metrics::metrics();
        metrics.connections_opened.inc();
        metrics.connections.inc();
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::metrics().connections.dec();
    }
}

/// When the connection task must next look at the clock: the idle deadline, or the moment
/// pending output would pass the write timeout (at the latest one write timeout from now).
fn next_check(last_seen: Instant, outbox: &Outbox, limits: Limits) -> Instant {
    let write = outbox.stalled_since().unwrap_or_else(Instant::now) + limits.write_timeout;
    (last_seen + limits.idle_timeout).min(write)
}

async fn serve<H: Handler>(
    inbound: &mut Inbound,
    outbox: &Outbox,
    handler: &mut H,
    limits: Limits,
    shutdown: CancellationToken,
) -> Disconnect {
    let shutdown = shutdown.cancelled_owned();
    tokio::pin!(shutdown);
    let mut last_seen = Instant::now();
    let check = tokio::time::sleep_until(next_check(last_seen, outbox, limits));
    tokio::pin!(check);
    // The publisher pays: subscriber outboxes our last message pushed above high water.
    let pacing = Rc::new(Pacing::default());
    let mut paced: Vec<Outbox> = Vec::new();
    // Since when we have not been reading (the idle clock stops meanwhile).
    let mut paused_at: Option<Instant> = None;
    loop {
        // Backpressure: while our own output is high, or the output our client's last
        // message made for others is, leave the client's bytes in TCP.
        let reading = paced.is_empty() && !outbox.is_high();
        match (reading, paused_at) {
            (false, None) => paused_at = Some(Instant::now()),
            (true, Some(at)) => {
                // Time spent not reading the client is not idleness.
                last_seen += at.elapsed();
                paused_at = None;
            }
            _ => {}
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => return Disconnect::Shutdown,
            received = outbox.recv() => match received {
                Received::Infos(infos) => {
                    for info in infos {
                        handler.handle_info(info).await;
                    }
                }
                Received::Overflowed => return Disconnect::SlowConsumer,
                Received::BodyGone => return Disconnect::ClientClosed,
            },
            message = inbound.next(), if reading => match message {
                Ok(Message::Text(text)) => {
                    last_seen = Instant::now();
                    let metrics = crate::metrics::metrics();
                    metrics.frames_in.inc();
                    metrics.bytes_in.inc_by(text.len() as u64);
                    let handled = Pacing::scope(&pacing, dispatch(&text, outbox, handler)).await;
                    if let Err(reason) = handled {
                        return reason;
                    }
                    paced = pacing.take();
                    // A run of messages yields now and then (tokio's task budget), which
                    // also gives the wakes its handling held back.
                    tokio::task::coop::consume_budget().await;
                }
                Ok(Message::Ping(bytes)) => {
                    let _ = outbox.push_pong(&bytes);
                }
                Err(reason) => return reason,
            },
            _ = outbox.wait_drained(), if !reading && paced.is_empty() => {}
            _ = wait_paced(paced.last(), limits.write_timeout), if !paced.is_empty() => {
                paced.pop();
            }
            _ = &mut check => {
                let now = Instant::now();
                // While not reading, the idle clock stands still.
                let idle_from = paused_at.map_or(last_seen, |at| last_seen + (now - at));
                if now >= idle_from + limits.idle_timeout {
                    return Disconnect::IdleTimeout;
                }
                if outbox
                    .stalled_since()
                    .is_some_and(|since| now >= since + limits.write_timeout)
                {
                    return Disconnect::WriteTimeout;
                }
                check.as_mut().reset(next_check(idle_from, outbox, limits));
            }
        }
    }
}

/// Waits until `subscriber` (an outbox our client's message pushed above high water) has
/// drained below its low-water mark or closed, or has made no progress for `write_timeout`
/// (then its own task drops it for the write timeout: a publisher never waits longer than
/// that for a subscriber that stopped reading). Cancel safe.
async fn wait_paced(subscriber: Option<&Outbox>, write_timeout: Duration) {
    let Some(subscriber) = subscriber else {
        return;
    };
    loop {
        let deadline = subscriber.stalled_since().unwrap_or_else(Instant::now) + write_timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            _ = subscriber.wait_drained() => return,
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// Decodes one text message and answers or hands it on.
async fn dispatch<H: Handler>(
    text: &[u8],
    outbox: &Outbox,
    handler: &mut H,
) -> Result<(), Disconnect> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Disconnect::Malformed("malformed frame: text is not UTF-8".to_string()))?;
    let frame = Frame::decode(text).map_err(|err| {
        tracing::debug!(frame = %crate::text::for_log(text), "{err}");
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
        let _ = outbox.push_frame(reply);
    } else {
        handler.handle_frame(frame).await?;
    }
    Ok(())
}

/// Reads client frames from the request body into an [`Assembler`].
struct Inbound {
    payload: Payload,
    assembler: Assembler,
}

impl Inbound {
    /// The next text message or ping; every other outcome ends the connection. Cancel safe:
    /// bytes read are kept in the assembler until decoded.
    async fn next(&mut self) -> Result<Message, Disconnect> {
        loop {
            if let Some(message) = self.assembler.next_message()? {
                return Ok(message);
            }
            match self.payload.next().await {
                Some(Ok(chunk)) => self.assembler.feed(&chunk),
                Some(Err(err)) => return Err(Disconnect::Protocol(err.to_string())),
                None => return Err(Disconnect::ClientClosed),
            }
        }
    }
}
