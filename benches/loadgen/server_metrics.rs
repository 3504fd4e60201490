//! What the loadgen reads from the servers it starts through their `/metrics` (Prometheus
//! text): the gauges that must come back to their baseline when clients go, and the
//! connections a server closed on its own (write timeouts, slow consumers), which a client
//! whose socket the server abandoned may never see.
//!
//! It only reads: it must never fail a run on a metric it does not know, and every read is
//! bounded by [`SCRAPE_WAIT`].

use std::{net::SocketAddr, time::Duration};

use crate::pages::http_get;

/// The `/metrics` bearer token the loadgen gives every server it starts
/// (`TETHER_METRICS_TOKEN`).
pub const METRICS_TOKEN: &str = "loadgen-metrics-token-0123456789";
/// The bound of one `/metrics` read.
const SCRAPE_WAIT: Duration = Duration::from_secs(10);

/// The gauges that must come back to their baseline once the clients go (the soak).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub connections: i64,
    pub outboxes: i64,
    pub subscriptions: i64,
    pub tasks: i64,
    pub presence_entries: i64,
}

impl Gauges {
    /// The five gauges, `a | b | c | d | e` (a Markdown table's cells).
    pub fn row(&self) -> String {
        format!(
            "{} | {} | {} | {} | {}",
            self.connections, self.outboxes, self.subscriptions, self.tasks, self.presence_entries
        )
    }
}

/// What the loadgen reads from a server's `/metrics`: its [`Gauges`] and the connections it
/// closed on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub gauges: Gauges,
    /// `tether_write_timeouts_total`: clients dropped because their output made no progress.
    pub write_timeouts: i64,
    /// `tether_slow_consumer_closes_total`: clients closed because their outbox overflowed.
    pub slow_consumer_closes: i64,
}

impl Figures {
    /// The figures in a Prometheus text exposition (unknown lines are skipped).
    pub fn parse(text: &str) -> Figures {
        let mut f = Figures::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let value = value as i64;
            let g = &mut f.gauges;
            match name.split('{').next().unwrap_or_default() {
                "tether_connections" => g.connections = value,
                "tether_outboxes" => g.outboxes = value,
                "tether_subscriptions" => g.subscriptions = value,
                "tether_tasks" => g.tasks = value,
                "tether_presence_entries" => g.presence_entries += value,
                "tether_write_timeouts_total" => f.write_timeouts = value,
                "tether_slow_consumer_closes_total" => f.slow_consumer_closes = value,
                _ => {}
            }
        }
        f
    }
}

/// The figures of the server at `addr`, from `GET /metrics` with the loadgen's bearer
/// token ([`METRICS_TOKEN`], given to every server the loadgen starts).
pub async fn scrape(addr: SocketAddr) -> Result<Figures, String> {
    let headers = format!("Authorization: Bearer {METRICS_TOKEN}\r\n");
    let text = tokio::time::timeout(SCRAPE_WAIT, http_get(addr, "/metrics", &headers))
        .await
        .map_err(|_| format!("GET /metrics: no response within {SCRAPE_WAIT:?}"))??;
    Ok(Figures::parse(&text))
}
