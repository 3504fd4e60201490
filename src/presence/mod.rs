//! Presence: who is on each topic, on this node and — through pub/sub — on every node.
//!
//! The API is Phoenix's: [`Presence::track`], [`untrack`](Presence::untrack),
//! [`update`](Presence::update), [`list`](Presence::list) (typed; [`list_for_clients`](Presence::list_for_clients) after `fetch`),
//! [`get_by_key`](Presence::get_by_key), plus [`count_users`](Presence::count_users)
//! (distinct keys) and [`count_connections`](Presence::count_connections) (metas), and the
//! `fetch` / `handle_metas` hooks of [`PresenceHooks`].
//!
//! # How changes reach clients
//!
//! A socket that calls [`Presence::subscribe`] receives `presence_state` and then
//! `presence_diff` events on its topic, in exactly the shape the phoenix.js `Presence`
//! client consumes. Changes are **coalesced per topic** over a window of `presence.coalesce_ms`
//! (default 50 ms) on a quiet topic, growing on a busy one (see `pacing`): at the end of each
//! window, one `presence_diff` (a join and a leave of
//! the same `phx_ref` inside one window cancel out) is encoded once and delivered to every
//! subscriber that already had its state. A socket that subscribed during the window
//! receives, instead, one `presence_state` taken right after the window's changes — so it
//! never sees its own join (or anyone's) twice, which matters for clients that only sum
//! counts. A join storm of N clients therefore costs one diff per window per subscriber,
//! not N² (and, with growing windows, a number of windows that grows with the logarithm of
//! the storm's length), and one `presence_state` encoding per window, not per joiner.
//!
//! # Replication
//!
//! State lives in [`tracker::Tracker`] shards (by topic hash; the same on every node),
//! each a replica with per-node ownership (see the tracker's docs). A background task sends
//! each shard's heartbeat every `presence.broadcast_period_ms` through the [`PubSub`] on the
//! topic `tether:presence:<shard>`, applies peers' gossip, hides peers silent for
//! `down_period_ms` and forgets them after `permdown_period_ms`. [`Presence::shutdown`]
//! tells peers to drop this node's entries at once.
//!
//! Two background tasks share the work: one for gossip (heartbeats, peers' messages, the
//! down rules) and one for delivery (closing windows, running the `fetch` and
//! `handle_metas` hooks, pushing frames). A slow or panicking hook therefore never delays
//! a heartbeat, so it never makes this node look down to its peers; windows simply keep
//! merging until delivery catches up.
//!
//! # Bounds
//!
//! - A meta is at most `presence.max_meta_bytes` (4 KiB) encoded; a larger `track` or
//!   `update` fails with [`TrackError::MetaTooLarge`] and nothing is stored or gossiped.
//! - A join updates its meta at most `presence.max_updates_per_s` (10) times a second per
//!   shard, in bursts of up to twice that; more fail with [`TrackError::RateLimited`] and
//!   change nothing (a channel answers the client with an error reply).
//! - Heartbeats are coalesced per `phx_ref` within a broadcast period and split at
//!   `presence.max_heartbeat_bytes` (64 KiB); gossip from an older incarnation of a node
//!   (late or replayed) is refused (see the tracker's docs).
//! - The leave grace is bounded: none for joins younger than `presence.grace_min_age_ms`
//!   (5 s), at most `presence.max_grace_per_topic` (1,000) and `presence.max_grace_per_key`
//!   (8) held entries per topic and key on a node (see `grace`).
//! - A `presence_state` is exempt from the subscriber's outbound byte limit (see
//!   the outbox's `push_exempt_spliced`): a room of
//!   any size stays joinable; there is at most one per subscription.
//! - Presences are owned by a join ([`Socket::join_id`]), not by a connection: ending one
//!   join never untracks or unsubscribes another join of the same connection, and a leave
//!   costs what that join tracked, not what the shard holds.
//!
//! This module must never know about commanders; it knows channels only to track a
//! channel's socket and to untrack it when the join ends.

