//! Presence over real sockets (one server) and replication between several presence
//! instances in one process, wired through pub/sub.
//!
//! Presence's timers and clock are tokio's (`tokio::time`), so the tests of replicas in one
//! process (no socket) run on paused time: their down and permdown periods pass in tokio's
//! clock, which moves only when every task waits, never stretched by a busy machine.

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use serde_json::{Value, json};
use support::{Client, TestServer, WAIT, reply, test_config};
use tether::{
    SocketRoute,
    channel::{Channel, HandleResult, JoinResult, Reply, Router, Socket},
    config::PresenceConfig,
    presence::{OwnerId, Presence, PresenceDiff, PresenceHooks, Presences},
    pubsub::{LocalPubSub, PubSub, Subscriber, SubscriberId},
};

/// Counts hook calls; clients see presences unchanged.
#[derive(Default, Clone)]
struct Recorder {
    fetches: Arc<AtomicUsize>,
    metas: Arc<Mutex<Vec<(PresenceDiff, Presences)>>>,
}

impl PresenceHooks for Recorder {
    async fn fetch(&self, _topic: &str, presences: Presences) -> Value {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        presences.into_json()
    }

    async fn handle_metas(&self, _topic: &str, diff: &PresenceDiff, current: &Presences) {
        self.metas
            .lock()
            .unwrap()
            .push((diff.clone(), current.clone()));
    }
}

struct Room {
    presence: Presence,
}

impl Channel for Room {
    type Info = ();
    async fn join(&self, _topic: &str, payload: Value, socket: &mut Socket) -> JoinResult {
        let key = payload["key"].as_str().unwrap_or("anon").to_string();
        self.presence.track(socket, &key, json!({"name": key}))?;
        if payload["listen"] != false {
            self.presence.subscribe(socket);
        }
        // Optionally also tracked on, and subscribed to, a topic shared with other joins.
        if let Some(also) = payload["also"].as_str() {
            self.presence.track_on(socket, also, &key, json!({}))?;
            socket.subscribe(also);
        }
        Ok(json!({}))
    }

    async fn handle_in(&self, event: &str, payload: Value, socket: &mut Socket) -> HandleResult {
        match event {
            "status" => {
                let key = payload["key"].as_str().unwrap_or("anon").to_string();
                let updated = self.presence.update(socket, &key, |m| {
                    let mut m = m.clone();
                    m.insert("status".into(), payload["status"].clone());
                    m
                });
                Ok(match updated {
                    Ok(()) => Reply::ok(),
                    Err(err) => Reply::Error(json!({"reason": err.to_string()})),
                })
            }
            "count" => Ok(Reply::Ok(json!({
                "users": self.presence.count_users(socket.topic()),
                "connections": self.presence.count_connections(socket.topic()),
                "list": self.presence.list_for_clients(socket.topic()).await,
                "keys": self.presence.list(socket.topic()).count_keys(),
            }))),
            _ => Ok(Reply::unhandled()),
        }
    }
}

fn settings(coalesce_ms: u64) -> PresenceConfig {
    PresenceConfig {
        coalesce_ms,
        broadcast_period_ms: 50,
        down_period_ms: 400,
        permdown_period_ms: 1500,
        ..PresenceConfig::default()
    }
}

/// A started presence of its own (a node of a simulated cluster).
fn started(
    name: &str,
    config: PresenceConfig,
    pubsub: Arc<dyn PubSub>,
    hooks: impl PresenceHooks,
) -> Presence {
    let presence = Presence::new(name, &config, pubsub);
    presence.set_hooks(hooks);
    presence.start(&tokio_util::task::TaskTracker::new());
    presence
}

async fn start(coalesce_ms: u64) -> (TestServer, Presence, Recorder) {
    let hooks = Recorder::default();
    let mut config = test_config();
    config.presence = settings(coalesce_ms);
    let recorder = hooks.clone();
    let server = TestServer::start_with(config, move |builder| {
        let room = Room {
            presence: builder.presence(),
        };
        builder.presence_hooks(recorder).socket(SocketRoute::new(
            "/socket",
            Router::new().channel("room:*", room),
        ))
    });
    let presence = server.endpoint.presence().clone();
    (server, presence, hooks)
}

/// Frames a client receives for presence events, collected until `done` says stop.
async fn presence_frame(client: &mut Client) -> Value {
    client
        .recv_until(|f| f[3] == "presence_state" || f[3] == "presence_diff")
        .await
}

