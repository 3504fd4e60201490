//! The entries under one presence key, in arrival order, with lookup and removal by
//! `phx_ref` that stay cheap however many the key holds.
//!
//! Most keys hold a few entries (one user, a few tabs): those are a plain `Vec`, searched
//! linearly. A key that grows past [`FEW`] entries (an anonymized counter tracks every
//! viewer under one key, `"users"`) switches to an index: entries by arrival number in a
//! `BTreeMap`, and arrival numbers by `phx_ref` in a `HashMap`, so that one leave costs
//! O(log n) instead of a search and a shift of the whole key. It switches back once it
//! shrinks to [`FEW`]` / 4`, releasing the index.
//!
//! It must never reorder entries: [`Metas::iter`] is arrival order in both forms (what
//! `list` and `presence_state` show).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::entry::Entry;

/// Largest key kept as a plain `Vec`.
const FEW: usize = 32;

/// The entries under one key; see the module docs.
#[derive(Debug, Clone)]
pub(super) enum Metas {
    Few(Vec<Entry>),
    Many(Box<Indexed>),
}

#[derive(Debug, Clone, Default)]
pub(super) struct Indexed {
    /// Arrival number -> entry.
    order: BTreeMap<u64, Entry>,
    /// `phx_ref` -> arrival number.
    by_ref: HashMap<String, u64>,
    /// The next arrival number.
    next: u64,
}

impl Indexed {
    fn push(&mut self, entry: Entry) {
        self.by_ref.insert(entry.phx_ref.clone(), self.next);
        self.order.insert(self.next, entry);
        self.next += 1;
    }

    fn remove(&mut self, phx_ref: &str) -> Option<Entry> {
        let at = self.by_ref.remove(phx_ref)?;
        self.order.remove(&at)
    }
}

impl Default for Metas {
    fn default() -> Metas {
        Metas::Few(Vec::new())
    }
}

impl Metas {
    /// Adds `entry` last.
    pub(super) fn push(&mut self, entry: Entry) {
        match self {
            Metas::Few(few) if few.len() < FEW => few.push(entry),
            Metas::Few(few) => {
                let mut indexed = Indexed::default();
                for old in std::mem::take(few) {
                    indexed.push(old);
                }
                indexed.push(entry);
                *self = Metas::Many(Box::new(indexed));
            }
            Metas::Many(many) => many.push(entry),
        }
    }

    /// Removes the entry with `phx_ref`, if present.
    pub(super) fn remove(&mut self, phx_ref: &str) -> Option<Entry> {
        let removed = match self {
            Metas::Few(few) => {
                let at = few.iter().position(|e| e.phx_ref == phx_ref)?;
                Some(few.remove(at))
            }
            Metas::Many(many) => many.remove(phx_ref),
        };
        self.shrink();
        removed
    }

    /// Removes every entry whose `phx_ref` is in `refs`; returns them in arrival order.
    pub(super) fn remove_all(&mut self, refs: &HashSet<String>) -> Vec<Entry> {
        let removed = match self {
            Metas::Few(few) => {
                let (gone, kept) = std::mem::take(few)
                    .into_iter()
                    .partition(|e| refs.contains(&e.phx_ref));
                *few = kept;
                gone
            }
            Metas::Many(many) => {
                let mut at: Vec<u64> = refs
                    .iter()
                    .filter_map(|r| many.by_ref.remove(r.as_str()))
                    .collect();
                at.sort_unstable();
                at.iter().filter_map(|at| many.order.remove(at)).collect()
            }
        };
        self.shrink();
        removed
    }

    /// Back to a plain `Vec` once an indexed key is small again.
    fn shrink(&mut self) {
        if let Metas::Many(many) = self
            && many.order.len() <= FEW / 4
        {
            let entries = std::mem::take(&mut many.order).into_values().collect();
            *self = Metas::Few(entries);
        }
    }

    /// The entry with `phx_ref`.
    pub(super) fn get(&self, phx_ref: &str) -> Option<&Entry> {
        match self {
            Metas::Few(few) => few.iter().find(|e| e.phx_ref == phx_ref),
            Metas::Many(many) => many.by_ref.get(phx_ref).and_then(|at| many.order.get(at)),
        }
    }

