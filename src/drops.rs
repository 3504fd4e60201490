//! Counting what is dropped (a forged bus message, undecodable gossip, a full queue) and
//! logging it without letting a flood of it flood the log.
//!
//! Pure bookkeeping: it must never decide what to drop.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// At most one log line per this period for each counter.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Counts something dropped and logs it at most once per [`LOG_EVERY`].
pub(crate) struct DropCounter {
    total: AtomicU64,
    last_log: Mutex<Option<Instant>>,
}

impl DropCounter {
    pub(crate) fn new() -> DropCounter {
        DropCounter {
            total: AtomicU64::new(0),
            last_log: Mutex::new(None),
        }
    }

    /// Counts one; `log` is called with the running total when a line is due.
    pub(crate) fn count(&self, log: impl FnOnce(u64)) {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            drop(last);
            log(total);
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_everything_and_logs_once_per_period() {
        let counter = DropCounter::new();
        let mut logged = Vec::new();
        for _ in 0..1000 {
            counter.count(|total| logged.push(total));
        }
        assert_eq!(counter.total(), 1000);
        assert_eq!(logged, vec![1]);
    }
}
