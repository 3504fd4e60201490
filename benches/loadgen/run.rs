//! The run around the scenarios: the tokio runtime, the global deadline and Ctrl-C, the
//! client context, the steps every scenario takes (baseline RSS, spawning the N clients,
//! recording who joined, waiting for RSS to settle, `--hold-secs`), and the counts taken
//! when the run is over.
//!
//! It must never let the run outlast `--deadline-secs` (the scenario future is dropped at
//! the deadline or on Ctrl-C) and never wait unbounded: RSS settles within 30 s or is
//! reported as not stable.

use std::{
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::{
    connect::Target,
    fanout::run_fanout,
    histogram::Recorder,
    join_storm::run_storm,
    options::{Opts, Scenario},
    pages::run_pages,
    procfs::{PhaseCpu, Procs, rss_kib},
    report::{Report, mib_nodes},
    rooms::{run_rooms, run_worker},
    server_metrics::scrape,
    servers::Fleet,
    session::{Arrivals, ClientCtx, run_client},
    shared::Shared,
    soak::run_soak,
};

/// Runs the scenario against `fleet` within `remaining` (or until Ctrl-C); returns the
/// report so far (everything but the shutdown) and the outcome.
pub fn execute(opts: &Opts, fleet: &Fleet, remaining: Duration) -> (Report, Result<(), String>) {
    let report = Arc::new(Mutex::new(Report {
        requested: opts.clients,
        cluster: fleet.cluster.clone(),
        ..Report::default()
    }));
    let shared = Arc::new(Shared::for_run(opts, fleet.targets.len()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let scenario = run(
        opts.clone(),
        fleet.targets.clone(),
        fleet.procs(),
        shared.clone(),
        report.clone(),
    );
    let outcome: Result<(), String> = runtime.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(remaining, scenario) => match r {
                Ok(r) => r,
                Err(_) => Err(format!("global deadline of {} s reached", opts.deadline_secs)),
            },
            _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C)".into()),
        }
    });
    // The client tasks keep running in the runtime; it is never dropped (the process exits).
    std::mem::forget(runtime);
    let mut report = report.lock().unwrap().clone();
    record_end(&shared, &mut report, &outcome);
    (report, outcome)
}

/// Builds the client context and runs the scenario.
async fn run(
    opts: Opts,
    targets: Vec<Target>,
    procs: Procs,
    shared: Arc<Shared>,
    report: Arc<Mutex<Report>>,
) -> Result<(), String> {
    // tungstenite does the handshakes and runs the sender; the N clients continue on RawWs.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let ctx = ClientCtx {
        shared: shared.clone(),
        targets: Arc::new(targets),
        first: opts.client_range().start,
        rooms: if opts.scenario == Scenario::Rooms {
            opts.rooms
        } else {
            0
        },
        connect_slots: Arc::new(tokio::sync::Semaphore::new(opts.connect_slots())),
        arrivals: None,
        config,
        topic: Arc::from(opts.topic.as_str()),
        join_payload: Arc::from("{}"),
        heartbeat: Duration::from_secs_f64(opts.heartbeat_secs),
        read_buf: opts.read_buf,
    };
    let run = RunCtx {
        opts: &opts,
        procs: &procs,
        shared: &shared,
        report: &report,
        clients: ctx,
    };
    match opts.scenario {
        Scenario::JoinStorm => run_storm(&run).await,
        Scenario::Fanout => run_fanout(&run).await,
        Scenario::Pages => run_pages(&run).await,
        Scenario::Rooms if opts.worker.is_some() => run_worker(&run).await,
        Scenario::Rooms => run_rooms(&run).await,
        Scenario::Soak => run_soak(&run).await,
    }
}

/// What every step of a scenario works with.
pub struct RunCtx<'a> {
    pub opts: &'a Opts,
    pub procs: &'a Procs,
    pub shared: &'a Arc<Shared>,
    pub report: &'a Mutex<Report>,
    /// Given to each measured client (and the sender).
    pub clients: ClientCtx,
}

/// The counts taken when the run is over. Counting of closes stops first: the servers'
/// shutdown closes every connection.
fn record_end(shared: &Shared, r: &mut Report, outcome: &Result<(), String>) {
    shared.counting_closes.store(false, Ordering::Release);
    r.disconnects = shared.disconnects.load(Ordering::Acquire);
    r.close_reasons = shared.close_reasons.lock().unwrap().clone();
    if r.joined.is_none() {
        record_connects(shared, r);
    }
    r.generator_rss_kib = rss_kib("self");
    r.joined_per_node = shared
        .joined_per_node
        .iter()
        .map(|j| j.load(Ordering::Acquire))
        .collect();
    if let Err(err) = outcome {
        r.aborted = Some(err.clone());
    }
}

