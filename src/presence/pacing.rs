//! Adaptive coalescing: how long each topic's window stays open.
//!
//! A quiet topic's window is `[presence] coalesce_ms` (the base): a single join shows within
//! it. A topic whose changes keep coming (a join storm, mass reconnects) doubles its window
//! every time a window that merged several changes ends and the next change follows within
//! that window's length (a trickle of one change per window stays at the base), up to a cap that
//! grows with the topic's size: `size / 2` ms (1,000 members: 500 ms; 5,000: 2.5 s; 10,000
//! and more: [`MAX_WINDOW_MS`], 5 s). A storm's diffs then grow with the logarithm of its
//! length instead of linearly: with the base 50 ms and arrivals at 1,000/s, a subscriber gets
//! about 8 diffs at N = 1,000, 12 at 5,000 and 14 at 10,000 (the unit test below), against 20,
//! 100 and 200 with fixed windows. The price is latency during a storm: a change waits at most
//! the cap to be shown (a topic of a few hundred members hardly notices). A change after a
//! quiet window starts again at the base.
//!
//! A grown window ends early once its topic has been quiet for twice the base or a sixteenth
//! of the window, whichever is longer (100 ms of a 1.6 s window or less, 312 ms of 5 s): the
//! storm is over, so its last changes go out soon after the last change instead of waiting
//! for the rest of a window of seconds. While changes keep coming
//! (a storm at 1,000/s has one every millisecond) this never fires, so the window count above
//! holds.
//!
//! A window also ends once what it would queue is large: its changes times the topic's
//! listeners (each gets the diff) reaching [`MAX_WINDOW_VOLUME`] metas, or a sixteenth of
//! listeners² when that is more ([`Pacer::full`]; `presence.max_window_metas`). So the diff
//! at the end of a storm is bounded (10 M metas, ~760 MB at 10,000 members: the last window
//! of a 10,000-client storm at 1,000/s holds ~1,000 joins, not up to 5,000), and the last
//! joiners are exact soon after the last join. A window cut this way counts as the length it
//! had for the next one's doubling and the quiet rule. In windows, the storm above costs
//! about 16 at 10,000 and ~26 at 20,000, where the sixteenth of listeners² holds it (without
//! the volume rule: 14 and 16, with a last window of up to 5 s × 20,000 listeners).
//!
//! Pure: no clock (times are passed in, in the presence clock's ms), no I/O. It must never
//! decide what a diff holds (the windows do), only when it goes out.

use std::{collections::HashMap, sync::Arc};

/// The longest a window grows to, in ms.
pub(super) const MAX_WINDOW_MS: u64 = 5_000;

/// A grown window ends once its topic has been quiet for `window / QUIET_FRACTION` (at
/// least twice the base: a window cut by volume counts as the ~1 s it had, and a busy
/// server's pause of a base within a storm is not its end).
const QUIET_FRACTION: u64 = 16;

/// A window ends once its changes times its topic's listeners reach this many metas (or
/// listeners² / [`VOLUME_FRACTION`], if more): the most one window's diff queues in all.
/// The default of `presence.max_window_metas`.
pub(super) const MAX_WINDOW_VOLUME: usize = 10_000_000;

/// See [`MAX_WINDOW_VOLUME`]: a window of a topic of `n` listeners may queue `n² / 16`
/// metas, a sixteenth of what `n` full states would cost, so that very large topics still
/// coalesce into a bounded number of frames.
const VOLUME_FRACTION: usize = 16;

/// Members per ms of cap: a topic of `size` members caps its window at `size / 2` ms.
const MEMBERS_PER_MS: u64 = 2;

/// One topic's pacing.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// The length of the last window.
    window: u64,
    /// When the last window ended.
    closed_at: u64,
    /// When the open window ends, if one is open.
    due: Option<u64>,
    /// The last window merged several changes.
    crowded: bool,
    /// The latest change of the open window.
    last_change: u64,
    /// When the open window opened.
    opened: u64,
    /// The open window was ended early because it was full ([`Pacer::full`]).
    cut: bool,
}

