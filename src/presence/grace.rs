//! Leave grace (`[presence] leave_grace_ms`): a connection that drops does not leave at once.
//! Its entries stay tracked, unchanged, for the grace; if the same key is tracked again on
//! the same topic on this node meanwhile (the browser reconnected), the new owner adopts the
//! waiting entry as it is — same `phx_ref`, same meta (the reconnect's meta is not applied;
//! `update` changes it) — so nobody sees a leave, a join or a count change. Otherwise the entry is untracked when the grace ends, and its leave goes out then.
//!
//! A reconnect that lands on another node tracks a new entry there (the key gets a second
//! meta, so the key is never seen leaving); when that join reaches this node (within a
//! broadcast period), the waiting entry leaves at once. Watchers see the key's connection
//! count go up by one, then back — never the key leaving. (Without a shared `phx_ref` the two
//! entries cannot be merged into one; that would need the client to name its old entry.)
//!
//! # Bounds
//!
//! The grace holds entries without a socket, so it is bounded: an entry tracked less than
//! `presence.grace_min_age_ms` (5 s) before its owner dropped gets no grace at all (rapid
//! connect-join-drop cycles leave at once; an entry adopted from the grace keeps its age),
//! and at most `presence.max_grace_per_topic` entries per topic and
//! `presence.max_grace_per_key` per key (on one topic) wait on this node; a drop beyond
//! either leaves at once. The presence layer does not know a connection's remote address
//! (the transport does, and it never reaches a channel's socket), so there is no cap per
//! address here; a cap per address belongs with the endpoint's connection limits.
//!
//! The grace's behaviour on a shard and the sweep task; its bookkeeping (what waits, what is
//! young, the caps) is `waiting`, below both this module and `shard`. It must never hold an
//! entry without a deadline, and never untrack an entry a new owner adopted.

use std::{sync::Arc, time::Duration};

use super::{
    OwnerId, Presence, SHARDS,
    shard::Shard,
    tracker::{Change, ChangeKind, TrackError},
    waiting::Caps,
};

impl Presence {
    pub(super) fn grace_ms(&self) -> u64 {
        self.inner.config.leave_grace_ms
    }

    /// Notes that `owner` just tracked `key` on `topic` (a young entry gets no grace).
    pub(super) fn note_young(&self, shard: &mut Shard, topic: &str, owner: OwnerId, key: &str) {
        if self.grace_ms() > 0 && self.inner.config.grace_min_age_ms > 0 {
            let now = self.now_ms();
            shard.young.note(topic, owner.0, key, now);
        }
    }

    /// `owner`'s connection is gone: untracks what it tracks on `topic` (only `key`, if
    /// given) after `[presence] leave_grace_ms`, unless the same key is tracked again on
    /// `topic` on this node meanwhile (see the module docs). Without a grace, at once.
    pub fn leave_owner(&self, topic: &str, owner: OwnerId, key: Option<&str>) {
        self.release_owner(topic, owner, key, self.grace_ms());
    }

    /// Untracks what `owner` tracks on `topic` (only `key`, if given) after `grace` ms (at
    /// once for 0), unless a rejoin adopts it meanwhile.
    pub(super) fn release_owner(&self, topic: &str, owner: OwnerId, key: Option<&str>, grace: u64) {
        let mut shard = self.shard(topic);
        let keys = match key {
            Some(key) => vec![key.to_string()],
            None => shard.tracker.keys_of(owner.0, topic),
        };
        // An entry that leaves now.
        let leave = |shard: &mut Shard, key: &str| {
            shard
                .tracker
                .untrack(topic, owner.0, key)
                .unwrap_or_default()
        };
        if grace == 0 {
            let mut changes = Vec::new();
            for key in keys {
                changes.extend(leave(&mut shard, &key));
            }
            self.commit(shard, changes);
            return;
        }
        let now = self.now_ms();
        let deadline = now.saturating_add(grace);
        let min_age = self.inner.config.grace_min_age_ms;
        let caps = Caps {
            per_topic: self.inner.config.max_grace_per_topic,
            per_key: self.inner.config.max_grace_per_key,
        };
        let topic_arc: Arc<str> = topic.into();
        let mut changes = Vec::new();
        for key in keys {
            let young = shard.young.take(topic, owner.0, &key, now, min_age);
            if young
                || !shard
                    .graces
                    .hold(topic_arc.clone(), key.clone(), owner.0, deadline, caps)
            {
                // Tracked moments ago, or over a cap: this entry leaves now.
                changes.extend(leave(&mut shard, &key));
            }
        }
        self.commit(shard, changes);
    }

    /// Whether tracking `key` on `topic` for `owner` adopted an entry waiting out its grace.
    /// The entry is taken over as it is, meta included (the new meta is not applied: a
    /// change would be seen as an update; call `update` for that).
    pub(super) fn adopt(&self, topic: &str, owner: OwnerId, key: &str) -> Result<bool, TrackError> {
        if self.grace_ms() == 0 {
            return Ok(false);
        }
        let mut shard = self.shard(topic);
        if shard.tracker.meta_of(topic, owner.0, key).is_some() {
            return Err(TrackError::AlreadyTracked);
        }
        let Some(waiting) = shard.graces.adopt(topic, key) else {
            return Ok(false);
        };
        // Untracked meanwhile (an explicit untrack): track anew.
        Ok(shard.tracker.reassign(topic, waiting, owner.0, key).is_ok())
    }

    /// A key joined on another node while this node holds an entry of it in grace (the
    /// browser reconnected there): the waiting entry leaves now, not at the end of its grace
    /// (the key stays present through the other node's entry). Returns the leaves.
    pub(super) fn end_graces_rejoined_elsewhere(
        shard: &mut Shard,
        joins: &[Change],
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        for join in joins.iter().filter(|c| c.kind == ChangeKind::Join) {
            while let Some(owner) = shard.graces.adopt(&join.topic, &join.key) {
                changes.extend(
                    shard
                        .tracker
                        .untrack(&join.topic, owner, &join.key)
                        .unwrap_or_default(),
                );
            }
        }
        changes
    }

    /// Untracks every entry whose grace ended, every tenth of the grace (at least every
    /// 20 ms), until shutdown.
    pub(super) async fn run_grace_sweep(self) {
        let every = Duration::from_millis((self.grace_ms() / 10).max(20));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.now_ms();
            for index in 0..SHARDS {
                let mut shard = self.shard_at(index);
                let mut changes = Vec::new();
                for (topic, key, owner) in shard.graces.expired(now) {
                    changes.extend(
                        shard
                            .tracker
                            .untrack(&topic, owner, &key)
                            .unwrap_or_default(),
                    );
                }
                self.commit(shard, changes);
            }
        }
    }
}
