//! The join-storm scenario: N clients (distinct `user_id`s) join one topic at once; each
//! counts the members it is told about from presence frames alone ([`Storm`]), and the run
//! measures when every client counts N, what the presence traffic cost, and whether anyone
//! ever counted more than N (a server bug).
//!
//! After the storm (once the server is idle) it also times a single join on a quiet topic
//! ([`quiet_join`]): how long one change waits for its coalescing window when nothing else
//! happens.
//!
//! It must never parse JSON on the receive path (byte scans for `"phx_ref":` only), never
//! wait past `--converge-timeout-secs` for convergence, and bound every wait of the
//! quiet-join probe by [`QUIET_WAIT`].

use std::{
    collections::BTreeMap,
    sync::{
        LazyLock,
        atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use memchr::memmem;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    connect::{Ws, connect_ws, join},
    histogram::Summary,
    procfs::CpuMark,
    report::StormReport,
    run::RunCtx,
};

/// Single joins timed by the quiet-join probe.
const QUIET_JOINS: usize = 5;
/// Quiet time before each probe join: the observer's socket drains and the last change's
/// window (the base, 50 ms by default) is long over.
const QUIET_GAP: Duration = Duration::from_millis(500);
/// The bound of each wait of the probe (connect, join, the diff).
const QUIET_WAIT: Duration = Duration::from_secs(3);

static PHX_REF: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"phx_ref\":"));
static LEAVES_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"leaves\":"));
static COUNT_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"count\":"));

/// Per-client member counts kept by the join-storm scenario, from presence frames only.
pub struct Storm {
    /// `"<topic>","presence_state",` after the refs (`","presence_state",` for any topic).
    state_event: memmem::Finder<'static>,
    /// `"<topic>","presence_diff",` (`","presence_diff",`).
    diff_event: memmem::Finder<'static>,
    /// The most members a client may count (more is an over-count, a server bug).
    max_members: usize,
    /// Members are the sum of the `"count":` numbers (`anonymous_counts`' counts-only
    /// payloads), not the metas ([`Storm::summing_counts`]).
    sum_counts: bool,
    /// Member count of each client: metas in its state + diff joins − diff leaves.
    counts: Box<[AtomicI64]>,
    /// When each client's count last changed ([`Shared::now_ns`](crate::shared::Shared)).
    last_change_ns: Box<[AtomicU64]>,
    /// Presence frames received by each client.
    frames: Box<[AtomicU32]>,
    /// Each client received its `presence_state` (a second one is reported).
    got_state: Box<[AtomicBool]>,
    pub first_join_ns: AtomicU64,
    pub last_join_ns: AtomicU64,
    state_frames: AtomicU64,
    diff_frames: AtomicU64,
    presence_bytes: AtomicU64,
    state_metas: AtomicU64,
    join_metas: AtomicU64,
    leave_metas: AtomicU64,
    /// Presence frames received after every client had converged.
    late_frames: AtomicU64,
    converged: AtomicBool,
    /// Updates that left a client's count above N (a server bug), and the highest count.
    overcounts: AtomicU64,
    max_count: AtomicI64,
    /// Second `presence_state` to the same client; diffs without a `"leaves":` part.
    repeated_states: AtomicU64,
    malformed: AtomicU64,
}

