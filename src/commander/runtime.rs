//! The page's task: runs a page's callbacks, handlers and messages one at a time, in the
//! order they arrived (as Drab does), off the connection's task — so the connection keeps
//! reading heartbeats, browser answers and further events while a handler runs or waits.
//!
//! Life of a page's task:
//! 1. spawned by the join (on the connection's thread: commander futures are not `Send`),
//!    with `Connect` as its first work (so `on_connect` pushes follow the join reply);
//! 2. takes work from the page's bounded queue until the page is gone, and gives the browser
//!    a fresh topics token every half `[commander] topics_token_max_age_s` (when it has one);
//! 3. then runs `on_disconnect` — after the handler that was running has finished (its
//!    round trips failed with `Disconnected` and its pushes with `Closed`, so it ends soon)
//!    — and ends. Work still queued is dropped.
//!
//! A panic in a callback or handler crashes the page's channel (the client gets
//! `phx_error` and rejoins), as a crash in the connection's task would.
//!
//! It must never parse client frames (the page channel does) nor decide what a page may
//! call.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Value, json, value::RawValue};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{
    Commanders, Disconnected, Info, Page, PageHandle, Sender, callbacks::DynCommander, held::Held,
    hub::Hub,
};
use crate::{
    channel::{BoxError, Reply, ReplyRef},
    drops::DropCounter,
    pubsub::{Subscriber, SubscriberId},
    text::panic_message,
};

/// One thing for a page's task to do.
pub(crate) enum Work {
    /// `on_connect` (and `on_load` on the first join of a page load) of the page's
    /// commander, then of its shared commanders.
    Connect { onload: bool },
    /// A DOM event for a declared handler of `commander`. The sender stays JSON text (about
    /// its frame's size, where decoded JSON is many times larger) until the handler runs,
    /// and its bytes count against the page's and the connection's budgets until then.
    Event {
        commander: Arc<dyn DynCommander>,
        handler: String,
        sender: Box<RawValue>,
        held: Held,
        reply: Option<ReplyRef>,
    },
    /// The browser's URL changed within the page (a `tether-patch` link or form, Back or
    /// Forward): the page commander's `handle_params` with the (checked) URL.
    Params {
        url: String,
        reply: Option<ReplyRef>,
    },
    /// A message for the page commander's `handle_info`.
    Info(Info),
    /// A broadcast frame carrying new assigns of a live region (a [`LiveUpdate`]), kept
    /// undecoded until the page reads its live regions (most pages never do).
    Live(Bytes),
}

/// What the page's task tells the page channel (through the connection's task).
pub(crate) enum PageCrash {
    /// A callback or handler panicked: end the join.
    Panicked(String),
}

/// Runs `page` until it is gone, then its `on_disconnect`s.
pub(crate) async fn run(mut page: Page, mut queue: mpsc::Receiver<Work>) {
    let shared = page.handle.0.clone();
    let Some(commander) = shared.hub.commanders.get(shared.commander).cloned() else {
        return;
    };
    // The first tick is at once: a token brought to the join is renewed right away.
    let half_age = shared.hub.config.topics_token_max_age_s.saturating_mul(500);
    let mut renew_topics = tokio::time::interval(Duration::from_millis(half_age.max(500)));
    renew_topics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let work = tokio::select! {
            biased;
            _ = shared.gone.cancelled() => break,
            work = queue.recv() => match work {
                Some(work) => work,
                None => break,
            },
            _ = renew_topics.tick() => {
                page.refresh_topics();
                continue;
            }
        };
        let doing = AssertUnwindSafe(async {
            perform(&*commander, &mut page, work).await;
            follow_patches(&*commander, &mut page).await;
        });
        if let Err(panic) = doing.catch_unwind().await {
            let reason = panic_message(&*panic);
            tracing::error!(commander = shared.commander, "page crashed: {reason}");
            if shared
                .socket
                .send_info(PageCrash::Panicked(reason))
                .is_err()
            {
                shared.close();
            }
            break;
        }
    }
    shared.gone.cancelled().await;
    drop(queue);
    let state = page.state;
    let gone = Disconnected {
        path: state.path,
        browser_id: state.browser_id,
        store: state.store,
        session: state.session,
        topics: state.topics,
    };
    let commanders = Commanders {
        hub: shared.hub.clone(),
    };
    for commander in std::iter::once(commander).chain(shared.shared_commanders()) {
        let ending = AssertUnwindSafe(commander.on_disconnect(&gone, &commanders));
        if let Err(panic) = ending.catch_unwind().await {
            tracing::error!(path = %gone.path, "on_disconnect failed: {}", panic_message(&*panic));
        }
    }
}

