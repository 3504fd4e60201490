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
//! each survivor), then the same key's entries leaving **one at a time**: N/5 of this
//! replica's own (connections closing, `untrack_owner`) and N/5 of a live peer's (leave ops
//! in its next heartbeat).
//!
//! Runs the pure tracker (no I/O) on one thread; prints Markdown tables.

use std::time::Instant;

use serde_json::{Map, Value};
use tether::{
    config::PresenceConfig,
    presence::tracker::{Gossip, ReplicaId, Tracker},
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
        // Heartbeats not split: the whole log travels in one.
        &PresenceConfig {
            max_heartbeat_bytes: usize::MAX,
            ..PresenceConfig::default()
        },
    )
}

/// `tracker`'s one heartbeat.
fn heartbeat(tracker: &mut Tracker) -> Gossip {
    let mut messages = tracker.heartbeat();
    assert_eq!(messages.len(), 1, "one heartbeat");
    messages.remove(0)
}

/// A replica and a live peer with `n` entries under one key ("users" on "video:1"),
/// `peer_share` of them the peer's, mirrored by the replica at time 0.
fn hot_key_pair(n: u64, peer_share: u64) -> (Tracker, Tracker) {
    let (mut here, mut peer) = (replica("here#0"), replica("peer#0"));
    for (tracker, owners) in [(&mut peer, peer_share), (&mut here, n - peer_share)] {
        for owner in 0..owners {
            if let Err(err) = tracker.track("video:1", owner, "users", Map::new()) {
                panic!("track: {err}");
            }
        }
    }
    let _ = here.receive(heartbeat(&mut peer), 0);
    assert_eq!(here.count_metas("video:1") as u64, n, "the peer's mirrored");
    (here, peer)
}

/// N entries under one key on one topic, N/5 of them from a peer that then goes down: the
/// seconds the survivor takes to hide the peer's entries.
fn hot_key_peer_down(n: u64) -> f64 {
    let peer_share = n / 5;
    let (mut survivor, _peer) = hot_key_pair(n, peer_share);
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

/// N entries under one key on one topic, 2N/5 of them from a live peer: the seconds this
/// replica takes for N/5 of its own to leave one at a time, and for a heartbeat carrying
/// N/5 of the peer's leaves.
fn hot_key_single_leaves(n: u64) -> (f64, f64) {
    let peer_share = 2 * n / 5;
    let (mut here, mut peer) = hot_key_pair(n, peer_share);
    // Every other one, so that the leaves are spread over the key's arrival order.
    let leaving = (0..peer_share).step_by(2);
    let started = Instant::now();
    let mut left = 0;
    for owner in leaving.clone() {
        left += here.untrack_owner(owner, Some("video:1")).len();
    }
    let local = started.elapsed().as_secs_f64();
    for owner in leaving {
        let _ = peer.untrack_owner(owner, Some("video:1"));
    }
    let heartbeat = heartbeat(&mut peer);
    let started = Instant::now();
    let (changes, _) = here.receive(heartbeat, 1);
    let remote = started.elapsed().as_secs_f64();
    assert_eq!(
        left + changes.len(),
        2 * n.div_ceil(5) as usize,
        "every leave seen"
    );
    (local, remote)
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
    println!();
    println!(
        "| one hot key: entries N | N/5 own leave one by one (s) | a heartbeat of N/5 peer leaves (s) |"
    );
    println!("|---:|---:|---:|");
    for n in [1_000, 10_000, 100_000] {
        let (local, remote) = hot_key_single_leaves(n);
        println!("| {n} | {local:.3} | {remote:.3} |");
    }
}
