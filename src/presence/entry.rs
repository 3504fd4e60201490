//! What replicas hold: an [`Entry`] (one tracked presence, with its [`Meta`]) and the
//! [`ReplicaId`] of the replica that owns it.
//!
//! Plain data, shared by the tracker and the per-key store of entries (`metas`); it sits
//! below both, so neither imports the other both ways. It must never hold behaviour beyond
//! what a value type needs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Metadata of one presence, as sent to clients (includes `phx_ref`, and `phx_ref_prev`
/// after an update).
pub type Meta = Map<String, Value>;

/// Identifies one run of one node's shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaId {
    /// Stable node name (e.g. `TETHER_NODE`) plus shard.
    pub name: String,
    /// Chosen at start; a restart under the same name has a different one.
    pub incarnation: u64,
}

/// One tracked presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The presence key (user id, …).
    pub(crate) key: String,
    /// Who tracked it on its node (a connection or task id); local meaning only.
    pub(crate) owner: u64,
    /// Unique id of this version of the entry.
    pub(crate) phx_ref: String,
    /// The metadata, with `phx_ref` (and `phx_ref_prev`) inside.
    pub(crate) meta: Meta,
}
