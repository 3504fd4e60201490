//! Delivery: the task that closes each topic's window when it is due (`coalesce_ms` after its
//! first change on a quiet topic, longer on a busy one: see `pacing`) and hands out what it
//! holds: one `presence_diff` (after `fetch`) to the topic's
//! subscribers, one `presence_state` to those still awaiting theirs, the changes after their
//! state to those that got it during the window, and the diff to `handle_metas`. It also
//! hands out the states due a base window after their listeners subscribed (see `shard`). While it runs (hooks may be slow), later changes keep merging into the
//! next window.
//!
//! A panicking hook is logged and the task carries on. It must never touch gossip.

use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use serde_json::{Value, json};

use super::{Presence, SHARDS, hooks::Presences, shard::TopicWork};
use bytes::Bytes;

use crate::transport::frame::{FRAME_TAIL, encode_broadcast, encode_head};

impl Presence {
    /// Delivery: closes each window when it is due and hands its diffs and states out,
    /// running the hooks. While it runs, later changes keep merging into
    /// the next window.
    pub(super) async fn run_delivery(self) {
        guarded("init", self.hooks().init()).await;
        loop {
            let next = self.flush().await;
            let wake = async {
                match next {
                    Some(due) => {
                        let at = self.inner.epoch + Duration::from_millis(due);
                        tokio::time::sleep_until(at).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => break,
                _ = self.inner.flush_wanted.notified() => {}
                _ = wake => {}
            }
        }
    }

    /// Ends every window that is due: one diff per changed topic to its subscribers, one
    /// state to each topic's new subscribers. Returns when the next open window ends.
    async fn flush(&self) -> Option<u64> {
        let now = self.now_ms();
        for index in 0..SHARDS {
            let work = self.shard_at(index).plan(now);
            for topic_work in work {
                self.deliver(topic_work).await;
            }
        }
        (0..SHARDS)
            .filter_map(|index| self.shard_at(index).next_due())
            .min()
    }

    async fn deliver(&self, work: TopicWork) {
        let hooks = self.hooks();
        let topic = &*work.topic;
        if !(work.diff.joins.is_empty() && work.diff.leaves.is_empty()) {
            if !work.old.is_empty() {
                let joins = self.fetch(topic, work.diff.joins.clone()).await;
                let leaves = self.fetch(topic, work.diff.leaves.clone()).await;
                let diff = json!({"joins": joins, "leaves": leaves});
                let frame = encode_broadcast(topic, "presence_diff", &diff);
                for outbox in &work.old {
                    // A refused push means that connection is closing; its task logs why.
                    let _ = outbox.push_frame(frame.clone());
                }
            }
            guarded(
                "handle_metas",
                hooks.handle_metas(topic, &work.diff, &work.current),
            )
            .await;
        }
        // Listeners that got their state during the window: the changes after it, encoded
        // once per place in the window.
        for (diff, outboxes) in work.partial {
            if diff.joins.is_empty() && diff.leaves.is_empty() {
                continue;
            }
            let joins = self.fetch(topic, diff.joins).await;
            let leaves = self.fetch(topic, diff.leaves).await;
            let frame = encode_broadcast(
                topic,
                "presence_diff",
                &json!({"joins": joins, "leaves": leaves}),
            );
            for outbox in &outboxes {
                let _ = outbox.push_frame(frame.clone());
            }
        }
        if let Some(state) = work.state {
            let fetched = self.fetch(topic, state).await;
            // Encoded once and shared: each joiner's frame is its own small head (with its
            // join ref), this body by reference, and the closing bracket. A window with
            // thousands of joiners queues one copy of the state, not one per joiner.
            let body = Bytes::from(serde_json::to_vec(&fetched).unwrap_or_else(|_| b"{}".to_vec()));
            let tail = Bytes::from_static(FRAME_TAIL);
            for (outbox, join_ref) in &work.new {
                let head = encode_head(Some(join_ref), None, topic, "presence_state");
                // Exempt from the byte limit: a room of any size stays joinable.
                let _ = outbox.push_exempt_spliced([head, body.clone(), tail.clone()]);
            }
        }
    }

    /// The `fetch` hook; if it panics, the presences as they are.
    pub(super) async fn fetch(&self, topic: &str, presences: Presences) -> Value {
        let fallback = presences.clone();
        guarded("fetch", self.hooks().fetch(topic, presences))
            .await
            .unwrap_or_else(|| fallback.into_json())
    }
}

/// Runs an application hook; a panic is logged and yields `None` instead of ending the task.
pub(super) async fn guarded<T>(name: &str, hook: impl Future<Output = T>) -> Option<T> {
    match AssertUnwindSafe(hook).catch_unwind().await {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!("presence hook `{name}` panicked");
            None
        }
    }
}
