//! Publish/subscribe between the tasks of one node and, through an adapter, between nodes.
//!
//! A message is opaque [`Bytes`]: whoever publishes encodes it **once** and every subscriber
//! receives a cheap clone of the same buffer. Subscribers are anything that implements
//! [`Subscriber`] (a connection's outbound queue, a presence tracker's inbox, …).
//!
//! Two adapters implement the one [`PubSub`] trait: [`LocalPubSub`] (in-process, the
//! default) and [`RedisPubSub`] for clusters. This module must never know what the bytes mean:
//! no frames, no presence, no channels.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tether::pubsub::{LocalPubSub, PubSub, Subscriber, SubscriberId};
//! use bytes::Bytes;
//!
//! #[derive(Default)]
//! struct Inbox(Mutex<Vec<Bytes>>);
//! impl Subscriber for Inbox {
//!     fn deliver(&self, message: &Bytes) {
//!         self.0.lock().unwrap().push(message.clone());
//!     }
//! }
//!
//! let pubsub = LocalPubSub::new();
//! let inbox = Arc::new(Inbox::default());
//! pubsub.subscribe("room:lobby", SubscriberId::next(), inbox.clone());
//! pubsub.broadcast("room:lobby", Bytes::from_static(b"hello"), None);
//! assert_eq!(inbox.0.lock().unwrap().len(), 1);
//! ```

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

mod bus;
mod local;
#[cfg(feature = "redis")]
mod redis;

pub use bus::BusIdentity;
#[cfg(feature = "fuzzing")]
pub(crate) use bus::fuzz_envelope;
pub use local::LocalPubSub;
#[cfg(feature = "redis")]
pub use redis::{FLUSH_TIMEOUT, PUBLISH_QUEUE_BYTES, PUBLISH_REPLY_TIMEOUT, RedisPubSub};

/// Longest a stopping bus spends sending what is still queued (goodbyes included).
#[cfg(not(feature = "redis"))]
pub const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

use crate::config::PubSubConfig;

/// Errors choosing or starting a pub/sub adapter.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The Redis URL is malformed.
    #[error("invalid pubsub.url: {0}")]
    Redis(String),
}

/// The adapter `config` (`[pubsub]`) selects: in-process unless `url` is set, then Redis
/// (as node [`PubSubConfig::node_name`], on the channel and with the envelope key that
/// [`BusIdentity::derive`] makes of `secret` — `secret_key_base` — and `channel`). Connects
/// nothing until [`PubSub::start`]. Crate-private: the endpoint's builder is the one place
/// an app's pub/sub is made (and the endpoint hands it out).
pub(crate) fn from_config(
    config: &PubSubConfig,
    secret: &str,
) -> Result<Arc<dyn PubSub>, PubSubError> {
    match &config.url {
        None => Ok(Arc::new(LocalPubSub::new())),
        #[cfg(feature = "redis")]
        Some(url) => {
            let bus = BusIdentity::derive(secret.as_bytes(), config.channel.as_deref());
            let window = std::time::Duration::from_millis(config.replay_window_ms);
            Ok(Arc::new(
                RedisPubSub::new(url, &config.node_name(), bus)?.with_replay_window(window),
            ))
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => {
            let _ = secret;
            Err(PubSubError::Redis(
                "pubsub.url is set but tether was built without its `redis` feature".into(),
            ))
        }
    }
}

/// Names one subscription holder on this node, so that a broadcast can skip its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(u64);

impl SubscriberId {
    /// A fresh id, unique within this process.
    pub fn next() -> SubscriberId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SubscriberId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the id (for logs).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Receives published messages.
///
/// `deliver` is called while the pub/sub holds a read lock on the topic, once per message:
/// it must be quick and must never block or await (queue the bytes and return).
pub trait Subscriber: Send + Sync + 'static {
    /// Takes one message. Dropping it (e.g. because the subscriber is overloaded) is the
    /// subscriber's own decision and must be handled by the subscriber.
    fn deliver(&self, message: &Bytes);
}

/// A pub/sub bus. Implementations: [`LocalPubSub`]; a Redis adapter for clusters.
pub trait PubSub: Send + Sync + 'static {
    /// Starts what the adapter runs in the background (connections to other nodes) on
    /// `tasks`, until `shutdown`. Nothing for the in-process adapter. Called once by the
    /// endpoint; needs a tokio runtime.
    fn start(&self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        let _ = (tasks, shutdown);
    }

    /// Subscribes `subscriber` to `topic` under `id`. Subscribing the same id twice to one
    /// topic replaces the earlier subscriber.
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Subscriber>);

    /// Removes `id`'s subscription to `topic`, if any.
    fn unsubscribe(&self, topic: &str, id: SubscriberId);

    /// Delivers `message` to every subscriber of `topic` on every node, except the local
    /// subscriber `except`.
    fn broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>);

    /// Delivers `message` to the subscribers of `topic` on this node only.
    fn local_broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>);

    /// How many subscribers `topic` has on this node.
    fn local_subscriber_count(&self, topic: &str) -> usize;
}
