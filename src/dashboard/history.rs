//! The dashboard's figures: once a second the sampler reads the process's metrics and the
//! presence overview into a [`Snapshot`] (rates over the last second, outbox depth
//! percentiles, the nodes and topics, the other nodes' [`reports`](super::reports)),
//! publishes this node's own report, and keeps the last [`HISTORY`] seconds of throughput
//! for the chart. Every open dashboard page renders from the latest snapshot.
//!
//! Nodes that stop appearing in presence (a goodbye, or forgotten after the permdown
//! period) are remembered as down, so an operator sees a node go away instead of a row
//! vanishing; at most [`MAX_GONE_NODES`] are remembered.
//!
//! It only reads: it must never change presence or the metrics (except setting the
//! `tether_presence_entries` gauge, which is derived from presence).

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::reports::{NodeReport, Reports};
use crate::{
    metrics::{Metrics, buckets, metrics, quantile},
    presence::{NodeStatus, Presence, TopicCount},
};

/// How often the sampler runs.
pub(crate) const PERIOD: Duration = Duration::from_secs(1);

/// Seconds of throughput the chart shows.
pub(crate) const HISTORY: usize = 300;

/// Most nodes remembered after they left presence.
const MAX_GONE_NODES: usize = 64;

/// One second of throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    pub(crate) frames_in: f64,
    pub(crate) frames_out: f64,
    pub(crate) bytes_in: f64,
    pub(crate) bytes_out: f64,
    pub(crate) gossip_in: f64,
    pub(crate) gossip_out: f64,
    pub(crate) gossip_bytes_in: f64,
    pub(crate) gossip_bytes_out: f64,
}

/// What a dashboard page shows, as of one sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// Open WebSocket connections on this node.
    pub(crate) connections: i64,
    /// The last second.
    pub(crate) rates: Rates,
    /// Outbox depth (frames queued before a push) p50, p90, p99 over the last second.
    pub(crate) outbox_depth: [Option<f64>; 3],
    pub(crate) slow_consumer_closes: u64,
    pub(crate) write_timeouts: u64,
    pub(crate) gossip_transfers: u64,
    pub(crate) redis_reconnects: u64,
    pub(crate) round_trip_timeouts: u64,
    /// Frames in and out per second, oldest first (at most [`HISTORY`]).
    pub(crate) throughput: Vec<(f64, f64)>,
    pub(crate) nodes: Vec<NodeStatus>,
    /// The other nodes' latest reports (connections, frames), by node name.
    pub(crate) reports: BTreeMap<String, NodeReport>,
    pub(crate) topics: Vec<TopicCount>,
}

/// The counters a rate is taken from.
#[derive(Clone, Copy, Default)]
struct Totals {
    frames_in: u64,
    frames_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    gossip_in: u64,
    gossip_out: u64,
    gossip_bytes_in: u64,
    gossip_bytes_out: u64,
}

impl Totals {
    fn read(m: &Metrics) -> Totals {
        let gossip = |vec: &prometheus::IntCounterVec, direction| {
            vec.get_metric_with_label_values(&[direction])
                .map_or(0, |c| c.get())
        };
        Totals {
            frames_in: m.frames_in.get(),
            frames_out: m.frames_out.get(),
            bytes_in: m.bytes_in.get(),
            bytes_out: m.bytes_out.get(),
            gossip_in: gossip(&m.gossip_messages, "in"),
            gossip_out: gossip(&m.gossip_messages, "out"),
            gossip_bytes_in: gossip(&m.gossip_bytes, "in"),
            gossip_bytes_out: gossip(&m.gossip_bytes, "out"),
        }
    }

    fn rates_since(&self, before: &Totals, seconds: f64) -> Rates {
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        Rates {
            frames_in: rate(self.frames_in, before.frames_in),
            frames_out: rate(self.frames_out, before.frames_out),
            bytes_in: rate(self.bytes_in, before.bytes_in),
            bytes_out: rate(self.bytes_out, before.bytes_out),
            gossip_in: rate(self.gossip_in, before.gossip_in),
            gossip_out: rate(self.gossip_out, before.gossip_out),
            gossip_bytes_in: rate(self.gossip_bytes_in, before.gossip_bytes_in),
            gossip_bytes_out: rate(self.gossip_bytes_out, before.gossip_bytes_out),
        }
    }
}