impl Storm {
    /// Counts for `n` clients of `topic` (`None`: whatever topic each client joined), each
    /// expected to count at most `max_members`.
    pub fn new(n: usize, topic: Option<&str>, max_members: usize) -> Storm {
        let topic = topic.map(|t| format!("\"{t}")).unwrap_or_default();
        let state = format!("{topic}\",\"presence_state\",").into_bytes();
        let diff = format!("{topic}\",\"presence_diff\",").into_bytes();
        Storm {
            state_event: memmem::Finder::new(&state).into_owned(),
            diff_event: memmem::Finder::new(&diff).into_owned(),
            max_members,
            sum_counts: false,
            counts: (0..n).map(|_| AtomicI64::new(0)).collect(),
            last_change_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            frames: (0..n).map(|_| AtomicU32::new(0)).collect(),
            got_state: (0..n).map(|_| AtomicBool::new(false)).collect(),
            first_join_ns: AtomicU64::new(u64::MAX),
            last_join_ns: AtomicU64::new(0),
            state_frames: AtomicU64::new(0),
            diff_frames: AtomicU64::new(0),
            presence_bytes: AtomicU64::new(0),
            state_metas: AtomicU64::new(0),
            join_metas: AtomicU64::new(0),
            leave_metas: AtomicU64::new(0),
            late_frames: AtomicU64::new(0),
            converged: AtomicBool::new(false),
            overcounts: AtomicU64::new(0),
            max_count: AtomicI64::new(0),
            repeated_states: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        }
    }

    /// Counts members as the sum of the `"count":` numbers of each payload (or diff part),
    /// as a counts-only page does (`examples/anonymous_counts`), instead of its metas.
    pub fn summing_counts(mut self, sum_counts: bool) -> Storm {
        self.sum_counts = sum_counts;
        self
    }

