//! The replicated presence state of one shard: a pure data structure, no I/O, no clock.
//!
//! # Model: per-node ownership
//!
//! Every node (a *replica*, named `name` and stamped with an `incarnation` chosen at start)
//! alone writes the entries it tracks. Each local write is an op (a join or a leave). Peers hold a
//! read-only mirror of every other replica's entries, fed by [`Gossip`] (its wire format is
//! private to tether):
//!
//! - **Heartbeat** `{since, seq, ops}`: the ops numbered `since+1 ..= seq`. A peer whose
//!   mirror is at `since` or later applies the ops it has not seen; a peer behind `since`
//!   has missed some and sends a **TransferRequest**; the owner answers with a **Transfer**
//!   (a snapshot of its entries at some `seq`), which replaces the mirror wholesale. Ops
//!   are idempotent by sequence number, so duplicates and reordering are harmless.
//! - **Coalescing**: ops are numbered when the heartbeat is sent, not when they are
//!   written. Until then the leave of an entry joined since the last heartbeat cancels its
//!   join, so peers only hear of what outlived the broadcast period: an entry updated a
//!   thousand times in one period costs one leave (of what peers knew) and one join (of the
//!   last state). Refs are never reused, so this is exact.
//! - **Size**: one period's ops that encode larger than `presence.max_heartbeat_bytes` go
//!   out as several consecutive heartbeats (`since..seq` ranges that follow each other),
//!   each under the cap; a lost one is a gap like any other. (One op larger than the cap —
//!   a huge key or topic — travels alone. A Transfer is not split: it holds what the
//!   replica tracks, each meta at most `presence.max_meta_bytes`.)
//! - **Transfers** are made only right after a heartbeat, at its `seq` (a snapshot taken
//!   between heartbeats could hold an entry whose join and leave then cancel out, never to
//!   be sent: a ghost), and at most once per broadcast period per requesting name
//!   (replayed or repeated requests cost nothing more).
//! - **Down**: a replica not heard from for `down_period` is hidden: its entries leave the
//!   view (leaves are reported) but are kept. Silence is counted in time this replica ran:
//!   [`Tracker::tick`] is due every broadcast period, and when a tick comes late (this
//!   process was frozen or starved of CPU, so it could not have heard anyone either) the
//!   lateness is not held against the peers. If it is heard again (same incarnation) they
//!   come back (joins are reported) and the gap, if any, is repaired by a transfer.
//! - **Permdown**: after `permdown_period` of silence the replica and its entries are dropped.
//! - **Incarnation order**: incarnations grow with a node's start time. A message under a
//!   known name with a *higher* incarnation means the node restarted: the old
//!   incarnation's entries are dropped at once. A *lower* one is a previous run of the node
//!   — a late or replayed message — and is refused (heartbeats, transfers, transfer
//!   requests and goodbyes alike), so a copy of an old run's gossip can neither hide the
//!   live node nor bring back its ghosts. Once a name has no peer (goodbye, permdown), a
//!   *floor* keeps refusing what is below its last incarnation for
//!   [`FLOOR_KEEP_PERMDOWNS`] permdown periods, for at most [`MAX_FLOORS`] names: a
//!   goodbye'd incarnation is refused itself, a forgotten one may come back (a long
//!   partition is not a ban). A node whose clock went back further than its downtime
//!   starts with a lower incarnation and is refused until the old one is forgotten.
//! - **Goodbye**: a node shutting down says so; peers drop its entries at once.
//!
//! There is no merge of concurrent writes to the same entry because there are none: an
//! entry has exactly one writer. That is why this needs no CRDT machinery beyond sequence
//! numbers and snapshots, and why no node (and no Redis key) is a source of truth for
//! another node's entries.
//!
//! # Invariants
//!
//! - The *view* (what [`Tracker::list`] returns) is the local entries plus the entries of
//!   every peer that is up. Every change of the view is reported exactly once, as a
//!   [`Change`] returned by the call that made it.
//! - `phx_ref`s are unique across the cluster (they embed the replica's incarnation), so an
//!   entry is identified by its `phx_ref` alone.
//! - A mirror never applies an op twice or out of order; it stays at its last contiguous
//!   sequence number until a transfer fills a gap.
//! - A mirror only ever moves to a higher incarnation of its name.
//! - Everything kept per peer name (floors, transfer grants) is bounded in count and time;
//!   the pending ops are bounded by what changed since the last heartbeat, per `phx_ref`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Arc;

use serde_json::Value;

use super::metas::Metas;
use crate::config::PresenceConfig;

use super::entry::Entry;
pub use super::entry::{Meta, ReplicaId};
pub use super::gossip::Gossip;
use super::gossip::{Message, Op};

