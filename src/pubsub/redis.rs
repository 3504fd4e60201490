//! The Redis adapter: broadcasts reach subscribers on every node through one Redis pub/sub
//! channel.
//!
//! A broadcast is delivered to this node's subscribers at once and published **once** to
//! Redis as an authenticated envelope; every other node checks it and delivers the payload to
//! its own subscribers (a node ignores its own messages). Redis is only the transport:
//! nothing is stored there, so no Redis key is a source of truth.
//!
//! # Trust
//!
//! Anyone who can `PUBLISH` on the Redis server could otherwise speak for a node. So:
//! - The channel is namespaced: `[pubsub] channel`, by default `tether:bus:<16 hex digits>`
//!   derived from `secret_key_base` (apps with different secrets never share a channel, even
//!   on one Redis).
//! - Every envelope carries an HMAC-SHA256 of everything else in it, under a key derived
//!   from `secret_key_base` (which every node of a cluster shares). A message whose MAC
//!   does not verify, that is malformed, or that has a version this node does not know is
//!   dropped and counted ([`RedisPubSub::rejected`]), with at most one log line per 10 s.
//! - Every envelope carries the sending process's `instance` (random per start), a counter
//!   of its envelopes and its clock; a copy of a genuine envelope published again (a
//!   replay), or one older than `[pubsub] replay_window_ms` (60 s), is dropped and counted
//!   ([`RedisPubSub::replays`]), with at most one log line per 10 s (see `pubsub::bus`).
//!   Envelopes are sealed by the one publisher task, in the order it sends them, so each
//!   process's counters reach Redis, and every subscriber, in increasing order.
//!
//! The envelope's format is in `pubsub::bus`. A message under this node's own name from
//! another instance means two processes share a name, which is logged as an error.
//!
//! Failure policy: publishing never blocks a caller. Messages wait in a queue bounded in
//! count (`PUBLISH_QUEUE`) and in bytes (`PUBLISH_QUEUE_BYTES`); when it is full, or while
//! Redis is unreachable, they are dropped with a warning. The publisher sends what is
//! queued in pipelined batches (one round trip per batch, not per message), so a busy node's
//! presence heartbeats do not wait behind a queue of round trips; a batch whose reply takes
//! longer than [`PUBLISH_REPLY_TIMEOUT`] counts as a failure (a Redis that pauses for a
//! second, or a node too busy to read the reply at once, is not one). Both the publisher and the
//! subscriber reconnect with jittered exponential backoff (100 ms up to 5 s), logging once
//! when Redis goes away and once when it is back. Presence repairs itself after an outage
//! (heartbeat gaps trigger snapshots); plain channel broadcasts sent during an outage are
//! lost. Redis down at start is not an error: the node serves its local pages and keeps
//! retrying.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    LocalPubSub, PubSub, PubSubError, Subscriber, SubscriberId,
    bus::{BusIdentity, ENVELOPE_OVERHEAD, Rejected, ReplayGuard, Stamp},
};
use crate::drops::DropCounter;

/// Messages waiting to be published, at most.
const PUBLISH_QUEUE: usize = 65_536;

/// Bytes waiting to be published, at most.
pub const PUBLISH_QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// Messages sent in one pipelined batch, at most.
const PUBLISH_BATCH: usize = 256;

/// Bytes of messages in one batch: once reached, the batch is sent (a single larger message
/// still goes alone).
const PUBLISH_BATCH_BYTES: usize = 1024 * 1024;

/// How long the publisher waits for Redis to answer a batch before it counts the publish as
/// failed and reconnects (redis-rs' default is 500 ms, which a loaded machine exceeds
/// without anything being wrong).
pub const PUBLISH_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A message waiting to be sealed and published.
struct Outgoing {
    topic: Box<str>,
    payload: Bytes,
}

impl Outgoing {
    /// Its envelope's size (what the byte bound of the queue counts).
    fn envelope_len(&self, node: &str) -> usize {
        ENVELOPE_OVERHEAD + node.len() + self.topic.len() + self.payload.len()
    }
}