    /// The members in `part` of a presence frame: its metas (`"phx_ref":`), or the sum of
    /// its `"count":` numbers.
    fn members(&self, part: &[u8]) -> i64 {
        if !self.sum_counts {
            return PHX_REF.find_iter(part).count() as i64;
        }
        let key = COUNT_KEY.needle().len();
        COUNT_KEY
            .find_iter(part)
            .map(|at| {
                part[at + key..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'))
            })
            .sum()
    }

    /// Presence frames (states and diffs) received so far by all clients.
    pub fn presence_frames(&self) -> u64 {
        self.state_frames.load(Ordering::Relaxed) + self.diff_frames.load(Ordering::Relaxed)
    }

    /// Counts a presence frame for client `idx`; `false` if `frame` is not one.
    pub fn on_frame(&self, idx: usize, now_ns: u64, frame: &[u8]) -> bool {
        let Some((delta, is_state)) = self.classify(idx, frame) else {
            return false;
        };
        self.presence_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.frames[idx].fetch_add(1, Ordering::Relaxed);
        if self.converged.load(Ordering::Relaxed) {
            self.late_frames.fetch_add(1, Ordering::Relaxed);
        }
        // Only this client's task writes its count.
        let count = self.counts[idx].load(Ordering::Relaxed) + delta;
        self.counts[idx].store(count, Ordering::Release);
        if delta != 0 || is_state {
            self.last_change_ns[idx].store(now_ns, Ordering::Release);
        }
        self.max_count.fetch_max(count, Ordering::Relaxed);
        let n = self.max_members;
        if count > n as i64 {
            let events = self.overcounts.fetch_add(1, Ordering::Relaxed);
            if events < 10 {
                let kind = if is_state {
                    "presence_state"
                } else {
                    "presence_diff"
                };
                eprintln!(
                    "loadgen: OVER-COUNT: client {idx} counts {count} members (> N = {n}) after a \
                     {kind} of {} bytes",
                    frame.len()
                );
            }
        }
        true
    }

    /// For a presence frame to client `idx`: (change of its member count, whether it is a
    /// `presence_state`), with the frame and meta totals counted; `None` for other frames.
    fn classify(&self, idx: usize, frame: &[u8]) -> Option<(i64, bool)> {
        // The event name comes right after the two refs and the topic.
        let head = &frame[..frame.len().min(64 + self.state_event.needle().len())];
        if self.state_event.find(head).is_some() {
            let metas = self.members(frame);
            self.state_frames.fetch_add(1, Ordering::Relaxed);
            self.state_metas.fetch_add(metas as u64, Ordering::Relaxed);
            if self.got_state[idx].swap(true, Ordering::Relaxed) {
                self.repeated_states.fetch_add(1, Ordering::Relaxed);
            }
            Some((metas, true))
        } else if self.diff_event.find(head).is_some() {
            self.diff_frames.fetch_add(1, Ordering::Relaxed);
            let split = LEAVES_KEY.find(frame).unwrap_or_else(|| {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                frame.len()
            });
            let joins = self.members(&frame[..split]);
            let leaves = self.members(&frame[split..]);
            self.join_metas.fetch_add(joins as u64, Ordering::Relaxed);
            self.leave_metas.fetch_add(leaves as u64, Ordering::Relaxed);
            Some((joins - leaves, false))
        } else {
            None
        }
    }

    /// Whether client `idx` received its `presence_state`.
    pub fn has_state(&self, idx: usize) -> bool {
        self.got_state[idx].load(Ordering::Acquire)
    }

    /// When client `idx`'s count last changed (0: never).
    pub fn last_change(&self, idx: usize) -> u64 {
        self.last_change_ns[idx].load(Ordering::Acquire)
    }

    /// Clients whose count is `target`.
    fn at_target(&self, target: usize) -> usize {
        self.counts
            .iter()
            .filter(|c| c.load(Ordering::Acquire) == target as i64)
            .count()
    }

    pub fn count_of(&self, idx: usize) -> i64 {
        self.counts[idx].load(Ordering::Acquire)
    }
}

/// The join-storm scenario: N clients join one topic at once; every client must end up
/// counting N members, from its `presence_state` and the `presence_diff`s after it.
pub async fn run_storm(run: &RunCtx<'_>) -> Result<(), String> {
    let (opts, procs, shared) = (run.opts, run.procs, run.shared);
    let storm = shared.storm.as_ref().expect("storm state");
    run.baseline_rss().await;
    run.report.lock().unwrap().storm = Some(StormReport::default());
    eprintln!(
        "loadgen: join storm: {} clients join {} ({})…",
        opts.clients,
        opts.topic,
        opts.arrivals()
    );
    let mark = CpuMark::now(procs);
    run.spawn_clients();
    let (target, converged_clients) = converge(run, &mark).await?;
    let converged = target.is_some_and(|t| converged_clients >= t);
    storm.converged.store(converged, Ordering::Release);
    let cpu = mark.since(procs);
    let target = target.unwrap_or(shared.joined.load(Ordering::Acquire));
    let mut st = StormReport {
        target,
        converged_clients,
        cpu: Some(cpu),
        ..convergence(storm, shared.nodes, target)
    };
    let last_change = st.client_convergence.2;
    st.convergence = converged.then_some(last_change);
    eprintln!(
        "loadgen: {}",
        if converged {
            format!("all {target} clients count {target} after {last_change:.2} s")
        } else {
            format!("NOT converged: {converged_clients} of {target} clients count {target}")
        }
    );
    let final_counts: Vec<i64> = (0..storm.counts.len()).map(|i| storm.count_of(i)).collect();
    // Idle after the storm: RSS once stable, then check that nothing changed meanwhile.
    let (rss_post, settle_secs, settled) = run.settle_rss().await;
    add_totals(storm, &mut st);
    st.drifted_after = (0..final_counts.len())
        .filter(|&i| storm.count_of(i) != final_counts[i])
        .count();
    st.rss_peak = procs.status_kib("VmHWM:");
    st.rss_post = rss_post;
    st.rss_settle = (!procs.servers.is_empty()).then_some((settle_secs, settled));
    st.quiet_join = Some(quiet_join(run).await);
    if let Some(Ok(s)) = &st.quiet_join {
        eprintln!(
            "loadgen: a single join on a quiet topic shows after {:.1} ms (median of {})",
            s.p50 as f64 / 1000.0,
            s.count
        );
    }
    run.report.lock().unwrap().storm = Some(st);
    run.record_server_closes().await;
    run.hold().await;
    if !converged {
        return Err(format!(
            "join storm did not converge within {} s",
            opts.converge_timeout_secs
        ));
    }
    Ok(())
}

/// Waits until every joined client counts the number joined (the target, known once every
/// client has connected or failed), or `--converge-timeout-secs`. Returns (target, clients
/// at the target).
async fn converge(run: &RunCtx<'_>, mark: &CpuMark) -> Result<(Option<usize>, usize), String> {
    let (opts, shared) = (run.opts, run.shared);
    let storm = shared.storm.as_ref().expect("storm state");
    let n = opts.clients;
    let timeout = Duration::from_secs_f64(opts.converge_timeout_secs);
    let started = Instant::now();
    let mut last_print = started;
    let mut target: Option<usize> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if target.is_none() && shared.connect_done.load(Ordering::Acquire) >= n {
            let joined = run.record_joined(mark.since(run.procs));
            target = Some(joined);
            if joined == 0 {
                return Err("no client could connect and join".into());
            }
        }
        let converged_clients = target.map_or(0, |t| storm.at_target(t));
        if target.is_some_and(|t| converged_clients >= t) || started.elapsed() >= timeout {
            return Ok((target, converged_clients));
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   t={:.0}s joined {} converged {} presence frames {} ({:.0} MiB)",
                started.elapsed().as_secs_f64(),
                shared.joined.load(Ordering::Relaxed),
                storm.at_target(n),
                storm.presence_frames(),
                storm.presence_bytes.load(Ordering::Relaxed) as f64 / 1048576.0
            );
        }
    }
}