mod budget;
mod delivery;
mod entry;
mod gossip;
mod grace;
pub mod hooks;
mod metas;
mod overview;
mod pacing;
mod replication;
mod shard;
pub mod tracker;
mod waiting;
mod window;

use std::{
    collections::HashMap,
    hash::Hasher,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::time::Instant;

use indexmap::IndexSet;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use hooks::{DefaultHooks, PresenceDiff, PresenceHooks, Presences};
pub use overview::{NodeStatus, TopicCount};
pub use tracker::{Meta, TrackError};

use crate::{
    channel::Socket,
    config::PresenceConfig,
    drops::DropCounter,
    pubsub::{PubSub, SubscriberId},
};
use hooks::DynHooks;
use replication::{GossipInbox, gossip_topic, incarnation};
use shard::{Listener, Shard};
use tracker::{Change, ReplicaId, Tracker};

/// Number of tracker shards; must be the same on every node of a cluster.
pub const SHARDS: usize = 8;

/// Gossip messages waiting for the presence task, at most.
const GOSSIP_QUEUE: usize = 4096;

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    pubsub: Arc<dyn PubSub>,
    hooks: RwLock<Arc<dyn DynHooks>>,
    config: PresenceConfig,
    flush_wanted: Notify,
    started: AtomicBool,
    shutdown: CancellationToken,
    id: SubscriberId,
    epoch: Instant,
    dropped_gossip: DropCounter,
}

/// A presence tracker for every topic of an endpoint. Cheap to clone.
///
/// ```no_run
/// # use serde_json::{Value, json};
/// # use tether::channel::{Channel, JoinResult, Socket};
/// use tether::presence::Presence;
///
/// struct Room { presence: Presence }
///
/// impl Channel for Room {
///     type Info = ();
///     async fn join(&self, _topic: &str, _payload: Value, socket: &mut Socket) -> JoinResult {
///         let user = socket.assigns().get_str("user_id").unwrap_or("anon").to_string();
///         self.presence.track(socket, &user, json!({"online_at": "0"}))?; // refused if it fails
///         self.presence.subscribe(socket); // presence_state, then presence_diff
///         Ok(json!({}))
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Who tracks a presence on this node: a channel's join ([`OwnerId::of`]), or anything an
/// app tracks for itself (a task, a job), named by a number of its choosing. Its meaning is
/// local to this node; it never leaves it.
///
/// ```
/// use tether::presence::OwnerId;
/// assert_ne!(OwnerId(1), OwnerId(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(pub u64);

impl OwnerId {
    /// The owner of the presences a channel's join tracks ([`Socket::join_id`]).
    pub fn of(socket: &Socket) -> OwnerId {
        OwnerId(socket.join_id().get())
    }
}

/// A join that could not be tracked is refused with `{"reason": "<why>"}`.
impl From<TrackError> for crate::channel::JoinError {
    fn from(err: TrackError) -> crate::channel::JoinError {
        crate::channel::JoinError::reason(&err.to_string())
    }
}

/// Untracks a join's presences and ends its subscription when the join ends.
struct JoinGuard {
    presence: Presence,
    /// The client left the channel: untrack at once (no leave grace).
    left: Arc<AtomicBool>,
    topic: Arc<str>,
    owner: SubscriberId,
}

impl Drop for JoinGuard {
    fn drop(&mut self) {
        let presence = &self.presence;
        // A client that left is gone at once; a lost connection waits out the leave grace
        // (none for entries tracked moments ago, see `grace`).
        let grace = if self.left.load(Ordering::Acquire) {
            0
        } else {
            presence.grace_ms()
        };
        presence.release_owner(&self.topic, OwnerId(self.owner.get()), None, grace);
        let mut shard = presence.shard(&self.topic);
        if let Some(listeners) = shard.listeners.get_mut(&self.topic) {
            listeners.swap_remove(&self.owner);
            if listeners.is_empty() {
                shard.listeners.remove(&self.topic);
            }
        }
    }
}

