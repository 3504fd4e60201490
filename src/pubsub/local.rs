//! The in-process pub/sub: topic → subscribers, sharded by topic hash.
//!
//! Invariants: a broadcast holds only its topic's shard read lock while delivering, so
//! broadcasts to different shards never contend and subscribers of one topic see messages in
//! publish order per publisher. It never blocks on a subscriber ([`Subscriber::deliver`] must
//! not block).

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{Arc, PoisonError, RwLock},
};

use bytes::Bytes;
use indexmap::IndexMap;

use super::{PubSub, Subscriber, SubscriberId};
use crate::metrics::metrics;

const SHARDS: usize = 16;

type Subscribers = IndexMap<SubscriberId, Arc<dyn Subscriber>>;

/// One shard: topic → its subscribers.
type Shard = RwLock<HashMap<Box<str>, Subscribers>>;

/// In-process [`PubSub`], the default adapter. Cheap to share behind an `Arc`.
pub struct LocalPubSub {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

impl std::fmt::Debug for LocalPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPubSub").finish_non_exhaustive()
    }
}

impl Default for LocalPubSub {
    fn default() -> Self {
        LocalPubSub::new()
    }
}

impl LocalPubSub {
    /// An empty bus.
    pub fn new() -> LocalPubSub {
        LocalPubSub {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    fn shard(&self, topic: &str) -> &Shard {
        let index = self.hasher.hash_one(topic) as usize % SHARDS;
        &self.shards[index]
    }
}

impl Drop for LocalPubSub {
    /// Subscriptions still held when the bus goes leave `tether_subscriptions` with it.
    fn drop(&mut self) {
        let held: usize = self
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.read().unwrap_or_else(PoisonError::into_inner);
                shard.values().map(IndexMap::len).sum::<usize>()
            })
            .sum();
        metrics().subscriptions.sub(held as i64);
    }
}

impl PubSub for LocalPubSub {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Subscriber>) {
        let mut shard = self
            .shard(topic)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let added = match shard.get_mut(topic) {
            Some(subscribers) => subscribers.insert(id, subscriber).is_none(),
            None => {
                shard.insert(topic.into(), IndexMap::from([(id, subscriber)]));
                true
            }
        };
        if added {
            metrics().subscriptions.inc();
        }
    }

    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        let mut shard = self
            .shard(topic)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(subscribers) = shard.get_mut(topic) {
            if subscribers.swap_remove(&id).is_some() {
                metrics().subscriptions.dec();
            }
            if subscribers.is_empty() {
                shard.remove(topic);
            }
        }
    }

    fn broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        self.local_broadcast(topic, message, except);
    }

    fn local_broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        let shard = self
            .shard(topic)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(subscribers) = shard.get(topic) {
            for (id, subscriber) in subscribers {
                if Some(*id) != except {
                    subscriber.deliver(&message);
                }
            }
        }
    }

    fn local_subscriber_count(&self, topic: &str) -> usize {
        let shard = self
            .shard(topic)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(topic).map_or(0, IndexMap::len)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Inbox(Mutex<Vec<Bytes>>);

    impl Subscriber for Inbox {
        fn deliver(&self, message: &Bytes) {
            self.0.lock().unwrap().push(message.clone());
        }
    }

    impl Inbox {
        fn taken(&self) -> Vec<Bytes> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    #[test]
    fn broadcast_shares_one_buffer_and_skips_the_sender() {
        let bus = LocalPubSub::new();
        let (a, b) = (Arc::new(Inbox::default()), Arc::new(Inbox::default()));
        let (ida, idb) = (SubscriberId::next(), SubscriberId::next());
        bus.subscribe("t", ida, a.clone());
        bus.subscribe("t", idb, b.clone());
        bus.subscribe("other", ida, a.clone());

        let message = Bytes::from(vec![1u8, 2, 3]);
        bus.broadcast("t", message.clone(), None);
        let (got_a, got_b) = (a.taken(), b.taken());
        assert_eq!(got_a, vec![message.clone()]);
        assert_eq!(
            got_a[0].as_ptr(),
            message.as_ptr(),
            "same buffer, not a copy"
        );
        assert_eq!(got_b[0].as_ptr(), message.as_ptr());

        bus.broadcast("t", message.clone(), Some(ida));
        assert!(a.taken().is_empty());
        assert_eq!(b.taken().len(), 1);
    }

    #[test]
    fn unsubscribe_removes_only_that_topic_and_empty_topics_vanish() {
        let bus = LocalPubSub::new();
        let a = Arc::new(Inbox::default());
        let id = SubscriberId::next();
        bus.subscribe("x", id, a.clone());
        bus.subscribe("y", id, a.clone());
        bus.unsubscribe("x", id);
        assert_eq!(bus.local_subscriber_count("x"), 0);
        assert_eq!(bus.local_subscriber_count("y"), 1);
        bus.broadcast("x", Bytes::from_static(b"gone"), None);
        bus.broadcast("y", Bytes::from_static(b"here"), None);
        assert_eq!(a.taken(), vec![Bytes::from_static(b"here")]);
        bus.unsubscribe("y", id);
        for shard in bus.shards.iter() {
            assert!(shard.read().unwrap().is_empty());
        }
    }
}
