//! The presence gossip wire format, private to tether: the [`Op`]s of a replica's log, the
//! [`Message`]s replicas of one shard exchange (heartbeat, transfer request, transfer,
//! goodbye), and their versioned JSON encoding `{"v": GOSSIP_VERSION, "g": <message>}`.
//!
//! Outside this crate a message is an opaque [`Gossip`] (the tracker's
//! `heartbeat`/`receive`/`goodbye` hand it around), so the format can change without a
//! change of tether's public API; peers of another version drop it (see
//! [`GossipError::Version`]). It sits below the tracker and knows only entries
//! (`entry`); it must never hold state or behaviour beyond encoding.

use serde::{Deserialize, Serialize};

use super::entry::{Entry, ReplicaId};

/// One write in a replica's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Op {
    /// An entry appeared.
    Join {
        /// Its topic.
        topic: String,
        /// The entry.
        entry: Entry,
    },
    /// The entry with this ref went away.
    Leave {
        /// Its topic.
        topic: String,
        /// Its key.
        key: String,
        /// Its ref.
        phx_ref: String,
    },
}

/// The messages between replicas of the same shard: what [`Gossip`] holds. On the wire they
/// travel versioned (see [`Gossip::encode`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Periodic liveness plus the ops numbered `since+1 ..= seq`.
    Heartbeat {
        /// Sender.
        from: ReplicaId,
        /// Sequence number before `ops`.
        since: u64,
        /// Sequence number after `ops`.
        seq: u64,
        /// The ops, in order.
        ops: Vec<Op>,
    },
    /// "Send me your whole state": the sender's mirror of `to` has a gap.
    TransferRequest {
        /// Who asks.
        from: ReplicaId,
        /// Name of the replica asked.
        to: String,
    },
    /// A snapshot of `from`'s entries at `seq`, for `to`.
    Transfer {
        /// Owner of the entries.
        from: ReplicaId,
        /// Name of the requester.
        to: String,
        /// Sequence number the snapshot corresponds to.
        seq: u64,
        /// Every entry, with its topic.
        entries: Vec<(String, Entry)>,
    },
    /// `from` is shutting down: drop its entries now.
    Goodbye {
        /// The departing replica.
        from: ReplicaId,
    },
}

/// One gossip message from a replica to the other replicas of its shard, as
/// [`Tracker::heartbeat`](super::tracker::Tracker::heartbeat),
/// [`Tracker::goodbye`](super::tracker::Tracker::goodbye) and
/// [`Tracker::receive`](super::tracker::Tracker::receive) hand it around. Opaque: its content
/// and wire format are private to tether.
#[derive(Debug, Clone, PartialEq)]
pub struct Gossip(pub(crate) Message);

/// The gossip format this replica writes and reads.
pub(crate) const GOSSIP_VERSION: u32 = 1;

/// Why received gossip was dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GossipError {
    /// Not a versioned gossip message, or not a valid message of its version.
    #[error("undecodable gossip: {0}")]
    Malformed(String),
    /// A version this replica does not know (e.g. from a newer node).
    #[error("gossip version {0} is not supported (this node speaks {GOSSIP_VERSION})")]
    Version(u32),
}

#[derive(Serialize)]
struct VersionedOut<'a> {
    v: u32,
    g: &'a Message,
}

#[derive(Deserialize)]
struct VersionedIn<'a> {
    v: u32,
    #[serde(borrow)]
    g: &'a serde_json::value::RawValue,
}

impl Gossip {
    /// Encodes as `{"v": GOSSIP_VERSION, "g": <message>}`.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&VersionedOut {
            v: GOSSIP_VERSION,
            g: &self.0,
        })
    }

    /// Decodes what [`Gossip::encode`] wrote; refuses other versions.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Gossip, GossipError> {
        let wire: VersionedIn<'_> =
            serde_json::from_slice(bytes).map_err(|e| GossipError::Malformed(e.to_string()))?;
        if wire.v != GOSSIP_VERSION {
            return Err(GossipError::Version(wire.v));
        }
        serde_json::from_str(wire.g.get())
            .map(Gossip)
            .map_err(|e| GossipError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire is what nodes of this version exchange: moving the format out of the public
    /// API must not change a byte of it.
    #[test]
    fn the_wire_format_is_versioned_json_with_externally_tagged_messages() {
        let from = ReplicaId {
            name: "a#0".into(),
            incarnation: 7,
        };
        let goodbye = Gossip(Message::Goodbye { from: from.clone() });
        assert_eq!(
            String::from_utf8(goodbye.encode().unwrap()).unwrap(),
            r#"{"v":1,"g":{"Goodbye":{"from":{"name":"a#0","incarnation":7}}}}"#
        );
        let heartbeat = Gossip(Message::Heartbeat {
            from,
            since: 0,
            seq: 1,
            ops: vec![Op::Leave {
                topic: "t".into(),
                key: "k".into(),
                phx_ref: "r".into(),
            }],
        });
        let bytes = heartbeat.encode().unwrap();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"v":1,"g":{"Heartbeat":{"from":{"name":"a#0","incarnation":7},"since":0,"seq":1,"ops":[{"Leave":{"topic":"t","key":"k","phx_ref":"r"}}]}}}"#
        );
        assert_eq!(Gossip::decode(&bytes).unwrap(), heartbeat);
    }
}