/// What the browser is told of a failure: its text with `[commander] debug_errors`, else
/// `generic` (the text is logged by the caller either way).
fn told(page: &Page, text: String, generic: &str) -> String {
    if page.handle.0.hub.config.debug_errors {
        text
    } else {
        generic.to_string()
    }
}

/// Tells the page a callback failed (and logs it).
fn report(page: &Page, callback: &str, err: BoxError) {
    tracing::warn!(commander = page.commander(), callback, "{err}");
    let reason = told(page, err.to_string(), "callback failed");
    let _ = page
        .handle
        .0
        .socket
        .push("error", &json!({ "callback": callback, "reason": reason }));
}

async fn perform(commander: &dyn DynCommander, page: &mut Page, work: Work) {
    match work {
        Work::Connect { onload } => {
            let shared = page.handle.0.shared_commanders();
            let all: Vec<&dyn DynCommander> = std::iter::once(commander)
                .chain(shared.iter().map(|c| &**c))
                .collect();
            for commander in &all {
                if let Err(err) = commander.on_connect(page).await {
                    report(page, "on_connect", err);
                }
            }
            if onload {
                for commander in &all {
                    if let Err(err) = commander.on_load(page).await {
                        report(page, "on_load", err);
                    }
                }
            }
            // The URL is the page's current one, whatever the callbacks above patched.
            page.patched = false;
            params(commander, page).await;
        }
        Work::Params { url, reply } => {
            page.state.url = url;
            page.patched = false;
            params(commander, page).await;
            // Its own patches (a URL tidied with `replace_patch`) before the reply.
            follow_patches(commander, page).await;
            if let Some(to) = reply {
                let _ = page.handle.0.socket.reply(&to, Reply::ok());
            }
        }
        Work::Event {
            commander: target,
            handler,
            sender,
            held,
            reply,
        } => {
            // Checked when it was queued; the decoded sender belongs to the handler now.
            let sender: Sender = serde_json::from_str(sender.get()).unwrap_or_default();
            drop(held);
            let timer = crate::metrics::metrics().handler_duration.start_timer();
            let span = super::spans::handler(page.commander(), &handler);
            let outcome = target
                .handle_event(&handler, page, sender)
                .instrument(span.span().clone())
                .await;
            timer.observe_duration();
            // The handler's patch navigations are followed before its reply: the reply comes
            // once the page shows the new URL's state.
            follow_patches(commander, page).await;
            span.end(match &outcome {
                None => "skipped",
                Some(Ok(_)) => "ok",
                Some(Err(_)) => "error",
            });
            let answer = match outcome {
                None => Reply::Ok(json!({"skipped": true})),
                Some(Ok(result)) => Reply::Ok(json!({ "result": result })),
                Some(Err(reason)) => {
                    tracing::warn!(commander = page.commander(), %handler, "handler failed: {reason}");
                    Reply::Error(json!({ "reason": told(page, reason, "handler failed") }))
                }
            };
            if let Some(to) = reply {
                let _ = page.handle.0.socket.reply(&to, answer);
            }
        }
        Work::Info(info) => {
            if let Err(err) = commander.handle_info(page, info).await {
                report(page, "handle_info", err);
            }
        }
        Work::Live(frame) => page.state.note_live(frame),
    }
}

/// Runs the page commander's `handle_params` with the page's URL, in a `tether.navigation`
/// span (kind `patch`; the span names the path only, never the query).
async fn params(commander: &dyn DynCommander, page: &mut Page) {
    let url = page.state.url.clone();
    let path = url.split('?').next().unwrap_or_default();
    let span = super::spans::navigation(page.commander(), "patch", path);
    let result = commander
        .handle_params(page, &url)
        .instrument(span.span().clone())
        .await;
    span.end(if result.is_ok() { "ok" } else { "error" });
    if let Err(err) = result {
        report(page, "handle_params", err);
    }
}