/// What a replica knows of one peer ([`Tracker::peers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer.
    pub id: ReplicaId,
    /// Whether it is up (heard within the down period).
    pub up: bool,
    /// Milliseconds since it was last heard.
    pub silent_ms: u64,
    /// Its entries (visible while up, hidden while down).
    pub entries: usize,
}

/// Names whose lowest admitted incarnation is remembered, at most; also the most peers a
/// transfer is queued for at once.
pub const MAX_FLOORS: usize = 1024;

/// How many permdown periods a floor (the lowest admitted incarnation of a name) is kept
/// after it was last raised.
pub const FLOOR_KEEP_PERMDOWNS: u64 = 2;

/// What a heartbeat message holds besides its ops (the `{"v":1,"g":{"Heartbeat":…}}`
/// around them, and the bus envelope, with room to spare), plus three times the replica's
/// name (in the message, escaped, and in the envelope).
const HEARTBEAT_OVERHEAD: usize = 512;

/// The lowest incarnation of a name still admitted, and when it was last raised.
#[derive(Debug, Clone, Copy)]
struct Floor {
    incarnation: u64,
    at: u64,
}

/// A change of the view, to be reported to subscribers of `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The topic.
    pub topic: Arc<str>,
    /// Join or leave.
    pub kind: ChangeKind,
    /// The presence key.
    pub key: String,
    /// The meta that joined or left (with its `phx_ref`).
    pub meta: Meta,
}

/// Direction of a [`Change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Entered the view.
    Join,
    /// Left the view.
    Leave,
}

/// Errors of local writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// `(topic, owner, key)` is already tracked.
    #[error("already tracked")]
    AlreadyTracked,
    /// Nothing is tracked under `(topic, owner, key)`.
    #[error("not tracked")]
    NotTracked,
    /// The meta, encoded as JSON, is larger than `presence.max_meta_bytes`; nothing was
    /// stored or gossiped.
    #[error("meta too large ({size} bytes, at most {max})")]
    MetaTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The owner updated more often than `presence.max_updates_per_s` allows; nothing
    /// changed.
    #[error("too many presence updates; slow down")]
    RateLimited,
}

/// Timing rules, in milliseconds of the caller's clock, taken from `[presence]`.
#[derive(Debug, Clone, Copy)]
struct Periods {
    /// How often [`Tracker::tick`] is due (the broadcast period).
    tick_ms: u64,
    /// Silence after which a peer is hidden.
    down_ms: u64,
    /// Silence after which a peer is forgotten.
    permdown_ms: u64,
    /// Minimum time between two transfer requests to the same peer (two heartbeats).
    retransfer_ms: u64,
}

struct Peer {
    id: ReplicaId,
    seq: u64,
    last_heard: u64,
    up: bool,
    requested_at: Option<u64>,
    /// phx_ref -> (topic, key) of this peer's entries (visible or hidden).
    refs: HashMap<String, (Arc<str>, String)>,
    /// The entries, while the peer is down.
    hidden: Vec<(Arc<str>, Entry)>,
}

/// One shard's replica: local entries, mirrors of peers, and the view.
pub struct Tracker {
    me: ReplicaId,
    periods: Periods,
    /// Sequence number of the last op sent in a heartbeat.
    seq: u64,
    /// Ops since the last heartbeat, coalesced per `phx_ref` (a slot is `None` once a join
    /// and its leave cancelled out); numbered when the heartbeat is sent.
    pending: Vec<Option<Op>>,
    /// phx_ref -> slot in `pending` of a join not yet sent.
    pending_joins: HashMap<String, usize>,
    /// Empty slots in `pending`.
    cancelled: usize,
    /// Largest heartbeat message (see [`Tracker::heartbeat`]).
    max_heartbeat_bytes: usize,
    ref_counter: u64,
    /// A 48-bit tag of (name, incarnation), the first half of every `phx_ref` made here:
    /// refs are unique per replica run.
    ref_tag: u64,
    /// (topic, owner, key) -> phx_ref of local entries.
    local: HashMap<(Arc<str>, u64, String), String>,
    /// owner -> (topic, key) of its local entries, so that an owner's leave costs what it
    /// tracked, not what the shard holds.
    owned: HashMap<u64, Vec<(Arc<str>, String)>>,
    peers: HashMap<String, Peer>,
    /// name -> the lowest incarnation still admitted under that name, for names without a
    /// peer (or whose peer is older): set when an incarnation says goodbye, is replaced or
    /// is forgotten; kept [`FLOOR_KEEP_PERMDOWNS`] permdown periods, at most [`MAX_FLOORS`].
    floors: HashMap<String, Floor>,
    /// Names of peers whose transfer request will be answered with the next heartbeat.
    transfers_due: Vec<String>,
    /// name -> when its last transfer request was accepted (one per broadcast period).
    transfers_granted: HashMap<String, u64>,
    /// topic -> key -> visible entries (local and up peers), in arrival order.
    view: HashMap<Arc<str>, BTreeMap<String, Metas>>,
    /// When [`Tracker::tick`] last ran.
    last_tick: Option<u64>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("me", &self.me)
            .field("seq", &self.seq)
            .field("local", &self.local.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// A new replica with nothing tracked, timed by `config` (its down and permdown
    /// periods; transfers are asked again after two broadcast periods).
    pub fn new(me: ReplicaId, config: &PresenceConfig) -> Tracker {
        let mut hasher = fnv::FnvHasher::default();
        hasher.write(me.name.as_bytes());
        hasher.write(&me.incarnation.to_le_bytes());
        Tracker {
            ref_tag: hasher.finish() >> 16,
            me,
            periods: Periods {
                tick_ms: config.broadcast_period_ms,
                down_ms: config.down_period_ms,
                permdown_ms: config.permdown_period_ms,
                retransfer_ms: 2 * config.broadcast_period_ms,
            },
            seq: 0,
            pending: Vec::new(),
            pending_joins: HashMap::new(),
            cancelled: 0,
            max_heartbeat_bytes: config.max_heartbeat_bytes,
            ref_counter: 0,
            local: HashMap::new(),
            owned: HashMap::new(),
            peers: HashMap::new(),
            floors: HashMap::new(),
            transfers_due: Vec::new(),
            transfers_granted: HashMap::new(),
            view: HashMap::new(),
            last_tick: None,
        }
    }

    /// This replica's id.
    pub fn id(&self) -> &ReplicaId {
        &self.me
    }

    fn next_ref(&mut self) -> String {
        self.ref_counter += 1;
        format!("{:012X}{:04X}", self.ref_tag, self.ref_counter)
    }

    fn topic_arc(&self, topic: &str) -> Arc<str> {
        self.view
            .get_key_value(topic)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| topic.into())
    }

