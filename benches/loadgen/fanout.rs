//! The fan-out scenario: a separate sender ([`Sender`]) pushes `shout`s to the N joined
//! clients; measured are the idle RSS per connection, the latency of one broadcast to all N
//! (`--rounds` times), and the delivered frames/s of a sustained fan-out with at most
//! `--window` incomplete shouts for `--seconds`.
//!
//! It must never wait without a bound: a latency round gives up after
//! `--round-timeout-secs`, the sustained phase stops sending after `--seconds` and draining
//! 10 s later (a shout not delivered to all within 10 s is abandoned), and no more than
//! [`MAX_SHOUTS`] shouts are ever sent.

use std::{
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    connect::{JOIN_REF, Ws, connect_ws, heartbeat_frame, join},
    histogram::Recorder,
    procfs::CpuMark,
    report::Report,
    run::RunCtx,
    session::ClientCtx,
    shared::{MAX_SHOUTS, Shared, mono_ns},
};

/// The separate client that pushes shouts, on node 0, joined to one topic (or to a rooms
/// run's share of the rooms). Its own copies of the broadcasts are drained and not counted.
pub struct Sender {
    sink: Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>,
    topics: Vec<String>,
    pad: String,
    next_ref: u64,
    alive: Arc<AtomicBool>,
}

impl Sender {
    async fn connect(ctx: &ClientCtx, pad: usize) -> Result<Sender, String> {
        Sender::connect_to(ctx, pad, vec![ctx.topic.to_string()]).await
    }

    /// A sender on node 0 joined to each of `topics` (one connection: at most
    /// `endpoint.max_channels` of them).
    pub async fn connect_to(
        ctx: &ClientCtx,
        pad: usize,
        topics: Vec<String>,
    ) -> Result<Sender, String> {
        // On node 0: its clients are "local" to the sender, the others "remote".
        let mut ws = connect_ws(&ctx.targets[0], None, "bench-sender", ctx.config).await?;
        for topic in &topics {
            join(&mut ws, topic).await?;
        }
        let (sink, mut stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let alive = Arc::new(AtomicBool::new(true));
        let reader_alive = alive.clone();
        let shared = ctx.shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Close(frame) = message {
                    if shared.counting_closes.load(Ordering::Acquire) {
                        eprintln!("loadgen: the sender was closed by the server: {frame:?}");
                    }
                    break;
                }
            }
            reader_alive.store(false, Ordering::Release);
        });
        let hb_sink = sink.clone();
        let heartbeat = ctx.heartbeat;
        tokio::spawn(async move {
            let mut hb_ref = 1_000_000_000u64;
            loop {
                tokio::time::sleep(heartbeat).await;
                hb_ref += 1;
                let frame = Message::text(heartbeat_frame(hb_ref));
                if hb_sink.lock().await.send(frame).await.is_err() {
                    break;
                }
            }
        });
        Ok(Sender {
            sink,
            topics,
            pad: "x".repeat(pad),
            next_ref: 2,
            alive,
        })
    }

    /// The shout payload, with the send instant `"t"` if `stamp`; keys in sorted order, as
    /// the server re-encodes them.
    fn payload(&self, seq: usize, stamp: Option<u64>) -> String {
        let pad = if self.pad.is_empty() {
            String::new()
        } else {
            format!(r#""pad":"{}","#, self.pad)
        };
        let stamp = stamp.map(|t| format!(r#","t":{t}"#)).unwrap_or_default();
        format!(r#"{{{pad}"seq":{seq}{stamp}}}"#)
    }

    fn frame(&mut self, topic: usize, seq: usize, stamp: Option<u64>) -> Message {
        let r = self.next_ref;
        self.next_ref += 1;
        Message::text(format!(
            r#"["{JOIN_REF}","{r}","{}","shout",{}]"#,
            self.topics[topic],
            self.payload(seq, stamp)
        ))
    }

    /// Size of the broadcast frame the clients receive for `seq`.
    pub fn broadcast_len(&self, seq: usize, stamp: Option<u64>) -> usize {
        format!(
            r#"[null,null,"{}","shout",{}]"#,
            self.topics[0],
            self.payload(seq, stamp)
        )
        .len()
    }

    /// Shout `seq` on every topic, each stamped with its send instant
    /// ([`mono_ns`]), written in one flush. Returns the first stamp and the instant after
    /// the flush.
    pub async fn shout_stamped(&mut self, seq: usize) -> Result<(u64, u64), String> {
        if !self.alive.load(Ordering::Acquire) {
            return Err("the sender connection is gone".into());
        }
        let sink = self.sink.clone();
        let mut sink = sink.lock().await;
        let first = mono_ns();
        for topic in 0..self.topics.len() {
            let frame = self.frame(topic, seq, Some(mono_ns()));
            sink.feed(frame).await.map_err(|e| format!("sender: {e}"))?;
        }
        sink.flush().await.map_err(|e| format!("sender: {e}"))?;
        Ok((first, mono_ns()))
    }

    /// Stamps the send instant of `seq` and sends it.
    pub async fn shout(&mut self, shared: &Shared, seq: usize) -> Result<(), String> {
        if !self.alive.load(Ordering::Acquire) {
            return Err("the sender connection is gone".into());
        }
        let frame = self.frame(0, seq, None);
        let mut sink = self.sink.lock().await;
        shared.send_ns[seq].store(shared.now_ns(), Ordering::Release);
        sink.send(frame).await.map_err(|e| format!("sender: {e}"))
    }
}

/// The fan-out scenario: steps 2–4 of the crate doc.
pub async fn run_fanout(run: &RunCtx<'_>) -> Result<(), String> {
    let (opts, procs) = (run.opts, run.procs);
    // Sender first, so that the RSS delta covers only the N clients.
    let mut sender = Sender::connect(&run.clients, opts.pad).await?;
    run.report.lock().unwrap().frame_bytes = sender.broadcast_len(opts.rounds + 100, None);
    run.baseline_rss().await;
    connect_all(run).await?;
    idle(run).await;
    latency_rounds(run, &mut sender).await?;
    if opts.seconds > 0.0 {
        sustained(run, &mut sender).await?;
    }
    if !procs.servers.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        run.report.lock().unwrap().rss_after_load = procs.rss();
    }
    run.record_server_closes().await;
    run.hold().await;
    Ok(())
}

/// Connects and joins the N clients; waits until each has joined or failed.
async fn connect_all(run: &RunCtx<'_>) -> Result<(), String> {
    let (n, shared) = (run.opts.clients, run.shared);
    eprintln!("loadgen: connecting {n} clients ({})…", run.opts.arrivals());
    let mark = CpuMark::now(run.procs);
    run.spawn_clients();
    let mut last_print = Instant::now();
    while shared.connect_done.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_print.elapsed() > Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   {} joined, {} failed",
                shared.joined.load(Ordering::Relaxed),
                shared.failures.lock().unwrap().values().sum::<usize>()
            );
        }
    }
    let connect = mark.since(run.procs);
    let wall = connect.wall;
    let joined = run.record_joined(connect);
    eprintln!("loadgen: {joined} joined in {wall:.2} s");
    if joined == 0 {
        return Err("no client could connect and join".into());
    }
    Ok(())
}

