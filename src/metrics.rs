//! The process's operational figures, kept by every layer and read by `/metrics` (Prometheus
//! text format, through the `prometheus` crate) and by the live dashboard.
//!
//! One [`Metrics`] per process ([`metrics()`]), as a Prometheus client library keeps one
//! registry: what is counted is this process's work, whatever endpoints it runs.
//!
//! | name | type | what |
//! |---|---|---|
//! | `tether_connections` | gauge | open WebSocket connections |
//! | `tether_connections_opened_total` | counter | WebSocket connections accepted |
//! | `tether_joins_total` | counter | channel joins accepted |
//! | `tether_frames_in_total` / `tether_bytes_in_total` | counter | text frames (and their payload bytes) read from clients |
//! | `tether_frames_out_total` / `tether_bytes_out_total` | counter | text frames (and their payload bytes) handed to client sockets |
//! | `tether_slow_consumer_closes_total` | counter | connections closed because their outbound queue overflowed |
//! | `tether_write_timeouts_total` | counter | connections closed because their client stopped reading |
//! | `tether_rate_limited_total` | counter | client frames refused by a connection's rate limits |
//! | `tether_rate_limit_closes_total` | counter | connections closed for pushing past their rate limits |
//! | `tether_outbox_depth_frames` | histogram | frames already queued on a connection when another is queued |
//! | `tether_outboxes` | gauge | connection outboxes alive (one per open connection, until its last sender is gone) |
//! | `tether_subscriptions` | gauge | subscriptions held on this process's pub/sub bus (topic × subscriber) |
//! | `tether_tasks` | gauge | per-client tasks running: connection tasks and commander page tasks |
//! | `tether_presence_entries{node}` | gauge | presence entries this node sees, by the node that tracks them (set when scraped) |
//! | `tether_gossip_messages_total{direction}` | counter | presence gossip messages sent (`out`) and received (`in`) |
//! | `tether_gossip_bytes_total{direction}` | counter | their bytes |
//! | `tether_gossip_transfers_total` | counter | full-state transfers sent to peers that asked |
//! | `tether_redis_reconnects_total` | counter | Redis connections re-established after a loss |
//! | `tether_handler_duration_seconds` | histogram | commander handler run time |
//! | `tether_round_trip_timeouts_total` | counter | browser round trips that timed out |
//!
//! Topic names are never labels (their number is unbounded); node names are (a cluster has a
//! handful).
//!
//! This module only counts: it must never decide anything, block, or allocate per event.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Every figure tether keeps; see the module docs for names and meanings.
#[derive(Debug)]
#[non_exhaustive]
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: IntGauge,
    /// WebSocket connections accepted.
    pub connections_opened: IntCounter,
    /// Channel joins accepted.
    pub joins: IntCounter,
    /// Text frames read from clients.
    pub frames_in: IntCounter,
    /// Their payload bytes.
    pub bytes_in: IntCounter,
    /// Text frames handed to client sockets.
    pub frames_out: IntCounter,
    /// Their payload bytes.
    pub bytes_out: IntCounter,
    /// Connections closed as slow consumers (outbound queue overflow).
    pub slow_consumer_closes: IntCounter,
    /// Connections closed because the client stopped reading (write timeout).
    pub write_timeouts: IntCounter,
    /// Client frames refused by a connection's rate limits.
    pub rate_limited: IntCounter,
    /// Connections closed for pushing past their rate limits.
    pub rate_limit_closes: IntCounter,
    /// Frames already queued on a connection when another is queued.
    pub outbox_depth: Histogram,
    /// Connection outboxes alive.
    pub outboxes: IntGauge,
    /// Subscriptions held on the in-process bus.
    pub subscriptions: IntGauge,
    /// Per-client tasks running (connections and commander pages).
    pub tasks: IntGauge,
    /// Presence entries seen here, by tracking node.
    pub presence_entries: IntGaugeVec,
    /// Gossip messages by direction (`in`, `out`).
    pub gossip_messages: IntCounterVec,
    /// Gossip bytes by direction (`in`, `out`).
    pub gossip_bytes: IntCounterVec,
    /// Full-state transfers sent.
    pub gossip_transfers: IntCounter,
    /// Redis connections re-established.
    pub redis_reconnects: IntCounter,
    /// Commander handler run time, in seconds.
    pub handler_duration: Histogram,
    /// Browser round trips that timed out.
    pub round_trip_timeouts: IntCounter,
}

