//! The measurement state that the N client tasks, the sender and the scenarios share
//! ([`Shared`]), and the receive path of every measured frame ([`Shared::on_text`]).
//!
//! The receive path must stay cheap and must not trust the server: it never parses JSON
//! (byte searches only), never allocates per frame, and ignores a shout sequence number
//! outside [`MAX_SHOUTS`] instead of indexing with it.

use std::{
    collections::BTreeMap,
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
};

use memchr::memmem;
use tokio::sync::Notify;

use crate::{
    histogram::Recorder,
    join_storm::Storm,
    options::{Opts, Scenario},
    pages::Pages,
};

/// Upper bound on shouts in one run (sizes the per-shout arrays).
pub const MAX_SHOUTS: usize = 1 << 20;

pub struct Shared {
    pub n: usize,
    rounds: usize,
    /// Send instant of shout `seq` ([`Shared::now_ns`]).
    pub send_ns: Box<[AtomicU64]>,
    /// How many of the N clients have received shout `seq`.
    pub recv_count: Box<[AtomicU32]>,
    /// Latency-round samples in µs, `[round * n + client]`; u32::MAX = not received.
    pub round_lat: Box<[AtomicU32]>,
    /// Number of server nodes; client `idx` is on node `idx % nodes`.
    pub nodes: usize,
    /// Latencies during the sustained phase, per node of the receiving client.
    pub sustained_lat: Vec<Recorder>,
    /// A shout became complete (received by every live client).
    pub completed: Notify,
    pub connect_done: AtomicUsize,
    pub joined: AtomicUsize,
    /// Clients joined on each node.
    pub joined_per_node: Box<[AtomicUsize]>,
    pub live: AtomicUsize,
    /// Counting of closes stops when the run is over (the server's shutdown closes everyone).
    pub counting_closes: AtomicBool,
    pub disconnects: AtomicUsize,
    pub close_reasons: Mutex<BTreeMap<String, usize>>,
    /// Clients that could not connect and join, by the phase they failed in and the cause.
    pub failures: Mutex<BTreeMap<(Phase, String), usize>>,
    /// Open loop (`--arrival-rate`): how late each client started its handshake (µs after
    /// its scheduled time), and the clients that had to wait for a slot under the safety
    /// bound.
    pub arrival_lag: Recorder,
    pub held_back: AtomicUsize,
    /// Frames other than shouts and heartbeat replies (presence_state/diff, ...).
    pub other_frames: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Join-storm bookkeeping (`None` in the other scenarios).
    pub storm: Option<Storm>,
    /// Pages bookkeeping (`None` in the other scenarios).
    pub pages: Option<Pages>,
}

/// Where a client's connection failed before it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The TCP connection.
    Connect,
    /// The WebSocket upgrade (HTTP request and `101` response).
    Handshake,
    /// `phx_join` and its reply.
    Join,
}

impl Phase {
    /// Whether the failure happened before the WebSocket was up (TCP connect or upgrade).
    pub fn is_handshake(self) -> bool {
        matches!(self, Phase::Connect | Phase::Handshake)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Handshake => "handshake",
            Phase::Join => "join",
        })
    }
}

static SHOUT_EVENT: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\",\"shout\",{"));
static SEQ_KEY: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\"seq\":"));
static HEARTBEAT_REPLY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"phoenix\",\"phx_reply\""));

impl Shared {
    /// The state of a run of `opts` against `nodes` servers.
    pub fn for_run(opts: &Opts, nodes: usize) -> Shared {
        let (n, rounds) = (opts.client_range().len(), opts.rounds);
        Shared {
            n,
            rounds,
            send_ns: (0..MAX_SHOUTS).map(|_| AtomicU64::new(0)).collect(),
            recv_count: (0..MAX_SHOUTS).map(|_| AtomicU32::new(0)).collect(),
            round_lat: (0..n * rounds).map(|_| AtomicU32::new(u32::MAX)).collect(),
            nodes,
            sustained_lat: (0..nodes).map(|_| Recorder::new()).collect(),
            completed: Notify::new(),
            connect_done: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            joined_per_node: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            live: AtomicUsize::new(0),
            counting_closes: AtomicBool::new(true),
            disconnects: AtomicUsize::new(0),
            close_reasons: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            arrival_lag: Recorder::new(),
            held_back: AtomicUsize::new(0),
            other_frames: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            storm: match opts.scenario {
                Scenario::JoinStorm => Some(Storm::new(n, Some(&opts.topic), n)),
                // Every room holds its share of the N clients and the sender.
                Scenario::Rooms => Some(
                    Storm::new(n, None, opts.clients.div_ceil(opts.rooms) + 1)
                        .summing_counts(opts.counts),
                ),
                _ => None,
            },
            pages: (opts.scenario == Scenario::Pages).then(|| Pages::new(n, opts.adders.min(n))),
        }
    }

