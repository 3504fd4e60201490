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
//! Pure bookkeeping plus the sweep task: it must never hold an entry without a deadline, and
//! never untrack an entry a new owner adopted.

use std::{collections::HashMap, sync::Arc, time::Duration};

use super::{OwnerId, Presence, SHARDS, tracker::TrackError};

/// Entries waiting out their grace in one shard: (topic, key) → (owner, deadline in the
/// presence clock's ms), oldest first.
#[derive(Default)]
pub(super) struct Graces {
    held: HashMap<(Arc<str>, String), Vec<Waiting>>,
}

/// An owner whose entry waits, and until when.
type Waiting = (u64, u64);

impl Graces {
    fn hold(&mut self, topic: Arc<str>, key: String, owner: u64, deadline: u64) {
        self.held
            .entry((topic, key))
            .or_default()
            .push((owner, deadline));
    }

    /// Takes the oldest waiting owner of `key` on `topic`.
    fn adopt(&mut self, topic: &str, key: &str) -> Option<u64> {
        let index = (Arc::<str>::from(topic), key.to_string());
        let waiting = self.held.get_mut(&index)?;
        let (owner, _) = waiting.remove(0);
        if waiting.is_empty() {
            self.held.remove(&index);
        }
        Some(owner)
    }

    /// Takes every entry whose grace ended by `now`.
    fn expired(&mut self, now: u64) -> Vec<(Arc<str>, String, u64)> {
        let mut out = Vec::new();
        self.held.retain(|(topic, key), waiting| {
            waiting.retain(|&(owner, deadline)| {
                let ended = deadline <= now;
                if ended {
                    out.push((topic.clone(), key.clone(), owner));
                }
                !ended
            });
            !waiting.is_empty()
        });
        out
    }
}

impl Presence {
    pub(super) fn grace_ms(&self) -> u64 {
        self.inner.config.leave_grace_ms
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
        if grace == 0 {
            let mut changes = Vec::new();
            for key in keys {
                changes.extend(
                    shard
                        .tracker
                        .untrack(topic, owner.0, &key)
                        .unwrap_or_default(),
                );
            }
            self.commit(shard, changes);
            return;
        }
        let deadline = self.now_ms().saturating_add(grace);
        let topic: Arc<str> = topic.into();
        for key in keys {
            shard.graces.hold(topic.clone(), key, owner.0, deadline);
        }
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
        shard: &mut super::shard::Shard,
        joins: &[super::tracker::Change],
    ) -> Vec<super::tracker::Change> {
        let mut changes = Vec::new();
        for join in joins
            .iter()
            .filter(|c| c.kind == super::tracker::ChangeKind::Join)
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_owner_is_adopted_and_the_rest_expire_on_time() {
        let mut graces = Graces::default();
        let topic: Arc<str> = "room".into();
        graces.hold(topic.clone(), "ann".into(), 1, 100);
        graces.hold(topic.clone(), "ann".into(), 2, 150);
        graces.hold(topic.clone(), "bob".into(), 3, 120);
        assert_eq!(graces.adopt("room", "ann"), Some(1));
        assert_eq!(graces.adopt("room", "eve"), None);
        assert!(graces.expired(99).is_empty());
        assert_eq!(
            graces.expired(130),
            vec![(topic.clone(), "bob".to_string(), 3)]
        );
        assert_eq!(graces.expired(150), vec![(topic, "ann".to_string(), 2)]);
        assert_eq!(graces.adopt("room", "ann"), None);
    }
}
