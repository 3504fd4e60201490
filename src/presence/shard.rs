//! One shard's presence state and its windows: the tracker, the changes of each topic since
//! the last flush, and who listens. [`Shard::plan`] ends a window: it decides who gets a
//! diff and who a state.
//!
//! A new listener gets its state a base window (`coalesce_ms`) after it subscribed, whatever
//! the length of its topic's open window (which grows to seconds in a storm): the state is
//! taken then, and the listener keeps its place in the open window (its cursor), so at the
//! window's end it gets only the changes after its state. The states of a storm's joiners
//! therefore go out during the storm, not all at the end of its last window.
//!
//! No tokio, no I/O, no clock: planning is unit-tested here. It must never send anything (the
//! delivery task does).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

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
    /// Subscribed lately: gets a state (at the end of the open window or when its
    /// topic's state is due, whichever comes first) instead of the diff.
    pub(super) awaiting_state: bool,
    /// Got its state while its topic's window was open, after this many of the window's
    /// changes: gets only the later ones at the window's end (0: the whole window).
    pub(super) cursor: usize,
}

pub(super) struct Shard {
    pub(super) tracker: Tracker,
    pub(super) windows: HashMap<Arc<str>, Window>,
    pub(super) listeners: HashMap<Arc<str>, IndexMap<SubscriberId, Listener>>,
    /// Topics to flush at the end of the window.
    pub(super) dirty: IndexSet<Arc<str>>,
    /// Topics with listeners awaiting their state, and when it is due.
    pub(super) states_due: IndexMap<Arc<str>, u64>,
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
    /// A window that fills up (see `Pacer::full`) ends at once: this returns true then too.
    pub(super) fn record(&mut self, changes: Vec<Change>, now: u64) -> bool {
        let mut opened = false;
        for change in changes {
            opened |= self.mark_dirty(&change.topic, now);
            self.pacer.touch(&change.topic, now);
            let topic = change.topic.clone();
            let window = self.windows.entry(topic.clone()).or_default();
            window.record(change);
            let listeners = self.listeners.get(&topic).map_or(0, IndexMap::len);
            if self.pacer.full(window.len(), listeners) {
                opened |= self.pacer.end_now(&topic, now);
            }
        }
        opened
    }

