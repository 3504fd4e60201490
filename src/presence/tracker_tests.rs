use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Down after 1 s, forgotten after 10 s, transfers asked again after 100 ms.
fn config() -> PresenceConfig {
    PresenceConfig {
        broadcast_period_ms: 50,
        down_period_ms: 1_000,
        permdown_period_ms: 10_000,
        ..PresenceConfig::default()
    }
}

fn replica(name: &str, incarnation: u64) -> Tracker {
    Tracker::new(
        ReplicaId {
            name: name.into(),
            incarnation,
        },
        &config(),
    )
}

fn meta(value: serde_json::Value) -> Meta {
    value.as_object().cloned().unwrap_or_default()
}

/// The view as key -> sorted phx_refs, for comparisons.
fn view(tracker: &Tracker, topic: &str) -> BTreeMap<String, Vec<String>> {
    tracker
        .list(topic)
        .into_iter()
        .map(|(key, metas)| {
            let mut refs: Vec<String> = metas
                .iter()
                .map(|m| m["phx_ref"].as_str().unwrap().to_string())
                .collect();
            refs.sort();
            (key, refs)
        })
        .collect()
}

/// Delivers `gossip` to `to` and every answer back to `from`, until quiet.
fn exchange(from: &mut Tracker, to: &mut Tracker, gossip: Gossip, now: u64) -> Vec<Change> {
    let (changes, replies) = to.receive(gossip, now);
    for reply in replies {
        let (_, answers) = from.receive(reply, now);
        for answer in answers {
            to.receive(answer, now);
        }
    }
    changes
}

/// Two replicas where `b` mirrors `a`, which tracks `key` on "room".
fn synced_pair(key: &str) -> (Tracker, Tracker) {
    let (mut a, mut b) = (replica("a", 1), replica("b", 1));
    a.track("room", 1, key, Meta::new()).unwrap();
    let hb = a.heartbeat();
    exchange(&mut a, &mut b, hb, 0);
    assert_eq!(view(&a, "room"), view(&b, "room"));
    (a, b)
}

#[test]
fn track_list_count_untrack() {
    let mut a = replica("a", 1);
    let changes = a.track("room", 1, "alice", meta(json!({"x": 1}))).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Join);
    a.track("room", 2, "alice", Meta::new()).unwrap();
    a.track("room", 3, "bob", Meta::new()).unwrap();
    assert_eq!(
        a.track("room", 3, "bob", Meta::new()),
        Err(TrackError::AlreadyTracked)
    );
    assert_eq!((a.count_keys("room"), a.count_metas("room")), (2, 3));
    assert_eq!(a.get_by_key("room", "alice")[0]["x"], 1);
    let changes = a.untrack("room", 1, "alice").unwrap();
    assert_eq!(changes[0].kind, ChangeKind::Leave);
    assert_eq!(a.untrack("room", 1, "alice"), Err(TrackError::NotTracked));
    assert_eq!(a.untrack_owner(3, None).len(), 1);
    assert_eq!((a.count_keys("room"), a.count_metas("room")), (1, 1));
    a.untrack_owner(2, Some("room"));
    assert!(a.list("room").is_empty());
    assert_eq!(a.topics().count(), 0, "empty topics are dropped");
}

#[test]
fn untrack_owner_touches_only_that_owner_on_that_topic() {
    let mut a = replica("a", 1);
    for (topic, owner, key) in [
        ("t1", 1, "k"),
        ("t2", 1, "k"),
        ("t1", 2, "k"),
        ("t1", 1, "j"),
    ] {
        a.track(topic, owner, key, Meta::new()).unwrap();
    }
    // An update keeps the owner's index entry single.
    a.update("t1", 1, "k", |m| Ok(m.clone())).unwrap();
    assert_eq!(a.untrack_owner(1, Some("t1")).len(), 2);
    assert_eq!((a.count_metas("t1"), a.count_metas("t2")), (1, 1));
    assert_eq!(a.untrack_owner(1, None).len(), 1);
    assert_eq!(a.untrack_owner(1, None).len(), 0);
    assert_eq!(a.count_metas("t1"), 1, "owner 2 keeps its entry");
}

#[test]
fn a_refused_update_changes_nothing() {
    let mut a = replica("a", 1);
    a.track("t", 1, "k", meta(json!({"x": 1}))).unwrap();
    let before = a.list("t");
    let refused = a.update("t", 1, "k", |_| {
        Err(TrackError::MetaTooLarge { size: 9, max: 1 })
    });
    assert_eq!(refused, Err(TrackError::MetaTooLarge { size: 9, max: 1 }));
    assert_eq!(a.list("t"), before);
    let Gossip::Heartbeat { ops, .. } = a.heartbeat() else {
        panic!("not a heartbeat")
    };
    assert_eq!(ops.len(), 1, "only the track was logged");
}

