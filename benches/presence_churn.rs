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
//! A second table: a peer goes down while everyone is under **one hot key** (an anonymized
//! counter tracks every viewer under `"users"`): N/5 of the N entries are the peer's, and the
//! time for this replica to hide them is measured (what a kill -9 of one node of five costs
//! each survivor).
//!
//! Runs the pure tracker (no I/O) on one thread; prints Markdown tables.

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

fn replica(name: &str) -> Tracker {
    Tracker::new(
        ReplicaId {
            name: name.into(),
            incarnation: 1,
        },
        &PresenceConfig::default(),
    )
}

/// N entries under one key on one topic, N/5 of them from a peer that then goes down: the
/// seconds the survivor takes to hide the peer's entries.
fn hot_key_peer_down(n: u64) -> f64 {
    let (mut survivor, mut peer) = (replica("survivor#0"), replica("peer#0"));
    let peer_share = n / 5;
    for owner in 0..peer_share {
        if let Err(err) = peer.track("video:1", owner, "users", Map::new()) {
            panic!("track: {err}");
        }
    }
    for owner in 0..n - peer_share {
        if let Err(err) = survivor.track("video:1", owner, "users", Map::new()) {
            panic!("track: {err}");
        }
    }
    let _ = survivor.receive(peer.heartbeat(), 0);
    assert_eq!(
        survivor.count_metas("video:1") as u64,
        n,
        "the peer's entries mirrored"
    );
    let down_ms = PresenceConfig::default().down_period_ms;
    let started = Instant::now();
    let changes = survivor.tick(down_ms);
    let hidden = started.elapsed().as_secs_f64();
    assert_eq!(
        changes.len() as u64,
        peer_share,
        "every entry of the peer left"
    );
    hidden
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
    println!();
    println!("| one hot key: entries N | the peer's (N/5) hidden in (s) |");
    println!("|---:|---:|");
    for n in [1_000, 10_000, 100_000] {
        println!("| {n} | {:.3} |", hot_key_peer_down(n));
    }
}