    /// Now on the system-wide monotonic clock (`CLOCK_MONOTONIC`, the clock of `Instant`),
    /// in ns: comparable between the processes of one machine (the rooms scenario's workers
    /// and its sender).
    pub fn now_ns(&self) -> u64 {
        mono_ns()
    }

    /// A client could not connect and join: it failed in `phase`, for `cause`.
    pub fn fail(&self, phase: Phase, cause: String) {
        *self
            .failures
            .lock()
            .unwrap()
            .entry((phase, cause))
            .or_default() += 1;
        self.connect_done.fetch_add(1, Ordering::AcqRel);
    }

    /// A joined client's connection ended, for `reason`.
    pub fn closed(&self, reason: String) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        // A shout may now be complete for the remaining clients.
        self.completed.notify_one();
        if self.counting_closes.load(Ordering::Acquire) {
            self.disconnects.fetch_add(1, Ordering::AcqRel);
            *self
                .close_reasons
                .lock()
                .unwrap()
                .entry(reason)
                .or_default() += 1;
        }
    }

    /// A joined client left on its own (the soak's churn): no longer live, not a disconnect.
    pub fn left(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.completed.notify_one();
    }

    /// Handles one text frame received by client `idx`. No JSON parsing.
    pub fn on_text(&self, idx: usize, frame: &[u8]) {
        let now = self.now_ns();
        if let Some(storm) = &self.storm {
            if storm.on_frame(idx, now, frame) {
                return;
            }
        }
        if let Some(pages) = &self.pages {
            if pages.on_frame(idx, now, frame) {
                return;
            }
        }
        let Some((seq, stamp)) = shout_seq(frame) else {
            let heartbeat_reply =
                frame.starts_with(b"[null,\"") && HEARTBEAT_REPLY.find(frame).is_some();
            if !heartbeat_reply {
                self.other_frames.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let seq = seq as usize;
        if seq >= MAX_SHOUTS {
            return;
        }
        // A shout stamped by another process (the rooms scenario) carries its send instant.
        let sent = stamp.unwrap_or_else(|| self.send_ns[seq].load(Ordering::Acquire));
        let lat_us = now.saturating_sub(sent) / 1000;
        if seq < self.rounds {
            self.round_lat[seq * self.n + idx]
                .store(lat_us.min(u32::MAX as u64 - 1) as u32, Ordering::Relaxed);
        } else {
            self.sustained_lat[idx % self.nodes].record(idx / self.nodes, lat_us);
        }
        let got = self.recv_count[seq].fetch_add(1, Ordering::AcqRel) as usize + 1;
        if got >= self.live.load(Ordering::Acquire) {
            self.completed.notify_one();
        }
    }

    /// Frames that are not shouts received so far (presence frames and page frames
    /// included).
    pub fn non_shout_frames(&self) -> u64 {
        self.other_frames.load(Ordering::Relaxed)
            + self.storm.as_ref().map_or(0, Storm::presence_frames)
            + self.pages.as_ref().map_or(0, Pages::frames)
    }

    /// Shout deliveries counted for the shouts `range`.
    pub fn delivered(&self, range: std::ops::Range<usize>) -> u64 {
        self.recv_count[range]
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .sum()
    }
}

/// [`Shared::now_ns`]: `CLOCK_MONOTONIC` in ns.
pub fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// `Some((seq, stamp))` for a broadcast `[null,null,"<topic>","shout",{…"seq":N…}]`; the
/// stamp is the send instant ([`mono_ns`]) of a payload that ends `"seq":N,"t":T}` (keys
/// in sorted order, as the server re-encodes them).
pub fn shout_seq(frame: &[u8]) -> Option<(u64, Option<u64>)> {
    if !frame.starts_with(b"[null,null,\"") {
        return None;
    }
    let at = SHOUT_EVENT.find(frame)?;
    let payload = &frame[at..];
    let seq_at = SEQ_KEY.rfind(payload)? + 6;
    let (seq, digits) = leading_number(&payload[seq_at..])?;
    let stamp = payload[seq_at + digits..]
        .strip_prefix(b",\"t\":")
        .and_then(leading_number)
        .map(|(t, _)| t);
    Some((seq, stamp))
}

/// The decimal number at the start of `bytes` and its digits; `None` without a digit or on
/// overflow.
fn leading_number(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        digits += 1;
    }
    (digits > 0).then_some((value, digits))
}