/// The shard of `topic`: FNV-1a of its bytes, a fixed hash (unlike std's `Hash` stream, which
/// is not promised stable across Rust versions), so every node agrees.
fn shard_of(topic: &str) -> usize {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(topic.as_bytes());
    (hasher.finish() % SHARDS as u64) as usize
}

impl Presence {
    /// Presence for node `node` timed and bounded by `config` (`[presence]`), with the
    /// default hooks. Spawns nothing: call [`Presence::start`].
    ///
    /// **The low-level layer.** An app does not call this, [`Presence::start`] or
    /// [`Presence::shutdown`]: `Endpoint::builder` creates the endpoint's one presence on the
    /// endpoint's pub/sub, hands it out (`EndpointBuilder::presence`, for channels that
    /// track), starts it and says goodbye at shutdown. This constructor is for a presence
    /// without an endpoint — a simulated cluster of nodes sharing one in-process pub/sub (as
    /// `tests/presence.rs` does), or a tool — as in this example:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use tether::{config::PresenceConfig, presence::{OwnerId, Presence}, pubsub::LocalPubSub};
    /// let config = PresenceConfig::default();
    /// let presence = Presence::new("node-a", &config, Arc::new(LocalPubSub::new()));
    /// presence.start(&tokio_util::task::TaskTracker::new());
    /// presence.track_owner("room:lobby", OwnerId(1), "alice", serde_json::json!({})).unwrap();
    /// assert_eq!(presence.count_users("room:lobby"), 1);
    /// # }
    /// ```
    pub fn new(node: &str, config: &PresenceConfig, pubsub: Arc<dyn PubSub>) -> Presence {
        let incarnation = incarnation();
        let shards = (0..SHARDS)
            .map(|index| {
                Mutex::new(Shard {
                    tracker: Tracker::new(
                        ReplicaId {
                            name: format!("{node}#{index}"),
                            incarnation,
                        },
                        config,
                    ),
                    windows: HashMap::new(),
                    listeners: HashMap::new(),
                    dirty: IndexSet::new(),
                    states_due: Default::default(),
                    graces: Default::default(),
                    pacer: pacing::Pacer::new(config.coalesce_ms)
                        .with_max_volume(config.max_window_metas),
                    budgets: Default::default(),
                    young: Default::default(),
                })
            })
            .collect();
        Presence {
            inner: Arc::new(Inner {
                shards,
                pubsub,
                hooks: RwLock::new(Arc::new(DefaultHooks)),
                config: config.clone(),
                flush_wanted: Notify::new(),
                started: AtomicBool::new(false),
                shutdown: CancellationToken::new(),
                id: SubscriberId::next(),
                epoch: Instant::now(),
                dropped_gossip: DropCounter::new(),
            }),
        }
    }

    /// The pub/sub this presence gossips and delivers through.
    pub(crate) fn pubsub(&self) -> &Arc<dyn PubSub> {
        &self.inner.pubsub
    }

    /// Replaces the hooks (before [`Presence::start`]; later only `list` and `get_by_key`
    /// would see the change).
    pub fn set_hooks(&self, hooks: impl PresenceHooks) {
        *self
            .inner
            .hooks
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(hooks);
    }

