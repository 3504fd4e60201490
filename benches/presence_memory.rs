//! Heap bytes per tracked presence in `tether::presence::tracker::Tracker`.
//!
//! ```text
//! cargo bench --bench presence_memory
//! cargo bench --bench presence_memory -- --presences 100000 --topics 10000
//! ```
//!
//! A counting global allocator (the system allocator, plus atomic counters of live bytes and
//! live allocations) measures what the tracker holds, not what the process's RSS says:
//!
//! - **origin, log not yet sent**: a replica right after `track` × P (its view, its index of
//!   local entries, and the ops waiting for the next heartbeat);
//! - **origin, steady**: the same after `heartbeat()` took the ops (what a node holds between
//!   two changes);
//! - **mirror**: a second replica that received that heartbeat (`receive`), i.e. what every
//!   other node of a cluster holds for these presences.
//!
//! Two shapes: P presences on one topic (`room:lobby`, keys `u0`, `u1`, …), and one presence
//! on each of T topics (`room:0`, `room:1`, …). Each meta is `{"online_at": "1795446275"}`
//! plus the `phx_ref` the tracker adds. Prints a Markdown table.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicI64, Ordering},
    time::Instant,
};

use serde_json::{Map, Value};
use tether::{
    config::PresenceConfig,
    presence::tracker::{ReplicaId, Tracker},
};

/// The system allocator, counting live bytes and allocations.
struct Counting;

static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

fn add(bytes: i64, allocs: i64) {
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    LIVE_ALLOCS.fetch_add(allocs, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters have no effect on it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64, 0);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy)]
struct Snap {
    bytes: i64,
    allocs: i64,
}

fn snap() -> Snap {
    Snap {
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        allocs: LIVE_ALLOCS.load(Ordering::Relaxed),
    }
}

fn since(a: Snap, b: Snap) -> Snap {
    Snap {
        bytes: b.bytes - a.bytes,
        allocs: b.allocs - a.allocs,
    }
}

/// The defaults, with heartbeats not split: the whole log travels in one.
fn periods() -> PresenceConfig {
    PresenceConfig {
        max_heartbeat_bytes: usize::MAX,
        ..PresenceConfig::default()
    }
}

fn meta() -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("online_at".into(), Value::String("1795446275".into()));
    meta
}

struct Row {
    shape: String,
    count: usize,
    pending: Snap,
    steady: Snap,
    mirror: Snap,
    track_ns: f64,
    receive_ns: f64,
}

/// Tracks `count` presences, placed by `place(i) -> (topic, key)`, and measures.
fn measure(shape: &str, count: usize, place: impl Fn(usize) -> (String, String)) -> Row {
    // The inputs are moved into the tracker, which keeps what it needs of them: count from
    // before they exist.
    let base = snap();
    let inputs: Vec<(String, String, Map<String, Value>)> = (0..count)
        .map(|i| {
            let (topic, key) = place(i);
            (topic, key, meta())
        })
        .collect();
    let mut origin = Tracker::new(
        ReplicaId {
            name: "bench@origin#0".into(),
            incarnation: 1_795_446_275_000_001,
        },
        &periods(),
    );
    let t0 = Instant::now();
    for (owner, (topic, key, meta)) in inputs.into_iter().enumerate() {
        let changes = origin
            .track(&topic, owner as u64, &key, meta)
            .expect("distinct (topic, owner, key)");
        drop(changes);
    }
    let track_ns = t0.elapsed().as_nanos() as f64 / count as f64;
    let with_log = snap();

    let mut messages = origin.heartbeat();
    assert_eq!(messages.len(), 1, "one heartbeat");
    let gossip = messages.remove(0);
    let mut mirror = Tracker::new(
        ReplicaId {
            name: "bench@mirror#0".into(),
            incarnation: 1_795_446_275_000_002,
        },
        &periods(),
    );
    let t1 = Instant::now();
    let (changes, replies) = mirror.receive(gossip, 1);
    let receive_ns = t1.elapsed().as_nanos() as f64 / count as f64;
    assert_eq!(changes.len(), count, "the mirror reports every join");
    assert!(replies.is_empty(), "no transfer needed");
    drop((changes, replies));
    let with_mirror = snap();
    drop(mirror);
    // `receive` consumed the gossip, so what is left is the origin alone.
    let origin_only = snap();
    let row = Row {
        shape: shape.to_string(),
        count,
        pending: since(base, with_log),
        steady: since(base, origin_only),
        mirror: since(origin_only, with_mirror),
        track_ns,
        receive_ns,
    };
    drop(origin);
    let leaked = since(base, snap());
    assert!(
        leaked.bytes.abs() < 4096,
        "{} bytes still live after dropping both trackers",
        leaked.bytes
    );
    row
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut presences = 100_000usize;
    let mut topics = 10_000usize;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--presences" => presences = value("--presences"),
            "--topics" => topics = value("--topics"),
            "--help" | "-h" => {
                eprintln!(
                    "usage: cargo bench --bench presence_memory -- \
                     [--presences P (100000)] [--topics T (10000)]"
                );
                return;
            }
            other => panic!("unknown option {other:?}"),
        }
    }
    let rows = [
        measure(&format!("1 topic, {presences} keys"), presences, |i| {
            ("room:lobby".to_string(), format!("u{i}"))
        }),
        measure(&format!("{topics} topics, 1 key each"), topics, |i| {
            (format!("room:{i}"), format!("u{i}"))
        }),
    ];
    println!();
    println!("### presence_memory result");
    println!();
    println!(
        "Live heap bytes (and allocations) per tracked presence, counted by a wrapping global \
         allocator; meta `{{\"online_at\":\"1795446275\"}}` + `phx_ref`."
    );
    println!();
    println!(
        "| shape | presences | origin, ops not yet sent | **origin, steady** | **mirror (peer \
         node)** | track / receive time per presence |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let per = |s: Snap| {
            format!(
                "{:.0} B ({:.1} allocs)",
                s.bytes as f64 / r.count as f64,
                s.allocs as f64 / r.count as f64
            )
        };
        println!(
            "| {} | {} | {} | **{}** | **{}** | {:.0} / {:.0} ns |",
            r.shape,
            r.count,
            per(r.pending),
            per(r.steady),
            per(r.mirror),
            r.track_ns,
            r.receive_ns
        );
    }
    // For scale: one meta as the tracker stores it (a serde_json `Map`, a BTreeMap).
    let before = snap();
    let mut one = meta();
    one.insert("phx_ref".into(), Value::String("0123456789AB0001".into()));
    let meta_bytes = since(before, snap());
    let json_len = serde_json::to_string(&one).map_or(0, |j| j.len());
    drop(one);
    println!();
    println!(
        "For scale: one such meta map alone holds {} B in {} allocations; as JSON it is {json_len} B.",
        meta_bytes.bytes, meta_bytes.allocs
    );
    println!();
}
