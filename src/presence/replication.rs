//! Replication: the gossip task. Every broadcast period it applies the gossip already
//! queued, ticks each shard's tracker (the down and permdown rules) and publishes its
//! heartbeat (split at `presence.max_heartbeat_bytes`) and the transfers peers asked for;
//! it applies peers' gossip as it arrives. Gossip travels versioned (`gossip`, a private format) on the
//! pub/sub topics `tether:presence:<shard>`.
//!
//! It must never run application hooks (the delivery task does), so a slow hook cannot
//! delay a heartbeat.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{
    Presence, SHARDS,
    gossip::{Gossip, Message},
};
use crate::pubsub::Subscriber;

/// Receives this node's share of presence gossip from pub/sub.
pub(super) struct GossipInbox {
    pub(super) shard: usize,
    pub(super) queue: mpsc::Sender<(usize, Bytes)>,
}

impl Subscriber for GossipInbox {
    fn deliver(&self, message: &Bytes) {
        if self.queue.try_send((self.shard, message.clone())).is_err() {
            // Dropped gossip is repaired by the next heartbeat's gap check (a transfer).
            tracing::warn!(
                shard = self.shard,
                "presence gossip queue full; message dropped"
            );
        }
    }
}

pub(super) fn gossip_topic(shard: usize) -> String {
    format!("tether:presence:{shard}")
}

impl Presence {
    /// Gossip: heartbeats, peers' messages, the down rules. Never runs application hooks.
    pub(super) async fn run_gossip(self, mut inbox: mpsc::Receiver<(usize, Bytes)>) {
        let period = Duration::from_millis(self.inner.config.broadcast_period_ms);
        let mut heartbeat = tokio::time::interval(period);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                _ = heartbeat.tick() => {
                    // What peers sent before this tick was heard before it: apply what is
                    // queued first (no more), so a heartbeat waiting in the queue does not
                    // count as silence.
                    for _ in 0..inbox.len() {
                        let Ok((shard, bytes)) = inbox.try_recv() else { break };
                        self.receive(shard, &bytes);
                    }
                    self.beat()
                }
                Some((shard, bytes)) = inbox.recv() => self.receive(shard, &bytes),
            }
        }
        for shard in 0..SHARDS {
            self.inner
                .pubsub
                .unsubscribe(&gossip_topic(shard), self.inner.id);
        }
    }

    fn beat(&self) {
        let now = self.now_ms();
        let min_age = self.inner.config.grace_min_age_ms;
        for index in 0..SHARDS {
            let messages = {
                let mut shard = self.shard_at(index);
                let changes = shard.tracker.tick(now);
                let messages = shard.tracker.heartbeat();
                shard.budgets.forget_full(now);
                shard.young.forget_older(now, min_age);
                self.commit(shard, changes);
                messages
            };
            for message in &messages {
                self.publish(index, message);
            }
        }
    }

    fn receive(&self, index: usize, bytes: &[u8]) {
        crate::metrics::metrics().gossip("in", bytes.len());
        let gossip = match Gossip::decode(bytes) {
            Ok(gossip) => gossip,
            Err(err) => {
                self.inner.dropped_gossip.count(|total| {
                    tracing::warn!(shard = index, total, "presence gossip dropped: {err}")
                });
                return;
            }
        };
        let now = self.now_ms();
        let replies = {
            let mut shard = self.shard_at(index);
            let (mut changes, replies) = shard.tracker.receive(gossip, now);
            changes.extend(Presence::end_graces_rejoined_elsewhere(
                &mut shard, &changes,
            ));
            self.commit(shard, changes);
            replies
        };
        for reply in replies {
            self.publish(index, &reply);
        }
    }

    pub(super) fn publish(&self, shard: usize, gossip: &Gossip) {
        match gossip.encode() {
            Ok(bytes) => {
                let metrics = crate::metrics::metrics();
                metrics.gossip("out", bytes.len());
                if matches!(gossip.0, Message::Transfer { .. }) {
                    metrics.gossip_transfers.inc();
                }
                self.inner.pubsub.broadcast(
                    &gossip_topic(shard),
                    Bytes::from(bytes),
                    Some(self.inner.id),
                )
            }
            Err(err) => tracing::error!("cannot encode presence gossip: {err}"),
        }
    }
}

/// A number that differs between runs of a node: start time in microseconds, mixed with
/// randomness so two processes started in the same microsecond differ too.
pub(super) fn incarnation() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    micros ^ (rand::random::<u64>() & 0xFFFF)
}