fn refs_of(side: &Value) -> Vec<String> {
    side.as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|e| e["metas"].as_array().cloned().unwrap_or_default())
        .map(|m| m["phx_ref"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_joiner_gets_a_state_with_itself_and_never_its_own_join_as_a_diff() {
    let (server, _presence, _) = start(20).await;
    let mut alice = server.client("").await;
    let (ja, _) = alice.join("room:lobby", json!({"key": "alice"})).await;
    let state = presence_frame(&mut alice).await;
    assert_eq!(state[0], ja.as_str());
    assert_eq!(state[3], "presence_state");
    let own = refs_of(&state[4]);
    assert_eq!(own.len(), 1);
    assert_eq!(state[4]["alice"]["metas"][0]["name"], "alice");

    let mut bob = server.client("").await;
    bob.join("room:lobby", json!({"key": "bob"})).await;
    let bob_state = presence_frame(&mut bob).await;
    assert_eq!(bob_state[4].as_object().unwrap().len(), 2);
    // Alice's next presence frame announces Bob, and nothing before it mentioned her own ref.
    let diff = presence_frame(&mut alice).await;
    assert_eq!(
        diff,
        json!([null, null, "room:lobby", "presence_diff", {"joins": {"bob": bob_state[4]["bob"]}, "leaves": {}}])
    );
    assert!(!refs_of(&diff[4]["joins"]).contains(&own[0]));
    // Bob never gets his own join as a diff: the next thing he sees is Alice leaving.
    alice.close().await;
    let diff = presence_frame(&mut bob).await;
    assert_eq!(diff[4]["joins"], json!({}));
    assert_eq!(refs_of(&diff[4]["leaves"]), own);
}

#[tokio::test]
async fn update_is_one_diff_with_the_new_meta_joining_and_the_old_leaving() {
    let (server, _presence, _) = start(20).await;
    let mut alice = server.client("").await;
    let mut bob = server.client("").await;
    alice.join("room:u", json!({"key": "alice"})).await;
    presence_frame(&mut alice).await;
    let (jb, _) = bob.join("room:u", json!({"key": "bob"})).await;
    let state = presence_frame(&mut bob).await;
    let old_ref = state[4]["bob"]["metas"][0]["phx_ref"].clone();
    presence_frame(&mut alice).await; // bob joined
    let frame = bob
        .call(
            "room:u",
            &jb,
            "status",
            json!({"key": "bob", "status": "away"}),
        )
        .await;
    reply(&frame, "ok");
    let diff = presence_frame(&mut alice).await;
    let joined = &diff[4]["joins"]["bob"]["metas"][0];
    assert_eq!(joined["status"], "away");
    assert_eq!(joined["phx_ref_prev"], old_ref);
    assert_ne!(joined["phx_ref"], old_ref);
    assert_eq!(diff[4]["leaves"]["bob"]["metas"][0]["phx_ref"], old_ref);
}

#[tokio::test]
async fn counts_list_and_untrack_on_leave_and_disconnect() {
    let (server, presence, _) = start(10).await;
    let mut a1 = server.client("").await;
    let mut a2 = server.client("").await;
    let mut b = server.client("").await;
    let (j1, _) = a1.join("room:c", json!({"key": "alice"})).await;
    a2.join("room:c", json!({"key": "alice"})).await;
    let (jb, _) = b
        .join("room:c", json!({"key": "bob", "listen": false}))
        .await;
    let frame = a1.call("room:c", &j1, "count", json!({})).await;
    let answer = reply(&frame, "ok");
    assert_eq!(
        (answer["users"].as_u64(), answer["connections"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(
        answer["list"]["alice"]["metas"].as_array().unwrap().len(),
        2
    );
    assert_eq!(answer["keys"].as_u64(), Some(2), "list is typed: {answer}");
    assert_eq!(
        answer["list"]["alice"]["metas"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        presence.get_by_key("room:c", "bob").await.unwrap()["metas"][0]["name"],
        "bob"
    );
    assert_eq!(presence.get_by_key("room:c", "nobody").await, None);

    b.send(Some(&jb), "9", "room:c", "phx_leave", json!({}))
        .await;
    drop(a2);
    let deadline = tokio::time::Instant::now() + WAIT;
    while presence.count_connections("room:c") != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "untrack on leave/disconnect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(presence.count_users("room:c"), 1);
}

#[tokio::test]
async fn fetch_runs_once_per_diff_side_not_per_subscriber_and_handle_metas_sees_each_diff() {
    let (server, _presence, hooks) = start(20).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut client = server.client("").await;
        client.join("room:f", json!({"key": format!("u{i}")})).await;
        presence_frame(&mut client).await; // its state
        clients.push(client);
    }
    // Everyone has seen everyone: drain the diffs of later joiners.
    for (i, client) in clients.iter_mut().enumerate() {
        for _ in i + 1..6 {
            presence_frame(client).await;
        }
    }
    let before = hooks.fetches.load(Ordering::SeqCst);
    let metas_before = hooks.metas.lock().unwrap().len();
    let mut late = server.client("").await;
    late.join("room:f", json!({"key": "late"})).await;
    presence_frame(&mut late).await;
    for client in &mut clients {
        let diff = presence_frame(client).await;
        assert!(diff[4]["joins"]["late"].is_object());
    }
    // One diff (joins + leaves) and one state, whatever the number of subscribers.
    assert_eq!(hooks.fetches.load(Ordering::SeqCst) - before, 3);
    let metas = hooks.metas.lock().unwrap();
    assert_eq!(metas.len() - metas_before, 1);
    let (diff, current) = &metas[metas.len() - 1];
    assert_eq!(diff.joins.count_metas(), 1);
    assert_eq!(current.metas("late").len(), 1);
}

#[tokio::test]
async fn a_join_storm_is_coalesced_and_every_view_converges() {
    const N: usize = 40;
    let (server, _presence, _) = start(100).await;
    let mut clients = Vec::new();
    for _ in 0..N {
        clients.push(server.client("").await);
    }
    // Everyone joins at once.
    for (i, client) in clients.iter_mut().enumerate() {
        let r = client.next_ref();
        client
            .send(
                Some(&r),
                &r,
                "room:storm",
                "phx_join",
                json!({"key": format!("u{i}")}),
            )
            .await;
    }
    let mut frames = 0;
    for client in &mut clients {
        let mut count = 0usize;
        while count < N {
            let frame = presence_frame(client).await;
            frames += 1;
            if frame[3] == "presence_state" {
                count += frame[4].as_object().unwrap().len();
            } else {
                count += frame[4]["joins"].as_object().unwrap().len();
                assert_eq!(frame[4]["leaves"], json!({}));
            }
        }
        assert_eq!(count, N, "no client counts anyone twice");
    }
    // Far fewer than one diff per join per client.
    assert!(
        frames < N * N / 4,
        "{frames} presence frames for {N} joiners"
    );
}

/// A pub/sub view that can be cut off, to simulate a crashed or partitioned node.
struct Cuttable {
    inner: Arc<LocalPubSub>,
    cut: Arc<AtomicBool>,
}

struct CutSubscriber {
    inner: Arc<dyn Subscriber>,
    cut: Arc<AtomicBool>,
}

impl Subscriber for CutSubscriber {
    fn deliver(&self, message: &Bytes) {
        if !self.cut.load(Ordering::SeqCst) {
            self.inner.deliver(message);
        }
    }
}

impl PubSub for Cuttable {
    fn subscribe(&self, topic: &str, id: SubscriberId, subscriber: Arc<dyn Subscriber>) {
        let subscriber = CutSubscriber {
            inner: subscriber,
            cut: self.cut.clone(),
        };
        self.inner.subscribe(topic, id, Arc::new(subscriber));
    }
    fn unsubscribe(&self, topic: &str, id: SubscriberId) {
        self.inner.unsubscribe(topic, id);
    }
    fn broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        if !self.cut.load(Ordering::SeqCst) {
            self.inner.broadcast(topic, message, except);
        }
    }
    fn local_broadcast(&self, topic: &str, message: Bytes, except: Option<SubscriberId>) {
        self.broadcast(topic, message, except);
    }
    fn local_subscriber_count(&self, topic: &str) -> usize {
        self.inner.local_subscriber_count(topic)
    }
}

struct Node {
    presence: Presence,
    cut: Arc<AtomicBool>,
}

fn node(bus: &Arc<LocalPubSub>, name: &str) -> Node {
    let cut = Arc::new(AtomicBool::new(false));
    let pubsub = Arc::new(Cuttable {
        inner: bus.clone(),
        cut: cut.clone(),
    });
    Node {
        presence: started(name, settings(10), pubsub, Recorder::default()),
        cut,
    }
}

async fn until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn counts(nodes: &[&Node], topic: &str) -> Vec<(usize, usize)> {
    nodes
        .iter()
        .map(|n| {
            (
                n.presence.count_users(topic),
                n.presence.count_connections(topic),
            )
        })
        .collect()
}

// Paused time (as in every test of replicas in one process): tokio's clock moves only when
// every task waits, so the down and permdown periods are measured in the presence's own time,
// never stretched by a busy machine that runs the heartbeat tasks late.
#[tokio::test(start_paused = true)]
async fn replicas_converge_and_survive_crash_partition_restart_and_goodbye() {
    let bus = Arc::new(LocalPubSub::new());
    let (a, b, c) = (node(&bus, "a"), node(&bus, "b"), node(&bus, "c"));
    a.presence
        .track_owner("t", OwnerId(1), "alice", json!({}))
        .unwrap();
    a.presence
        .track_owner("t", OwnerId(2), "bob", json!({}))
        .unwrap();
    b.presence
        .track_owner("t", OwnerId(1), "alice", json!({}))
        .unwrap();
    until("all see 2 users / 3 connections", || {
        counts(&[&a, &b, &c], "t") == vec![(2, 3); 3]
    })
    .await;

    // a goes silent (crash or partition): after down_period its presences leave b and c.
    a.cut.store(true, Ordering::SeqCst);
    until("a's presences hidden", || {
        counts(&[&b, &c], "t") == vec![(1, 1); 2]
    })
    .await;
    // a is heard again before permdown: its presences come back.
    a.cut.store(false, Ordering::SeqCst);
    until("a back", || counts(&[&a, &b, &c], "t") == vec![(2, 3); 3]).await;

    // A partition past permdown, with a change on a meanwhile: healed by a transfer.
    a.cut.store(true, Ordering::SeqCst);
    a.presence
        .track_owner("t", OwnerId(3), "carol", json!({}))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1800)).await; // pacing: exceed permdown (1.5 s)
    assert_eq!(counts(&[&b, &c], "t"), vec![(1, 1); 2]);
    a.cut.store(false, Ordering::SeqCst);
    until("healed", || counts(&[&a, &b, &c], "t") == vec![(3, 4); 3]).await;

    // a restarts under the same name (new incarnation): the old entries vanish at once,
    // without waiting for down_period.
    a.cut.store(true, Ordering::SeqCst);
    let a2 = node(&bus, "a");
    a2.presence
        .track_owner("t", OwnerId(1), "dave", json!({}))
        .unwrap();
    until("restart replaces old incarnation", || {
        counts(&[&b, &c, &a2], "t") == vec![(2, 2); 3]
    })
    .await;

    // A graceful shutdown: peers drop the node's entries at once.
    b.presence.shutdown().await;
    until("goodbye", || counts(&[&c, &a2], "t") == vec![(1, 1); 2]).await;
}

#[tokio::test]
async fn a_meta_over_the_limit_is_refused_and_nothing_changes() {
    let (server, presence, _) = start(10).await;
    let mut alice = server.client("").await;
    let mut bob = server.client("").await;
    let (ja, _) = alice.join("room:m", json!({"key": "alice"})).await;
    bob.join("room:m", json!({"key": "bob"})).await;
    presence_frame(&mut bob).await; // bob's state
    let big = "s".repeat(5000);
    let frame = alice
        .call(
            "room:m",
            &ja,
            "status",
            json!({"key": "alice", "status": big}),
        )
        .await;
    let refused = reply(&frame, "error");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("meta too large"),
        "{refused}"
    );
    // Nothing stored, nothing sent: bob sees no diff before his heartbeat reply.
    tokio::time::sleep(Duration::from_millis(50)).await; // pacing: past one 10 ms window
    assert!(bob.sync().await.is_empty());
    let metas = presence.get_by_key("room:m", "alice").await.unwrap()["metas"].clone();
    assert!(metas[0].get("status").is_none(), "{metas}");
    // A small status still works, and a join with a huge meta is refused.
    let frame = alice
        .call(
            "room:m",
            &ja,
            "status",
            json!({"key": "alice", "status": "away"}),
        )
        .await;
    reply(&frame, "ok");
    let mut carol = server.client("").await;
    let (_, frame) = carol.join("room:m", json!({"key": "c".repeat(5000)})).await;
    reply(&frame, "error");
    assert_eq!(presence.count_users("room:m"), 2);
}

#[tokio::test]
async fn a_room_larger_than_the_outbound_limit_stays_joinable() {
    const KEYS: u64 = 60_000;
    let (server, presence, _) = start(10).await;
    for owner in 1..=KEYS {
        presence
            .track_owner(
                "room:big",
                OwnerId(owner),
                &format!("user-{owner:06}"),
                json!({"online_at": "1700000000"}),
            )
            .unwrap();
    }
    let mut joiner = server.client("").await;
    joiner.join("room:big", json!({"key": "joiner"})).await;
    let state = presence_frame(&mut joiner).await;
    assert_eq!(state[3], "presence_state");
    let size = state.to_string().len();
    assert!(
        size > 4 * 1024 * 1024,
        "the state ({size} bytes) should exceed the 4 MiB outbound limit"
    );
    assert_eq!(state[4].as_object().unwrap().len() as u64, KEYS + 1);
    assert!(joiner.sync().await.is_empty());
}

#[tokio::test]
async fn leaving_one_join_never_untracks_or_unsubscribes_another_of_the_same_connection() {
    let (server, presence, _) = start(10).await;
    let mut client = server.client("").await;
    let (jx, _) = client
        .join("room:x", json!({"key": "k1", "also": "room:shared"}))
        .await;
    let (jy, _) = client
        .join("room:y", json!({"key": "k2", "also": "room:shared"}))
        .await;
    assert_eq!(presence.count_users("room:shared"), 2);
    client
        .send(Some(&jx), "50", "room:x", "phx_leave", json!({}))
        .await;
    client
        .recv_until(|f| f[3] == "phx_close" && f[2] == "room:x")
        .await;
    assert_eq!(presence.count_users("room:shared"), 1);
    assert_eq!(presence.count_users("room:y"), 1);
    // room:y's subscription to room:shared still delivers.
    server
        .endpoint
        .broadcast("room:shared", "news", &json!({"n": 1}));
    let news = client.recv_until(|f| f[3] == "news").await;
    assert_eq!(news[2], "room:shared");
    let frame = client.call("room:y", &jy, "count", json!({})).await;
    assert_eq!(reply(&frame, "ok")["users"], 1);
}

/// Hooks that take 10 s for every diff (as a slow database would).
struct SlowHooks;

impl PresenceHooks for SlowHooks {
    async fn handle_metas(&self, _topic: &str, _diff: &PresenceDiff, _current: &Presences) {
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

// Paused time: the 10 s hook and the four down periods pass in tokio's clock, which moves only
// when every task waits. A heartbeat held up by the hook would let that clock pass the down
// period (the test fails), but a busy machine running the heartbeat task late cannot.
#[tokio::test(start_paused = true)]
async fn a_slow_hook_never_makes_its_node_look_down_to_peers() {
    let bus: Arc<dyn PubSub> = Arc::new(LocalPubSub::new());
    let slow = started("slow", settings(10), bus.clone(), SlowHooks);
    let peer = started("peer", settings(10), bus, Recorder::default());
    slow.track_owner("t", OwnerId(1), "alice", json!({}))
        .unwrap();
    until("the peer sees alice", || peer.count_users("t") == 1).await;
    // The slow node's delivery is now stuck in its hook for 10 s; for four down periods
    // (400 ms each) the peer must keep seeing alice, i.e. keep hearing heartbeats.
    slow.track_owner("t", OwnerId(2), "bob", json!({})).unwrap();
    until("the peer sees bob", || peer.count_users("t") == 2).await;
    let watched = tokio::time::Instant::now();
    while watched.elapsed() < Duration::from_millis(1600) {
        assert_eq!(
            peer.count_users("t"),
            2,
            "the slow node looked down after {:?}",
            watched.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded by [`WAIT`]) until `topic` has `users` keys on `presence`.
async fn until_users(presence: &Presence, topic: &str, what: &str, pred: impl Fn(usize) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let users = presence.count_users(topic);
        if pred(users) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {users} keys on {topic}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Issue 21, N12: the leave grace holds presences without sockets, so it is bounded: a
/// young join gets none (rapid connect-join-drop cycles do not pile up keys) and the held
/// entries are capped per topic.
#[tokio::test]
async fn rapid_connect_join_drop_cycles_do_not_leave_keys_in_grace() {
    let mut config = test_config();
    config.presence = PresenceConfig {
        leave_grace_ms: 30_000,
        grace_min_age_ms: 1_000,
        max_grace_per_topic: 20,
        ..settings(20)
    };
    let server = TestServer::start_with(config, move |builder| {
        let room = Room {
            presence: builder.presence(),
        };
        builder.socket(SocketRoute::new(
            "/socket",
            Router::new().channel("room:*", room),
        ))
    });
    let presence = server.endpoint.presence().clone();
    let topic = "room:grace";
    let mut watcher = server.client("").await;
    watcher
        .join(topic, json!({"key": "watcher", "listen": false}))
        .await;
    // 300 connections, each joined under its own key and dropped (no phx_leave: a lost
    // connection, which is what the grace is for) at once.
    for n in 0..300 {
        let mut client = server.client("").await;
        let (_, reply_frame) = client
            .join(topic, json!({"key": format!("k{n}"), "listen": false}))
            .await;
        reply(&reply_frame, "ok");
        drop(client);
    }
    // Without the bound every one of them would stay visible for 30 s.
    until_users(&presence, topic, "the young joins to leave", |n| n == 1).await;
    // The same for owners that are not channel joins (a commander's pages).
    for n in 0..100 {
        let owner = OwnerId(1_000_000 + n);
        presence
            .track_owner(topic, owner, &format!("page{n}"), json!({}))
            .unwrap();
        presence.leave_owner(topic, owner, None);
    }
    assert_eq!(presence.count_users(topic), 1);

    // Old enough joins get the grace, but at most 20 wait on the topic.
    let mut clients = Vec::new();
    for n in 0..60 {
        let mut client = server.client("").await;
        client
            .join(topic, json!({"key": format!("old{n}"), "listen": false}))
            .await;
        clients.push(client);
    }
    until_users(&presence, topic, "60 joins", |n| n == 61).await;
    // Pacing: the age of the joins is what is under test.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    drop(clients);
    until_users(
        &presence,
        topic,
        "all but the capped graces to leave",
        |n| n == 21,
    )
    .await;
    // A joiner sees the watcher and the 20 entries in grace, nothing more.
    let mut joiner = server.client("").await;
    joiner.join(topic, json!({"key": "joiner"})).await;
    let state = presence_frame(&mut joiner).await;
    assert_eq!(state[4].as_object().map(|m| m.len()), Some(22), "{state}");
}

/// A client's view of a topic from its presence frames: the refs it holds; a join of a ref
/// it holds or a leave of one it does not is a server bug (counted twice, or a ghost).
#[derive(Default)]
struct View {
    refs: std::collections::HashSet<String>,
    frames: usize,
}

impl View {
    fn apply(&mut self, frame: &Value) {
        self.frames += 1;
        if frame[3] == "presence_state" {
            assert!(self.refs.is_empty(), "a second state");
            self.refs.extend(refs_of(&frame[4]));
            return;
        }
        for r in refs_of(&frame[4]["leaves"]) {
            assert!(
                self.refs.remove(&r),
                "a leave of {r}, which this client never had"
            );
        }
        for r in refs_of(&frame[4]["joins"]) {
            assert!(self.refs.insert(r.clone()), "{r} joined twice");
        }
    }
}

/// Every ref on `topic`, as the server holds them.
fn server_refs(presence: &Presence, topic: &str) -> std::collections::HashSet<String> {
    presence
        .list(topic)
        .0
        .values()
        .flatten()
        .map(|m| m["phx_ref"].as_str().unwrap().to_string())
        .collect()
}

/// Reads `client`'s presence frames into `view` until it holds exactly what the server
/// holds (bounded by WAIT).
async fn converge(client: &mut Client, view: &mut View, presence: &Presence, topic: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while view.refs != server_refs(presence, topic) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not converged: {} refs against {}",
            view.refs.len(),
            presence.count_connections(topic)
        );
        let frame = tokio::time::timeout(Duration::from_millis(200), presence_frame(client)).await;
        if let Ok(frame) = frame {
            view.apply(&frame);
        }
    }
}

#[tokio::test]
async fn a_joiner_inside_a_long_window_gets_its_state_within_the_base_and_then_only_what_it_lacks()
{
    const TOPIC: &str = "room:long";
    let (server, presence, _) = start(50).await;
    let mut old = server.client("").await;
    old.join(TOPIC, json!({"key": "old"})).await;
    let mut old_view = View::default();
    old_view.apply(&presence_frame(&mut old).await);
    // A big room (its window may grow to 3.5 s), then a steady stream of changes: every 5 ms
    // a join, and every other step the leave of the join before it (often in the same
    // window: the pair cancels in the window's diff, but not for a state taken between).
    for owner in 1..=7_000 {
        presence
            .track_owner(TOPIC, OwnerId(owner), &format!("k{owner}"), json!({}))
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (presence, stop) = (presence.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut owner = 10_000;
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                owner += 1;
                let key = format!("k{owner}");
                presence
                    .track_owner(TOPIC, OwnerId(owner), &key, json!({}))
                    .unwrap();
                if owner % 2 == 0 {
                    let before = format!("k{}", owner - 1);
                    presence
                        .untrack_owner(TOPIC, OwnerId(owner - 1), &before)
                        .unwrap();
                }
            }
        })
    };
    // The window grows while the changes keep coming: wait until two diffs are ≥ 700 ms
    // apart (an 800 ms window); the next one is twice as long.
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    let mut last = tokio::time::Instant::now();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the window never grew"
        );
        let frame = presence_frame(&mut old).await;
        old_view.apply(&frame);
        let now = tokio::time::Instant::now();
        let gap = now - std::mem::replace(&mut last, now);
        if gap >= Duration::from_millis(700) {
            break;
        }
    }
    // A window of ≥ 1.6 s has just opened: join inside it.
    let mut late = server.client("").await;
    late.join(TOPIC, json!({"key": "late"})).await;
    let joined = tokio::time::Instant::now();
    let state = presence_frame(&mut late).await;
    let waited = joined.elapsed();
    assert_eq!(state[3], "presence_state");
    assert!(
        waited < Duration::from_millis(700),
        "the state came {waited:?} after the join reply: it waited for the window's end"
    );
    let mut late_view = View::default();
    late_view.apply(&state);
    // The window ends later; the joiner gets what changed after its state, nothing twice,
    // no leave of what it never had (View::apply checks), and ends with the server's view.
    let until = tokio::time::Instant::now() + Duration::from_millis(2_500);
    while tokio::time::Instant::now() < until {
        if let Ok(frame) =
            tokio::time::timeout(Duration::from_millis(100), presence_frame(&mut late)).await
        {
            late_view.apply(&frame);
        }
    }
    stop.store(true, Ordering::SeqCst);
    feeder.await.unwrap();
    converge(&mut late, &mut late_view, &presence, TOPIC).await;
    converge(&mut old, &mut old_view, &presence, TOPIC).await;
    assert!(
        late_view.frames >= 2,
        "the changes after its state came as diffs"
    );
}