/// The process's metrics.
///
/// ```
/// let before = tether::metrics::metrics().joins.get();
/// tether::metrics::metrics().joins.inc();
/// assert!(tether::metrics::metrics().joins.get() > before);
/// assert!(tether::metrics::metrics().render().contains("tether_joins_total"));
/// ```
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Buckets of the outbox depth histogram, in frames.
const DEPTH_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
];

/// Buckets of the handler duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let metric = IntCounter::new(name, help).expect("valid metric name");
            register(&registry, metric)
        };
        let by = |name: &str, help: &str, label: &str| {
            let metric = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid name");
            register(&registry, metric)
        };
        let gauge = |name: &str, help: &str| {
            let metric = IntGauge::new(name, help).expect("valid metric name");
            register(&registry, metric)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(
                &registry,
                Histogram::with_opts(opts).expect("valid buckets"),
            )
        };
        Metrics {
            connections: gauge("tether_connections", "Open WebSocket connections."),
            connections_opened: counter(
                "tether_connections_opened_total",
                "WebSocket connections accepted.",
            ),
            joins: counter("tether_joins_total", "Channel joins accepted."),
            frames_in: counter("tether_frames_in_total", "Text frames read from clients."),
            bytes_in: counter(
                "tether_bytes_in_total",
                "Payload bytes of text frames read from clients.",
            ),
            frames_out: counter(
                "tether_frames_out_total",
                "Text frames handed to client sockets.",
            ),
            bytes_out: counter(
                "tether_bytes_out_total",
                "Payload bytes of text frames handed to client sockets.",
            ),
            slow_consumer_closes: counter(
                "tether_slow_consumer_closes_total",
                "Connections closed because their outbound queue overflowed.",
            ),
            write_timeouts: counter(
                "tether_write_timeouts_total",
                "Connections closed because their client stopped reading.",
            ),
            rate_limited: counter(
                "tether_rate_limited_total",
                "Client frames refused by a connection's rate limits.",
            ),
            rate_limit_closes: counter(
                "tether_rate_limit_closes_total",
                "Connections closed for pushing past their rate limits.",
            ),
            outbox_depth: histogram(
                "tether_outbox_depth_frames",
                "Frames already queued on a connection when another is queued.",
                DEPTH_BUCKETS,
            ),
            outboxes: gauge("tether_outboxes", "Connection outboxes alive."),
            subscriptions: gauge(
                "tether_subscriptions",
                "Subscriptions held on the in-process pub/sub bus.",
            ),
            tasks: gauge(
                "tether_tasks",
                "Per-client tasks running (connections and commander pages).",
            ),
            presence_entries: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new(
                        "tether_presence_entries",
                        "Presence entries this node sees, by the node that tracks them.",
                    ),
                    &["node"],
                )
                .expect("valid metric name"),
            ),
            gossip_messages: by(
                "tether_gossip_messages_total",
                "Presence gossip messages, by direction (in, out).",
                "direction",
            ),
            gossip_bytes: by(
                "tether_gossip_bytes_total",
                "Presence gossip bytes, by direction (in, out).",
                "direction",
            ),
            gossip_transfers: counter(
                "tether_gossip_transfers_total",
                "Full presence state transfers sent to peers that asked.",
            ),
            redis_reconnects: counter(
                "tether_redis_reconnects_total",
                "Redis connections re-established after a loss.",
            ),
            handler_duration: histogram(
                "tether_handler_duration_seconds",
                "Commander handler run time.",
                DURATION_BUCKETS,
            ),
            round_trip_timeouts: counter(
                "tether_round_trip_timeouts_total",
                "Browser round trips that timed out.",
            ),
            registry,
        }
    }

    /// Counts one gossip message of `bytes` in `direction` (`"in"` or `"out"`).
    pub(crate) fn gossip(&self, direction: &str, bytes: usize) {
        self.gossip_messages.with_label_values(&[direction]).inc();
        self.gossip_bytes
            .with_label_values(&[direction])
            .inc_by(bytes as u64);
    }

    /// Everything, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!("cannot encode metrics: {err}");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Observations of [`Metrics::outbox_depth`] kept per thread before they are added to the
/// shared histogram (its atomics are paid once per batch, not once per queued frame).
const DEPTH_LOCAL_BATCH: u64 = 64;

thread_local! {
    static DEPTH_LOCAL: std::cell::RefCell<Option<prometheus::local::LocalHistogram>> =
        const { std::cell::RefCell::new(None) };
}