/// When the clients' counts last changed (per client and per node), and the counts of those
/// not at `target`, as the storm ends.
fn convergence(storm: &Storm, nodes: usize, target: usize) -> StormReport {
    let first = storm.first_join_ns.load(Ordering::Acquire);
    let secs = |ns: u64| ns.saturating_sub(first) as f64 / 1e9;
    let changes = Summary::of(
        storm
            .last_change_ns
            .iter()
            .map(|t| t.load(Ordering::Acquire))
            .filter(|&t| t > 0)
            .map(|t| t.saturating_sub(first)),
    );
    StormReport {
        client_convergence: (
            changes.p50 as f64 / 1e9,
            changes.p99 as f64 / 1e9,
            changes.max as f64 / 1e9,
        ),
        stuck: stuck_counts(storm, target),
        per_node: per_node(storm, nodes, target, secs),
        ..StormReport::default()
    }
}

/// The join phase and the presence traffic's totals, read after the idle period (so that
/// late frames count).
fn add_totals(storm: &Storm, st: &mut StormReport) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let first = storm.first_join_ns.load(Ordering::Acquire);
    let last_join = storm.last_join_ns.load(Ordering::Acquire);
    st.join_phase = last_join.saturating_sub(first) as f64 / 1e9;
    st.after_last_join = st.convergence.map(|c| (c - st.join_phase).max(0.0));
    st.no_state = storm
        .got_state
        .iter()
        .filter(|g| !g.load(Ordering::Relaxed))
        .count();
    st.state_frames = load(&storm.state_frames);
    st.diff_frames = load(&storm.diff_frames);
    st.presence_bytes = load(&storm.presence_bytes);
    st.state_metas = load(&storm.state_metas);
    st.join_metas = load(&storm.join_metas);
    st.leave_metas = load(&storm.leave_metas);
    // Every joined client got a presence_state: clients without a frame did not join.
    st.frames_per_client = Summary::of(
        storm
            .frames
            .iter()
            .map(|f| f.load(Ordering::Relaxed) as u64)
            .filter(|&f| f > 0),
    );
    st.late_frames = load(&storm.late_frames);
    st.overcounts = load(&storm.overcounts);
    st.max_count = storm.max_count.load(Ordering::Relaxed);
    st.repeated_states = load(&storm.repeated_states);
    st.malformed = load(&storm.malformed);
}