#[test]
fn update_reports_the_new_meta_as_a_join_and_the_old_as_a_leave() {
    let mut a = replica("a", 1);
    a.track("room", 1, "alice", meta(json!({"status": "here"})))
        .unwrap();
    let old_ref = a.get_by_key("room", "alice")[0]["phx_ref"].clone();
    let changes = a
        .update("room", 1, "alice", |old| {
            let mut m = old.clone();
            m.insert("status".into(), json!("away"));
            Ok(m)
        })
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].kind, ChangeKind::Join);
    assert_eq!(changes[0].meta["status"], "away");
    assert_eq!(changes[0].meta["phx_ref_prev"], old_ref);
    assert_eq!(changes[1].kind, ChangeKind::Leave);
    assert_eq!(changes[1].meta["phx_ref"], old_ref);
    assert_eq!(a.count_metas("room"), 1);
}

#[test]
fn heartbeats_replicate_joins_and_leaves() {
    let (mut a, mut b) = synced_pair("alice");
    // Duplicates change nothing.
    a.untrack("room", 1, "alice").unwrap();
    let hb = a.heartbeat();
    assert_eq!(exchange(&mut a, &mut b, hb.clone(), 1).len(), 1);
    assert!(exchange(&mut a, &mut b, hb, 1).is_empty());
    assert!(b.list("room").is_empty());
}

#[test]
fn a_heartbeat_whose_ops_do_not_match_its_range_is_repaired_not_applied() {
    let (mut a, mut b) = synced_pair("alice");
    a.track("room", 2, "bob", Meta::new()).unwrap();
    a.track("room", 3, "carol", Meta::new()).unwrap();
    let Gossip::Heartbeat {
        from,
        since,
        seq,
        mut ops,
    } = a.heartbeat()
    else {
        panic!("not a heartbeat")
    };
    // Claims two ops, carries one; and one claiming the whole sequence space.
    ops.truncate(1);
    let short = Gossip::Heartbeat {
        from: from.clone(),
        since,
        seq,
        ops,
    };
    let huge = Gossip::Heartbeat {
        from,
        since,
        seq: u64::MAX,
        ops: Vec::new(),
    };
    for (bad, now) in [(short, 1), (huge, 200)] {
        let (changes, replies) = b.receive(bad, now);
        assert!(changes.is_empty(), "nothing applied from a bad heartbeat");
        assert!(matches!(
            replies.as_slice(),
            [Gossip::TransferRequest { .. }]
        ));
    }
    // The next genuine heartbeat still works after the transfer: no frozen mirror.
    let (_, transfer) = a.receive(
        Gossip::TransferRequest {
            from: b.id().clone(),
            to: a.id().name.clone(),
        },
        300,
    );
    b.receive(transfer.into_iter().next().unwrap(), 300);
    assert_eq!(view(&a, "room"), view(&b, "room"));
    a.track("room", 4, "dave", Meta::new()).unwrap();
    let hb = a.heartbeat();
    assert_eq!(exchange(&mut a, &mut b, hb, 400).len(), 1);
    assert_eq!(view(&a, "room"), view(&b, "room"));
}

