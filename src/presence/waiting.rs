//! The bookkeeping of the leave grace (see `grace`), kept in each `Shard` (see `shard`):
//! entries tracked lately ([`Young`], which get no grace) and entries of dropped connections
//! waiting out their grace ([`Graces`], capped per topic and per key by [`Caps`]).
//!
//! Pure data, no clock and no tracker: times are the presence clock's ms, given by the
//! caller. It sits below both `shard` (which holds it) and `grace` (which drives it), so
//! neither imports the other both ways. It must never hold an entry without a deadline.

use std::{collections::HashMap, sync::Arc};

/// Entries of one shard tracked lately: (topic, owner, key) -> when (the presence clock's
/// ms). Only entries younger than `presence.grace_min_age_ms` are kept (pruned every
/// broadcast period), so its size is what the shard tracked in that time.
#[derive(Default)]
pub(super) struct Young {
    tracked: HashMap<(Arc<str>, u64, String), u64>,
}

impl Young {
    /// Notes that `owner` tracked `key` on `topic` at `now`.
    pub(super) fn note(&mut self, topic: &str, owner: u64, key: &str, now: u64) {
        self.tracked
            .insert((topic.into(), owner, key.to_string()), now);
    }

    /// Whether `owner`'s entry of `key` on `topic` was tracked less than `min_age` before
    /// `now`; forgets it either way.
    pub(super) fn take(
        &mut self,
        topic: &str,
        owner: u64,
        key: &str,
        now: u64,
        min_age: u64,
    ) -> bool {
        self.tracked
            .remove(&(Arc::<str>::from(topic), owner, key.to_string()))
            .is_some_and(|at| now.saturating_sub(at) < min_age)
    }

    /// Forgets the entries tracked `min_age` or longer before `now`.
    pub(super) fn forget_older(&mut self, now: u64, min_age: u64) {
        self.tracked
            .retain(|_, at| now.saturating_sub(*at) < min_age);
    }
}

/// Entries waiting out their grace in one shard: (topic, key) → (owner, deadline in the
/// presence clock's ms), oldest first.
#[derive(Default)]
pub(super) struct Graces {
    held: HashMap<(Arc<str>, String), Vec<Waiting>>,
    /// topic -> entries waiting on it (every count is positive).
    per_topic: HashMap<Arc<str>, usize>,
}

/// An owner whose entry waits, and until when.
type Waiting = (u64, u64);

/// How many entries may wait (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Caps {
    pub(super) per_topic: usize,
    pub(super) per_key: usize,
}

impl Graces {
    /// Holds `owner`'s entry of `key` on `topic` until `deadline`; `false` (nothing held)
    /// when the topic or the key is at its cap.
    pub(super) fn hold(
        &mut self,
        topic: Arc<str>,
        key: String,
        owner: u64,
        deadline: u64,
        caps: Caps,
    ) -> bool {
        let on_topic = self.per_topic.get(&topic).copied().unwrap_or(0);
        if on_topic >= caps.per_topic {
            return false;
        }
        let waiting = self.held.entry((topic.clone(), key)).or_default();
        if waiting.len() >= caps.per_key {
            return false;
        }
        waiting.push((owner, deadline));
        *self.per_topic.entry(topic).or_default() += 1;
        true
    }

    fn released(&mut self, topic: &str, count: usize) {
        if let Some(n) = self.per_topic.get_mut(topic) {
            *n = n.saturating_sub(count);
            if *n == 0 {
                self.per_topic.remove(topic);
            }
        }
    }

    /// Takes the oldest waiting owner of `key` on `topic`.
    pub(super) fn adopt(&mut self, topic: &str, key: &str) -> Option<u64> {
        let index = (Arc::<str>::from(topic), key.to_string());
        let waiting = self.held.get_mut(&index)?;
        let (owner, _) = waiting.remove(0);
        if waiting.is_empty() {
            self.held.remove(&index);
        }
        self.released(topic, 1);
        Some(owner)
    }

    /// Takes every entry whose grace ended by `now`.
    pub(super) fn expired(&mut self, now: u64) -> Vec<(Arc<str>, String, u64)> {
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
        for (topic, _, _) in &out {
            self.released(topic, 1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_owner_is_adopted_and_the_rest_expire_on_time() {
        let mut graces = Graces::default();
        let topic: Arc<str> = "room".into();
        let caps = Caps {
            per_topic: 10,
            per_key: 10,
        };
        assert!(graces.hold(topic.clone(), "ann".into(), 1, 100, caps));
        assert!(graces.hold(topic.clone(), "ann".into(), 2, 150, caps));
        assert!(graces.hold(topic.clone(), "bob".into(), 3, 120, caps));
        assert_eq!(graces.adopt("room", "ann"), Some(1));
        assert_eq!(graces.adopt("room", "eve"), None);
        assert!(graces.expired(99).is_empty());
        assert_eq!(
            graces.expired(130),
            vec![(topic.clone(), "bob".to_string(), 3)]
        );
        assert_eq!(graces.expired(150), vec![(topic, "ann".to_string(), 2)]);
        assert_eq!(graces.adopt("room", "ann"), None);
        assert!(
            graces.per_topic.is_empty(),
            "counts follow adoptions and expiries"
        );
    }

    #[test]
    fn graces_are_capped_per_topic_and_per_key() {
        let mut graces = Graces::default();
        let caps = Caps {
            per_topic: 3,
            per_key: 2,
        };
        let room: Arc<str> = "room".into();
        assert!(graces.hold(room.clone(), "ann".into(), 1, 100, caps));
        assert!(graces.hold(room.clone(), "ann".into(), 2, 100, caps));
        assert!(
            !graces.hold(room.clone(), "ann".into(), 3, 100, caps),
            "a third entry of one key"
        );
        assert!(graces.hold(room.clone(), "bob".into(), 4, 100, caps));
        assert!(
            !graces.hold(room.clone(), "eve".into(), 5, 100, caps),
            "a fourth entry on the topic"
        );
        assert!(
            graces.hold("other".into(), "eve".into(), 6, 100, caps),
            "another topic has its own cap"
        );
        // Room again once one is adopted.
        assert_eq!(graces.adopt("room", "bob"), Some(4));
        assert!(graces.hold(room, "eve".into(), 5, 100, caps));
    }
}