/// The default of `[pubsub] replay_window_ms`.
const REPLAY_WINDOW: Duration = Duration::from_secs(60);

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// In-process delivery plus Redis between nodes.
pub struct RedisPubSub {
    local: Arc<LocalPubSub>,
    node: Arc<str>,
    instance: u64,
    bus: BusIdentity,
    outgoing: mpsc::Sender<Outgoing>,
    queued_bytes: Arc<AtomicUsize>,
    rejected: Arc<DropCounter>,
    replays: Arc<DropCounter>,
    replay_window: Duration,
    not_sent: DropCounter,
    /// What the publisher and subscriber tasks take when started.
    idle: Mutex<Option<Idle>>,
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPubSub")
            .field("node", &self.node)
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}

/// A bus not started yet.
struct Idle {
    client: redis::Client,
    queue: mpsc::Receiver<Outgoing>,
    url: String,
}

impl RedisPubSub {
    /// A Redis bus for node `node` on `bus`'s channel; nothing connects until
    /// [`PubSub::start`] (the endpoint calls it). Fails only on a malformed URL.
    pub fn new(url: &str, node: &str, bus: BusIdentity) -> Result<RedisPubSub, PubSubError> {
        let client = redis::Client::open(url).map_err(|err| PubSubError::Redis(err.to_string()))?;
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        Ok(RedisPubSub {
            local: Arc::new(LocalPubSub::new()),
            node: node.into(),
            instance: rand::random::<u64>(),
            bus,
            outgoing,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            rejected: Arc::new(DropCounter::new()),
            replays: Arc::new(DropCounter::new()),
            replay_window: REPLAY_WINDOW,
            not_sent: DropCounter::new(),
            idle: Mutex::new(Some(Idle {
                client,
                queue,
                url: url.to_string(),
            })),
        })
    }

    /// Sets how old a message from another node may be (`[pubsub] replay_window_ms`;
    /// 60 s by default): see the module docs.
    pub fn with_replay_window(mut self, window: Duration) -> RedisPubSub {
        self.replay_window = window;
        self
    }

    /// Messages from Redis dropped so far because they were forged, malformed or of an
    /// unknown version.
    pub fn rejected(&self) -> u64 {
        self.rejected.total()
    }

    /// Genuine messages from Redis dropped so far because they were replays (already
    /// received) or older than the replay window.
    pub fn replays(&self) -> u64 {
        self.replays.total()
    }

    /// Broadcasts not sent to other nodes so far because the publish queue was full (in
    /// messages or bytes) or closed. They were still delivered on this node.
    pub fn unsent(&self) -> u64 {
        self.not_sent.total()
    }

    fn enqueue(&self, topic: &str, message: Outgoing) {
        let len = message.envelope_len(&self.node);
        let queued = self.queued_bytes.fetch_add(len, Ordering::AcqRel) + len;
        if queued > PUBLISH_QUEUE_BYTES || self.outgoing.try_send(message).is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.not_sent.count(|total| {
                tracing::warn!(
                    %topic,
                    total,
                    "redis publish queue full or closed; messages not sent to other nodes"
                )
            });
        }
    }
}

impl PubSub for RedisPubSub {
    /// Spawns the publisher and the subscriber (once). On `shutdown` the subscriber stops and
    /// the publisher sends what is queued (at most [`FLUSH_TIMEOUT`]), then stops.
    fn start(&self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let Some(Idle { client, queue, url }) = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        tracing::info!(channel = self.bus.channel(), node = %self.node, "redis bus");
        tasks.spawn(publish(
            Publisher {
                client: client.clone(),
                channel: self.bus.channel.clone(),
                queued_bytes: self.queued_bytes.clone(),
                url,
                bus: self.bus.clone(),
                node: self.node.clone(),
                instance: self.instance,
                counter: 0,
            },
            queue,
            shutdown.clone(),
        ));
        let receiver = Receiver {
            bus: self.bus.clone(),
            local: self.local.clone(),
            node: self.node.clone(),
            instance: self.instance,
            rejected: self.rejected.clone(),
            impostors: DropCounter::new(),
            replays: self.replays.clone(),
            guard: ReplayGuard::new(self.replay_window.as_millis() as u64),
        };
        tasks.spawn(subscribe(client, receiver, shutdown.clone()));
    }

    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Subscriber>) {
        self.local.subscribe(topic, id, subscriber);
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        self.local.unsubscribe(topic, id);
    }

    fn broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        if topic.len() <= usize::from(u16::MAX) && self.node.len() <= usize::from(u16::MAX) {
            let outgoing = Outgoing {
                topic: topic.into(),
                payload: message.clone(),
            };
            self.enqueue(topic, outgoing);
        } else {
            tracing::error!(
                topic = %crate::text::for_log(topic),
                "topic or node name too long for the redis envelope"
            );
        }
        self.local.local_broadcast(topic, message, except);
    }

    fn local_broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        self.local.local_broadcast(topic, message, except);
    }

    fn local_subscriber_count(&self, topic: &str) -> usize {
        self.local.local_subscriber_count(topic)
    }
}

