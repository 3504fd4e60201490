//! What an operator sees of presence: the nodes of the cluster as this node knows them, and
//! every topic with its numbers of users and connections (for the dashboard and `/metrics`).
//!
//! Read-only: it must never change a replica, and it holds one shard's lock at a time.

use std::collections::BTreeMap;

use super::{Presence, SHARDS};

/// One node of the cluster as this node sees it ([`Presence::nodes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's name (`[pubsub] node`).
    pub name: String,
    /// Its current run (a restart under the same name has another).
    pub incarnation: u64,
    /// Whether this is the node answering.
    pub local: bool,
    /// Up: heard within `[presence] down_period_ms` (always, for the local node).
    pub up: bool,
    /// Milliseconds since it was last heard (0 for the local node).
    pub silent_ms: u64,
    /// Presence entries it tracks, as this node knows them.
    pub entries: usize,
}

/// A topic's numbers ([`Presence::topics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCount {
    /// The topic.
    pub topic: String,
    /// Distinct keys.
    pub users: usize,
    /// Metas (connections).
    pub connections: usize,
}

impl Presence {
    /// This node and every peer its replicas know (up, or down and not yet forgotten),
    /// by name; the local node first.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use tether::{config::PresenceConfig, presence::{OwnerId, Presence}, pubsub::LocalPubSub};
    /// let presence = Presence::new("node-a", &PresenceConfig::default(), Arc::new(LocalPubSub::new()));
    /// presence.track_owner("room:1", OwnerId(1), "ann", serde_json::json!({})).unwrap();
    /// let nodes = presence.nodes();
    /// assert_eq!((nodes[0].name.as_str(), nodes[0].local, nodes[0].entries), ("node-a", true, 1));
    /// ```
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let now = self.now_ms();
        let mut local = None;
        let mut peers: BTreeMap<String, NodeStatus> = BTreeMap::new();
        for index in 0..SHARDS {
            let shard = self.shard_at(index);
            let me = shard.tracker.id();
            let node = local.get_or_insert_with(|| NodeStatus {
                name: node_name(&me.name).to_string(),
                incarnation: me.incarnation,
                local: true,
                up: true,
                silent_ms: 0,
                entries: 0,
            });
            node.entries += shard.tracker.local_entries();
            for peer in shard.tracker.peers(now) {
                let name = node_name(&peer.id.name);
                let status = peers.entry(name.to_string()).or_insert_with(|| NodeStatus {
                    name: name.to_string(),
                    incarnation: peer.id.incarnation,
                    local: false,
                    up: false,
                    silent_ms: u64::MAX,
                    entries: 0,
                });
                if peer.silent_ms < status.silent_ms {
                    status.silent_ms = peer.silent_ms;
                    status.incarnation = peer.id.incarnation;
                }
                status.up |= peer.up;
                status.entries += peer.entries;
            }
        }
        local.into_iter().chain(peers.into_values()).collect()
    }

    /// Every topic with someone on it, with its numbers, by topic name.
    pub fn topics(&self) -> Vec<TopicCount> {
        let mut topics = Vec::new();
        for index in 0..SHARDS {
            let shard = self.shard_at(index);
            let tracker = &shard.tracker;
            topics.extend(tracker.topics().map(|topic| TopicCount {
                topic: topic.to_string(),
                users: tracker.count_keys(topic),
                connections: tracker.count_metas(topic),
            }));
        }
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        topics
    }
}

/// A node's name from one of its replicas' (`<node>#<shard>`).
fn node_name(replica: &str) -> &str {
    replica.rsplit_once('#').map_or(replica, |(node, _)| node)
}