    /// The entry with `phx_ref`, to change in place (not its `phx_ref`).
    pub(super) fn get_mut(&mut self, phx_ref: &str) -> Option<&mut Entry> {
        match self {
            Metas::Few(few) => few.iter_mut().find(|e| e.phx_ref == phx_ref),
            Metas::Many(many) => {
                let at = many.by_ref.get(phx_ref)?;
                many.order.get_mut(at)
            }
        }
    }

    /// The entries, in arrival order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        let (few, many) = match self {
            Metas::Few(few) => (Some(few.iter()), None),
            Metas::Many(many) => (None, Some(many.order.values())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    /// How many entries.
    pub(super) fn len(&self) -> usize {
        match self {
            Metas::Few(few) => few.len(),
            Metas::Many(many) => many.order.len(),
        }
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: usize) -> Entry {
        Entry {
            key: "users".into(),
            owner: n as u64,
            phx_ref: format!("r{n}"),
            meta: Default::default(),
        }
    }

    fn refs(metas: &Metas) -> Vec<String> {
        metas.iter().map(|e| e.phx_ref.clone()).collect()
    }

    fn filled(n: usize) -> Metas {
        let mut metas = Metas::default();
        for i in 0..n {
            metas.push(entry(i));
        }
        metas
    }

    #[test]
    fn a_key_keeps_arrival_order_as_it_grows_past_few_and_shrinks_back() {
        let mut metas = filled(FEW + 10);
        assert!(matches!(metas, Metas::Many(_)));
        let expected: Vec<String> = (0..FEW + 10).map(|i| format!("r{i}")).collect();
        assert_eq!(refs(&metas), expected);
        for i in (0..FEW + 10).filter(|i| i % 6 != 0) {
            assert_eq!(
                metas.remove(&format!("r{i}")).map(|e| e.owner),
                Some(i as u64)
            );
        }
        assert!(matches!(metas, Metas::Few(_)), "{} left", metas.len());
        let expected: Vec<String> = (0..FEW + 10)
            .filter(|i| i % 6 == 0)
            .map(|i| format!("r{i}"))
            .collect();
        assert_eq!(refs(&metas), expected);
        metas.push(entry(100));
        assert_eq!(refs(&metas).last().map(String::as_str), Some("r100"));
    }

    #[test]
    fn lookups_and_removals_agree_in_both_forms() {
        for n in [3, FEW * 4] {
            let mut metas = filled(n);
            assert_eq!(metas.len(), n);
            assert_eq!(metas.get("r2").map(|e| e.owner), Some(2));
            assert!(metas.get("nope").is_none());
            if let Some(e) = metas.get_mut("r1") {
                e.owner = 99;
            }
            assert_eq!(metas.get("r1").map(|e| e.owner), Some(99));
            assert!(metas.remove("nope").is_none());
            assert_eq!(metas.remove("r0").map(|e| e.phx_ref), Some("r0".into()));
            assert!(metas.remove("r0").is_none(), "removed once");
            assert_eq!(metas.len(), n - 1);
        }
    }

    #[test]
    fn remove_all_returns_the_removed_in_arrival_order_and_keeps_the_rest() {
        for n in [10, FEW * 4] {
            let mut metas = filled(n);
            let gone: HashSet<String> = [7, 1, 5, 1000].iter().map(|i| format!("r{i}")).collect();
            let removed: Vec<String> = metas
                .remove_all(&gone)
                .into_iter()
                .map(|e| e.phx_ref)
                .collect();
            assert_eq!(removed, ["r1", "r5", "r7"]);
            assert_eq!(metas.len(), n - 3);
            assert!(refs(&metas).iter().all(|r| !gone.contains(r)));
            let all: HashSet<String> = refs(&metas).into_iter().collect();
            assert_eq!(metas.remove_all(&all).len(), n - 3);
            assert!(metas.is_empty());
        }
    }
}