/// Retries with jittered exponential backoff, logging the first failure of an outage and
/// the recovery.
struct Backoff {
    delay: Duration,
    failing: bool,
    /// A connection was made before: the next one is a reconnect (counted in the metrics).
    connected_before: bool,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: Duration::from_millis(100),
            failing: false,
            connected_before: false,
        }
    }

    /// Logs (once per outage) and waits the backoff delay; `false` if `shutdown` came first.
    async fn failed(
        &mut self,
        what: &str,
        err: &(dyn std::fmt::Display + Sync),
        shutdown: &CancellationToken,
    ) -> bool {
        if !self.failing {
            tracing::warn!("redis {what} failed: {err}; retrying with backoff up to 5 s");
            self.failing = true;
        } else {
            tracing::debug!("redis {what} failed again: {err}");
        }
        let jitter = 0.75 + rand::random::<f64>() / 2.0;
        let delay = self.delay.mul_f64(jitter);
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    fn succeeded(&mut self, what: &str) {
        if self.connected_before {
            crate::metrics::metrics().redis_reconnects.inc();
        }
        self.connected_before = true;
        if self.failing {
            tracing::info!("redis {what} recovered");
        }
        self.failing = false;
        self.delay = Duration::from_millis(100);
    }
}

/// Longest a stopping publisher spends sending what is still queued (goodbyes included).
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the publisher task needs besides its queue.
struct Publisher {
    client: redis::Client,
    channel: String,
    queued_bytes: Arc<AtomicUsize>,
    url: String,
    bus: BusIdentity,
    node: Arc<str>,
    instance: u64,
    /// The last envelope's counter.
    counter: u64,
}

impl Publisher {
    /// Takes `message` off the queue's byte count and seals it with the next counter and
    /// the time now (`None` if there is none, or it cannot be sealed).
    fn take(&mut self, message: Option<Outgoing>) -> Option<Bytes> {
        let message = message?;
        self.queued_bytes
            .fetch_sub(message.envelope_len(&self.node), Ordering::AcqRel);
        self.counter += 1;
        let stamp = Stamp {
            instance: self.instance,
            counter: self.counter,
            sent: wall_ms(),
        };
        // The names' lengths were checked when the message was queued.
        self.bus
            .seal(stamp, &self.node, &message.topic, &message.payload)
    }

    /// `first` and what else is queued now, up to [`PUBLISH_BATCH`] messages and
    /// [`PUBLISH_BATCH_BYTES`].
    fn batch(&mut self, first: Bytes, queue: &mut mpsc::Receiver<Outgoing>) -> Vec<Bytes> {
        let mut bytes = first.len();
        let mut batch = vec![first];
        while batch.len() < PUBLISH_BATCH && bytes < PUBLISH_BATCH_BYTES {
            let Some(message) = self.take(queue.try_recv().ok()) else {
                break;
            };
            bytes += message.len();
            batch.push(message);
        }
        batch
    }

    /// Publishes `batch` in one pipeline (one round trip).
    async fn send(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        batch: &[Bytes],
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for message in batch {
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message.as_ref())
                .ignore();
        }
        pipe.query_async(connection).await
    }

    /// Sends what is queued now, within [`FLUSH_TIMEOUT`].
    async fn flush(
        &mut self,
        connection: &mut redis::aio::MultiplexedConnection,
        queue: &mut mpsc::Receiver<Outgoing>,
    ) {
        let flushing = async {
            while let Some(first) = self.take(queue.try_recv().ok()) {
                let batch = self.batch(first, queue);
                if self.send(connection, &batch).await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, flushing).await;
    }
}

