//! The soak scenario: N clients held on one topic for `--seconds`, with `--churn` joins and
//! as many leaves per second (the oldest client leaves as a new one joins) and one broadcast
//! per second, against one server started with a `/metrics` token.
//!
//! It reads, every `--sample-secs`, the server's RSS and its gauges (`tether_connections`,
//! `tether_outboxes`, `tether_subscriptions`, `tether_tasks`, the sum of
//! `tether_presence_entries`), and reports:
//! - the RSS growth from the reading `--settle-secs` into the churn (a warm heap) to the last
//!   one, which must stay within [`MAX_RSS_GROWTH_PCT`];
//! - the gauges once every client has gone, which must come back to their baseline (read
//!   after the sender joined, before the clients), waited for at most [`DRAIN_WAIT`];
//! - the broadcasts delivered against the clients live when each was sent.
//!
//! It must never wait unbounded (every wait has a bound and the run has `--deadline-secs`)
//! and never count a client's own leave as a disconnect.

use std::{
    collections::VecDeque,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::{
    fanout::Sender,
    histogram::Recorder,
    report::mib,
    run::RunCtx,
    server_metrics::{Gauges, scrape},
    session::run_client_until,
};

/// The RSS growth allowed after the settle reading, in percent.
pub const MAX_RSS_GROWTH_PCT: f64 = 5.0;
/// How long the gauges may take to come back once the clients are gone (presence leaves
/// are broadcast on the pacing window; connections close as their FINs are read).
const DRAIN_WAIT: Duration = Duration::from_secs(120);
/// The bound of the initial N joins.
const RAMP_WAIT: Duration = Duration::from_secs(300);

/// One reading of the soak.
struct Sample {
    secs: f64,
    rss_kib: u64,
    live: usize,
    gauges: Gauges,
}

/// The soak: ramp to N, churn for `--seconds`, let everyone go, check RSS and gauges.
pub async fn run_soak(run: &RunCtx<'_>) -> Result<(), String> {
    let (opts, shared) = (run.opts, run.shared);
    let mut sender = Sender::connect_to(&run.clients, opts.pad, vec![opts.topic.clone()]).await?;
    run.baseline_rss().await;
    let server = run.clients.targets[0].addr;
    let baseline = scrape(server).await?.gauges;
    eprintln!("loadgen: soak baseline gauges {baseline:?}");

    let mut leaves: VecDeque<oneshot::Sender<()>> = VecDeque::new();
    let mut next_idx = 0usize;
    let mut spawn = |leaves: &mut VecDeque<oneshot::Sender<()>>| {
        let (tx, rx) = oneshot::channel::<()>();
        leaves.push_back(tx);
        let leave = async move {
            let _ = rx.await;
        };
        tokio::spawn(run_client_until(next_idx, run.clients.clone(), leave));
        next_idx += 1;
    };
    for _ in 0..opts.clients {
        spawn(&mut leaves);
    }
    let ramp = Instant::now();
    while shared.connect_done.load(Ordering::Acquire) < opts.clients {
        if ramp.elapsed() > RAMP_WAIT {
            return Err(format!(
                "the first {} clients took over {RAMP_WAIT:?}",
                opts.clients
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let joined = shared.joined.load(Ordering::Acquire);
    eprintln!(
        "loadgen: soak: {joined} of {} joined in {:.1} s; churning for {} s",
        opts.clients,
        ramp.elapsed().as_secs_f64(),
        opts.seconds
    );
    run.report.lock().unwrap().joined = Some(joined);

    // The churn: one join and one leave every 1/churn s; a broadcast and a possible reading
    // every second.
    let start = Instant::now();
    let length = Duration::from_secs_f64(opts.seconds);
    let step = if opts.churn > 0.0 {
        Duration::from_secs_f64(1.0 / opts.churn)
    } else {
        Duration::from_secs(1)
    };
    let mut ticks = tokio::time::interval(step);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut samples = vec![sample(run, 0.0).await?];
    let (mut seq, mut expected, mut next_shout, mut next_sample) = (0usize, 0u64, 0.0, 0.0);
    let mut churned = 0u64;
    while start.elapsed() < length {
        ticks.tick().await;
        let now = start.elapsed().as_secs_f64();
        if opts.churn > 0.0 {
            leaves.pop_front().map(|tx| tx.send(()));
            spawn(&mut leaves);
            churned += 1;
        }
        if now >= next_shout {
            next_shout += 1.0;
            expected += shared.live.load(Ordering::Acquire) as u64;
            sender.shout(shared, seq).await?;
            seq += 1;
        }
        if now >= next_sample + opts.sample_secs {
            next_sample += opts.sample_secs;
            let s = sample(run, now).await?;
            eprintln!(
                "loadgen: soak t={:.0} s RSS {} live {} gauges {}",
                s.secs,
                mib(s.rss_kib),
                s.live,
                s.gauges.row()
            );
            samples.push(s);
        }
    }
    samples.push(sample(run, start.elapsed().as_secs_f64()).await?);
    let delivered: u64 = (0..seq)
        .map(|i| u64::from(shared.recv_count[i].load(Ordering::Acquire)))
        .sum();

    // Everyone goes (the leave channels close), then the gauges must come back.
    let gone_from = Instant::now();
    drop(leaves);
    let mut after = scrape(server).await?.gauges;
    while after != baseline && gone_from.elapsed() < DRAIN_WAIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
        after = scrape(server).await?.gauges;
    }
    let drained_secs = gone_from.elapsed().as_secs_f64();
    let rss_after = run.procs.rss().and_then(|r| r.first().copied());

    let mut rows = Vec::new();
    let row = |rows: &mut Vec<(String, String)>, k: &str, v: String| rows.push((k.into(), v));
    row(
        &mut rows,
        "soak",
        format!(
            "{} s with {} clients, {} joins + {} leaves/s ({churned} of each), a broadcast/s",
            opts.seconds, opts.clients, opts.churn, opts.churn
        ),
    );
    let settle = samples
        .iter()
        .find(|s| s.secs >= opts.settle_secs)
        .or(samples.last());
    let last = samples.last();
    let growth = match (settle, last) {
        (Some(a), Some(b)) if a.rss_kib > 0 => {
            Some((b.rss_kib as f64 - a.rss_kib as f64) / a.rss_kib as f64 * 100.0)
        }
        _ => None,
    };
    if let (Some(a), Some(b), Some(g)) = (settle, last, growth) {
        let verdict = if g <= MAX_RSS_GROWTH_PCT {
            "ok"
        } else {
            "**OVER**"
        };
        row(
            &mut rows,
            &format!("**server RSS growth after {:.0} s**", a.secs),
            format!(
                "**{g:+.2} %** ({} at {:.0} s → {} at {:.0} s; bound {MAX_RSS_GROWTH_PCT} %: {verdict})",
                mib(a.rss_kib),
                a.secs,
                mib(b.rss_kib),
                b.secs
            ),
        );
    }
    let back = after == baseline;
    row(
        &mut rows,
        "**gauges: connections | outboxes | subscriptions | tasks | presence entries**",
        format!(
            "baseline {} → **after the clients went {}** ({}, {drained_secs:.1} s)",
            baseline.row(),
            after.row(),
            if back { "back" } else { "**NOT back**" }
        ),
    );
    if let Some(kib) = rss_after {
        row(&mut rows, "server RSS once the clients went", mib(kib));
    }
    row(
        &mut rows,
        "broadcasts delivered",
        format!(
            "{delivered} of {expected} ({:.3} %; {seq} shouts to the clients live when sent)",
            delivered as f64 / expected.max(1) as f64 * 100.0
        ),
    );
    let latency = Recorder::merged(&shared.sustained_lat);
    row(
        &mut rows,
        "broadcast latency (send → each receive)",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latency.p50 as f64 / 1000.0,
            latency.p99 as f64 / 1000.0,
            latency.max as f64 / 1000.0
        ),
    );
    let mut table = String::from(
        "| t (s) | server RSS | live clients | connections | outboxes | subscriptions | tasks | presence entries |\n|---|---|---|---|---|---|---|---|\n",
    );
    for s in &samples {
        table += &format!(
            "| {:.0} | {} | {} | {} |\n",
            s.secs,
            mib(s.rss_kib),
            s.live,
            s.gauges.row()
        );
    }
    run.record_server_closes().await;
    let mut report = run.report.lock().unwrap();
    report.rooms.extend(rows);
    report.soak_table = Some(table);
    report.soak_failed = !back || growth.is_none_or(|g| g > MAX_RSS_GROWTH_PCT);
    Ok(())
}

/// A reading at `secs` into the churn.
async fn sample(run: &RunCtx<'_>, secs: f64) -> Result<Sample, String> {
    Ok(Sample {
        secs,
        rss_kib: run
            .procs
            .rss()
            .and_then(|r| r.first().copied())
            .unwrap_or(0),
        live: run.shared.live.load(Ordering::Acquire),
        gauges: scrape(run.clients.targets[0].addr).await?.gauges,
    })
}
