//! Bytes of client events waiting in a page's queue, counted against two limits at once:
//! the page's (`commander.max_queued_bytes`) and its connection's
//! (`commander.max_connection_queued_bytes`, all pages of the connection together).
//!
//! An event is queued with a [`Held`] that took its bytes from both counters; dropping it
//! (when the page's task takes the event, or when a gone page's queue is dropped) gives them
//! back. So however long a handler waits (a modal may wait ten minutes), what a client can
//! make the server hold for one page or one connection stays under its limit.
//!
//! This module only counts: it never decodes, queues or refuses anything itself.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// One counter and its limit.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    pub(crate) fn new(used: Arc<AtomicUsize>, max: usize) -> Budget {
        Budget { used, max }
    }

    /// Takes `bytes` if they fit under the limit.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Bytes taken from a page's and a connection's budgets; given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    page: Budget,
    connection: Budget,
    bytes: usize,
}

impl Held {
    /// Takes `bytes` from both budgets, or from neither when either is full.
    pub(crate) fn take(page: &Budget, connection: &Budget, bytes: usize) -> Option<Held> {
        if !page.take(bytes) {
            return None;
        }
        if !connection.take(bytes) {
            page.give_back(bytes);
            return None;
        }
        Some(Held {
            page: page.clone(),
            connection: connection.clone(),
            bytes,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.page.give_back(self.bytes);
        self.connection.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_count_against_both_budgets_until_dropped() {
        let connection = Budget::new(Arc::default(), 100);
        let a = Budget::new(Arc::default(), 60);
        let b = Budget::new(Arc::default(), 60);
        let first = Held::take(&a, &connection, 50).expect("fits");
        assert!(Held::take(&a, &connection, 20).is_none(), "page a is full");
        let second = Held::take(&b, &connection, 50).expect("fits");
        assert!(
            Held::take(&b, &connection, 5).is_none(),
            "the connection is full"
        );
        assert_eq!(a.used.load(Ordering::Acquire), 50);
        assert_eq!(b.used.load(Ordering::Acquire), 50, "b took nothing more");
        drop(first);
        drop(second);
        assert_eq!(connection.used.load(Ordering::Acquire), 0);
        assert!(Held::take(&a, &connection, 60).is_some());
    }
}
