//! The Redis adapter: broadcasts reach subscribers on every node through one Redis pub/sub
//! channel.
//!
//! A broadcast is delivered to this node's subscribers at once and published **once** to
//! Redis as `[node][topic][payload]`; every other node delivers the payload to its own
//! subscribers (a node ignores its own messages). Redis is only the transport: nothing is
//! stored there, so no Redis key is a source of truth.
//!
//! Failure policy: publishing never blocks a caller. Messages wait in a bounded queue
//! (`PUBLISH_QUEUE`); when it is full, or while Redis is unreachable, they are dropped with a
//! warning. Both the publisher and the subscriber reconnect with jittered exponential
//! backoff (100 ms up to 5 s), logging once when Redis goes away and once when it is back.
//! Presence repairs itself after an outage (heartbeat gaps trigger snapshots); plain channel
//! broadcasts sent during an outage are lost. Redis down at start is not an error: the node
//! serves its local pages and keeps retrying.

use std::{sync::Arc, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{LocalPubSub, PubSub, PubSubError, Subscriber, SubscriberId};

/// Messages waiting to be published, at most.
const PUBLISH_QUEUE: usize = 65_536;

/// In-process delivery plus Redis between nodes.
pub struct RedisPubSub {
    local: Arc<LocalPubSub>,
    node: Arc<str>,
    outgoing: mpsc::Sender<Bytes>,
}

impl RedisPubSub {
    /// Connects (in the background) to `url` as node `node`, on the Redis channel
    /// `tether:bus`. Must be called inside a tokio runtime. Fails only on a malformed URL.
    pub fn start(url: &str, node: &str) -> Result<Arc<RedisPubSub>, PubSubError> {
        let client = redis::Client::open(url).map_err(|err| PubSubError::Redis(err.to_string()))?;
        let local = Arc::new(LocalPubSub::new());
        let node: Arc<str> = node.into();
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        let channel = "tether:bus";
        tokio::spawn(publish(client.clone(), channel, queue, url.to_string()));
        tokio::spawn(subscribe(client, channel, local.clone(), node.clone()));
        Ok(Arc::new(RedisPubSub {
            local,
            node,
            outgoing,
        }))
    }
}

/// `[u16 node len][node][u16 topic len][topic][payload]`.
fn envelope(node: &str, topic: &str, payload: &[u8]) -> Option<Bytes> {
    let node_len = u16::try_from(node.len()).ok()?;
    let topic_len = u16::try_from(topic.len()).ok()?;
    let mut out = BytesMut::with_capacity(4 + node.len() + topic.len() + payload.len());
    out.put_u16(node_len);
    out.put_slice(node.as_bytes());
    out.put_u16(topic_len);
    out.put_slice(topic.as_bytes());
    out.put_slice(payload);
    Some(out.freeze())
}

/// Splits an envelope into (node, topic, payload).
fn open(bytes: &[u8]) -> Option<(&str, &str, &[u8])> {
    let take = |bytes: &'_ [u8]| -> Option<(usize, usize)> {
        let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
        (bytes.len() >= 2 + len).then_some((2, 2 + len))
    };
    let (start, end) = take(bytes)?;
    let node = std::str::from_utf8(&bytes[start..end]).ok()?;
    let rest = &bytes[end..];
    let (start, end) = take(rest)?;
    let topic = std::str::from_utf8(&rest[start..end]).ok()?;
    Some((node, topic, &rest[end..]))
}

impl PubSub for RedisPubSub {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Subscriber>) {
        self.local.subscribe(topic, id, subscriber);
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        self.local.unsubscribe(topic, id);
    }

    fn broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        match envelope(&self.node, topic, &message) {
            Some(bytes) => {
                if self.outgoing.try_send(bytes).is_err() {
                    tracing::warn!(%topic, "redis publish queue full or closed; message not sent to other nodes");
                }
            }
            None => tracing::error!(%topic, "topic or node name too long for the redis envelope"),
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
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            delay: Duration::from_millis(100),
            failing: false,
        }
    }

    async fn failed(&mut self, what: &str, err: &(dyn std::fmt::Display + Sync)) {
        if !self.failing {
            tracing::warn!("redis {what} failed: {err}; retrying with backoff up to 5 s");
            self.failing = true;
        } else {
            tracing::debug!("redis {what} failed again: {err}");
        }
        let jitter = 0.75 + rand::random::<f64>() / 2.0;
        tokio::time::sleep(self.delay.mul_f64(jitter)).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
    }

    fn succeeded(&mut self, what: &str) {
        if self.failing {
            tracing::info!("redis {what} recovered");
        }
        self.failing = false;
        self.delay = Duration::from_millis(100);
    }
}

async fn publish(
    client: redis::Client,
    channel: &'static str,
    mut queue: mpsc::Receiver<Bytes>,
    url: String,
) {
    let mut backoff = Backoff::new();
    loop {
        let mut connection = match client.get_multiplexed_async_connection().await {
            Ok(connection) => connection,
            Err(err) => {
                // Drop what piled up meanwhile, so a long outage does not replay stale traffic.
                while queue.try_recv().is_ok() {}
                backoff.failed(&format!("connection to {url}"), &err).await;
                continue;
            }
        };
        backoff.succeeded("publisher");
        loop {
            let Some(message) = queue.recv().await else {
                return;
            };
            let sent: redis::RedisResult<()> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message.as_ref())
                .query_async(&mut connection)
                .await;
            if let Err(err) = sent {
                backoff.failed("publish", &err).await;
                break;
            }
        }
    }
}

async fn subscribe(
    client: redis::Client,
    channel: &'static str,
    local: Arc<LocalPubSub>,
    node: Arc<str>,
) {
    let mut backoff = Backoff::new();
    loop {
        let mut pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => {
                backoff.failed("subscriber connection", &err).await;
                continue;
            }
        };
        if let Err(err) = pubsub.subscribe(channel).await {
            backoff.failed("subscribe", &err).await;
            continue;
        }
        backoff.succeeded("subscriber");
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            match open(message.get_payload_bytes()) {
                Some((from, _, _)) if from == &*node => {}
                Some((_, topic, payload)) => {
                    local.local_broadcast(topic, Bytes::copy_from_slice(payload), None);
                }
                None => tracing::warn!("undecodable message on redis channel {channel}"),
            }
        }
        backoff.failed("subscription", &"connection lost").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_reject_garbage() {
        let bytes = envelope("node-a", "room:lobby", b"[1,2]").unwrap();
        assert_eq!(open(&bytes), Some(("node-a", "room:lobby", &b"[1,2]"[..])));
        assert_eq!(open(b""), None);
        assert_eq!(open(&[0, 9, b'x']), None);
        assert!(envelope(&"n".repeat(70_000), "t", b"").is_none());
    }
}