/// Observes one outbox depth (frames already queued when another is queued). Kept in this
/// thread's batch until [`DEPTH_LOCAL_BATCH`] observations or [`flush_thread_local`].
pub(crate) fn observe_outbox_depth(depth: usize) {
    DEPTH_LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let local = local.get_or_insert_with(|| metrics().outbox_depth.local());
        local.observe(depth as f64);
        if local.get_sample_count() >= DEPTH_LOCAL_BATCH {
            local.flush();
        }
    });
}

/// Adds this thread's pending observations to the shared metrics (a publishing connection's
/// poll ends with it, see `transport::wakes`).
pub(crate) fn flush_thread_local() {
    DEPTH_LOCAL.with(|local| {
        if let Some(local) = local.borrow().as_ref() {
            local.flush();
        }
    });
}

/// Holds one unit of a gauge for as long as it lives: the gauge goes up when it is made and
/// back down when it is dropped, so a count of live things cannot drift on an early return.
#[derive(Debug)]
pub(crate) struct Held(&'static IntGauge);

impl Held {
    /// Raises `gauge` by one until the returned value is dropped.
    pub(crate) fn new(gauge: &'static IntGauge) -> Held {
        gauge.inc();
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pin_project_lite::pin_project! {
    /// A task counted in [`Metrics::tasks`] while it lives ([`counted_task`]). A struct, not
    /// an `async` block: awaiting a captured future stores it a second time.
    pub(crate) struct Counted<F> {
        #[pin]
        task: F,
        held: Held,
    }
}

/// `task`, counted in [`Metrics::tasks`] from now until it completes or is dropped.
pub(crate) fn counted_task<F: std::future::Future>(task: F) -> Counted<F> {
    Counted {
        task,
        held: Held::new(&metrics().tasks),
    }
}

impl<F: std::future::Future> std::future::Future for Counted<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.project().task.poll(cx)
    }
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(err) = registry.register(Box::new(metric.clone())) {
        tracing::error!("cannot register a metric: {err}");
    }
    metric
}

/// A histogram's `q` quantile (0..=1) over the observations between two snapshots of its
/// cumulative bucket counts (`(upper bound, count)`, as [`Histogram::get_sample_count`]
/// and the buckets of its proto give): the upper bound of the bucket it falls in, `None`
/// without observations.
///
/// ```
/// use tether::metrics::quantile;
/// let before = [(1.0, 0), (10.0, 0), (f64::INFINITY, 0)];
/// let after = [(1.0, 90), (10.0, 99), (f64::INFINITY, 100)];
/// assert_eq!(quantile(&before, &after, 0.5), Some(1.0));
/// assert_eq!(quantile(&before, &after, 0.99), Some(10.0));
/// assert_eq!(quantile(&after, &after, 0.5), None);
/// ```
pub fn quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|((bound, now), (_, then))| (*bound, now.saturating_sub(*then)))
        .collect();
    let total = counts.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    counts
        .iter()
        .find(|(_, cumulative)| *cumulative >= rank)
        .map(|(bound, _)| *bound)
}

/// A histogram's cumulative bucket counts, ending with `+Inf` and the total (for
/// [`quantile`]).
pub fn buckets(histogram: &Histogram) -> Vec<(f64, u64)> {
    use prometheus::core::Collector;
    let mut out = Vec::new();
    for family in histogram.collect() {
        for metric in family.get_metric() {
            let proto = metric.get_histogram();
            for bucket in proto.get_bucket() {
                out.push((bucket.upper_bound(), bucket.cumulative_count()));
            }
            out.push((f64::INFINITY, proto.get_sample_count()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Held, metrics};

    #[test]
    fn a_held_unit_is_given_back_when_dropped() {
        let gauge = &metrics().outboxes;
        let before = gauge.get();
        let held = Held::new(gauge);
        assert_eq!(gauge.get(), before + 1);
        drop(held);
        assert_eq!(gauge.get(), before);
    }

    #[test]
    fn a_counted_task_is_not_stored_twice() {
        let payload = [0u8; 4096];
        let task = async move {
            std::future::pending::<()>().await;
            std::hint::black_box(&payload);
        };
        let alone = std::mem::size_of_val(&task);
        let counted = super::counted_task(task);
        let wrapped = std::mem::size_of_val(&counted);
        assert!(wrapped < alone + 64, "{alone} bytes became {wrapped}");
        assert!(super::metrics().tasks.get() >= 1, "counted while it lives");
    }
}