#[tokio::test]
async fn a_window_ends_once_it_would_queue_max_window_metas() {
    const TOPIC: &str = "room:volume";
    const LISTENERS: usize = 20;
    const JOINS: u64 = 1_000;
    let mut config = test_config();
    config.presence = PresenceConfig {
        // 20 listeners: a window is full at 100 changes.
        max_window_metas: 2_000,
        ..settings(50)
    };
    let server = TestServer::start_with(config, move |builder| {
        let room = Room {
            presence: builder.presence(),
        };
        builder.socket(SocketRoute::new(
            "/socket",
            Router::new().channel("room:*", room),
        ))
    });
    let presence = server.endpoint.presence().clone();
    let mut clients = Vec::new();
    for i in 0..LISTENERS {
        let mut client = server.client("").await;
        client.join(TOPIC, json!({"key": format!("c{i}")})).await;
        clients.push(client);
    }
    // Every listener has its state and knows everyone.
    let mut views: Vec<View> = (0..LISTENERS).map(|_| View::default()).collect();
    for (client, view) in clients.iter_mut().zip(&mut views) {
        converge(client, view, &presence, TOPIC).await;
    }
    // 1,000 joins in 100 ms: one or two base windows by time alone.
    for batch in 0..100 {
        for i in 0..10 {
            let owner = 1 + batch * 10 + i;
            presence
                .track_owner(TOPIC, OwnerId(owner), &format!("k{owner}"), json!({}))
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        presence.count_connections(TOPIC),
        LISTENERS + JOINS as usize
    );
    for (client, view) in clients.iter_mut().zip(&mut views) {
        let before = view.frames;
        converge(client, view, &presence, TOPIC).await;
        let diffs = view.frames - before;
        assert!(
            diffs >= 8,
            "{diffs} diffs for {JOINS} joins: windows of up to 100 changes expected"
        );
    }
}
