//! Live counters: `<span>`s in a template that tether.js keeps current with the users or
//! connections on a topic, refreshed by one task at most every `counter_interval_ms` and only
//! when a count changed. No commander code is involved. The same task keeps live presence
//! lists current (`presence_list`), through the one refresh pass both use (`Hub::refresh`).
//!
//! It must never count anything itself (presence does).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use bytes::Bytes;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Html, hub::Hub};
use crate::transport::frame::encode_broadcast;

/// What a live counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Distinct presence keys.
    Users,
    /// Tracked pages.
    Connections,
}

impl Hub {
    /// The markup of a live counter of `count` on `topic` (see [`Commanders::counter`](super::Commanders::counter)).
    pub(crate) fn counter(&self, topic: &str, count: Count) -> Html {
        let kind = match count {
            Count::Users => "users",
            Count::Connections => "connections",
        };
        self.warn_if_untracked("a live counter");
        let now = self.count(topic, count);
        let n = match count {
            Count::Users => now.max(1),
            Count::Connections => now + 1,
        };
        Html::trusted(format!(
            r#"<span data-tether-count="{kind}" data-tether-topic="{}">{n}</span>"#,
            Html::escape(topic)
        ))
    }

    /// The live-counter task (see [`Commanders::start`](super::Commanders::start)): sends changed counts of every
    /// counter topic, and changed presence lists, to their pages, every interval, until
    /// `shutdown`.
    pub(crate) async fn refresh_counters(self: Arc<Hub>, shutdown: CancellationToken) {
        let period = Duration::from_millis(self.config.counter_interval_ms);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {
                    self.send_counts();
                    self.send_presence_lists();
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
        mut now: impl FnMut(&str) -> T,
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

/// [`watch`], unless `topic` is new and `watched` already holds `max` topics: `false` then.
pub(crate) fn watch_at_most<T>(
    watched: &Mutex<HashMap<String, Option<T>>>,
    topic: &str,
    max: usize,
) -> bool {
    let mut watched = watched.lock().unwrap_or_else(PoisonError::into_inner);
    if !watched.contains_key(topic) && watched.len() >= max {
        return false;
    }
    watched.entry(topic.to_string()).or_insert(None);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Endpoint, commander::Commanders, presence::OwnerId};

    /// The number a counter's first paint shows.
    fn shown(commanders: &Commanders, count: Count) -> String {
        let html = commanders.counter("t", count);
        let text = html.as_str();
        let start = text.find('>').unwrap() + 1;
        text[start..text.rfind('<').unwrap()].to_string()
    }

    #[test]
    fn the_first_paint_counts_the_page_being_served() {
        let endpoint = Endpoint::builder(Config::from_toml_str("").unwrap())
            .and_then(|builder| builder.build())
            .unwrap();
        let commanders = endpoint.commanders();
        // A lone reader: 1 and 1, never 0.
        assert_eq!(shown(commanders, Count::Users), "1");
        assert_eq!(shown(commanders, Count::Connections), "1");
        // Two tabs of one user are open: this page is a third connection; users stay 2 at
        // least once a second user is there.
        let presence = endpoint.presence();
        presence
            .track_owner("t", OwnerId(1), "ann", serde_json::json!({}))
            .unwrap();
        presence
            .track_owner("t", OwnerId(2), "ann", serde_json::json!({}))
            .unwrap();
        assert_eq!(shown(commanders, Count::Connections), "3");
        assert_eq!(shown(commanders, Count::Users), "1");
        presence
            .track_owner("t", OwnerId(3), "bob", serde_json::json!({}))
            .unwrap();
        assert_eq!(shown(commanders, Count::Users), "2");
    }
}
