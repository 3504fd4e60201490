//! A disconnect storm in one presence shard: N owners each track one presence on one topic,
//! then every owner leaves (`untrack_owner`, what a connection's end does), and the leaves
//! are timed. Leaves are indexed by owner, so the storm costs O(N): doubling N about doubles
//! the time, and the time per leave stays flat.
//!
//! ```text
//! cargo bench --bench presence_churn                 # N = 1,000 / 10,000 / 100,000
//! cargo bench --bench presence_churn -- 10000 20000  # chosen sizes
//! ```
//!
//! Runs the pure tracker (no I/O) on one thread; prints a Markdown table.

use std::time::Instant;

use serde_json::{Map, Value};
use tether::{
    config::PresenceConfig,
    presence::tracker::{ReplicaId, Tracker},
};

fn storm(n: u64) -> (f64, f64) {
    let mut tracker = Tracker::new(
        ReplicaId {
            name: "bench#0".into(),
            incarnation: 1,
        },
        &PresenceConfig::default(),
    );
    let mut meta = Map::new();
    meta.insert("online_at".into(), Value::String("1795446275".into()));
    let started = Instant::now();
    for owner in 1..=n {
        let key = format!("u{owner}");
        if let Err(err) = tracker.track("room:lobby", owner, &key, meta.clone()) {
            panic!("track: {err}");
        }
    }
    let tracked = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut leaves = 0;
    for owner in 1..=n {
        leaves += tracker.untrack_owner(owner, Some("room:lobby")).len();
    }
    let left = started.elapsed().as_secs_f64();
    assert_eq!(leaves as u64, n, "every presence left");
    assert_eq!(tracker.count_metas("room:lobby"), 0);
    (tracked, left)
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!("| presences N | track all (s) | all leave (s) | per leave (µs) |");
    println!("|---:|---:|---:|---:|");
    for n in sizes {
        let (tracked, left) = storm(n);
        println!(
            "| {n} | {tracked:.3} | {left:.3} | {:.2} |",
            left * 1e6 / n as f64
        );
    }
}
