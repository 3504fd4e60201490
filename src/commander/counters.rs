//! Live counters: `<span>`s in a template that tether.js keeps current with the users or
//! connections on a topic, refreshed by one task at most every `counter_interval_ms` and only
//! when a count changed. No commander code is involved. The same task keeps live presence
//! lists current (`presence_list`), through the one refresh pass both use (`Hub::refresh`).
//!
//! It must never count anything itself (presence does).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
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
        self.hub.warn_if_untracked("a live counter");
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
        watch(&self.counters, topic);
    }

    fn send_counts(&self) {
        let Some(presence) = &self.presence else {
            return;
        };
        self.refresh(
            &self.counters,
            Hub::counter_topic,
            |topic| {
                (
                    presence.count_users(topic),
                    presence.count_connections(topic),
                )
            },
            |topic, channel, (users, connections)| {
                let payload = json!({"topic": topic, "users": users, "connections": connections});
                encode_broadcast(channel, "count", &payload)
            },
        );
    }

    /// The live-counter task's one pass over what pages on this node show of `watched`
    /// topics (counts, presence lists): per topic, reads the state now (`now`), and when it
    /// differs from the last one sent, sends `frame(topic, channel, state)` to the pages
    /// listening on `channel(topic)`; forgets topics no page shows any more. The first pass
    /// after a watch always sends (the last state starts as `None`).
    pub(crate) fn refresh<T: PartialEq>(
        &self,
        watched: &Mutex<HashMap<String, Option<T>>>,
        channel: fn(&str) -> String,
        now: impl Fn(&str) -> T,
        frame: impl Fn(&str, &str, &T) -> Bytes,
    ) {
        let mut watched = watched.lock().unwrap_or_else(PoisonError::into_inner);
        watched.retain(|topic, last| {
            let channel = channel(topic);
            if self.pubsub.local_subscriber_count(&channel) == 0 {
                return false; // nobody shows it any more
            }
            let now = now(topic);
            if last.as_ref() != Some(&now) {
                let frame = frame(topic, &channel, &now);
                self.pubsub.local_broadcast(&channel, frame, None);
                *last = Some(now);
            }
            true
        });
    }
}

/// Registers interest in `topic` in `watched` (a page showing it joined).
pub(crate) fn watch<T>(watched: &Mutex<HashMap<String, Option<T>>>, topic: &str) {
    let mut watched = watched.lock().unwrap_or_else(PoisonError::into_inner);
    watched.entry(topic.to_string()).or_insert(None);
}