/// After a callback or handler that called `Page::push_patch`: `handle_params` with the new
/// URL, again while it patches, at most `MAX_CHAINED_PATCHES` times.
async fn follow_patches(commander: &dyn DynCommander, page: &mut Page) {
    for _ in 0..super::navigation::MAX_CHAINED_PATCHES {
        if !std::mem::take(&mut page.patched) {
            return;
        }
        params(commander, page).await;
    }
    if std::mem::take(&mut page.patched) {
        tracing::warn!(
            commander = page.commander(),
            url = %page.state.url,
            "handle_params patched the URL again and again: not run for the last patch"
        );
    }
}

/// What a page's server-side subscription to a topic carries: messages for its
/// `handle_info` ([`Commanders::send_info`]) or new assigns of live regions
/// (`Target::put_live`), each on its own pub/sub topic derived from the page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    Info,
    Live,
}

impl Feed {
    /// The pub/sub topic carrying this feed for `topic`.
    pub(crate) fn topic(self, topic: &str) -> String {
        match self {
            Feed::Info => format!("tether:info:{topic}"),
            Feed::Live => format!("tether:live:{topic}"),
        }
    }

    /// The work a broadcast frame of this feed asks of the page. A live frame is passed on
    /// as it is (a reference count, no decoding): one broadcast reaches thousands of pages.
    fn work(self, message: &Bytes) -> Option<Work> {
        match self {
            Feed::Info => {
                // A broadcast frame: [join_ref, ref, topic, event, payload].
                let (_, _, topic, event, payload) =
                    serde_json::from_slice::<(Value, Value, String, String, Value)>(message)
                        .ok()?;
                let topic = topic
                    .strip_prefix("tether:info:")
                    .unwrap_or(&topic)
                    .to_string();
                Some(Work::Info(Info::Broadcast {
                    topic,
                    event,
                    payload,
                }))
            }
            Feed::Live => Some(Work::Live(message.clone())),
        }
    }
}

/// New assigns of a live region, broadcast to every page of a topic.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct LiveUpdate {
    /// The commander whose region it is.
    #[serde(rename = "c")]
    pub(crate) commander: String,
    /// The region.
    #[serde(rename = "n")]
    pub(crate) name: String,
    /// The assigns.
    #[serde(rename = "a")]
    pub(crate) assigns: Value,
}

/// A page's server-side subscription to one feed of one topic: a pub/sub subscriber that
/// decodes each broadcast frame into work on the page's queue. Unsubscribes when dropped.
pub(crate) struct FeedSubscription {
    hub: Arc<Hub>,
    topic: String,
    id: SubscriberId,
}

struct FeedQueue {
    feed: Feed,
    queue: mpsc::Sender<Work>,
    drops: DropCounter,
}

impl Subscriber for FeedQueue {
    fn deliver(&self, message: &Bytes) {
        let Some(work) = self.feed.work(message) else {
            return;
        };
        if self.queue.try_send(work).is_err() {
            self.drops.count(|total| {
                tracing::warn!(total, feed = ?self.feed, "messages dropped: the page's queue is full");
            });
        }
    }
}

impl FeedSubscription {
    pub(crate) fn new(
        hub: &Arc<Hub>,
        feed: Feed,
        topic: &str,
        page: &PageHandle,
    ) -> FeedSubscription {
        let id = SubscriberId::next();
        let subscriber = FeedQueue {
            feed,
            queue: page.0.queue.clone(),
            drops: DropCounter::new(),
        };
        let topic = feed.topic(topic);
        hub.pubsub.subscribe(&topic, id, Arc::new(subscriber));
        FeedSubscription {
            hub: hub.clone(),
            topic,
            id,
        }
    }
}

impl Drop for FeedSubscription {
    fn drop(&mut self) {
        self.hub.pubsub.unsubscribe(&self.topic, self.id);
    }
}