async fn publish(
    mut publisher: Publisher,
    mut queue: mpsc::Receiver<Outgoing>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    loop {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(PUBLISH_REPLY_TIMEOUT));
        let connecting = publisher
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let mut connection = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = connecting => match connected {
                Ok(connection) => connection,
                Err(err) => {
                    // Drop what piled up meanwhile, so a long outage does not replay stale
                    // traffic.
                    while let Ok(message) = queue.try_recv() {
                        publisher.queued_bytes.fetch_sub(
                            message.envelope_len(&publisher.node),
                            Ordering::AcqRel,
                        );
                    }
                    let what = format!("connection to {}", publisher.url);
                    if !backoff.failed(&what, &err, &shutdown).await {
                        return;
                    }
                    continue;
                }
            },
        };
        backoff.succeeded("publisher");
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => {
                    publisher.flush(&mut connection, &mut queue).await;
                    return;
                }
                message = queue.recv() => message,
            };
            let Some(message) = message else {
                return;
            };
            let Some(first) = publisher.take(Some(message)) else {
                continue;
            };
            let batch = publisher.batch(first, &mut queue);
            if let Err(err) = publisher.send(&mut connection, &batch).await {
                if !backoff.failed("publish", &err, &shutdown).await {
                    return;
                }
                break;
            }
        }
    }
}

/// What the subscriber needs to check and deliver messages from other nodes.
struct Receiver {
    bus: BusIdentity,
    local: Arc<LocalPubSub>,
    node: Arc<str>,
    instance: u64,
    rejected: Arc<DropCounter>,
    impostors: DropCounter,
    replays: Arc<DropCounter>,
    guard: ReplayGuard,
}

impl Receiver {
    fn receive(&mut self, bytes: &[u8]) {
        let opened = self.bus.open(bytes).and_then(|opened| {
            self.guard.check(&opened, wall_ms())?;
            Ok(opened)
        });
        match opened {
            Err(why @ (Rejected::Stale | Rejected::Replayed)) => self.replays.count(|total| {
                tracing::warn!(
                    channel = self.bus.channel(),
                    ?why,
                    total,
                    "dropped a replayed or stale message on the redis bus (a copy of an \
                     earlier message, or a node's clock is off by more than \
                     pubsub.replay_window_ms)"
                )
            }),
            Ok(opened) if opened.node == &*self.node => {
                if opened.stamp.instance != self.instance {
                    self.impostors.count(|total| {
                        tracing::error!(
                            node = %self.node,
                            total,
                            "another process publishes under this node's name: every node \
                             needs a unique TETHER_NODE"
                        )
                    });
                }
            }
            Ok(opened) => {
                self.local.local_broadcast(
                    opened.topic,
                    Bytes::copy_from_slice(opened.payload),
                    None,
                );
            }
            Err(why) => self.rejected.count(|total| {
                tracing::warn!(
                    channel = self.bus.channel(),
                    ?why,
                    total,
                    "dropped a message on the redis bus that is not from a node of this cluster"
                )
            }),
        }
    }
}

async fn subscribe(client: redis::Client, mut receiver: Receiver, shutdown: CancellationToken) {
    let mut backoff = Backoff::new();
    loop {
        let connecting = async {
            let mut pubsub = client
                .get_async_pubsub()
                .await
                .map_err(|e| ("connection", e))?;
            pubsub
                .subscribe(receiver.bus.channel())
                .await
                .map_err(|e| ("subscribe", e))?;
            Ok::<_, (&str, redis::RedisError)>(pubsub)
        };
        let pubsub = tokio::select! {
            _ = shutdown.cancelled() => return,
            connected = connecting => match connected {
                Ok(pubsub) => pubsub,
                Err((what, err)) => {
                    if !backoff.failed(&format!("subscriber {what}"), &err, &shutdown).await {
                        return;
                    }
                    continue;
                }
            },
        };
        backoff.succeeded("subscriber");
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                message = messages.next() => match message {
                    Some(message) => receiver.receive(message.get_payload_bytes()),
                    None => break,
                },
            }
        }
        if !backoff
            .failed("subscription", &"connection lost", &shutdown)
            .await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_queue_is_bounded_in_bytes() {
        // Not started: nothing drains the queue, as when Redis is slow.
        let bus = BusIdentity::derive(&[1; 64], None);
        let redis = RedisPubSub::new("redis://127.0.0.1:1/", "n", bus).unwrap();
        let megabyte = Bytes::from(vec![b'x'; 1024 * 1024]);
        for _ in 0..70 {
            redis.broadcast("t", megabyte.clone(), None);
        }
        // 64 MiB fit (envelopes are a little larger than their payloads), the rest do not.
        assert_eq!(redis.unsent(), 70 - 63);
        assert!(redis.queued_bytes.load(Ordering::Acquire) <= PUBLISH_QUEUE_BYTES);
    }
}