impl Pace {
    /// When the open window ends: at its due time, or once the topic has been quiet for
    /// twice the base or a sixteenth of the window, whichever is longer (a pause of a busy
    /// server within a storm is not its end), when the window is longer than the base.
    fn ends(&self, base: u64) -> Option<u64> {
        let due = self.due?;
        if self.window > base {
            let quiet = (2 * base).max(self.window / QUIET_FRACTION);
            Some(due.min(self.last_change + quiet))
        } else {
            Some(due)
        }
    }
}

/// The windows of one shard's topics.
#[derive(Debug, Default)]
pub(super) struct Pacer {
    base: u64,
    /// See [`MAX_WINDOW_VOLUME`].
    max_volume: usize,
    topics: HashMap<Arc<str>, Pace>,
}

impl Pacer {
    pub(super) fn new(base_ms: u64) -> Pacer {
        Pacer {
            base: base_ms,
            max_volume: MAX_WINDOW_VOLUME,
            topics: HashMap::new(),
        }
    }

    /// The same with windows full at `metas` ([`MAX_WINDOW_VOLUME`]).
    pub(super) fn with_max_volume(mut self, metas: usize) -> Pacer {
        self.max_volume = metas.max(1);
        self
    }

    /// Whether a window holding `changes` changes of a topic with `listeners` listeners is
    /// full: it would queue the most metas one window may.
    pub(super) fn full(&self, changes: usize, listeners: usize) -> bool {
        let limit = self
            .max_volume
            .max(listeners.saturating_mul(listeners) / VOLUME_FRACTION);
        changes > 0 && changes.saturating_mul(listeners) >= limit
    }

    /// The base window (`coalesce_ms`).
    pub(super) fn base(&self) -> u64 {
        self.base
    }

    /// The cap of a topic of `size` members.
    fn cap(&self, size: usize) -> u64 {
        (size as u64 / MEMBERS_PER_MS).clamp(self.base, MAX_WINDOW_MS.max(self.base))
    }

    /// Opens `topic`'s window at `now` (a change), unless one is open;
    /// returns when it ends at the latest.
    pub(super) fn open(&mut self, topic: &Arc<str>, now: u64, size: usize) -> u64 {
        let base = self.base;
        let cap = self.cap(size);
        let pace = self.topics.entry(topic.clone()).or_insert(Pace {
            window: 0,
            closed_at: 0,
            due: None,
            crowded: false,
            last_change: now,
            opened: now,
            cut: false,
        });
        if let Some(due) = pace.due {
            return due;
        }
        pace.last_change = now;
        pace.opened = now;
        let busy = pace.crowded && now.saturating_sub(pace.closed_at) <= pace.window;
        let window = if busy {
            (pace.window * 2).min(cap).max(base)
        } else {
            base
        };
        pace.window = window;
        let due = now + window;
        pace.due = Some(due);
        due
    }

    /// Ends `topic`'s open window at `now`: it is full ([`Pacer::full`]). Returns whether that
    /// moved its end earlier (the delivery task must look at the new deadline).
    pub(super) fn end_now(&mut self, topic: &str, now: u64) -> bool {
        let base = self.base;
        match self.topics.get_mut(topic) {
            Some(pace) if pace.ends(base).is_some_and(|end| end > now) => {
                pace.due = Some(now);
                pace.cut = true;
                true
            }
            _ => false,
        }
    }

    /// Notes a change of `topic` at `now`, inside its open window.
    pub(super) fn touch(&mut self, topic: &str, now: u64) {
        if let Some(pace) = self.topics.get_mut(topic) {
            pace.last_change = pace.last_change.max(now);
        }
    }