    /// A listener of `topic` subscribed at `now`: its state is due a base window later,
    /// unless an earlier one is due already. Returns whether a deadline was set (the
    /// delivery task must look at it).
    pub(super) fn await_state(&mut self, topic: &Arc<str>, now: u64) -> bool {
        if self.states_due.contains_key(topic) {
            return false;
        }
        self.states_due
            .insert(topic.clone(), now + self.pacer.base());
        true
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
        let states = self.states_due.values().copied().min();
        match (self.pacer.next_due(), states) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends the window of every topic that changed whose window is due at `now`: one diff
    /// each, for the listeners that already had their state (those that got it during the
    /// window get only the changes after it); a state, taken after the window's changes, for
    /// those still awaiting one (they get diffs from the next window). Topics not due yet stay
    /// dirty. Then hands out the states due at `now` on topics whose window is still open (or
    /// unchanged): each such listener keeps its place in the open window.
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
            let window = shard.windows.remove(&topic).unwrap_or_default();
            let mut old = Vec::new();
            let mut new = Vec::new();
            let mut placed: BTreeMap<usize, Vec<Outbox>> = BTreeMap::new();
            if let Some(listeners) = shard.listeners.get_mut(&topic) {
                for listener in listeners.values_mut() {
                    let cursor = std::mem::take(&mut listener.cursor);
                    if listener.awaiting_state {
                        listener.awaiting_state = false;
                        new.push((listener.outbox.clone(), listener.join_ref.clone()));
                    } else if cursor > 0 {
                        placed
                            .entry(cursor)
                            .or_default()
                            .push(listener.outbox.clone());
                    } else {
                        old.push(listener.outbox.clone());
                    }
                }
            }
            // Every listener awaiting a state gets it now.
            shard.states_due.shift_remove(&topic);
            let partial = placed
                .into_iter()
                .map(|(cursor, outboxes)| (window.diff_since(cursor), outboxes))
                .collect();
            let diff = window.into_diff();
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
                partial,
                new,
                state,
            });
        }
        let due: Vec<Arc<str>> = shard
            .states_due
            .iter()
            .filter(|&(_, &at)| at <= now)
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in due {
            shard.states_due.shift_remove(&topic);
            // The listener's place: the changes of the open window its state holds.
            let cursor = shard.windows.get(&topic).map_or(0, Window::len);
            let mut new = Vec::new();
            if let Some(listeners) = shard.listeners.get_mut(&topic) {
                for listener in listeners.values_mut() {
                    if listener.awaiting_state {
                        listener.awaiting_state = false;
                        listener.cursor = cursor;
                        new.push((listener.outbox.clone(), listener.join_ref.clone()));
                    }
                }
            }
            if new.is_empty() {
                continue;
            }
            let state = Some(Presences(shard.tracker.list(&topic)));
            work.push(TopicWork {
                topic,
                diff: PresenceDiff::default(),
                current: Presences::default(),
                old: Vec::new(),
                partial: Vec::new(),
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
    /// Listeners that got their state during the window, grouped by their place in it, with
    /// the changes after that place.
    pub(super) partial: Vec<(PresenceDiff, Vec<Outbox>)>,
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
            states_due: IndexMap::new(),
            graces: Default::default(),
            pacer: Pacer::new(50),
            budgets: Default::default(),
            young: Default::default(),
        }
    }

    fn listen(shard: &mut Shard, topic: &str, id: SubscriberId, now: u64) {
        let listener = Listener {
            outbox: Outbox::new(1 << 20),
            join_ref: "1".into(),
            awaiting_state: true,
            cursor: 0,
        };
        shard
            .listeners
            .entry(topic.into())
            .or_default()
            .insert(id, listener);
        shard.await_state(&topic.into(), now);
    }

    #[test]
    fn a_new_listener_gets_a_state_with_the_window_and_old_ones_get_the_diff() {
        let mut shard = shard();
        let (old, new) = (SubscriberId::next(), SubscriberId::next());
        listen(&mut shard, "t", old, 0);
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
        listen(&mut shard, "t", new, 100);
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

    #[test]
    fn a_listener_gets_its_state_within_the_base_and_then_only_the_later_changes() {
        let mut shard = shard();
        let (old, new) = (SubscriberId::next(), SubscriberId::next());
        listen(&mut shard, "t", old, 0);
        shard.plan(50);
        // A grown window: open for a long time (a storm's).
        for (i, at) in [(0, 100), (1, 101)] {
            let changes = shard
                .tracker
                .track("t", 10 + i, &format!("u{i}"), Default::default())
                .unwrap();
            shard.record(changes, at);
        }
        shard.pacer = Pacer::new(50);
        assert!(shard.pacer.open(&"t".into(), 100, 10_000) == 150);
        // Pretend the window grew: reopen it long.
        let mut pacer = Pacer::new(50);
        let mut now = 0;
        for _ in 0..6 {
            let due = pacer.open(&"t".into(), now, 10_000);
            pacer.close_if_due("t", due, 10);
            now = due + 1;
        }
        let opened = now;
        let due = pacer.open(&"t".into(), opened, 10_000);
        assert!(due - opened >= 1_000, "a long window");
        shard.pacer = pacer;
        // A listener subscribes inside it: its state is due a base later, the window not.
        listen(&mut shard, "t", new, opened + 10);
        assert_eq!(shard.next_due(), Some(opened + 60));
        let work = shard.plan(opened + 60);
        assert_eq!(work.len(), 1, "the state only");
        assert_eq!(work[0].new.len(), 1);
        assert!(work[0].old.is_empty() && work[0].diff.joins.is_empty());
        assert_eq!(work[0].state.as_ref().unwrap().count_metas(), 2);
        // Later in the window: u0 leaves, u2 joins.
        let changes = shard.tracker.untrack("t", 10, "u0").unwrap();
        shard.record(changes, opened + 100);
        let changes = shard
            .tracker
            .track("t", 12, "u2", Default::default())
            .unwrap();
        shard.record(changes, opened + 101);
        let work = shard.plan(due);
        assert_eq!(work.len(), 1);
        let work = &work[0];
        assert_eq!(work.old.len(), 1, "the old listener gets the whole window");
        assert_eq!(
            work.diff.joins.count_metas(),
            2,
            "u1 and u2 (u0 came and went)"
        );
        assert_eq!(
            work.partial.len(),
            1,
            "the new one only what came after its state"
        );
        let (since, outboxes) = &work.partial[0];
        assert_eq!(outboxes.len(), 1);
        assert_eq!(since.joins.metas("u2").len(), 1);
        assert_eq!(since.joins.count_metas(), 1);
        assert_eq!(since.leaves.metas("u0").len(), 1, "u0 was in its state");
        assert!(work.new.is_empty() && work.state.is_none());
    }

    /// A storm of `n` joins, one per ms, each joiner a listener, with the delivery task's
    /// plans run whenever something is due: every listener ends up counting `n`, from its
    /// state and the diffs after it; returns the most frames one listener got.
    fn storm(n: usize, max_volume: usize) -> usize {
        let mut shard = shard();
        shard.pacer = Pacer::new(50).with_max_volume(max_volume);
        let topic: Arc<str> = "t".into();
        let mut outboxes = Vec::new();
        let mut index: HashMap<*const (), usize> = HashMap::new();
        let mut counts = vec![0i64; n];
        let mut frames = vec![0usize; n];
        let id = |outbox: &Outbox| Arc::as_ptr(outbox.shared()) as *const ();
        let mut now = 0;
        while now < n as u64 + 20_000 {
            if (now as usize) < n {
                let i = now as usize;
                let changes = shard
                    .tracker
                    .track("t", i as u64, &format!("u{i}"), Default::default())
                    .unwrap();
                shard.record(changes, now);
                let outbox = Outbox::new(1 << 30);
                index.insert(id(&outbox), i);
                let listener = Listener {
                    outbox: outbox.clone(),
                    join_ref: "1".into(),
                    awaiting_state: true,
                    cursor: 0,
                };
                outboxes.push(outbox);
                shard
                    .listeners
                    .entry(topic.clone())
                    .or_default()
                    .insert(SubscriberId::next(), listener);
                shard.await_state(&topic, now);
            }
            while shard.next_due().is_some_and(|due| due <= now) {
                for work in shard.plan(now) {
                    let delta = |d: &PresenceDiff| {
                        d.joins.count_metas() as i64 - d.leaves.count_metas() as i64
                    };
                    for outbox in &work.old {
                        let i = index[&id(outbox)];
                        counts[i] += delta(&work.diff);
                        frames[i] += 1;
                    }
                    for (diff, group) in &work.partial {
                        for outbox in group {
                            let i = index[&id(outbox)];
                            counts[i] += delta(diff);
                            frames[i] +=
                                usize::from(!diff.joins.is_empty() || !diff.leaves.is_empty());
                        }
                    }
                    for (outbox, _) in &work.new {
                        let i = index[&id(outbox)];
                        counts[i] = work.state.as_ref().unwrap().count_metas() as i64;
                        frames[i] += 1;
                    }
                }
            }
            now += 1;
        }
        let wrong: Vec<_> = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != n as i64)
            .take(5)
            .collect();
        assert!(
            wrong.is_empty(),
            "{n}: listeners off their count: {wrong:?}"
        );
        frames.into_iter().max().unwrap_or(0)
    }

    #[test]
    fn every_listener_of_a_storm_ends_exact_in_few_frames() {
        // 3,000 listeners with windows full at 500,000 metas (at ≥ 167 joins): the windows
        // end by volume in the storm's second half, as a 10,000-client storm's do at 10 M.
        for (n, volume) in [(1_000, 10_000_000), (3_000, 500_000)] {
            let most = storm(n, volume);
            eprintln!("{n}: at most {most} frames per listener");
            assert!(most <= 20, "{n}: {most} frames");
        }
    }
}