    /// Queues `op` for the next heartbeat, coalesced: the leave of an entry joined since
    /// the last heartbeat cancels its join (peers never hear of it), so an entry updated
    /// many times within one broadcast period is sent once, in its last state.
    fn log(&mut self, op: Op) {
        match &op {
            Op::Leave { phx_ref, .. } => {
                if let Some(slot) = self.pending_joins.remove(phx_ref) {
                    self.pending[slot] = None;
                    self.cancelled += 1;
                    self.compact_pending();
                    return;
                }
            }
            Op::Join { entry, .. } => {
                self.pending_joins
                    .insert(entry.phx_ref.clone(), self.pending.len());
            }
        }
        self.pending.push(Some(op));
    }

    /// Drops the cancelled slots once they are most of `pending`, so it stays as long as
    /// what is left to send (amortised O(1) per op).
    fn compact_pending(&mut self) {
        if self.cancelled < 64 || self.cancelled * 2 < self.pending.len() {
            return;
        }
        self.pending.retain(Option::is_some);
        self.cancelled = 0;
        self.pending_joins.clear();
        for (slot, op) in self.pending.iter().enumerate() {
            if let Some(Op::Join { entry, .. }) = op {
                self.pending_joins.insert(entry.phx_ref.clone(), slot);
            }
        }
    }

    fn show(&mut self, topic: Arc<str>, entry: Entry, changes: &mut Vec<Change>) {
        changes.push(Change {
            topic: topic.clone(),
            kind: ChangeKind::Join,
            key: entry.key.clone(),
            meta: entry.meta.clone(),
        });
        self.view
            .entry(topic)
            .or_default()
            .entry(entry.key.clone())
            .or_default()
            .push(entry);
    }

    fn hide(
        &mut self,
        topic: &str,
        key: &str,
        phx_ref: &str,
        changes: &mut Vec<Change>,
    ) -> Option<Entry> {
        let topic_arc = self.view.get_key_value(topic)?.0.clone();
        let removed = self.view.get_mut(topic)?.get_mut(key)?.remove(phx_ref)?;
        self.prune(topic, key);
        changes.push(Change {
            topic: topic_arc,
            kind: ChangeKind::Leave,
            key: removed.key.clone(),
            meta: removed.meta.clone(),
        });
        Some(removed)
    }

    /// Drops `key` from `topic`'s view if it holds no entry, and `topic` if it holds no key.
    fn prune(&mut self, topic: &str, key: &str) {
        let Some(keys) = self.view.get_mut(topic) else {
            return;
        };
        if keys.get(key).is_some_and(Metas::is_empty) {
            keys.remove(key);
        }
        if keys.is_empty() {
            self.view.remove(topic);
        }
    }