    /// Whether `topic`'s window has ended by `now`; if so it is closed, having merged
    /// `changes` changes.
    pub(super) fn close_if_due(&mut self, topic: &str, now: u64, changes: usize) -> bool {
        let base = self.base;
        match self.topics.get_mut(topic) {
            Some(pace) if pace.ends(base).is_some_and(|end| end <= now) => {
                if std::mem::take(&mut pace.cut) {
                    // Full before its time: the length it had is what it grew to.
                    pace.window = now.saturating_sub(pace.opened).max(base);
                }
                pace.due = None;
                pace.closed_at = now;
                pace.crowded = changes > 1;
                true
            }
            Some(_) => false,
            // Never opened (cannot happen: every dirty topic was opened): close it now.
            None => true,
        }
    }

    /// The earliest end of an open window.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.topics
            .values()
            .filter_map(|pace| pace.ends(self.base))
            .min()
    }

    /// Forgets topics quiet for longer than any window (their next window is the base
    /// anyway), so the map holds only recently busy topics.
    pub(super) fn forget_quiet(&mut self, now: u64) {
        let quiet = 2 * MAX_WINDOW_MS.max(self.base);
        self.topics
            .retain(|_, pace| pace.due.is_some() || now.saturating_sub(pace.closed_at) <= quiet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a steady stream of joins (one every `every` ms for `duration` ms) on a topic
    /// of up to `size` members, each member a listener; returns the windows that end and
    /// the largest volume (changes × listeners) one of them queued.
    fn windows_in_a_storm(size: usize, every: u64, duration: u64) -> (usize, usize) {
        let mut pacer = Pacer::new(50);
        let topic: Arc<str> = "t".into();
        let mut windows = 0;
        let mut largest = 0;
        let mut changes = 0;
        let mut now = 0;
        while now <= duration + 2 * MAX_WINDOW_MS {
            let members = ((now.min(duration) / every) as usize).min(size);
            // Every window of the storm merges the joins of its length.
            if changes > 0 && pacer.close_if_due(&topic, now, changes) {
                windows += 1;
                largest = largest.max(changes * members);
                changes = 0;
            }
            // One join per `every` ms: the topic grows as the storm goes on.
            if now <= duration && now % every == 0 && members < size {
                if changes == 0 {
                    pacer.open(&topic, now, members);
                }
                pacer.touch(&topic, now);
                changes += 1;
                if pacer.full(changes, members + 1) {
                    pacer.end_now(&topic, now);
                }
            }
            now += 1;
        }
        (windows, largest)
    }

    #[test]
    fn a_quiet_topic_gets_the_base_window() {
        let mut pacer = Pacer::new(50);
        let topic: Arc<str> = "t".into();
        assert_eq!(pacer.open(&topic, 1_000, 10_000), 1_050);
        assert_eq!(pacer.open(&topic, 1_010, 10_000), 1_050, "already open");
        assert!(!pacer.close_if_due(&topic, 1_049, 5));
        assert!(pacer.close_if_due(&topic, 1_050, 5));
        // A change long after: the base again.
        assert_eq!(pacer.open(&topic, 5_000, 10_000), 5_050);
        assert!(pacer.close_if_due(&topic, 5_050, 1));
        // A trickle (one change per window) right after: the base too.
        assert_eq!(pacer.open(&topic, 5_060, 10_000), 5_110);
    }

    #[test]
    fn a_busy_topic_doubles_its_window_up_to_its_size_cap() {
        let mut pacer = Pacer::new(50);
        let topic: Arc<str> = "t".into();
        let mut now = 0;
        let mut windows = Vec::new();
        for _ in 0..8 {
            let due = pacer.open(&topic, now, 10_000);
            windows.push(due - now);
            assert!(pacer.close_if_due(&topic, due, 10));
            now = due + 1;
        }
        assert_eq!(windows, [50, 100, 200, 400, 800, 1_600, 3_200, 5_000]);
        // A smaller topic caps lower: 1,000 members at 500 ms.
        let small: Arc<str> = "s".into();
        let mut now = 0;
        let mut last = 0;
        for _ in 0..6 {
            let due = pacer.open(&small, now, 1_000);
            last = due - now;
            pacer.close_if_due(&small, due, 10);
            now = due + 1;
        }
        assert_eq!(last, 500);
    }

    #[test]
    fn a_grown_window_ends_a_base_after_the_topic_goes_quiet() {
        let mut pacer = Pacer::new(50);
        let topic: Arc<str> = "t".into();
        let mut now = 0;
        // Grow the window: 50, 100, 200, 400, 800.
        for _ in 0..5 {
            let due = pacer.open(&topic, now, 10_000);
            pacer.close_if_due(&topic, due, 10);
            now = due + 1;
        }
        let due = pacer.open(&topic, now, 10_000);
        assert_eq!(due - now, 1_600);
        // Changes every 10 ms for 300 ms: still open.
        for at in (now..now + 300).step_by(10) {
            pacer.touch(&topic, at);
            assert!(!pacer.close_if_due(&topic, at, 10), "open at {at}");
        }
        let last = now + 290;
        // Quiet for a sixteenth of the 1,600 ms window: 100 ms.
        assert_eq!(pacer.next_due(), Some(last + 100));
        assert!(!pacer.close_if_due(&topic, last + 99, 10));
        assert!(
            pacer.close_if_due(&topic, last + 100, 10),
            "quiet long enough"
        );
        // A base window is never cut short: it ends at its due time.
        let mut quiet = Pacer::new(50);
        assert_eq!(quiet.open(&topic, 0, 10), 50);
        assert!(!quiet.close_if_due(&topic, 49, 1));
    }

    #[test]
    fn storms_at_1000_per_second_cost_few_windows_and_bounded_window_volumes() {
        // Without pacing: one window per 50 ms, 20 per 1,000 joins.
        for (size, most) in [(1_000, 20), (5_000, 20), (10_000, 18), (20_000, 30)] {
            let (windows, largest) = windows_in_a_storm(size, 1, size as u64);
            eprintln!("{size}: {windows} windows, largest {largest} metas");
            assert!(windows <= most, "{size}: {windows} windows");
            let bound = MAX_WINDOW_VOLUME.max(size * size / VOLUME_FRACTION);
            assert!(
                largest <= bound + size,
                "{size}: a window of {largest} metas"
            );
        }
    }

    #[test]
    fn a_full_window_ends_now_and_counts_as_the_length_it_had() {
        let mut pacer = Pacer::new(50);
        let topic: Arc<str> = "t".into();
        let mut now = 0;
        // Grow the window: 50 … 1,600, then 3,200 ms.
        for _ in 0..6 {
            let due = pacer.open(&topic, now, 10_000);
            pacer.close_if_due(&topic, due, 10);
            now = due + 1;
        }
        assert_eq!(pacer.open(&topic, now, 10_000) - now, 3_200);
        assert!(
            !pacer.full(999, 10_000) && pacer.full(1_000, 10_000),
            "10 M metas"
        );
        assert!(
            pacer.full(2_500, 40_000) && !pacer.full(2_499, 40_000),
            "40,000²/16"
        );
        assert_eq!(
            crate::config::PresenceConfig::default().max_window_metas,
            MAX_WINDOW_VOLUME
        );
        let small = Pacer::new(50).with_max_volume(2_000);
        assert!(!small.full(99, 20) && small.full(100, 20));
        pacer.touch(&topic, now + 400);
        assert!(pacer.end_now(&topic, now + 400));
        assert!(!pacer.end_now(&topic, now + 401), "already ending");
        assert_eq!(pacer.next_due(), Some(now + 400));
        assert!(pacer.close_if_due(&topic, now + 400, 400));
        // The next window doubles what the cut one had (400 ms), not its plan (3,200 ms).
        let next = now + 401;
        assert_eq!(pacer.open(&topic, next, 10_000) - next, 800);
        // Quiet for 50 ms (a sixteenth of 800 ms, one base) is a pause, not the end: two bases.
        assert_eq!(pacer.next_due(), Some(next + 100));
    }
}