#[test]
fn gossip_travels_versioned_and_other_versions_are_refused() {
    let a = replica("a", 1);
    let bytes = a.goodbye().encode().unwrap();
    assert_eq!(Gossip::decode(&bytes).unwrap(), a.goodbye());
    let future = String::from_utf8(bytes)
        .unwrap()
        .replace("\"v\":1", "\"v\":2");
    assert!(matches!(
        Gossip::decode(future.as_bytes()),
        Err(GossipError::Version(2))
    ));
    assert!(matches!(
        Gossip::decode(br#"{"Goodbye":{}}"#),
        Err(GossipError::Malformed(_))
    ));
}

#[test]
fn a_gap_is_repaired_by_a_transfer() {
    let (mut a, mut b) = (replica("a", 1), replica("b", 1));
    a.track("room", 1, "alice", Meta::new()).unwrap();
    let _lost = a.heartbeat();
    a.track("room", 2, "bob", Meta::new()).unwrap();
    let hb = a.heartbeat();
    let (changes, replies) = b.receive(hb, 0);
    assert!(changes.is_empty(), "nothing applied across a gap");
    assert!(matches!(
        replies.as_slice(),
        [Gossip::TransferRequest { .. }]
    ));
    let (_, transfer) = a.receive(replies.into_iter().next().unwrap(), 0);
    let (changes, _) = b.receive(transfer.into_iter().next().unwrap(), 0);
    assert_eq!(changes.len(), 2);
    assert_eq!(view(&a, "room"), view(&b, "room"));
}

/// Ticks `tracker` every broadcast period (50 ms) from `from` through `to`, as the gossip
/// task does; returns every change.
fn ticks(tracker: &mut Tracker, from: u64, to: u64) -> Vec<Change> {
    (from..=to)
        .step_by(50)
        .flat_map(|now| tracker.tick(now))
        .collect()
}

#[test]
fn a_silent_peer_goes_down_comes_back_and_is_finally_forgotten() {
    let (mut a, mut b) = synced_pair("alice");
    assert!(ticks(&mut b, 0, 950).is_empty());
    let leaves = b.tick(1_000);
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].kind, ChangeKind::Leave);
    assert!(b.list("room").is_empty());
    // Heard again with the same incarnation: the entries come back.
    let hb = a.heartbeat();
    let joins = exchange(&mut a, &mut b, hb, 2_000);
    assert_eq!(joins.len(), 1);
    assert_eq!(view(&a, "room"), view(&b, "room"));
    // Silent past permdown: forgotten (already hidden, so no second leave).
    assert_eq!(ticks(&mut b, 1_050, 3_000).len(), 1);
    assert!(ticks(&mut b, 3_050, 12_000).is_empty());
    assert!(b.peers_up().is_empty());
    // A later heartbeat starts from scratch through a transfer.
    let hb = a.heartbeat();
    exchange(&mut a, &mut b, hb, 13_000);
    assert_eq!(view(&a, "room"), view(&b, "room"));
}

#[test]
fn time_this_replica_did_not_run_is_not_a_peers_silence() {
    let (_a, mut b) = synced_pair("alice"); // b heard a at 0
    assert!(b.tick(0).is_empty());
    // b is frozen (or starved) for 5 s: its next tick comes late, and it could not have
    // heard anyone meanwhile. The peer stays up.
    assert!(b.tick(5_000).is_empty(), "the pause was b's, not a's");
    assert_eq!(b.peers_up(), ["a"]);
    // Silent for a down period while b runs on time: now it goes down.
    assert!(ticks(&mut b, 5_050, 5_900).is_empty());
    let leaves = ticks(&mut b, 5_950, 6_000);
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].kind, ChangeKind::Leave);
}

#[test]
fn a_new_incarnation_replaces_the_old_at_once() {
    let (mut a, mut b) = synced_pair("ghost");
    let mut restarted = replica("a", 2);
    restarted.track("room", 1, "alice", Meta::new()).unwrap();
    let hb = restarted.heartbeat();
    let changes = exchange(&mut restarted, &mut b, hb, 10);
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::Leave && c.key == "ghost")
    );
    assert_eq!(view(&b, "room"), view(&restarted, "room"));
    // A late heartbeat of the old incarnation is ignored.
    a.track("room", 2, "ghost2", Meta::new()).unwrap();
    let hb = a.heartbeat();
    assert!(exchange(&mut a, &mut b, hb, 20).is_empty());
    assert_eq!(view(&b, "room"), view(&restarted, "room"));
}

#[test]
fn goodbye_drops_entries_at_once() {
    let (mut a, mut b) = synced_pair("alice");
    let bye = a.goodbye();
    let changes = exchange(&mut a, &mut b, bye, 1);
    assert_eq!(changes.len(), 1);
    assert!(b.list("room").is_empty());
}

