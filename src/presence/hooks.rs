//! What an application can plug into presence: `fetch` (shape what clients see) and
//! `init` / `handle_metas` (server-side code told about joins and leaves).

use std::{collections::BTreeMap, future::Future};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::tracker::Meta;

/// Presences of a topic (or one side of a diff): key → metas, in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presences(pub BTreeMap<String, Vec<Meta>>);

impl Presences {
    /// Distinct keys.
    pub fn count_keys(&self) -> usize {
        self.0.len()
    }

    /// Metas under all keys.
    pub fn count_metas(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    /// Metas under `key`.
    pub fn metas(&self, key: &str) -> &[Meta] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// Whether there is nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The Phoenix wire shape: `{"key": {"metas": [...]}}`.
    pub fn into_json(self) -> Value {
        let mut out = Map::with_capacity(self.0.len());
        for (key, metas) in self.0 {
            out.insert(key, json!({ "metas": metas }));
        }
        Value::Object(out)
    }
}

/// One flushed change of a topic, before `fetch`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PresenceDiff {
    /// Metas that joined.
    pub joins: Presences,
    /// Metas that left.
    pub leaves: Presences,
}

/// Application hooks. Every method has a default; implement the ones you need.
///
/// `fetch` runs once per `list` and, per flushed diff, once for its joins and once for its
/// leaves — never once per subscriber. Hooks run in presence's delivery task, apart from
/// gossip: a slow hook delays later diffs (changes keep merging, in order, until it is
/// done) but never a heartbeat, so peers never see this node as down because of it. A hook
/// that panics is logged; `fetch` then falls back to the presences as they are.
///
/// ```
/// use serde_json::{Value, json};
/// use tether::presence::{PresenceHooks, Presences};
///
/// /// Clients only ever see how many metas there are.
/// struct CountsOnly;
///
/// impl PresenceHooks for CountsOnly {
///     async fn fetch(&self, _topic: &str, presences: Presences) -> Value {
///         json!({ "count": presences.count_metas() })
///     }
/// }
/// ```
pub trait PresenceHooks: Send + Sync + 'static {
    /// Turns presences into what clients receive, for a list or for one side of a diff.
    /// The default sends them as they are (`{"key": {"metas": [...]}}`).
    fn fetch(&self, topic: &str, presences: Presences) -> impl Future<Output = Value> + Send {
        let _ = topic;
        async move { presences.into_json() }
    }

    /// Runs once, in the delivery task, before any other hook.
    fn init(&self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Told of every flushed diff, with the current metas of the keys it touches.
    fn handle_metas(
        &self,
        topic: &str,
        diff: &PresenceDiff,
        current: &Presences,
    ) -> impl Future<Output = ()> + Send {
        let _ = (topic, diff, current);
        async {}
    }
}

/// The default hooks: clients see presences as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultHooks;

impl PresenceHooks for DefaultHooks {}

/// Object-safe form of [`PresenceHooks`].
pub(crate) trait DynHooks: Send + Sync {
    fn fetch<'a>(&'a self, topic: &'a str, presences: Presences) -> BoxFuture<'a, Value>;
    fn init(&self) -> BoxFuture<'_, ()>;
    fn handle_metas<'a>(
        &'a self,
        topic: &'a str,
        diff: &'a PresenceDiff,
        current: &'a Presences,
    ) -> BoxFuture<'a, ()>;
}

impl<H: PresenceHooks> DynHooks for H {
    fn fetch<'a>(&'a self, topic: &'a str, presences: Presences) -> BoxFuture<'a, Value> {
        Box::pin(PresenceHooks::fetch(self, topic, presences))
    }

    fn init(&self) -> BoxFuture<'_, ()> {
        Box::pin(PresenceHooks::init(self))
    }

    fn handle_metas<'a>(
        &'a self,
        topic: &'a str,
        diff: &'a PresenceDiff,
        current: &'a Presences,
    ) -> BoxFuture<'a, ()> {
        Box::pin(PresenceHooks::handle_metas(self, topic, diff, current))
    }
}
