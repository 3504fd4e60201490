//! Live counters: `<span>`s in a template that tether.js keeps current with the users or
//! connections on a topic, refreshed by one task at most every `counter_interval_ms` and only
//! when a count changed. No commander code is involved.
//!
//! It must never count anything itself (presence does).

use std::{sync::PoisonError, time::Duration};

use serde_json::json;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{Commanders, Count, Html, hub::Hub};
use crate::transport::frame::encode_broadcast;

impl Commanders {
    /// A live counter for a template: `<span data-tether-count=…>N</span>` showing the
    /// users (or connections) on `topic` now, kept current by tether.js without any
    /// commander code (refreshed at most every `[commander] counter_interval_ms`).
    /// The page must be on `topic` (one of its broadcasting topics).
    pub fn counter(&self, topic: &str, count: Count) -> Html {
        let kind = match count {
            Count::Users => "users",
            Count::Connections => "connections",
        };
        let n = self.hub.count(topic, count);
        Html::trusted(format!(
            r#"<span data-tether-count="{kind}" data-tether-topic="{}">{n}</span>"#,
            Html::escape(topic)
        ))
    }

    /// Spawns the live-counter task on `tasks` (when pages are tracked in presence); it runs
    /// until `shutdown`. Needs a tokio runtime; the endpoint calls it once.
    pub fn start(&self, tasks: &TaskTracker, shutdown: &CancellationToken) {
        if self.hub.presence.is_some() {
            tasks.spawn(self.clone().refresh_counters(shutdown.clone()));
        }
    }

    /// Sends changed counts of every counter topic, and changed presence lists, to their
    /// pages, every interval.
    async fn refresh_counters(self, shutdown: CancellationToken) {
        let period = Duration::from_millis(self.hub.config.counter_interval_ms);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {
                    self.hub.send_counts();
                    self.hub.send_presence_lists();
                }
            }
        }
    }
}

impl Hub {
    /// The counter topic of `topic`: pages showing its counts subscribe to it.
    pub(crate) fn counter_topic(topic: &str) -> String {
        format!("tether:count:{topic}")
    }

    /// Registers interest in `topic`'s counts (a page with a counter joined).
    pub(crate) fn watch_counter(&self, topic: &str) {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .entry(topic.to_string())
            .or_insert((usize::MAX, usize::MAX));
    }

    fn send_counts(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters.retain(|topic, last| {
            let counter_topic = Hub::counter_topic(topic);
            if self.pubsub.local_subscriber_count(&counter_topic) == 0 {
                return false; // nobody shows it any more
            }
            let now = (
                presence.count_users(topic),
                presence.count_connections(topic),
            );
            if now != *last {
                *last = now;
                let payload = json!({"topic": topic, "users": now.0, "connections": now.1});
                let frame = encode_broadcast(&counter_topic, "count", &payload);
                self.pubsub.local_broadcast(&counter_topic, frame, None);
            }
            true
        });
    }
}
