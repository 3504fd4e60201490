//! Node reports: every node whose dashboard is on publishes its own figures (open
//! connections, frames per second in and out) once a second on the pub/sub topic [`TOPIC`],
//! and keeps the latest report of every other node, so that each dashboard shows
//! connections per node for the whole cluster (presence knows every node's entries, not its
//! connections).
//!
//! Reports travel like any broadcast: in process, or over the Redis bus, where every message
//! is authenticated. A report older than [`STALE`] is not shown.
//!
//! It must never hold more than [`MAX_NODES`] reports nor keep one it cannot read: a
//! report over [`MAX_REPORT_BYTES`] or not a report is dropped.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::pubsub::{PubSub, Subscriber, SubscriberId};

/// The pub/sub topic of node reports.
pub(crate) const TOPIC: &str = "tether:dashboard:reports";

/// A report older than this is not shown (its node stopped reporting).
pub(crate) const STALE: Duration = Duration::from_secs(10);

/// Most nodes whose reports are kept.
const MAX_NODES: usize = 256;

/// Largest report read.
const MAX_REPORT_BYTES: usize = 1024;

/// One node's figures, as of its last sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeReport {
    /// The node's name.
    pub(crate) node: String,
    /// Its open WebSocket connections.
    pub(crate) connections: i64,
    /// Frames per second it read over the last second.
    pub(crate) frames_in: f64,
    /// Frames per second it wrote over the last second.
    pub(crate) frames_out: f64,
}

/// The latest report of every other node; see the module docs.
pub(crate) struct Reports {
    id: SubscriberId,
    pubsub: Arc<dyn PubSub>,
    latest: Mutex<BTreeMap<String, (NodeReport, Instant)>>,
}

/// Receives other nodes' reports.
struct Inbox(Arc<Reports>);

impl Subscriber for Inbox {
    fn deliver(&self, message: &Bytes) {
        if message.len() > MAX_REPORT_BYTES {
            return;
        }
        let Ok(report) = serde_json::from_slice::<NodeReport>(message) else {
            return;
        };
        let mut latest = self.0.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        latest.retain(|_, (_, at)| now.duration_since(*at) < STALE);
        if latest.len() < MAX_NODES || latest.contains_key(&report.node) {
            latest.insert(report.node.clone(), (report, now));
        }
    }
}

impl Reports {
    /// Subscribes to other nodes' reports on `pubsub`.
    pub(crate) fn subscribe(pubsub: Arc<dyn PubSub>) -> Arc<Reports> {
        let reports = Arc::new(Reports {
            id: SubscriberId::next(),
            pubsub,
            latest: Mutex::new(BTreeMap::new()),
        });
        reports
            .pubsub
            .subscribe(TOPIC, reports.id, Arc::new(Inbox(reports.clone())));
        reports
    }

    /// Publishes this node's `report` to the other nodes.
    pub(crate) fn publish(&self, report: &NodeReport) {
        match serde_json::to_vec(report) {
            Ok(bytes) => self
                .pubsub
                .broadcast(TOPIC, Bytes::from(bytes), Some(self.id)),
            Err(err) => tracing::warn!("cannot encode a node report: {err}"),
        }
    }

    /// The other nodes' reports received within [`STALE`], by node name.
    pub(crate) fn current(&self) -> BTreeMap<String, NodeReport> {
        let now = Instant::now();
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        latest
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) < STALE)
            .map(|(node, (report, _))| (node.clone(), report.clone()))
            .collect()
    }

    /// Stops receiving reports.
    pub(crate) fn unsubscribe(&self) {
        self.pubsub.unsubscribe(TOPIC, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pubsub::LocalPubSub;

    fn report(node: &str, connections: i64) -> NodeReport {
        NodeReport {
            node: node.into(),
            connections,
            frames_in: 1.5,
            frames_out: 2.0,
        }
    }

    #[test]
    fn a_node_keeps_the_latest_report_of_the_others_but_not_its_own() {
        let pubsub: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let (a, b) = (
            Reports::subscribe(pubsub.clone()),
            Reports::subscribe(pubsub.clone()),
        );
        a.publish(&report("a", 3));
        b.publish(&report("b", 1));
        b.publish(&report("b", 2));
        assert_eq!(
            a.current().into_values().collect::<Vec<_>>(),
            [report("b", 2)]
        );
        assert_eq!(
            b.current().into_values().collect::<Vec<_>>(),
            [report("a", 3)]
        );
        a.unsubscribe();
        b.publish(&report("b", 5));
        assert_eq!(
            a.current()["b"],
            report("b", 2),
            "no more after unsubscribe"
        );
    }

    #[test]
    fn malformed_or_oversized_reports_are_dropped() {
        let pubsub: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let a = Reports::subscribe(pubsub.clone());
        pubsub.broadcast(TOPIC, Bytes::from_static(b"{\"node\":1}"), None);
        pubsub.broadcast(TOPIC, Bytes::from_static(b"not json"), None);
        let mut big = report("big", 1);
        big.node = "x".repeat(MAX_REPORT_BYTES);
        let bytes = serde_json::to_vec(&big).unwrap();
        pubsub.broadcast(TOPIC, Bytes::from(bytes), None);
        assert!(a.current().is_empty());
    }

    #[test]
    fn at_most_max_nodes_are_kept() {
        let pubsub: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
        let a = Reports::subscribe(pubsub.clone());
        for n in 0..MAX_NODES + 10 {
            pubsub.broadcast(
                TOPIC,
                Bytes::from(serde_json::to_vec(&report(&format!("n{n}"), 1)).unwrap()),
                None,
            );
        }
        assert_eq!(a.current().len(), MAX_NODES);
    }
}