    /// Hides many entries at once (a peer going down or forgotten), grouped by key: each
    /// key's leavers are taken out together ([`Metas::remove_all`]). Returns what was
    /// hidden, with its topic.
    fn hide_many(
        &mut self,
        refs: impl IntoIterator<Item = (Arc<str>, String, String)>,
        changes: &mut Vec<Change>,
    ) -> Vec<(Arc<str>, Entry)> {
        let mut by_key: HashMap<(Arc<str>, String), HashSet<String>> = HashMap::new();
        for (topic, key, phx_ref) in refs {
            by_key.entry((topic, key)).or_default().insert(phx_ref);
        }
        let mut hidden = Vec::new();
        for ((topic, key), refs) in by_key {
            // The view's own Arc of the topic, for the changes.
            let Some(topic) = self.view.get_key_value(&*topic).map(|(t, _)| t.clone()) else {
                continue;
            };
            let Some(metas) = self
                .view
                .get_mut(&*topic)
                .and_then(|keys| keys.get_mut(&key))
            else {
                continue;
            };
            let gone = metas.remove_all(&refs);
            self.prune(&topic, &key);
            for entry in gone {
                changes.push(Change {
                    topic: topic.clone(),
                    kind: ChangeKind::Leave,
                    key: entry.key.clone(),
                    meta: entry.meta.clone(),
                });
                hidden.push((topic.clone(), entry));
            }
        }
        hidden
    }

    /// Tracks `key` for `owner` on `topic` with `meta` (a `phx_ref` is added).
    pub fn track(
        &mut self,
        topic: &str,
        owner: u64,
        key: &str,
        meta: Meta,
    ) -> Result<Vec<Change>, TrackError> {
        let topic = self.topic_arc(topic);
        if self
            .local
            .contains_key(&(topic.clone(), owner, key.to_string()))
        {
            return Err(TrackError::AlreadyTracked);
        }
        let mut changes = Vec::with_capacity(1);
        self.owned
            .entry(owner)
            .or_default()
            .push((topic.clone(), key.to_string()));
        self.add_local(topic, owner, key, meta, None, &mut changes);
        Ok(changes)
    }

    /// Writes a new local entry with a fresh `phx_ref` (and `phx_ref_prev`, for an update):
    /// index, log and view.
    fn add_local(
        &mut self,
        topic: Arc<str>,
        owner: u64,
        key: &str,
        mut meta: Meta,
        prev: Option<String>,
        changes: &mut Vec<Change>,
    ) {
        let phx_ref = self.next_ref();
        meta.insert("phx_ref".into(), Value::String(phx_ref.clone()));
        if let Some(prev) = prev {
            meta.insert("phx_ref_prev".into(), Value::String(prev));
        }
        let entry = Entry {
            key: key.to_string(),
            owner,
            phx_ref: phx_ref.clone(),
            meta,
        };
        self.local
            .insert((topic.clone(), owner, key.to_string()), phx_ref);
        self.log(Op::Join {
            topic: topic.to_string(),
            entry: entry.clone(),
        });
        self.show(topic, entry, changes);
    }

    /// Stops tracking `key` for `owner` on `topic`.
    pub fn untrack(
        &mut self,
        topic: &str,
        owner: u64,
        key: &str,
    ) -> Result<Vec<Change>, TrackError> {
        let index = (Arc::<str>::from(topic), owner, key.to_string());
        let phx_ref = self.local.remove(&index).ok_or(TrackError::NotTracked)?;
        if let Some(owned) = self.owned.get_mut(&owner) {
            owned.retain(|(t, k)| !(&**t == topic && k == key));
            if owned.is_empty() {
                self.owned.remove(&owner);
            }
        }
        let mut changes = Vec::with_capacity(1);
        self.hide(topic, key, &phx_ref, &mut changes);
        self.log(Op::Leave {
            topic: topic.to_string(),
            key: key.to_string(),
            phx_ref,
        });
        Ok(changes)
    }

