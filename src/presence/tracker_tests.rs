use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::presence::gossip::GossipError;

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

/// The one heartbeat `tracker` sends now (nothing split, no transfer due).
fn beat(tracker: &mut Tracker) -> Gossip {
    let mut messages = tracker.heartbeat();
    assert_eq!(messages.len(), 1, "one heartbeat: {messages:?}");
    messages.remove(0)
}

/// Delivers `gossip` to `to` and every answer back to `from`; the transfers `from` then
/// sends (with its next heartbeat) go to `to`.
fn exchange(from: &mut Tracker, to: &mut Tracker, gossip: Gossip, now: u64) -> Vec<Change> {
    let (changes, replies) = to.receive(gossip, now);
    if !replies.is_empty() {
        for reply in replies {
            let (_, answers) = from.receive(reply, now);
            assert!(answers.is_empty(), "transfers go out with heartbeats");
        }
        for answer in from.heartbeat() {
            to.receive(answer, now);
        }
    }
    changes
}

/// Two replicas where `b` mirrors `a`, which tracks `key` on "room".
fn synced_pair(key: &str) -> (Tracker, Tracker) {
    let (mut a, mut b) = (replica("a", 1), replica("b", 1));
    a.track("room", 1, key, Meta::new()).unwrap();
    let hb = beat(&mut a);
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
    let Gossip(Message::Heartbeat { ops, .. }) = beat(&mut a) else {
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
    let hb = beat(&mut a);
    assert_eq!(exchange(&mut a, &mut b, hb.clone(), 1).len(), 1);
    assert!(exchange(&mut a, &mut b, hb, 1).is_empty());
    assert!(b.list("room").is_empty());
}

#[test]
fn a_heartbeat_whose_ops_do_not_match_its_range_is_repaired_not_applied() {
    let (mut a, mut b) = synced_pair("alice");
    a.track("room", 2, "bob", Meta::new()).unwrap();
    a.track("room", 3, "carol", Meta::new()).unwrap();
    let Gossip(Message::Heartbeat {
        from,
        since,
        seq,
        mut ops,
    }) = beat(&mut a)
    else {
        panic!("not a heartbeat")
    };
    // Claims two ops, carries one; and one claiming the whole sequence space.
    ops.truncate(1);
    let short = Gossip(Message::Heartbeat {
        from: from.clone(),
        since,
        seq,
        ops,
    });
    let huge = Gossip(Message::Heartbeat {
        from,
        since,
        seq: u64::MAX,
        ops: Vec::new(),
    });
    for (bad, now) in [(short, 1), (huge, 200)] {
        let (changes, replies) = b.receive(bad, now);
        assert!(changes.is_empty(), "nothing applied from a bad heartbeat");
        assert!(matches!(
            replies.as_slice(),
            [Gossip(Message::TransferRequest { .. })]
        ));
    }
    // The next genuine heartbeat still works after the transfer: no frozen mirror.
    a.receive(
        Gossip(Message::TransferRequest {
            from: b.id().clone(),
            to: a.id().name.clone(),
        }),
        300,
    );
    for message in a.heartbeat() {
        b.receive(message, 300);
    }
    assert_eq!(view(&a, "room"), view(&b, "room"));
    a.track("room", 4, "dave", Meta::new()).unwrap();
    let hb = beat(&mut a);
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
    let hb = beat(&mut a);
    let (changes, replies) = b.receive(hb, 0);
    assert!(changes.is_empty(), "nothing applied across a gap");
    assert!(matches!(
        replies.as_slice(),
        [Gossip(Message::TransferRequest { .. })]
    ));
    let (_, answers) = a.receive(replies.into_iter().next().unwrap(), 0);
    assert!(
        answers.is_empty(),
        "the transfer goes out with the next heartbeat"
    );
    let messages = a.heartbeat();
    assert!(matches!(
        messages.as_slice(),
        [
            Gossip(Message::Heartbeat { .. }),
            Gossip(Message::Transfer { .. })
        ]
    ));
    let changes: Vec<Change> = messages
        .into_iter()
        .flat_map(|message| b.receive(message, 0).0)
        .collect();
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
    let hb = beat(&mut a);
    let joins = exchange(&mut a, &mut b, hb, 2_000);
    assert_eq!(joins.len(), 1);
    assert_eq!(view(&a, "room"), view(&b, "room"));
    // Silent past permdown: forgotten (already hidden, so no second leave).
    assert_eq!(ticks(&mut b, 1_050, 3_000).len(), 1);
    assert!(ticks(&mut b, 3_050, 12_000).is_empty());
    assert!(b.peers_up().is_empty());
    // A later heartbeat starts from scratch through a transfer.
    let hb = beat(&mut a);
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
    let hb = beat(&mut restarted);
    let changes = exchange(&mut restarted, &mut b, hb, 10);
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::Leave && c.key == "ghost")
    );
    assert_eq!(view(&b, "room"), view(&restarted, "room"));
    // A late heartbeat of the old incarnation is ignored.
    a.track("room", 2, "ghost2", Meta::new()).unwrap();
    let hb = beat(&mut a);
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
    if replies.is_empty() {
        return;
    }
    for reply in replies {
        nodes[from].receive(reply, now);
    }
    // The transfer goes out with `from`'s next heartbeat (which only `to` hears).
    for answer in nodes[from].heartbeat() {
        let (changes, _) = nodes[to].receive(answer, now);
        replay(&mut models[to], &changes);
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
                    for hb in nodes[node].heartbeat() {
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
        }
        // Settle: two rounds of full heartbeats, well after the retransfer delay.
        for round in 0..2 {
            now += 1_000 * (round + 1);
            for node in 0..3 {
                for hb in nodes[node].heartbeat() {
                    for peer in (0..3).filter(|peer| *peer != node) {
                        deliver(&mut nodes, &mut models, node, peer, &hb, now);
                    }
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
    match beat(&mut a) {
        Gossip(Message::Heartbeat { ops, .. }) => assert!(ops.is_empty(), "nothing gossiped"),
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

// ---------------------------------------------------------------------------------------
// Incarnation order, transfer rate, coalescing, heartbeat size.

/// `b` hears `a` (ticking on time) and returns its changes.
fn hear(b: &mut Tracker, gossip: Gossip, now: u64) -> Vec<Change> {
    b.receive(gossip, now).0
}

#[test]
fn an_older_incarnation_is_refused_even_after_the_permdown_period() {
    // Run 1 of node a tracks "old"; b mirrors it. Its genuine messages are kept (a replay).
    let (mut run1, mut b) = synced_pair("old");
    let replay_hb = beat(&mut run1);
    let replay_first = Gossip(Message::Heartbeat {
        from: run1.id().clone(),
        since: 0,
        seq: 0,
        ops: Vec::new(),
    });
    let replay_request = Gossip(Message::TransferRequest {
        from: run1.id().clone(),
        to: "b".into(),
    });
    // Run 2 (a later start: a higher incarnation) replaces it.
    let mut run2 = replica("a", 2);
    run2.track("room", 1, "new", Meta::new()).unwrap();
    let hb = beat(&mut run2);
    exchange(&mut run2, &mut b, hb, 10);
    assert_eq!(view(&b, "room"), view(&run2, "room"));
    // Long after the permdown period (run 2 heartbeating all along), run 1's messages are
    // replayed: refused, nothing changes, no transfer is queued.
    let mut now = 10;
    while now < 30_000 {
        now += 50;
        assert!(b.tick(now).is_empty());
        let hb = beat(&mut run2);
        assert!(hear(&mut b, hb, now).is_empty());
    }
    for replay in [replay_first.clone(), replay_hb.clone(), replay_request] {
        let (changes, replies) = b.receive(replay, now);
        assert!(changes.is_empty() && replies.is_empty());
    }
    assert!(
        matches!(beat(&mut b), Gossip(Message::Heartbeat { .. })),
        "no transfer for an old incarnation"
    );
    assert_eq!(
        view(&b, "room"),
        view(&run2, "room"),
        "no blackout, no ghost"
    );
    // Run 2 goes silent and is forgotten: run 1 is still refused (the floor), while run 2
    // itself may come back (a long partition is not a ban).
    let leaves = ticks(&mut b, now + 50, now + 11_000);
    assert_eq!(leaves.len(), 1);
    assert!(b.peers(now + 11_000).next().is_none(), "forgotten");
    now += 11_000;
    for replay in [replay_first, replay_hb] {
        assert!(hear(&mut b, replay, now).is_empty());
    }
    assert!(b.list("room").is_empty(), "no ghost of run 1");
    let hb = beat(&mut run2);
    exchange(&mut run2, &mut b, hb, now);
    assert_eq!(view(&b, "room"), view(&run2, "room"));
}

#[test]
fn a_goodbye_ends_an_incarnation_and_an_older_goodbye_changes_nothing() {
    let (mut a, mut b) = synced_pair("alice");
    let old_bye = Gossip(Message::Goodbye {
        from: ReplicaId {
            name: "a".into(),
            incarnation: 0,
        },
    });
    assert!(
        hear(&mut b, old_bye, 1).is_empty(),
        "an older run's goodbye"
    );
    assert_eq!(view(&a, "room"), view(&b, "room"));
    let hb_before_bye = beat(&mut a);
    assert_eq!(hear(&mut b, a.goodbye(), 2).len(), 1);
    // Whatever that incarnation seems to say afterwards is a replay.
    let first = Gossip(Message::Heartbeat {
        from: a.id().clone(),
        since: 0,
        seq: 0,
        ops: Vec::new(),
    });
    assert!(hear(&mut b, first, 3).is_empty());
    assert!(hear(&mut b, hb_before_bye, 3).is_empty());
    assert!(b.list("room").is_empty());
    assert!(b.peers(3).next().is_none());
}

#[test]
fn transfer_answers_are_limited_per_requester() {
    let mut a = replica("a", 1);
    a.track("room", 1, "alice", Meta::new()).unwrap();
    let request = |name: &str| {
        Gossip(Message::TransferRequest {
            from: ReplicaId {
                name: name.into(),
                incarnation: 1,
            },
            to: "a".into(),
        })
    };
    let transfers = |messages: &[Gossip]| {
        messages
            .iter()
            .filter(|m| matches!(m, Gossip(Message::Transfer { .. })))
            .count()
    };
    // A thousand requests of b (and one of c) within one broadcast period: one each.
    for _ in 0..1_000 {
        a.receive(request("b"), 0);
    }
    a.receive(request("c"), 10);
    assert_eq!(transfers(&a.heartbeat()), 2);
    for now in [10, 20, 49] {
        a.receive(request("b"), now);
    }
    assert_eq!(transfers(&a.heartbeat()), 0, "b was answered this period");
    // The next period, b may ask again (a correct peer asks every two periods).
    a.receive(request("b"), 50);
    assert_eq!(transfers(&a.heartbeat()), 1);
    // Its own name is never answered.
    a.receive(request("a"), 500);
    assert_eq!(transfers(&a.heartbeat()), 0);
}

#[test]
fn updates_within_one_beat_are_sent_once_in_their_last_state() {
    let (mut a, mut b) = synced_pair("alice");
    let sent_ref = a.get_by_key("room", "alice")[0]["phx_ref"].clone();
    for n in 0..1_000 {
        a.update("room", 1, "alice", |m| {
            let mut m = m.clone();
            m.insert("n".into(), json!(n));
            Ok(m)
        })
        .unwrap();
    }
    // A join and a leave within the beat cancel out too.
    a.track("room", 2, "blink", Meta::new()).unwrap();
    a.untrack("room", 2, "blink").unwrap();
    let hb = beat(&mut a);
    let Gossip(Message::Heartbeat {
        ops, since, seq, ..
    }) = &hb
    else {
        panic!("not a heartbeat")
    };
    assert_eq!(seq - since, 2, "numbered after coalescing");
    assert!(
        matches!(&ops[..], [Op::Leave { phx_ref, .. }, Op::Join { entry, .. }]
            if *phx_ref == sent_ref && entry.meta["n"] == 999),
        "the leave of what peers know and the last state: {ops:?}"
    );
    let changes = exchange(&mut a, &mut b, hb, 1);
    assert_eq!(changes.len(), 2);
    assert_eq!(view(&a, "room"), view(&b, "room"));
    assert!(a.pending.len() <= 2, "the pending log stays small");
    // The next beat carries only what changed since.
    a.update("room", 1, "alice", |m| Ok(m.clone())).unwrap();
    let hb = beat(&mut a);
    exchange(&mut a, &mut b, hb, 2);
    assert_eq!(view(&a, "room"), view(&b, "room"));
}

#[test]
fn a_large_beat_is_split_into_heartbeats_under_the_cap() {
    let config = PresenceConfig {
        max_heartbeat_bytes: 4096,
        ..config()
    };
    let id = |name: &str| ReplicaId {
        name: name.into(),
        incarnation: 1,
    };
    let mut a = Tracker::new(id("a"), &config);
    let mut b = Tracker::new(id("b"), &config);
    let mut c = Tracker::new(id("c"), &config);
    for owner in 0..40 {
        let meta = meta(json!({ "status": "x".repeat(500) }));
        a.track("room", owner, &format!("user{owner}"), meta)
            .unwrap();
    }
    let messages = a.heartbeat();
    assert!(messages.len() >= 6, "{} messages", messages.len());
    let mut next = 0;
    for message in &messages {
        let Gossip(Message::Heartbeat { since, seq, .. }) = message else {
            panic!("not a heartbeat");
        };
        assert_eq!(*since, next, "consecutive");
        next = *seq;
        let size = message.encode().unwrap().len();
        assert!(size <= 4096 - 256, "{size} bytes");
    }
    assert_eq!(next, 40);
    // All delivered: b has everything. One lost: c repairs it with a transfer.
    for message in &messages {
        exchange(&mut a, &mut b, message.clone(), 0);
    }
    assert_eq!(view(&a, "room"), view(&b, "room"));
    for (n, message) in messages.iter().enumerate() {
        if n != 1 {
            exchange(&mut a, &mut c, message.clone(), 0);
        }
    }
    assert_eq!(view(&a, "room"), view(&c, "room"));
    // An op larger than the cap travels alone, whole.
    let huge = meta(json!({ "status": "y".repeat(10_000) }));
    a.track("room", 99, "huge", huge).unwrap();
    a.track("room", 100, "small", Meta::new()).unwrap();
    let messages = a.heartbeat();
    assert_eq!(messages.len(), 2);
    for message in messages {
        exchange(&mut a, &mut b, message, 0);
    }
    assert_eq!(view(&a, "room"), view(&b, "room"));
}
