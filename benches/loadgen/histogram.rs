//! Percentiles (p50 / p99 / max) with HdrHistogram: [`Recorder`] for the latencies that the
//! client tasks record concurrently during the sustained fan-out, [`Summary::of`] for a set of
//! samples held in full (latency rounds, per-client convergence times).
//!
//! It must never hold a lock longer than one record (a recorder is sharded by client, so the
//! receive loops rarely meet on one lock) and never drop a sample: a value above a
//! recorder's range counts as its highest value.

use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;

/// Significant digits of a recorder: values within 1/128 (≤ 0.8 %) share a bucket.
const RECORDER_SIGFIG: u8 = 2;
/// Highest value a recorder tells apart, in µs (one hour).
const RECORDER_HIGH: u64 = 3_600_000_000;
/// Locks of one recorder; client key `k` records under lock `k % SHARDS`.
const SHARDS: usize = 8;
/// Significant digits of a summary of samples held in full (≤ 0.1 %).
const SAMPLES_SIGFIG: u8 = 3;

/// Count, median, 99th percentile and maximum of a set of values. A percentile is the
/// highest value of the bucket holding the sample of rank ⌈q · count⌉.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    fn from_histogram(h: &Histogram<u64>) -> Summary {
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }

    /// The summary of `samples` (any range: the histogram grows as needed).
    pub fn of(samples: impl IntoIterator<Item = u64>) -> Summary {
        let mut h = Histogram::<u64>::new(SAMPLES_SIGFIG).expect("3 significant digits");
        for v in samples {
            // `record` grows the histogram; `saturating_record` would clamp to its range.
            if h.record(v).is_err() {
                h.saturating_record(v);
            }
        }
        Summary::from_histogram(&h)
    }
}

/// A histogram of microseconds that many tasks record into at once.
pub struct Recorder {
    shards: Box<[Mutex<Histogram<u64>>]>,
}

fn recorder_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, RECORDER_HIGH, RECORDER_SIGFIG).expect("valid bounds")
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(recorder_histogram()))
                .collect(),
        }
    }

    /// Records `value` µs for the client with `key` (spreads the clients over the locks).
    pub fn record(&self, key: usize, value: u64) {
        self.shards[key % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(value);
    }

    /// The summary of the union of several recorders.
    pub fn merged(recorders: &[Recorder]) -> Summary {
        let mut all = recorder_histogram();
        for shard in recorders.iter().flat_map(|r| r.shards.iter()) {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            all.add(&*shard).expect("recorders share their bounds");
        }
        Summary::from_histogram(&all)
    }
}
