//! One shard's presence state and its windows: the tracker, the changes of each topic since
//! the last flush, and who listens. [`Shard::plan`] ends a window: it decides who gets a
//! diff and who a state.
//!
//! No tokio, no I/O, no clock: planning is unit-tested here. It must never send anything (the
//! delivery task does).

use std::{collections::HashMap, sync::Arc};

use indexmap::{IndexMap, IndexSet};

use super::{
    hooks::{PresenceDiff, Presences},
    pacing::Pacer,
    tracker::{Change, Tracker},
    waiting::{Graces, Young},
    window::Window,
};
use crate::{pubsub::SubscriberId, transport::Outbox};

pub(super) struct Listener {
    pub(super) outbox: Outbox,
    pub(super) join_ref: Arc<str>,
    /// Subscribed during the current window: gets a state at its end instead of the diff.
    pub(super) awaiting_state: bool,
}

pub(super) struct Shard {
    pub(super) tracker: Tracker,
    pub(super) windows: HashMap<Arc<str>, Window>,
    pub(super) listeners: HashMap<Arc<str>, IndexMap<SubscriberId, Listener>>,
    /// Topics to flush at the end of the window.
    pub(super) dirty: IndexSet<Arc<str>>,
    /// Entries of dropped connections waiting out the leave grace.
    pub(super) graces: Graces,
    /// When each topic's window ends (adaptive, see `pacing`).
    pub(super) pacer: Pacer,
    /// Update budgets of the owners that updated lately.
    pub(super) budgets: super::budget::Budgets,
    /// Entries tracked less than `presence.grace_min_age_ms` ago (when), which get no leave
    /// grace; pruned every broadcast period.
    pub(super) young: Young,
}

impl Shard {
    /// Records changes made at `now` into their topics' windows; returns whether a window
    /// opened (the delivery task must look at the new deadline).
    pub(super) fn record(&mut self, changes: Vec<Change>, now: u64) -> bool {
        let mut opened = false;
        for change in changes {
            opened |= self.mark_dirty(&change.topic, now);
            self.pacer.touch(&change.topic, now);
            self.windows
                .entry(change.topic.clone())
                .or_default()
                .record(change);
        }
        opened
    }

    /// Opens `topic`'s window at `now` unless it is open; returns whether it opened.
    pub(super) fn mark_dirty(&mut self, topic: &Arc<str>, now: u64) -> bool {
        if !self.dirty.insert(topic.clone()) {
            return false;
        }
        let size = self.tracker.count_metas(topic);
        self.pacer.open(topic, now, size);
        true
    }

    /// The earliest end of an open window in this shard.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.pacer.next_due()
    }

    /// Ends the window of every topic that changed (or got a new listener) whose window is
    /// due at `now`: one diff each, for the listeners that already had their state; a state,
    /// taken after the window's changes, for those that subscribed during it (they get diffs
    /// from the next window). Topics not due yet stay dirty.
    pub(super) fn plan(&mut self, now: u64) -> Vec<TopicWork> {
        let shard = self;
        let dirty = std::mem::take(&mut shard.dirty);
        let mut work = Vec::new();
        for topic in dirty {
            let changes = shard.windows.get(&topic).map_or(0, Window::len);
            if !shard.pacer.close_if_due(&topic, now, changes) {
                shard.dirty.insert(topic);
                continue;
            }
            let diff = shard.windows.remove(&topic).unwrap_or_default().into_diff();
            let mut old = Vec::new();
            let mut new = Vec::new();
            if let Some(listeners) = shard.listeners.get_mut(&topic) {
                for listener in listeners.values_mut() {
                    if listener.awaiting_state {
                        listener.awaiting_state = false;
                        new.push((listener.outbox.clone(), listener.join_ref.clone()));
                    } else {
                        old.push(listener.outbox.clone());
                    }
                }
            }
            let state = (!new.is_empty()).then(|| Presences(shard.tracker.list(&topic)));
            let current = Presences(
                diff.joins
                    .0
                    .keys()
                    .chain(diff.leaves.0.keys())
                    .map(|key| (key.clone(), shard.tracker.get_by_key(&topic, key)))
                    .collect(),
            );
            work.push(TopicWork {
                topic,
                diff,
                current,
                old,
                new,
                state,
            });
        }
        shard.pacer.forget_quiet(now);
        work
    }
}

/// What the end of one topic's window hands out.
pub(super) struct TopicWork {
    pub(super) topic: Arc<str>,
    /// The window's diff.
    pub(super) diff: PresenceDiff,
    /// The current metas of the keys the diff touches (for `handle_metas`).
    pub(super) current: Presences,
    /// Listeners that get the diff.
    pub(super) old: Vec<Outbox>,
    /// Listeners that get a state instead, with their join refs.
    pub(super) new: Vec<(Outbox, Arc<str>)>,
    /// The state, if anyone needs it.
    pub(super) state: Option<Presences>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config::PresenceConfig, presence::tracker::ReplicaId};

    fn shard() -> Shard {
        let me = ReplicaId {
            name: "a#0".into(),
            incarnation: 1,
        };
        Shard {
            tracker: Tracker::new(me, &PresenceConfig::default()),
            windows: HashMap::new(),
            listeners: HashMap::new(),
            dirty: IndexSet::new(),
            graces: Default::default(),
            pacer: Pacer::new(50),
            budgets: Default::default(),
            young: Default::default(),
        }
    }

    fn listen(shard: &mut Shard, topic: &str, id: SubscriberId) {
        let listener = Listener {
            outbox: Outbox::new(1 << 20),
            join_ref: "1".into(),
            awaiting_state: true,
        };
        shard
            .listeners
            .entry(topic.into())
            .or_default()
            .insert(id, listener);
        shard.mark_dirty(&topic.into(), 0);
    }

    #[test]
    fn a_new_listener_gets_a_state_with_the_window_and_old_ones_get_the_diff() {
        let mut shard = shard();
        let (old, new) = (SubscriberId::next(), SubscriberId::next());
        listen(&mut shard, "t", old);
        assert!(
            shard.plan(50)[0].state.is_some(),
            "the first listener's state"
        );
        // In the next window: a join, and a listener that subscribes.
        let changes = shard
            .tracker
            .track("t", 1, "alice", Default::default())
            .unwrap();
        assert!(shard.record(changes, 100), "a window opened");
        listen(&mut shard, "t", new);
        assert!(
            shard.plan(120).is_empty(),
            "not due yet: the window stays open"
        );
        // Busy, but one member: its window cannot grow past the base.
        assert_eq!(shard.next_due(), Some(150));
        let work = shard.plan(150);
        assert_eq!(work.len(), 1);
        let work = &work[0];
        assert_eq!(work.old.len(), 1, "the old listener gets the diff");
        assert_eq!(work.new.len(), 1, "the new one gets a state instead");
        assert_eq!(work.diff.joins.count_metas(), 1);
        let state = work.state.as_ref().expect("a state for the new listener");
        assert_eq!(
            state.metas("alice").len(),
            1,
            "taken after the window's changes"
        );
        assert_eq!(work.current.metas("alice").len(), 1);
        // Nothing changed since: nothing to hand out.
        assert!(shard.plan(5_000).is_empty());
    }
}