impl RunCtx<'_> {
    /// Wait after the servers are up (see [`Opts::warmup`]), then the baseline RSS (not with
    /// `--url`).
    pub async fn baseline_rss(&self) {
        if !self.procs.servers.is_empty() {
            tokio::time::sleep(self.opts.warmup()).await;
            self.report.lock().unwrap().rss_before = self.procs.rss();
        }
    }

    /// Starts the N measured clients: they connect at most `--connect-concurrency` at a
    /// time, or with `--arrival-rate` R client i at now + i/R s (the open loop).
    pub fn spawn_clients(&self) {
        self.spawn_clients_with(&self.clients);
    }

    /// [`RunCtx::spawn_clients`] with another client context (the pages scenario's socket,
    /// topic and join payload).
    pub fn spawn_clients_with(&self, ctx: &ClientCtx) {
        let ctx = ClientCtx {
            arrivals: self.opts.arrival_rate.map(|rate| Arrivals {
                start: tokio::time::Instant::now(),
                rate,
            }),
            ..ctx.clone()
        };
        for idx in 0..self.shared.n {
            tokio::spawn(run_client(idx, ctx.clone()));
        }
    }

    /// Once every client has connected or failed: the connect phase's CPU, who joined and why
    /// the others failed. Returns the number joined.
    pub fn record_joined(&self, connect: PhaseCpu) -> usize {
        let mut r = self.report.lock().unwrap();
        r.connect = Some(connect);
        record_connects(self.shared, &mut r)
    }

    /// Waits (≤ 30 s) until every server's RSS is stable (3 readings 1 s apart within 0.5 %)
    /// and no non-shout frame arrived in the last second. Returns (last readings, seconds,
    /// stable); `None` readings without servers (`--url`).
    pub async fn settle_rss(&self) -> (Option<Vec<u64>>, f64, bool) {
        let (procs, shared) = (self.procs, self.shared);
        let start = Instant::now();
        if procs.servers.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            return (None, start.elapsed().as_secs_f64(), false);
        }
        let mut readings: Vec<Vec<u64>> = Vec::new();
        let mut frames_before = shared.non_shout_frames();
        while start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(rss) = procs.rss() else { break };
            readings.push(rss);
            let frames = shared.non_shout_frames();
            let quiet = frames == frames_before;
            frames_before = frames;
            if readings.len() >= 3 && quiet && stable(&readings[readings.len() - 3..]) {
                return (readings.pop(), start.elapsed().as_secs_f64(), true);
            }
        }
        (readings.pop(), start.elapsed().as_secs_f64(), false)
    }

    /// Waits until the servers' RSS is stable ([`RunCtx::settle_rss`]) and records it as the
    /// "joined and idle" reading of the report (with servers only).
    pub async fn record_idle_rss(&self) {
        let (rss, secs, settled) = self.settle_rss().await;
        if self.procs.servers.is_empty() {
            return;
        }
        let mut r = self.report.lock().unwrap();
        r.rss_joined = rss;
        r.rss_settle = Some((secs, settled));
        eprintln!(
            "loadgen: server RSS {} → {} ({})",
            r.rss_before.as_deref().map(mib_nodes).unwrap_or_default(),
            r.rss_joined.as_deref().map(mib_nodes).unwrap_or_default(),
            if settled { "stable" } else { "not stable" }
        );
    }

    /// Adds a row with the connections the servers closed on their own (write timeouts, slow
    /// consumers), read from their `/metrics`: a client whose socket a server abandoned may
    /// never see a close. Only with servers this run started (they have the token).
    pub async fn record_server_closes(&self) {
        if self.procs.servers.is_empty() {
            return;
        }
        let (mut timeouts, mut slow) = (0, 0);
        for target in self.clients.targets.iter() {
            match scrape(target.addr).await {
                Ok(figures) => {
                    timeouts += figures.write_timeouts;
                    slow += figures.slow_consumer_closes;
                }
                Err(err) => {
                    eprintln!("loadgen: {err}");
                    return;
                }
            }
        }
        self.report.lock().unwrap().rooms.push((
            "**closed by the servers (their /metrics)**".into(),
            format!("**{timeouts} write timeouts, {slow} slow consumers**"),
        ));
    }

    /// `--hold-secs`: keeps every client connected a while longer.
    pub async fn hold(&self) {
        let opts = self.opts;
        if opts.hold_secs > 0.0 {
            eprintln!(
                "loadgen: holding the clients for {} s (server pids {:?})",
                opts.hold_secs, self.procs.servers
            );
            tokio::time::sleep(Duration::from_secs_f64(opts.hold_secs)).await;
        }
    }
}

/// Who joined, why the others failed, and (open loop) how late the handshakes started.
/// Returns the number joined.
fn record_connects(shared: &Shared, r: &mut Report) -> usize {
    let joined = shared.joined.load(Ordering::Acquire);
    r.joined = Some(joined);
    r.failures = shared.failures.lock().unwrap().clone();
    let lag = Recorder::merged(std::slice::from_ref(&shared.arrival_lag));
    r.arrival_lag = (lag.count > 0).then_some(lag);
    r.held_back = shared.held_back.load(Ordering::Acquire);
    joined
}

/// Whether each server's readings stay within 0.5 % (at least 512 KiB) of each other.
fn stable(last: &[Vec<u64>]) -> bool {
    let servers = last.first().map_or(0, Vec::len);
    (0..servers).all(|node| {
        let values = last.iter().map(|r| r[node]);
        let lo = values.clone().min().unwrap_or(0);
        let hi = values.max().unwrap_or(0);
        hi - lo <= (hi / 200).max(512)
    })
}
