//! Coalescing: the changes of one topic during one window, merged into one diff.
//!
//! Pure: no locks, no I/O, no clock. A join and a leave of the same `phx_ref` inside one
//! window cancel out, so a storm of joins and leaves costs one diff per window. The window
//! keeps its changes in order, so a listener that got its `presence_state` while the window
//! was open gets only the changes after that state ([`Window::diff_since`]), never one its
//! state already holds. It must never decide when a window ends (the delivery task does).

use indexmap::IndexMap;
use serde_json::Value;

use super::{
    hooks::{PresenceDiff, Presences},
    tracker::{Change, ChangeKind, Meta},
};

/// Changes of one topic waiting for the end of the window, in the order they happened.
#[derive(Default)]
pub(super) struct Window {
    log: Vec<Change>,
}

impl Window {
    pub(super) fn record(&mut self, change: Change) {
        self.log.push(change);
    }

    /// How many changes this window recorded (a join and a leave that cancel count two).
    pub(super) fn len(&self) -> usize {
        self.log.len()
    }

    /// The net change of the window's changes from position `from` on (0: the whole
    /// window): what a listener whose state was taken after the first `from` changes is
    /// still missing.
    pub(super) fn diff_since(&self, from: usize) -> PresenceDiff {
        net(self.log.get(from..).unwrap_or_default().iter().cloned())
    }

    /// The net change of the whole window.
    pub(super) fn into_diff(self) -> PresenceDiff {
        net(self.log.into_iter())
    }
}

/// The net change of `changes`: a leave of a ref that joined among them (or the reverse)
/// cancels out; the rest is grouped by key, in order.
fn net(changes: impl Iterator<Item = Change>) -> PresenceDiff {
    let mut joins: IndexMap<String, (String, Meta)> = IndexMap::new();
    let mut leaves: IndexMap<String, (String, Meta)> = IndexMap::new();
    for change in changes {
        let phx_ref = change
            .meta
            .get("phx_ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (same_side, other_side) = match change.kind {
            ChangeKind::Join => (&mut joins, &mut leaves),
            ChangeKind::Leave => (&mut leaves, &mut joins),
        };
        if other_side.shift_remove(&phx_ref).is_none() {
            same_side.insert(phx_ref, (change.key, change.meta));
        }
    }
    fn group(side: IndexMap<String, (String, Meta)>) -> Presences {
        let mut presences = Presences::default();
        for (_, (key, meta)) in side {
            presences.0.entry(key).or_default().push(meta);
        }
        presences
    }
    PresenceDiff {
        joins: group(joins),
        leaves: group(leaves),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn change(kind: ChangeKind, key: &str, phx_ref: &str) -> Change {
        let mut meta = Meta::new();
        meta.insert("phx_ref".into(), json!(phx_ref));
        Change {
            topic: Arc::from("t"),
            kind,
            key: key.to_string(),
            meta,
        }
    }

    #[test]
    fn a_join_and_a_leave_of_one_ref_cancel_and_others_group_by_key() {
        let mut window = Window::default();
        window.record(change(ChangeKind::Join, "alice", "1"));
        window.record(change(ChangeKind::Join, "alice", "2"));
        window.record(change(ChangeKind::Leave, "bob", "3"));
        window.record(change(ChangeKind::Leave, "alice", "1"));
        let diff = window.into_diff();
        assert_eq!(diff.joins.metas("alice").len(), 1);
        assert_eq!(diff.joins.metas("alice")[0]["phx_ref"], "2");
        assert_eq!(diff.leaves.count_metas(), 1);
        assert_eq!(diff.leaves.metas("bob")[0]["phx_ref"], "3");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Whatever happens inside one window, its diff is the net change: the refs present
        /// at its end but not at its start join, those present at its start but not at its
        /// end leave, and nothing else appears (a join and a leave of one ref cancel).
        #[test]
        fn a_window_reports_exactly_the_net_change(
            before in proptest::collection::btree_set(0u8..12, 0..8),
            steps in proptest::collection::vec(0u8..12, 0..40),
        ) {
            let mut present = before.clone();
            let mut window = Window::default();
            for r in steps {
                // Each step flips one ref: a leave if present, else a join (always valid).
                let kind = if present.remove(&r) {
                    ChangeKind::Leave
                } else {
                    present.insert(r);
                    ChangeKind::Join
                };
                window.record(change(kind, &format!("k{}", r % 3), &r.to_string()));
            }
            let diff = window.into_diff();
            let refs = |side: &Presences| -> std::collections::BTreeSet<u8> {
                side.0
                    .values()
                    .flatten()
                    .map(|m| m["phx_ref"].as_str().unwrap().parse().unwrap())
                    .collect()
            };
            let joined: std::collections::BTreeSet<u8> = present.difference(&before).copied().collect();
            let left: std::collections::BTreeSet<u8> = before.difference(&present).copied().collect();
            proptest::prop_assert_eq!(refs(&diff.joins), joined);
            proptest::prop_assert_eq!(refs(&diff.leaves), left);
        }
    }

    #[test]
    fn a_diff_since_a_position_holds_only_the_later_changes_net() {
        let mut window = Window::default();
        window.record(change(ChangeKind::Join, "alice", "1"));
        window.record(change(ChangeKind::Join, "bob", "2"));
        // A state taken here holds alice and bob.
        let cursor = window.len();
        window.record(change(ChangeKind::Leave, "alice", "1"));
        window.record(change(ChangeKind::Join, "carol", "3"));
        window.record(change(ChangeKind::Leave, "carol", "3"));
        let since = window.diff_since(cursor);
        assert_eq!(since.joins.count_metas(), 0, "carol came and went");
        assert_eq!(
            since.leaves.metas("alice").len(),
            1,
            "alice left after the state"
        );
        assert_eq!(since.leaves.count_metas(), 1);
        assert!(window.diff_since(window.len()).joins.is_empty());
        // The whole window: alice cancels out, bob joins.
        let whole = window.into_diff();
        assert_eq!(whole.joins.metas("bob").len(), 1);
        assert_eq!(whole.joins.count_metas(), 1);
        assert!(whole.leaves.is_empty());
    }

    #[test]
    fn a_leave_then_a_join_of_one_ref_cancel_too() {
        let mut window = Window::default();
        window.record(change(ChangeKind::Leave, "alice", "1"));
        window.record(change(ChangeKind::Join, "alice", "1"));
        let diff = window.into_diff();
        assert!(diff.joins.is_empty() && diff.leaves.is_empty());
    }
}
