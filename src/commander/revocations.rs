//! Runtime unsubscribes, remembered so that a page cannot come back to a topic it left by
//! replaying an older signed topics token.
//!
//! A topics token is a signed list the browser keeps; signing cannot take a list back. So
//! when a page leaves a topic ([`Page::unsubscribe`](super::Page::unsubscribe)), the hub
//! records (browser id, topic, when) here and tells every other node through the pub/sub
//! (topic `tether:revocations`); a topics token of that browser issued before that moment no
//! longer brings the topic back. Entries live as long as a topics token can
//! (`[commander] topics_token_max_age_s`, ten minutes) and are bounded in number
//! ([`MAX_ENTRIES`]: the oldest go first, in O(1) each, from a queue in arrival order).
//!
//! They are kept in memory only: a node that restarts, or one that starts after the leave,
//! does not know it, so there a topics token made before the leave brings the topic back
//! until it is `topics_token_max_age_s` old. That short age is the bound.
//!
//! This module must never decide who may subscribe: it only answers "was this left after
//! that token was made?".

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError, Weak},
};

use bytes::Bytes;

use super::token::unix_now_ms;
use crate::pubsub::{PubSub, Subscriber, SubscriberId};

/// The pub/sub topic revocations travel on between nodes.
const TOPIC: &str = "tether:revocations";

/// Most revocations remembered at once.
pub(crate) const MAX_ENTRIES: usize = 100_000;

pub(crate) struct Revocations {
    entries: Mutex<Entries>,
    max_age_ms: u64,
    pubsub: Arc<dyn PubSub>,
    id: SubscriberId,
}

/// (browser id, topic) -> when it was left (unix ms), and the same in arrival order.
#[derive(Default)]
struct Entries {
    left: HashMap<(String, String), u64>,
    /// Every record, oldest first; one whose time no longer matches `left` is stale (the
    /// pair was left again later) and is skipped when it comes out. At most
    /// [`MAX_ENTRIES`] long, so `left` is too.
    arrivals: VecDeque<(u64, (String, String))>,
}

impl Entries {
    /// Drops the oldest arrival, and its entry unless that was left again since.
    fn pop_oldest(&mut self) {
        if let Some((at, key)) = self.arrivals.pop_front() {
            if self.left.get(&key) == Some(&at) {
                self.left.remove(&key);
            }
        }
    }
}

/// Receives other nodes' revocations.
struct Inbox(Weak<Revocations>);

impl Subscriber for Inbox {
    fn deliver(&self, message: &Bytes) {
        let Some(revocations) = self.0.upgrade() else {
            return;
        };
        match serde_json::from_slice::<(String, String, u64)>(message) {
            Ok((browser, topic, at)) => revocations.record(browser, topic, at),
            Err(err) => tracing::warn!("undecodable revocation: {err}"),
        }
    }
}

impl Revocations {
    /// Starts listening to other nodes' revocations on `pubsub`.
    pub(crate) fn start(pubsub: Arc<dyn PubSub>, max_age_ms: u64) -> Arc<Revocations> {
        let revocations = Arc::new(Revocations {
            entries: Mutex::new(Entries::default()),
            max_age_ms,
            pubsub: pubsub.clone(),
            id: SubscriberId::next(),
        });
        pubsub.subscribe(
            TOPIC,
            revocations.id,
            Arc::new(Inbox(Arc::downgrade(&revocations))),
        );
        revocations
    }

    /// `browser` left `topic` now; tells the other nodes.
    pub(crate) fn revoke(&self, browser: &str, topic: &str) {
        let at = unix_now_ms();
        self.record(browser.to_string(), topic.to_string(), at);
        match serde_json::to_vec(&(browser, topic, at)) {
            Ok(bytes) => self.pubsub.broadcast(TOPIC, bytes.into(), Some(self.id)),
            Err(err) => tracing::error!("cannot encode a revocation: {err}"),
        }
    }

    /// Whether `browser` left `topic` when or after a token issued at `issued_ms` was made.
    pub(crate) fn is_revoked(&self, browser: &str, topic: &str, issued_ms: u64) -> bool {
        self.left_at(browser, topic)
            .is_some_and(|at| issued_ms <= at)
    }

    /// When `browser` last left `topic`, if remembered.
    pub(crate) fn left_at(&self, browser: &str, topic: &str) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .left
            .get(&(browser.to_string(), topic.to_string()))
            .copied()
    }

    /// Remembers that `browser` left `topic` at `at`; forgets what is older than a topics
    /// token may be, and the oldest past [`MAX_ENTRIES`] (each in O(1)).
    fn record(&self, browser: String, topic: String, at: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let horizon = unix_now_ms().saturating_sub(self.max_age_ms);
        if at < horizon {
            return; // every token it could refuse is too old anyway
        }
        while entries
            .arrivals
            .front()
            .is_some_and(|(at, _)| *at < horizon)
        {
            entries.pop_oldest();
        }
        while entries.arrivals.len() >= MAX_ENTRIES {
            entries.pop_oldest();
        }
        let key = (browser, topic);
        let latest = entries.left.get(&key).map_or(at, |known| (*known).max(at));
        entries.left.insert(key.clone(), latest);
        entries.arrivals.push_back((latest, key));
    }
}

impl Drop for Revocations {
    fn drop(&mut self) {
        self.pubsub.unsubscribe(TOPIC, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::LocalPubSub;

    #[test]
    fn a_revocation_refuses_older_tokens_on_every_node() {
        let bus: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let (a, b) = (
            Revocations::start(bus.clone(), 60_000),
            Revocations::start(bus, 60_000),
        );
        let before = unix_now_ms().saturating_sub(1);
        a.revoke("browser-1", "tether:topic:room");
        for node in [&a, &b] {
            assert!(node.is_revoked("browser-1", "tether:topic:room", before));
            assert!(!node.is_revoked("browser-2", "tether:topic:room", before));
            assert!(!node.is_revoked("browser-1", "tether:topic:other", before));
            assert!(!node.is_revoked("browser-1", "tether:topic:room", u64::MAX));
        }
    }

    #[test]
    fn entries_are_bounded() {
        let bus: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let revocations = Revocations::start(bus, 60_000);
        let now = unix_now_ms();
        for n in 0..(MAX_ENTRIES as u64 + 10) {
            revocations.record(format!("b{n}"), "t".into(), now + n);
        }
        let entries = revocations.entries.lock().unwrap();
        assert_eq!(entries.left.len(), MAX_ENTRIES);
        assert_eq!(entries.arrivals.len(), MAX_ENTRIES);
        assert!(
            !entries
                .left
                .contains_key(&("b0".to_string(), "t".to_string()))
        );
        assert!(
            entries
                .left
                .contains_key(&("b10".to_string(), "t".to_string()))
        );
    }

    #[test]
    fn old_entries_go_and_a_pair_left_again_keeps_its_latest_time() {
        let bus: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let revocations = Revocations::start(bus, 60_000);
        let now = unix_now_ms();
        // Older than a topics token may be: forgotten at the next record.
        revocations.record("old".into(), "t".into(), now - 120_000);
        revocations.record("b".into(), "t".into(), now - 10);
        revocations.record("b".into(), "t".into(), now);
        assert_eq!(revocations.left_at("old", "t"), None);
        assert_eq!(revocations.left_at("b", "t"), Some(now));
        // The stale arrival of "b" (now - 10) coming out does not forget the later leave.
        revocations.entries.lock().unwrap().pop_oldest();
        assert_eq!(revocations.left_at("b", "t"), Some(now));
    }
}