/// Idle: waits until the servers' RSS is stable and no presence traffic flows (≤ 30 s).
async fn idle(run: &RunCtx<'_>) {
    run.record_idle_rss().await;
    let other = run.shared.other_frames.load(Ordering::Relaxed);
    run.report.lock().unwrap().other_frames_at_idle = Some(other);
}

/// Latency: one broadcast to all N at a time, `--rounds` times.
async fn latency_rounds(run: &RunCtx<'_>, sender: &mut Sender) -> Result<(), String> {
    let (opts, shared) = (run.opts, run.shared);
    eprintln!("loadgen: {} latency rounds…", opts.rounds);
    let mark = CpuMark::now(run.procs);
    let round_timeout = Duration::from_secs_f64(opts.round_timeout_secs);
    let mut misses = 0usize;
    for round in 0..opts.rounds {
        let expected = shared.live.load(Ordering::Acquire);
        sender.shout(shared, round).await?;
        let sent_at = Instant::now();
        loop {
            let got = shared.recv_count[round].load(Ordering::Acquire) as usize;
            if got >= shared.live.load(Ordering::Acquire) {
                misses += expected.saturating_sub(got);
                break;
            }
            if sent_at.elapsed() >= round_timeout {
                misses += expected.saturating_sub(got);
                eprintln!(
                    "loadgen:   round {round}: only {got} of {expected} within {round_timeout:?}"
                );
                break;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), shared.completed.notified()).await;
        }
        record_round(&mut run.report.lock().unwrap(), shared, round, misses);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if opts.rounds > 0 {
        run.report.lock().unwrap().latency = Some(mark.since(run.procs));
    }
    Ok(())
}