    /// The keys `owner` tracks on `topic`.
    pub fn keys_of(&self, owner: u64, topic: &str) -> Vec<String> {
        self.owned
            .get(&owner)
            .into_iter()
            .flatten()
            .filter(|(t, _)| &**t == topic)
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// Hands `from`'s entry under `key` on `topic` to `to`, keeping its `phx_ref` and meta:
    /// no view changes and nothing is gossiped (owners are this replica's bookkeeping).
    pub fn reassign(
        &mut self,
        topic: &str,
        from: u64,
        to: u64,
        key: &str,
    ) -> Result<(), TrackError> {
        let topic = self.topic_arc(topic);
        if self
            .local
            .contains_key(&(topic.clone(), to, key.to_string()))
        {
            return Err(TrackError::AlreadyTracked);
        }
        let phx_ref = self
            .local
            .remove(&(topic.clone(), from, key.to_string()))
            .ok_or(TrackError::NotTracked)?;
        if let Some(owned) = self.owned.get_mut(&from) {
            owned.retain(|(t, k)| !(*t == topic && k == key));
            if owned.is_empty() {
                self.owned.remove(&from);
            }
        }
        self.owned
            .entry(to)
            .or_default()
            .push((topic.clone(), key.to_string()));
        if let Some(entry) = self
            .view
            .get_mut(&topic)
            .and_then(|keys| keys.get_mut(key))
            .and_then(|entries| entries.get_mut(&phx_ref))
        {
            entry.owner = to;
        }
        self.local.insert((topic, to, key.to_string()), phx_ref);
        Ok(())
    }

    /// The meta of `owner`'s entry under `key` on `topic`, if it tracks one.
    pub fn meta_of(&self, topic: &str, owner: u64, key: &str) -> Option<&Meta> {
        let phx_ref = self
            .local
            .get(&(Arc::<str>::from(topic), owner, key.to_string()))?;
        self.view
            .get(topic)?
            .get(key)?
            .get(phx_ref)
            .map(|e| &e.meta)
    }

    /// Stops tracking everything `owner` tracks on `topic` (or on every topic if `None`).
    /// Costs O(what the owner tracks), whatever the shard holds.
    pub fn untrack_owner(&mut self, owner: u64, topic: Option<&str>) -> Vec<Change> {
        let mine: Vec<(Arc<str>, String)> = self
            .owned
            .get(&owner)
            .into_iter()
            .flatten()
            .filter(|(t, _)| topic.is_none_or(|topic| &**t == topic))
            .cloned()
            .collect();
        let mut changes = Vec::new();
        for (topic, key) in mine {
            if let Ok(more) = self.untrack(&topic, owner, &key) {
                changes.extend(more);
            }
        }
        changes
    }

    /// Replaces the meta of a tracked entry: a new `phx_ref`, `phx_ref_prev` set to the old
    /// one. Reported as a join of the new meta and a leave of the old, as Phoenix does. If
    /// `update` fails, nothing changes and its error is returned.
    pub fn update(
        &mut self,
        topic: &str,
        owner: u64,
        key: &str,
        update: impl FnOnce(&Meta) -> Result<Meta, TrackError>,
    ) -> Result<Vec<Change>, TrackError> {
        let topic_arc = self.topic_arc(topic);
        let index = (topic_arc.clone(), owner, key.to_string());
        let old_ref = self
            .local
            .get(&index)
            .cloned()
            .ok_or(TrackError::NotTracked)?;
        let old_meta = self
            .view
            .get(topic)
            .and_then(|keys| keys.get(key))
            .and_then(|metas| metas.get(&old_ref))
            .map(|entry| &entry.meta)
            .ok_or(TrackError::NotTracked)?;
        let meta = update(old_meta)?;
        let mut changes = Vec::with_capacity(2);
        self.hide(topic, key, &old_ref, &mut changes);
        self.log(Op::Leave {
            topic: topic.to_string(),
            key: key.to_string(),
            phx_ref: old_ref.clone(),
        });
        self.add_local(topic_arc, owner, key, meta, Some(old_ref), &mut changes);
        // Report the join first, as Phoenix's diff lists the new meta in joins and the old
        // one in leaves.
        changes.reverse();
        Ok(changes)
    }

    /// The view of `topic`: key -> metas, in arrival order.
    pub fn list(&self, topic: &str) -> BTreeMap<String, Vec<Meta>> {
        self.view
            .get(topic)
            .map(|keys| {
                keys.iter()
                    .map(|(key, metas)| {
                        (key.clone(), metas.iter().map(|e| e.meta.clone()).collect())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Metas under `key` on `topic`.
    pub fn get_by_key(&self, topic: &str, key: &str) -> Vec<Meta> {
        self.view
            .get(topic)
            .and_then(|keys| keys.get(key))
            .map(|metas| metas.iter().map(|e| e.meta.clone()).collect())
            .unwrap_or_default()
    }

    /// Distinct keys on `topic`.
    pub fn count_keys(&self, topic: &str) -> usize {
        self.view.get(topic).map_or(0, BTreeMap::len)
    }

    /// Metas (connections) on `topic`.
    pub fn count_metas(&self, topic: &str) -> usize {
        self.view
            .get(topic)
            .map_or(0, |keys| keys.values().map(Metas::len).sum())
    }

    /// Topics with at least one visible entry.
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.view.keys().map(|t| &**t)
    }

    /// What to send now, every broadcast period: the heartbeat (everything written since the
    /// last one, coalesced), split into several consecutive heartbeats when it would be
    /// larger than `presence.max_heartbeat_bytes` encoded (an op larger than that travels
    /// alone), then the transfers (snapshots) peers asked for since the last call.
    ///
    /// Transfers are only made here, right after a heartbeat, so a snapshot at `seq` holds
    /// exactly the ops up to `seq` (with coalescing, a snapshot taken between heartbeats
    /// could hold an entry whose join and leave both fall in the next heartbeat and so are
    /// never sent: a ghost).
    pub fn heartbeat(&mut self) -> Vec<Gossip> {
        let ops: Vec<Op> = std::mem::take(&mut self.pending)
            .into_iter()
            .flatten()
            .collect();
        self.pending_joins.clear();
        self.cancelled = 0;
        // Room for the envelope and the message around the ops.
        let budget = self
            .max_heartbeat_bytes
            .saturating_sub(HEARTBEAT_OVERHEAD + 3 * self.me.name.len());
        let mut chunks: Vec<Vec<Op>> = vec![Vec::new()];
        let mut bytes = 0;
        for op in ops {
            let size = crate::text::json_len(&op) + 1;
            let chunk = chunks.last_mut().unwrap_or_else(|| unreachable!());
            if !chunk.is_empty() && bytes + size > budget {
                chunks.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(chunk) = chunks.last_mut() {
                chunk.push(op);
            }
        }
        let mut out = Vec::with_capacity(chunks.len() + self.transfers_due.len());
        for ops in chunks {
            let since = self.seq;
            self.seq += ops.len() as u64;
            out.push(Gossip(Message::Heartbeat {
                from: self.me.clone(),
                since,
                seq: self.seq,
                ops,
            }));
        }
        for to in std::mem::take(&mut self.transfers_due) {
            out.push(self.snapshot_for(&to));
        }
        out
    }

    /// The message that tells peers this replica is leaving.
    pub fn goodbye(&self) -> Gossip {
        Gossip(Message::Goodbye {
            from: self.me.clone(),
        })
    }

    /// Handles a message from a peer at time `now`. Returns the view changes and the
    /// messages to send in answer.
    pub fn receive(&mut self, gossip: Gossip, now: u64) -> (Vec<Change>, Vec<Gossip>) {
        let mut changes = Vec::new();
        let mut replies = Vec::new();
        match gossip {
            Gossip(Message::Heartbeat {
                from,
                since,
                seq,
                ops,
            }) => {
                if let Some(peer) = self.admit(&from, now, &mut changes) {
                    peer.last_heard = now;
                    self.revive(&from.name, &mut changes);
                    self.apply(&from, since, seq, ops, now, &mut changes, &mut replies);
                }
            }
            Gossip(Message::TransferRequest { from, to }) => {
                if to == self.me.name && !self.refused(&from) {
                    self.grant_transfer(from.name, now);
                }
            }
            Gossip(Message::Transfer {
                from,
                to,
                seq,
                entries,
            }) => {
                if to == self.me.name && self.admit(&from, now, &mut changes).is_some() {
                    self.revive(&from.name, &mut changes);
                    self.replace_mirror(&from, seq, entries, now, &mut changes);
                }
            }
            Gossip(Message::Goodbye { from }) => {
                if !self.refused(&from) {
                    let known = self.peers.get(&from.name).map(|p| p.id.incarnation);
                    if known.is_some_and(|known| known <= from.incarnation) {
                        self.forget(&from.name, &mut changes);
                    }
                    // That incarnation is over: anything it still seems to say is a replay.
                    self.raise_floor(&from.name, from.incarnation.saturating_add(1), now);
                }
            }
        }
        (changes, replies)
    }

    /// Whether gossip from `from` is refused: it is this replica's own name, or an
    /// incarnation older than the one known for that name (a peer's, or the floor left by a
    /// departed, replaced or forgotten one). Incarnations grow with a node's start time, so
    /// an older one is a previous run of the node: its messages are late or replayed.
    fn refused(&self, from: &ReplicaId) -> bool {
        from.name == self.me.name
            || self
                .peers
                .get(&from.name)
                .is_some_and(|p| from.incarnation < p.id.incarnation)
            || self
                .floors
                .get(&from.name)
                .is_some_and(|f| from.incarnation < f.incarnation)
    }

    /// Refuses incarnations of `name` below `incarnation` from now on (for
    /// [`FLOOR_KEEP_PERMDOWNS`] permdown periods); never lowers a floor.
    fn raise_floor(&mut self, name: &str, incarnation: u64, now: u64) {
        if !self.floors.contains_key(name) && self.floors.len() >= MAX_FLOORS {
            // Full: the oldest floor goes (its name has been silent the longest).
            let oldest = self
                .floors
                .iter()
                .min_by_key(|(_, f)| f.at)
                .map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                self.floors.remove(&oldest);
            }
        }
        let floor = self.floors.entry(name.to_string()).or_insert(Floor {
            incarnation,
            at: now,
        });
        floor.incarnation = floor.incarnation.max(incarnation);
        floor.at = now;
    }

    /// Queues a transfer for `to` with the next heartbeat, at most one per broadcast
    /// period per requester (a correct peer asks every two periods at most), and at most
    /// for [`MAX_FLOORS`] requesters at once.
    fn grant_transfer(&mut self, to: String, now: u64) {
        let recent = self
            .transfers_granted
            .get(&to)
            .is_some_and(|at| now.saturating_sub(*at) < self.periods.tick_ms);
        if recent || self.transfers_due.contains(&to) {
            return;
        }
        if !self.transfers_granted.contains_key(&to) && self.transfers_granted.len() >= MAX_FLOORS {
            return;
        }
        self.transfers_granted.insert(to.clone(), now);
        self.transfers_due.push(to);
    }

    /// Finds or creates the mirror of `from`; `None` if `from` is refused (see
    /// [`Tracker::refused`]). A newer incarnation than the known one replaces it.
    fn admit(
        &mut self,
        from: &ReplicaId,
        now: u64,
        changes: &mut Vec<Change>,
    ) -> Option<&mut Peer> {
        if self.refused(from) {
            return None;
        }
        let replaced = self
            .peers
            .get(&from.name)
            .map(|p| p.id.incarnation)
            .filter(|known| *known < from.incarnation);
        if let Some(old) = replaced {
            // The node restarted: its old incarnation's entries go at once, and it is never
            // admitted again.
            self.forget(&from.name, changes);
            self.raise_floor(&from.name, old.saturating_add(1), now);
        }
        Some(self.peers.entry(from.name.clone()).or_insert_with(|| Peer {
            id: from.clone(),
            seq: 0,
            last_heard: now,
            up: true,
            requested_at: None,
            refs: HashMap::new(),
            hidden: Vec::new(),
        }))
    }

    /// Brings a down peer back into the view.
    fn revive(&mut self, name: &str, changes: &mut Vec<Change>) {
        let Some(peer) = self.peers.get_mut(name) else {
            return;
        };
        if peer.up {
            return;
        }
        peer.up = true;
        let hidden = std::mem::take(&mut peer.hidden);
        for (topic, entry) in hidden {
            self.show(topic, entry, changes);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        from: &ReplicaId,
        since: u64,
        seq: u64,
        ops: Vec<Op>,
        now: u64,
        changes: &mut Vec<Change>,
        replies: &mut Vec<Gossip>,
    ) {
        let Some(peer) = self.peers.get_mut(&from.name) else {
            return;
        };
        if peer.seq >= seq {
            return; // nothing new
        }
        // A heartbeat must carry exactly the ops numbered since+1 ..= seq. One that does not
        // (corrupt, or not from a correct peer) is never applied: it is treated as a gap,
        // which a transfer (a snapshot) repairs.
        let consistent = seq.checked_sub(since) == Some(ops.len() as u64);
        if !consistent || peer.seq < since {
            // A gap: ask for a snapshot (not too often).
            let due = peer
                .requested_at
                .is_none_or(|at| now.saturating_sub(at) >= self.periods.retransfer_ms);
            if due {
                peer.requested_at = Some(now);
                replies.push(Gossip(Message::TransferRequest {
                    from: self.me.clone(),
                    to: from.name.clone(),
                }));
            }
            return;
        }
        let skip = (peer.seq - since) as usize;
        peer.seq = seq;
        let node: Arc<str> = from.name.as_str().into();
        for op in ops.into_iter().skip(skip) {
            self.apply_op(&node, op, changes);
        }
    }

    fn apply_op(&mut self, node: &Arc<str>, op: Op, changes: &mut Vec<Change>) {
        let Some(peer) = self.peers.get_mut(&**node) else {
            return;
        };
        match op {
            Op::Join { topic, entry } => {
                let topic = match self.view.get_key_value(topic.as_str()) {
                    Some((t, _)) => t.clone(),
                    None => Arc::from(topic),
                };
                peer.refs
                    .insert(entry.phx_ref.clone(), (topic.clone(), entry.key.clone()));
                if peer.up {
                    self.show(topic, entry, changes);
                } else {
                    peer.hidden.push((topic, entry));
                }
            }
            Op::Leave {
                topic,
                key,
                phx_ref,
            } => {
                peer.refs.remove(&phx_ref);
                if peer.up {
                    self.hide(&topic, &key, &phx_ref, changes);
                } else {
                    peer.hidden.retain(|(_, e)| e.phx_ref != phx_ref);
                }
            }
        }
    }

    fn snapshot_for(&self, to: &str) -> Gossip {
        let mut entries = Vec::with_capacity(self.local.len());
        for ((topic, _, key), phx_ref) in &self.local {
            if let Some(v) = self
                .view
                .get(topic)
                .and_then(|keys| keys.get(key))
                .and_then(|metas| metas.get(phx_ref))
            {
                entries.push((topic.to_string(), v.clone()));
            }
        }
        Gossip(Message::Transfer {
            from: self.me.clone(),
            to: to.to_string(),
            seq: self.seq,
            entries,
        })
    }

    fn replace_mirror(
        &mut self,
        from: &ReplicaId,
        seq: u64,
        entries: Vec<(String, Entry)>,
        now: u64,
        changes: &mut Vec<Change>,
    ) {
        let Some(peer) = self.peers.get_mut(&from.name) else {
            return;
        };
        if seq < peer.seq {
            return; // older than what we already have
        }
        peer.seq = seq;
        peer.last_heard = now;
        peer.requested_at = None;
        let incoming: HashSet<&str> = entries.iter().map(|(_, e)| e.phx_ref.as_str()).collect();
        let stale: Vec<(String, (Arc<str>, String))> = peer
            .refs
            .iter()
            .filter(|(r, _)| !incoming.contains(r.as_str()))
            .map(|(r, tk)| (r.clone(), tk.clone()))
            .collect();
        let known: HashSet<String> = peer.refs.keys().cloned().collect();
        let node: Arc<str> = from.name.as_str().into();
        for (phx_ref, (topic, key)) in stale {
            self.apply_op(
                &node,
                Op::Leave {
                    topic: topic.to_string(),
                    key,
                    phx_ref,
                },
                changes,
            );
        }
        for (topic, entry) in entries {
            if !known.contains(&entry.phx_ref) {
                self.apply_op(&node, Op::Join { topic, entry }, changes);
            }
        }
    }

    /// Drops a peer and its entries (leaves for those visible); returns its incarnation.
    fn forget(&mut self, name: &str, changes: &mut Vec<Change>) -> Option<u64> {
        let peer = self.peers.remove(name)?;
        if peer.up {
            let refs = peer.refs.into_iter().map(|(r, (t, k))| (t, k, r));
            self.hide_many(refs, changes);
        }
        Some(peer.id.incarnation)
    }

    /// Applies the down and permdown rules at time `now`. Due every broadcast period: a
    /// tick later than that means this replica did not run meanwhile, and the lateness is
    /// added to every peer's last-heard time (a peer is down after `down_period` of silence
    /// while this replica ran, not after a pause of this replica's own).
    pub fn tick(&mut self, now: u64) -> Vec<Change> {
        if let Some(last) = self.last_tick.replace(now) {
            let late = now
                .saturating_sub(last)
                .saturating_sub(self.periods.tick_ms);
            if late > 0 {
                for peer in self.peers.values_mut() {
                    peer.last_heard = peer.last_heard.saturating_add(late).min(now);
                }
            }
        }
        let mut changes = Vec::new();
        let keep = self
            .periods
            .permdown_ms
            .saturating_mul(FLOOR_KEEP_PERMDOWNS);
        self.floors.retain(|_, f| now.saturating_sub(f.at) < keep);
        let tick = self.periods.tick_ms;
        self.transfers_granted
            .retain(|_, at| now.saturating_sub(*at) < tick);
        let silent: Vec<(String, u64, bool)> = self
            .peers
            .values()
            .map(|p| (p.id.name.clone(), now.saturating_sub(p.last_heard), p.up))
            .collect();
        for (name, silence, up) in silent {
            if silence >= self.periods.permdown_ms {
                // Forgotten, not banned: if it is heard again after a long partition it
                // comes back through a transfer, like a new peer. Older incarnations stay
                // refused.
                if let Some(incarnation) = self.forget(&name, &mut changes) {
                    self.raise_floor(&name, incarnation, now);
                }
            } else if up && silence >= self.periods.down_ms {
                self.down(&name, &mut changes);
            }
        }
        changes
    }

    fn down(&mut self, name: &str, changes: &mut Vec<Change>) {
        let Some(peer) = self.peers.get_mut(name) else {
            return;
        };
        peer.up = false;
        let refs: Vec<(Arc<str>, String, String)> = peer
            .refs
            .iter()
            .map(|(r, (t, k))| (t.clone(), k.clone(), r.clone()))
            .collect();
        let hidden = self.hide_many(refs, changes);
        if let Some(peer) = self.peers.get_mut(name) {
            peer.hidden = hidden;
        }
    }

    /// Every peer this replica knows (up, or down and not yet forgotten), at time `now`.
    pub fn peers(&self, now: u64) -> impl Iterator<Item = PeerStatus> + '_ {
        self.peers.values().map(move |peer| PeerStatus {
            id: peer.id.clone(),
            up: peer.up,
            silent_ms: now.saturating_sub(peer.last_heard),
            entries: peer.refs.len(),
        })
    }

    /// Entries tracked by this replica.
    pub fn local_entries(&self) -> usize {
        self.local.len()
    }

    /// Names of peers currently up.
    pub fn peers_up(&self) -> Vec<String> {
        self.peers
            .values()
            .filter(|p| p.up)
            .map(|p| p.id.name.clone())
            .collect()
    }
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