    fn hooks(&self) -> Arc<dyn DynHooks> {
        self.inner
            .hooks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Subscribes to gossip and spawns the gossip and delivery tasks on `tasks` (once; later
    /// calls do nothing). They run until [`Presence::shutdown`]. Needs a tokio runtime. The
    /// endpoint calls it for its presence; see [`Presence::new`] for when to call it yourself.
    pub fn start(&self, tasks: &TaskTracker) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let (queue, inbox) = mpsc::channel(GOSSIP_QUEUE);
        for shard in 0..SHARDS {
            self.inner.pubsub.subscribe(
                &gossip_topic(shard),
                self.inner.id,
                Arc::new(GossipInbox {
                    shard,
                    queue: queue.clone(),
                }),
            );
        }
        tasks.spawn(self.clone().run_gossip(inbox));
        tasks.spawn(self.clone().run_delivery());
        if self.inner.config.leave_grace_ms > 0 {
            tasks.spawn(self.clone().run_grace_sweep());
        }
    }

    fn shard_at(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shard(&self, topic: &str) -> MutexGuard<'_, Shard> {
        self.shard_at(shard_of(topic))
    }

    fn now_ms(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// A window opened: the delivery task looks at its deadline.
    fn schedule_flush(&self) {
        self.inner.flush_wanted.notify_one();
    }

    fn commit(&self, mut shard: MutexGuard<'_, Shard>, changes: Vec<Change>) {
        let opened = shard.record(changes, self.now_ms());
        drop(shard);
        if opened {
            self.schedule_flush();
        }
    }

    /// Tracks this channel's socket under `key` with `meta` (a JSON object; a `phx_ref` is
    /// added) on the socket's topic. Untracked automatically when the join ends.
    pub fn track(&self, socket: &mut Socket, key: &str, meta: Value) -> Result<(), TrackError> {
        let topic = socket.topic().to_string();
        self.track_on(socket, &topic, key, meta)
    }

    /// Tracks this channel's socket under `key` on another `topic` (e.g. a page on its
    /// broadcasting topics). Untracked automatically when the join ends.
    pub fn track_on(
        &self,
        socket: &mut Socket,
        topic: &str,
        key: &str,
        meta: Value,
    ) -> Result<(), TrackError> {
        let owner = socket.join_id();
        self.track_owner(topic, OwnerId(owner.get()), key, meta)?;
        socket.attach(JoinGuard {
            left: socket.left_flag(),
            presence: self.clone(),
            topic: topic.into(),
            owner,
        });
        Ok(())
    }

    /// Tracks `key` on `topic` for any owner (a task, a job…); untrack it yourself with
    /// [`Presence::untrack_owner`].
    pub fn track_owner(
        &self,
        topic: &str,
        owner: OwnerId,
        key: &str,
        meta: Value,
    ) -> Result<(), TrackError> {
        let meta = match meta {
            Value::Object(map) => map,
            Value::Null => Meta::new(),
            other => {
                let mut map = Meta::new();
                map.insert("value".into(), other);
                map
            }
        };
        self.check_size(&meta)?;
        if self.adopt(topic, owner, key)? {
            return Ok(());
        }
        let mut shard = self.shard(topic);
        let changes = shard.tracker.track(topic, owner.0, key, meta)?;
        self.note_young(&mut shard, topic, owner, key);
        self.commit(shard, changes);
        Ok(())
    }

    /// The meta `owner` tracks under `key` on `topic` on this node, if any.
    pub(crate) fn meta_of_owner(&self, topic: &str, owner: OwnerId, key: &str) -> Option<Meta> {
        self.shard(topic)
            .tracker
            .meta_of(topic, owner.0, key)
            .cloned()
    }

    /// Refuses a meta over `max_meta_bytes` encoded.
    fn check_size(&self, meta: &Meta) -> Result<(), TrackError> {
        let max = self.inner.config.max_meta_bytes;
        let size = serde_json::to_vec(meta).map_or(usize::MAX, |bytes| bytes.len());
        if size > max {
            return Err(TrackError::MetaTooLarge { size, max });
        }
        Ok(())
    }

    /// Stops tracking `key` for this socket.
    pub fn untrack(&self, socket: &Socket, key: &str) -> Result<(), TrackError> {
        self.untrack_owner(socket.topic(), OwnerId::of(socket), key)
    }

    /// Stops tracking `key` on `topic` for `owner`.
    pub fn untrack_owner(&self, topic: &str, owner: OwnerId, key: &str) -> Result<(), TrackError> {
        let mut shard = self.shard(topic);
        let changes = shard.tracker.untrack(topic, owner.0, key)?;
        self.commit(shard, changes);
        Ok(())
    }

    /// Replaces this socket's meta under `key` with `update(old meta)`; the new meta gets a
    /// new `phx_ref` and `phx_ref_prev`. Fails with [`TrackError::RateLimited`] (nothing
    /// changes) when the join updates more often than `presence.max_updates_per_s` (bursts
    /// of twice that), so a channel can answer the client with an error reply.
    pub fn update(
        &self,
        socket: &Socket,
        key: &str,
        update: impl FnOnce(&Meta) -> Meta,
    ) -> Result<(), TrackError> {
        self.update_owner(socket.topic(), OwnerId::of(socket), key, update)
    }

    /// [`Presence::update`] for any owner.
    pub fn update_owner(
        &self,
        topic: &str,
        owner: OwnerId,
        key: &str,
        update: impl FnOnce(&Meta) -> Meta,
    ) -> Result<(), TrackError> {
        let now = self.now_ms();
        let rate = self.inner.config.max_updates_per_s;
        let mut shard = self.shard(topic);
        if !shard.budgets.take(owner.0, now, rate) {
            return Err(TrackError::RateLimited);
        }
        let changes = shard.tracker.update(topic, owner.0, key, |old| {
            let mut meta = update(old);
            meta.remove("phx_ref");
            meta.remove("phx_ref_prev");
            self.check_size(&meta)?;
            Ok(meta)
        })?;
        self.commit(shard, changes);
        Ok(())
    }

    /// Sends this socket `presence_state` for its topic within `presence.coalesce_ms` (or at
    /// the end of the topic's current window, if sooner), then every `presence_diff` after
    /// it (the first holding only the changes its state does not). Ends when the join ends.
    pub fn subscribe(&self, socket: &mut Socket) {
        let topic: Arc<str> = socket.topic().into();
        let owner = socket.join_id();
        let listener = Listener {
            outbox: socket.outbox().clone(),
            join_ref: socket.join_ref().into(),
            awaiting_state: true,
            cursor: 0,
        };
        let opened = {
            let mut shard = self.shard(&topic);
            shard
                .listeners
                .entry(topic.clone())
                .or_default()
                .insert(owner, listener);
            shard.await_state(&topic, self.now_ms())
        };
        if opened {
            self.schedule_flush();
        }
        socket.attach(JoinGuard {
            left: socket.left_flag(),
            presence: self.clone(),
            topic,
            owner,
        });
    }

    /// Everyone on `topic`: key → metas, as tracked (no `fetch`).
    pub fn list(&self, topic: &str) -> Presences {
        Presences(self.shard(topic).tracker.list(topic))
    }

    /// Everyone on `topic` as clients see it: the `fetch` hook's JSON (what a
    /// `presence_state` carries).
    pub async fn list_for_clients(&self, topic: &str) -> Value {
        self.fetch(topic, self.list(topic)).await
    }

    /// The entry under `key` on `topic` after `fetch` (`{"metas": [...]}`), or `None` when
    /// nobody is tracked under `key`.
    pub async fn get_by_key(&self, topic: &str, key: &str) -> Option<Value> {
        let metas = self.shard(topic).tracker.get_by_key(topic, key);
        if metas.is_empty() {
            return None;
        }
        let presences = Presences([(key.to_string(), metas)].into_iter().collect());
        match self.fetch(topic, presences).await {
            Value::Object(mut map) => map.remove(key),
            other => Some(other),
        }
    }

    /// Distinct keys (users) on `topic`.
    pub fn count_users(&self, topic: &str) -> usize {
        self.shard(topic).tracker.count_keys(topic)
    }

    /// Metas (connections) on `topic`.
    pub fn count_connections(&self, topic: &str) -> usize {
        self.shard(topic).tracker.count_metas(topic)
    }

    /// Gossip messages dropped so far because they were undecodable or of an unknown version.
    pub fn dropped_gossip(&self) -> u64 {
        self.inner.dropped_gossip.total()
    }

    /// Tells peers to drop this node's presences now, and stops the background task. The
    /// endpoint calls it for its presence at shutdown; see [`Presence::new`].
    pub async fn shutdown(&self) {
        for index in 0..SHARDS {
            let goodbye = {
                let shard = self.shard_at(index);
                shard.tracker.goodbye()
            };
            self.publish(index, &goodbye);
        }
        self.inner.shutdown.cancel();
    }
}
