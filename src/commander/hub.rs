//! The hub: what every commander of an app shares (keys, config, presence, pub/sub), the one
//! check every patch passes, and the runtime-topic revocations.
//!
//! It must never hold a page's state (the page channel's socket does).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use super::{
    Count, Patch, PatchError,
    callbacks::DynCommander,
    revocations,
    token::{self, Keys},
};
use crate::{
    config::{CommanderConfig, IdSource},
    presence::Presence,
    pubsub::PubSub,
};

/// Claims inside a page token.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PageClaims {
    /// Commander.
    #[serde(rename = "c")]
    pub(crate) commander: String,
    /// Request path.
    #[serde(rename = "p")]
    pub(crate) path: String,
    /// Shared commanders the page may call.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) shared: Vec<String>,
    /// Assigns from the controller.
    #[serde(
        rename = "a",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub(crate) assigns: serde_json::Map<String, serde_json::Value>,
    /// This page load: a random number drawn when the page was rendered (never 0 in a token
    /// made by this version; 0 in older ones). Live tokens made for the page carry it, and a
    /// join accepts only those of its own load (see `live`); the server, not the client,
    /// tells a page's first join from a rejoin with it: `on_load` runs once per load on a
    /// node (see `page_channel`).
    #[serde(rename = "l", default)]
    pub(crate) load: u64,
}

impl PageClaims {
    /// A fresh page load's number: random, never 0.
    pub(crate) fn new_load() -> u64 {
        rand::random::<u64>().max(1)
    }
}

pub(crate) struct Hub {
    pub(crate) keys: Keys,
    /// `[commander]`.
    pub(crate) config: CommanderConfig,
    /// `[presence] id`: where page presence keys come from.
    pub(crate) presence_id: Vec<IdSource>,
    pub(crate) commanders: HashMap<&'static str, Arc<dyn DynCommander>>,
    pub(crate) presence: Option<Presence>,
    pub(crate) pubsub: Arc<dyn PubSub>,
    /// Last counts sent per counter topic, to send only changes.
    pub(crate) counters: Mutex<HashMap<String, Option<(usize, usize)>>>,
    /// Last markup sent per watched presence list topic (see `presence_list`).
    pub(crate) presence_lists: Mutex<HashMap<String, Option<serde_json::Value>>>,
    /// Runtime unsubscribes, shared by every node (see [`Hub::revoke`]).
    pub(crate) revocations: Arc<revocations::Revocations>,
    /// Presence lists refused for `[commander] max_presence_lists` (see `presence_list`).
    pub(crate) refused_lists: crate::drops::DropCounter,
    /// Development warnings already logged (see `dev_warnings`).
    pub(crate) dev_warned: super::dev_warnings::DevWarnings,
}

impl Hub {
    /// Logs once per process that `what` will never change because pages are not tracked
    /// (`[presence] enabled = false`): a count that stays 0 must not be silent.
    pub(crate) fn warn_if_untracked(&self, what: &str) {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if self.presence.is_none() && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "{what} was rendered, but pages are not tracked ([presence] enabled = false): \
                 it will never change; set presence.enabled = true"
            );
        }
    }

    /// Users or connections on `topic` (0 when presence is off).
    pub(crate) fn count(&self, topic: &str, count: Count) -> usize {
        self.presence.as_ref().map_or(0, |presence| match count {
            Count::Users => presence.count_users(topic),
            Count::Connections => presence.count_connections(topic),
        })
    }

    /// The one check every patch passes, wherever it is sent from (a page, a broadcast,
    /// [`Commanders`]): see [`Patch`].
    pub(crate) fn check(&self, patch: &Patch) -> Result<(), PatchError> {
        patch.check(self.config.exec_js)
    }

    /// Records that `browser` left `topic` now: topics tokens of that browser issued
    /// before now no longer bring the topic back (on every node).
    pub(crate) fn revoke(&self, browser: &str, topic: &str) {
        self.revocations.revoke(browser, topic);
    }

    /// Whether a topics token of `browser` issued at `issued_ms` may still name `topic`.
    pub(crate) fn may_rejoin(&self, browser: &str, topic: &str, issued_ms: u64) -> bool {
        !self.revocations.is_revoked(browser, topic, issued_ms)
    }

    /// The issue time for a new topics token of `browser` naming `topics`: now, or just
    /// after the latest time the browser left one of them (a page that leaves and rejoins a
    /// topic within a millisecond keeps it).
    pub(crate) fn topics_issue_ms(&self, browser: &str, topics: &[String]) -> u64 {
        topics
            .iter()
            .filter_map(|topic| self.revocations.left_at(browser, topic))
            .map(|at| at + 1)
            .fold(token::unix_now_ms(), u64::max)
    }
}