/// A single join on a quiet topic (`<topic>:quiet`, on the first node): an observer joins it,
/// then [`QUIET_JOINS`] times, each after [`QUIET_GAP`] without a change, a new client joins,
/// and the time from its `phx_join` sent to the observer's `presence_diff` naming it is
/// taken. Returns those times (µs), or what went wrong.
async fn quiet_join(run: &RunCtx<'_>) -> Result<Summary, String> {
    let ctx = &run.clients;
    let target = &ctx.targets[0];
    let topic = format!("{}:quiet", run.opts.topic);
    let bounded = |what: &'static str| move |_| format!("{what}: no answer in {QUIET_WAIT:?}");
    let mut observer = tokio::time::timeout(
        QUIET_WAIT,
        connect_ws(target, None, "quiet-observer", ctx.config),
    )
    .await
    .map_err(bounded("observer connect"))??;
    tokio::time::timeout(QUIET_WAIT, join(&mut observer, &topic))
        .await
        .map_err(bounded("observer join"))??;
    let mut samples = Vec::with_capacity(QUIET_JOINS);
    // The joiners stay connected until the end (a leave would be one more change).
    let mut joiners = Vec::with_capacity(QUIET_JOINS);
    for k in 0..QUIET_JOINS {
        drain(&mut observer, QUIET_GAP).await?;
        let user = format!("quiet-{k}");
        let mut ws = tokio::time::timeout(QUIET_WAIT, connect_ws(target, None, &user, ctx.config))
            .await
            .map_err(bounded("probe connect"))??;
        let sent = Instant::now();
        let (joined, seen) = tokio::join!(
            tokio::time::timeout(QUIET_WAIT, join(&mut ws, &topic)),
            tokio::time::timeout(QUIET_WAIT, diff_naming(&mut observer, &user)),
        );
        joined.map_err(bounded("probe join"))??;
        let seen = seen.map_err(bounded("observer's presence_diff"))??;
        samples.push(seen.saturating_duration_since(sent).as_micros() as u64);
        joiners.push(ws);
    }
    Ok(Summary::of(samples))
}

/// Reads and drops what `ws` receives for `gap`.
async fn drain(ws: &mut Ws, gap: Duration) -> Result<(), String> {
    let until = tokio::time::Instant::now() + gap;
    loop {
        match tokio::time::timeout_at(until, ws.next()).await {
            Err(_) => return Ok(()),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(format!("observer: {e}")),
            Ok(None) => return Err("observer: connection ended".into()),
        }
    }
}

/// Reads `ws` until a `presence_diff` naming `user` arrives; returns when it did.
async fn diff_naming(ws: &mut Ws, user: &str) -> Result<Instant, String> {
    let key = format!("\"{user}\"");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if text.contains("\"presence_diff\"") && text.contains(&key) {
                    return Ok(Instant::now());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("observer: {e}")),
            None => return Err("observer: connection ended".into()),
        }
    }
}

/// Per node: the last change of any of its clients' counts (s after the first join), how
/// many of its clients count `target`, and how many clients it has.
fn per_node(
    storm: &Storm,
    nodes: usize,
    target: usize,
    secs: impl Fn(u64) -> f64,
) -> Vec<(f64, usize, usize)> {
    let n = storm.counts.len();
    (0..nodes)
        .map(|node| {
            let clients = (node..n).step_by(nodes);
            let last = clients
                .clone()
                .map(|i| storm.last_change_ns[i].load(Ordering::Acquire))
                .max()
                .unwrap_or(0);
            let ok = clients
                .clone()
                .filter(|&i| storm.count_of(i) == target as i64)
                .count();
            (secs(last), ok, clients.count())
        })
        .collect()
}

/// The most frequent counts among clients that do not count `target`: (count, clients),
/// at most 8.
fn stuck_counts(storm: &Storm, target: usize) -> Vec<(i64, usize)> {
    let mut stuck: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..storm.counts.len() {
        let count = storm.count_of(i);
        if count != target as i64 {
            *stuck.entry(count).or_default() += 1;
        }
    }
    let mut stuck: Vec<(i64, usize)> = stuck.into_iter().collect();
    stuck.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stuck.truncate(8);
    stuck
}