#[derive(Debug, Clone)]
enum Action {
    Track {
        node: usize,
        owner: u64,
        key: u8,
    },
    Untrack {
        node: usize,
        owner: u64,
        key: u8,
    },
    Update {
        node: usize,
        owner: u64,
        key: u8,
    },
    /// Heartbeat from `node`, delivered to the peers whose bit is set in `mask`, maybe twice.
    Heartbeat {
        node: usize,
        mask: u8,
        duplicate: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let node = 0usize..3;
    prop_oneof![
        (node.clone(), 0u64..4, 0u8..3).prop_map(|(node, owner, key)| Action::Track {
            node,
            owner,
            key
        }),
        (node.clone(), 0u64..4, 0u8..3).prop_map(|(node, owner, key)| Action::Untrack {
            node,
            owner,
            key
        }),
        (node.clone(), 0u64..4, 0u8..3).prop_map(|(node, owner, key)| Action::Update {
            node,
            owner,
            key
        }),
        (node, 0u8..8, any::<bool>()).prop_map(|(node, mask, duplicate)| Action::Heartbeat {
            node,
            mask,
            duplicate
        }),
    ]
}

/// Applies reported changes to a model of the view, checking each is consistent.
fn replay(model: &mut BTreeMap<String, Vec<String>>, changes: &[Change]) {
    for change in changes {
        let phx_ref = change.meta["phx_ref"].as_str().unwrap().to_string();
        let refs = model.entry(change.key.clone()).or_default();
        match change.kind {
            ChangeKind::Join => {
                assert!(!refs.contains(&phx_ref), "join reported twice: {phx_ref}");
                refs.push(phx_ref);
            }
            ChangeKind::Leave => {
                let at = refs
                    .iter()
                    .position(|r| *r == phx_ref)
                    .expect("leave of an unknown ref");
                refs.remove(at);
            }
        }
        refs.sort();
        if refs.is_empty() {
            model.remove(&change.key);
        }
    }
}

/// Delivers heartbeat `hb` of `from` to `to`, with the transfer round trip it may start,
/// replaying every change `to` reports into its model.
fn deliver(
    nodes: &mut [Tracker; 3],
    models: &mut [BTreeMap<String, Vec<String>>; 3],
    from: usize,
    to: usize,
    hb: &Gossip,
    now: u64,
) {
    let (changes, replies) = nodes[to].receive(hb.clone(), now);
    replay(&mut models[to], &changes);
    for reply in replies {
        let (_, answers) = nodes[from].receive(reply, now);
        for answer in answers {
            let (changes, _) = nodes[to].receive(answer, now);
            replay(&mut models[to], &changes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever is lost or duplicated in between, once every replica has heartbeated to
    /// every other (with transfers answered), all views are the union of the local
    /// entries, and the changes each replica reported replay exactly to its view.
    #[test]
    fn replicas_converge_and_report_every_change_once(actions in prop::collection::vec(action(), 0..60)) {
        let mut nodes = [replica("a", 1), replica("b", 1), replica("c", 1)];
        let mut models: [BTreeMap<String, Vec<String>>; 3] = Default::default();
        let mut now = 0;
        for action in actions {
            now += 10;
            match action {
                Action::Track { node, owner, key } => {
                    if let Ok(changes) = nodes[node].track("t", owner, &key.to_string(), Meta::new()) {
                        replay(&mut models[node], &changes);
                    }
                }
                Action::Untrack { node, owner, key } => {
                    if let Ok(changes) = nodes[node].untrack("t", owner, &key.to_string()) {
                        replay(&mut models[node], &changes);
                    }
                }
                Action::Update { node, owner, key } => {
                    if let Ok(changes) = nodes[node].update("t", owner, &key.to_string(), |m| Ok(m.clone())) {
                        replay(&mut models[node], &changes);
                    }
                }
                Action::Heartbeat { node, mask, duplicate } => {
                    let hb = nodes[node].heartbeat();
                    for peer in 0..3 {
                        if peer == node || mask & (1 << peer) == 0 {
                            continue;
                        }
                        for _ in 0..(1 + usize::from(duplicate)) {
                            deliver(&mut nodes, &mut models, node, peer, &hb, now);
                        }
                    }
                }
            }
        }
        // Settle: two rounds of full heartbeats, well after the retransfer delay.
        for round in 0..2 {
            now += 1_000 * (round + 1);
            for node in 0..3 {
                let hb = nodes[node].heartbeat();
                for peer in (0..3).filter(|peer| *peer != node) {
                    deliver(&mut nodes, &mut models, node, peer, &hb, now);
                }
            }
        }
        let expected = view(&nodes[0], "t");
        for node in 0..3 {
            prop_assert_eq!(&view(&nodes[node], "t"), &expected);
            prop_assert_eq!(&models[node], &expected);
        }
    }
}

#[test]
fn reassign_hands_an_entry_over_without_changes_or_gossip() {
    let mut a = replica("a", 1);
    a.track("room", 1, "ann", meta(json!({"x": 1}))).unwrap();
    let _ = a.heartbeat();
    let before = view(&a, "room");
    a.reassign("room", 1, 2, "ann").unwrap();
    assert_eq!(view(&a, "room"), before, "same entry, same phx_ref");
    assert_eq!(a.keys_of(2, "room"), ["ann"]);
    assert!(a.keys_of(1, "room").is_empty());
    assert_eq!(
        a.meta_of("room", 2, "ann").map(|m| m["x"].clone()),
        Some(json!(1))
    );
    match a.heartbeat() {
        Gossip::Heartbeat { ops, .. } => assert!(ops.is_empty(), "nothing gossiped"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.reassign("room", 1, 3, "ann"), Err(TrackError::NotTracked));
    a.track("room", 3, "ann", Meta::new()).unwrap();
    assert_eq!(
        a.reassign("room", 2, 3, "ann"),
        Err(TrackError::AlreadyTracked)
    );
    // The new owner's leave is the entry's leave.
    let changes = a.untrack_owner(2, Some("room"));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].meta["x"], json!(1));
}
