//! Coalescing: the changes of one topic during one window, merged into one diff.
//!
//! Pure: no locks, no I/O, no clock. A join and a leave of the same `phx_ref` inside one
//! window cancel out, so a storm of joins and leaves costs one diff per window. It must
//! never decide when a window ends (the delivery task does).

use indexmap::IndexMap;
use serde_json::Value;

use super::{
    hooks::{PresenceDiff, Presences},
    tracker::{Change, ChangeKind, Meta},
};

/// Changes of one topic waiting for the end of the window.
#[derive(Default)]
pub(super) struct Window {
    joins: IndexMap<String, (String, Meta)>,
    leaves: IndexMap<String, (String, Meta)>,
}

impl Window {
    pub(super) fn record(&mut self, change: Change) {
        let phx_ref = change
            .meta
            .get("phx_ref")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let (same_side, other_side) = match change.kind {
            ChangeKind::Join => (&mut self.joins, &mut self.leaves),
            ChangeKind::Leave => (&mut self.leaves, &mut self.joins),
        };
        // A leave of a ref that joined in this window (or the reverse) cancels out.
        if other_side.shift_remove(&phx_ref).is_none() {
            same_side.insert(phx_ref, (change.key, change.meta));
        }
    }

    /// How many metas join or leave in this window (after cancelling).
    pub(super) fn len(&self) -> usize {
        self.joins.len() + self.leaves.len()
    }

    pub(super) fn into_diff(self) -> PresenceDiff {
        fn group(side: IndexMap<String, (String, Meta)>) -> Presences {
            let mut presences = Presences::default();
            for (_, (key, meta)) in side {
                presences.0.entry(key).or_default().push(meta);
            }
            presences
        }
        PresenceDiff {
            joins: group(self.joins),
            leaves: group(self.leaves),
        }
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
    fn a_leave_then_a_join_of_one_ref_cancel_too() {
        let mut window = Window::default();
        window.record(change(ChangeKind::Leave, "alice", "1"));
        window.record(change(ChangeKind::Join, "alice", "1"));
        let diff = window.into_diff();
        assert!(diff.joins.is_empty() && diff.leaves.is_empty());
    }
}