/// Adds round `round`'s samples to the report, per node of the receiving client, and each
/// node's earliest receive (when it started writing the broadcast).
fn record_round(r: &mut Report, shared: &Shared, round: usize, misses: usize) {
    let (n, k) = (shared.n, shared.nodes);
    r.rounds_done = round + 1;
    r.round_misses = misses;
    r.round_samples.resize(k, Vec::new());
    r.round_first.resize(k, Vec::new());
    let mut first = vec![u32::MAX; k];
    for (idx, sample) in shared.round_lat[round * n..(round + 1) * n]
        .iter()
        .enumerate()
    {
        let v = sample.load(Ordering::Relaxed);
        if v != u32::MAX {
            r.round_samples[idx % k].push(v);
            first[idx % k] = first[idx % k].min(v);
        }
    }
    for (node, v) in first.into_iter().enumerate() {
        if v != u32::MAX {
            r.round_first[node].push(v);
        }
    }
}

/// The shouts of the sustained phase: `[oldest, next)` are sent and not yet complete.
struct Window {
    first: usize,
    next: usize,
    oldest: usize,
    abandoned: usize,
    t0: Instant,
    last_completion: Instant,
}

impl Window {
    /// Moves `oldest` past every shout delivered to all live clients (or older than 10 s:
    /// abandoned).
    fn retire(&mut self, shared: &Shared, now: Instant) {
        while self.oldest < self.next {
            let got = shared.recv_count[self.oldest].load(Ordering::Acquire) as usize;
            let sent_ns = shared.send_ns[self.oldest].load(Ordering::Acquire);
            let age = Duration::from_nanos(shared.now_ns().saturating_sub(sent_ns));
            if got >= shared.live.load(Ordering::Acquire) {
                self.oldest += 1;
                self.last_completion = now;
            } else if age > Duration::from_secs(10) {
                self.oldest += 1;
                self.abandoned += 1;
            } else {
                break;
            }
        }
    }

    fn sent(&self) -> Range<usize> {
        self.first..self.next
    }
}

/// Sustained fan-out with at most `--window` incomplete shouts, for `--seconds`.
async fn sustained(run: &RunCtx<'_>, sender: &mut Sender) -> Result<(), String> {
    let (opts, shared) = (run.opts, run.shared);
    eprintln!(
        "loadgen: sustained fan-out for {} s, window {}…",
        opts.seconds, opts.window
    );
    let mark = CpuMark::now(run.procs);
    let t0 = Instant::now();
    let mut w = Window {
        first: opts.rounds,
        next: opts.rounds,
        oldest: opts.rounds,
        abandoned: 0,
        t0,
        last_completion: t0,
    };
    let send_until = t0 + Duration::from_secs_f64(opts.seconds);
    let drain_until = send_until + Duration::from_secs(10);
    let mut last_print = t0;
    loop {
        let now = Instant::now();
        w.retire(shared, now);
        if now < send_until && w.next - w.oldest < opts.window && w.next < MAX_SHOUTS {
            sender.shout(shared, w.next).await?;
            w.next += 1;
            continue;
        }
        if (now >= send_until && w.oldest == w.next) || now >= drain_until {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            print_progress(shared, &w);
        }
        let _ = tokio::time::timeout(Duration::from_millis(2), shared.completed.notified()).await;
    }
    let mut r = run.report.lock().unwrap();
    r.sustained = Some(mark.since(run.procs));
    record_sustained(&mut r, shared, &w);
    Ok(())
}

fn print_progress(shared: &Shared, w: &Window) {
    let delivered = shared.delivered(w.sent());
    let elapsed = w.t0.elapsed().as_secs_f64();
    eprintln!(
        "loadgen:   t={elapsed:.0}s sent {} delivered {delivered} ({:.0}/s) live {}",
        w.next - w.first,
        delivered as f64 / elapsed,
        shared.live.load(Ordering::Relaxed)
    );
}

/// The sustained phase's figures: shouts sent, frames delivered and over what time, shouts
/// abandoned, and the latency (all, and local / remote with several nodes).
fn record_sustained(r: &mut Report, shared: &Shared, w: &Window) {
    let end = if w.oldest == w.next {
        w.last_completion
    } else {
        Instant::now()
    };
    r.sustained_sent = Some(w.next - w.first);
    r.sustained_delivered = shared.delivered(w.sent());
    r.sustained_elapsed = end.duration_since(w.t0).as_secs_f64();
    r.sustained_abandoned = w.abandoned + (w.next - w.oldest);
    let hist = &shared.sustained_lat;
    r.sustained_lat = Some(Recorder::merged(hist));
    if hist.len() > 1 {
        r.sustained_lat_local = Some(Recorder::merged(&hist[..1]));
        r.sustained_lat_remote = Some(Recorder::merged(&hist[1..]));
    }
}