/// The sampler's memory between samples.
struct Sampler {
    presence: Presence,
    reports: Arc<Reports>,
    at: Instant,
    totals: Totals,
    depth: Vec<(f64, u64)>,
    throughput: VecDeque<(f64, f64)>,
    /// Nodes seen, by name, with when they were last seen in presence.
    known: BTreeMap<String, (NodeStatus, Instant)>,
}

impl Sampler {
    fn new(presence: Presence) -> Sampler {
        let m = metrics();
        Sampler {
            reports: Reports::subscribe(presence.pubsub().clone()),
            presence,
            at: Instant::now(),
            totals: Totals::read(m),
            depth: buckets(&m.outbox_depth),
            throughput: VecDeque::with_capacity(HISTORY),
            known: BTreeMap::new(),
        }
    }

    fn sample(&mut self) -> Snapshot {
        let m = metrics();
        let now = Instant::now();
        let seconds = now.duration_since(self.at).as_secs_f64().max(0.001);
        let totals = Totals::read(m);
        let rates = totals.rates_since(&self.totals, seconds);
        let depth = buckets(&m.outbox_depth);
        let outbox_depth = [0.5, 0.9, 0.99].map(|q| quantile(&self.depth, &depth, q));
        (self.at, self.totals, self.depth) = (now, totals, depth);
        if self.throughput.len() == HISTORY {
            self.throughput.pop_front();
        }
        self.throughput
            .push_back((rates.frames_in, rates.frames_out));
        let nodes = self.nodes(now);
        let connections = m.connections.get();
        if let Some(local) = nodes.iter().find(|node| node.local) {
            self.reports.publish(&NodeReport {
                node: local.name.clone(),
                connections,
                frames_in: rates.frames_in,
                frames_out: rates.frames_out,
            });
        }
        Snapshot {
            connections,
            rates,
            outbox_depth,
            slow_consumer_closes: m.slow_consumer_closes.get(),
            write_timeouts: m.write_timeouts.get(),
            gossip_transfers: m.gossip_transfers.get(),
            redis_reconnects: m.redis_reconnects.get(),
            round_trip_timeouts: m.round_trip_timeouts.get(),
            throughput: self.throughput.iter().copied().collect(),
            nodes,
            reports: self.reports.current(),
            topics: self.presence.topics(),
        }
    }

    /// The nodes presence knows now, and those it knew that are gone (as down).
    fn nodes(&mut self, now: Instant) -> Vec<NodeStatus> {
        let current = self.presence.nodes();
        set_entries_gauge(&current);
        for node in &current {
            self.known.insert(node.name.clone(), (node.clone(), now));
        }
        let gone: Vec<String> = self
            .known
            .iter()
            .filter(|(_, (_, seen))| *seen < now)
            .map(|(name, _)| name.clone())
            .collect();
        if gone.len() > MAX_GONE_NODES {
            let mut by_age: Vec<(Instant, &String)> =
                gone.iter().map(|name| (self.known[name].1, name)).collect();
            by_age.sort();
            for (_, name) in by_age.iter().take(gone.len() - MAX_GONE_NODES) {
                self.known.remove(*name);
            }
        }
        let mut nodes = current;
        for (status, seen) in self.known.values() {
            if *seen < now {
                let silent = now.duration_since(*seen).as_millis() as u64;
                nodes.push(NodeStatus {
                    up: false,
                    silent_ms: status.silent_ms.saturating_add(silent),
                    entries: 0,
                    ..status.clone()
                });
            }
        }
        nodes
    }
}

/// Sets `tether_presence_entries{node}` from `nodes` (nodes no longer known disappear).
pub(crate) fn set_entries_gauge(nodes: &[NodeStatus]) {
    let gauge = &metrics().presence_entries;
    gauge.reset();
    for node in nodes {
        gauge
            .with_label_values(&[node.name.as_str()])
            .set(node.entries as i64);
    }
}

/// Samples every [`PERIOD`] into `latest` until `stop`.
pub(crate) async fn run(
    presence: Presence,
    latest: Arc<watch::Sender<Arc<Snapshot>>>,
    stop: CancellationToken,
) {
    let mut sampler = Sampler::new(presence);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                sampler.reports.unsubscribe();
                return;
            }
            _ = tick.tick() => {
                let snapshot = Arc::new(sampler.sample());
                latest.send_replace(snapshot);
            }
        }
    }
}
