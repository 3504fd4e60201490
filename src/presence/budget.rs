//! Update budgets: a token bucket per owner (a channel join) in one shard, so that one
//! client calling `update` in a loop cannot fill the shard's heartbeats (every update is a
//! leave and a join on the bus).
//!
//! Pure bookkeeping, no clock (times are the presence clock's ms): it must never hold a
//! bucket that is full (a full bucket is the same as none), so its size is the number of
//! owners that updated within the last two seconds.

use std::collections::HashMap;

use crate::bucket::Bucket;

/// Buckets of one shard, by owner.
#[derive(Default)]
pub(super) struct Budgets {
    buckets: HashMap<u64, Bucket>,
}

impl Budgets {
    /// Takes one update from `owner`'s bucket at `now`: `rate` a second, up to `2 * rate`
    /// saved. `false` (and nothing taken) when the bucket is empty.
    pub(super) fn take(&mut self, owner: u64, now: u64, rate: u32) -> bool {
        let rate = f64::from(rate);
        self.buckets
            .entry(owner)
            .or_insert_with(|| Bucket::full(rate, 2.0 * rate, now))
            .take(now)
    }

    /// Drops the buckets that are full again by `now` (nothing to remember).
    pub(super) fn forget_full(&mut self, now: u64) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_then_the_rate() {
        let mut budgets = Budgets::default();
        let granted = (0..100).filter(|_| budgets.take(1, 0, 10)).count();
        assert_eq!(granted, 20, "the burst");
        assert!(budgets.take(2, 0, 10), "another owner has its own bucket");
        assert!(!budgets.take(1, 50, 10), "half a token is not one");
        assert!(budgets.take(1, 100, 10), "one token every 100 ms");
        assert!(!budgets.take(1, 100, 10));
        // One second later: ten more.
        let granted = (0..100).filter(|_| budgets.take(1, 1_100, 10)).count();
        assert_eq!(granted, 10);
        budgets.forget_full(1_100);
        assert_eq!(budgets.len(), 1, "owner 2's bucket is full again");
        budgets.forget_full(3_100);
        assert_eq!(budgets.len(), 0, "full buckets are forgotten");
    }
}
