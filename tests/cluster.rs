//! Cluster tests: several example processes share presence and broadcasts through a real
//! `redis-server` (docs/contracts.md). Nodes are killed, frozen, restarted and
//! stopped cleanly; Redis itself goes away and comes back.
//!
//! Every wait is bounded. Sleeps are used only as pacing where a duration is the thing
//! under test (an outage or a freeze longer than `down_period`), never to synchronise: the
//! tests wait for what clients observe. The tests take the machine-wide lock of
//! `support::serial` and run one at a time (nor beside another binary's test that measures
//! memory or time), so their timing bounds are not skewed by each other on a 2-core machine.
//!
//! Needs `redis-server` on PATH (`.ci/run` installs it) and the examples built
//! (`cargo build --examples`).

#[path = "support/redis.rs"]
mod redis_support;
mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use futures_util::{StreamExt, future::join_all};
use redis_support::{Redis, free_port};
use serde_json::{Value, json};
use support::{
    Client,
    example::{Example, Launch},
    reply,
};

/// Heartbeat period of every node (ms).
const BROADCAST_MS: u64 = 100;
/// Default silence after which a peer is hidden (ms).
const DOWN_MS: u64 = 600;
/// Default silence after which a peer is forgotten (ms).
const PERMDOWN_MS: u64 = 3000;
/// Presence diff coalescing window (ms).
const COALESCE_MS: u64 = 50;
/// Upper bound of any wait for convergence (below `support::WAIT`, so that these waits
/// fail first, with the view in the message).
const CONVERGE: Duration = Duration::from_secs(8);
const LOBBY: &str = "room:lobby";

/// One test at a time (see the module docs), and none beside another binary's test that
/// measures memory or time (`support::serial`). Every test holds the guard to its end.
fn serial() -> support::serial::Serial {
    support::serial::serial()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------
// Cluster: one Redis and named presence_chat / online_counter nodes.

#[derive(Clone, Copy)]
struct Periods {
    broadcast: u64,
    down: u64,
    permdown: u64,
}

/// A long down period: a peer's entries stay visible for 5 s after it falls silent, so
/// anything faster can only come from a goodbye or a new incarnation.
const SLOW_DOWN: Periods = Periods {
    broadcast: BROADCAST_MS,
    down: 5000,
    permdown: 10_000,
};

const FAST: Periods = Periods {
    broadcast: BROADCAST_MS,
    down: DOWN_MS,
    permdown: PERMDOWN_MS,
};

struct Cluster {
    // Dropped in this order: the nodes first, so they do not log Redis going away.
    nodes: BTreeMap<&'static str, Example>,
    redis: Redis,
    example: &'static str,
    periods: Periods,
}

fn node_env(url: &str, node: &str, periods: Periods) -> Vec<(String, String)> {
    vec![
        ("TETHER_PUBSUB_URL".into(), url.into()),
        ("TETHER_NODE".into(), node.into()),
        (
            "TETHER_PRESENCE_BROADCAST_PERIOD_MS".into(),
            periods.broadcast.to_string(),
        ),
        (
            "TETHER_PRESENCE_DOWN_PERIOD_MS".into(),
            periods.down.to_string(),
        ),
        (
            "TETHER_PRESENCE_PERMDOWN_PERIOD_MS".into(),
            periods.permdown.to_string(),
        ),
        (
            "TETHER_PRESENCE_COALESCE_MS".into(),
            COALESCE_MS.to_string(),
        ),
        ("RUST_LOG".into(), "warn,tether::pubsub=info".into()),
    ]
}

fn start_node(example: &str, url: &str, node: &str, periods: Periods) -> Example {
    let env = node_env(url, node, periods);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Example::start_with(
        example,
        &env,
        &Launch {
            port: None,
            capture_stderr: true,
            label: node.to_string(),
        },
    )
}

impl Cluster {
    fn start(example: &'static str, names: &[&'static str], periods: Periods) -> Cluster {
        let redis = Redis::start();
        let mut cluster = Cluster {
            redis,
            example,
            periods,
            nodes: BTreeMap::new(),
        };
        for name in names {
            cluster.start_node(name);
        }
        cluster
    }

    /// Starts (or restarts, as a new process and so a new incarnation) node `name`.
    fn start_node(&mut self, name: &'static str) {
        let node = start_node(self.example, &self.redis.url(), name, self.periods);
        self.nodes.insert(name, node);
    }

    fn node(&mut self, name: &str) -> &mut Example {
        self.nodes.get_mut(name).unwrap()
    }

    fn port(&self, name: &str) -> u16 {
        self.nodes[name].port
    }

    /// No node panicked (every node's stderr is kept).
    fn assert_no_panic(&self) {
        for (name, node) in &self.nodes {
            let stderr = node.stderr();
            assert!(
                !stderr.contains("panicked"),
                "node {name} panicked: {stderr}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A client's presence view, built from `presence_state` and `presence_diff` by phx_ref, as
// phoenix.js does. Anything phoenix.js would have to paper over is recorded as an anomaly:
// a diff before the state, a join of a ref already shown, a leave of a ref not shown, a ref
// on both sides of one diff.

#[derive(Debug, Default, Clone)]
struct View {
    /// key -> phx_ref -> meta
    entries: BTreeMap<String, BTreeMap<String, Value>>,
    got_state: bool,
    anomalies: Vec<String>,
}

fn metas(presences: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    if let Some(map) = presences.as_object() {
        for (key, entry) in map {
            for meta in entry["metas"].as_array().into_iter().flatten() {
                let phx_ref = meta["phx_ref"].as_str().unwrap_or_default().to_string();
                out.push((key.clone(), phx_ref, meta.clone()));
            }
        }
    }
    out
}

/// A join or leave of (key, phx_ref) as one client read it.
#[derive(Debug, Clone)]
#[allow(dead_code)] // keys are read through Debug in failure messages
enum Event {
    Join(String, String),
    Leave(String, String),
}

impl View {
    /// Applies a presence frame; returns the joins and leaves it made.
    fn apply(&mut self, frame: &Value) -> Vec<Event> {
        let mut events = Vec::new();
        match frame[3].as_str() {
            Some("presence_state") => {
                if self.got_state {
                    self.anomalies
                        .push(format!("second presence_state: {frame}"));
                }
                self.got_state = true;
                self.entries.clear();
                for (key, phx_ref, meta) in metas(&frame[4]) {
                    events.push(Event::Join(key.clone(), phx_ref.clone()));
                    self.entries.entry(key).or_default().insert(phx_ref, meta);
                }
            }
            Some("presence_diff") => {
                if !self.got_state {
                    self.anomalies.push(format!("diff before state: {frame}"));
                }
                let joins = metas(&frame[4]["joins"]);
                let leaves = metas(&frame[4]["leaves"]);
                for (_, r, _) in &joins {
                    if leaves.iter().any(|(_, l, _)| l == r) {
                        self.anomalies
                            .push(format!("{r} joins and leaves in {frame}"));
                    }
                }
                for (key, phx_ref, meta) in joins {
                    let metas = self.entries.entry(key.clone()).or_default();
                    if metas.insert(phx_ref.clone(), meta).is_some() {
                        self.anomalies
                            .push(format!("duplicate join of {key} {phx_ref}"));
                    }
                    events.push(Event::Join(key, phx_ref));
                }
                for (key, phx_ref, _) in leaves {
                    let removed = self
                        .entries
                        .get_mut(&key)
                        .and_then(|metas| metas.remove(&phx_ref));
                    if removed.is_none() {
                        self.anomalies
                            .push(format!("leave of unknown {key} {phx_ref}"));
                    }
                    if self.entries.get(&key).is_some_and(BTreeMap::is_empty) {
                        self.entries.remove(&key);
                    }
                    events.push(Event::Leave(key, phx_ref));
                }
            }
            _ => {}
        }
        events
    }

    /// key -> number of metas.
    fn counts(&self) -> BTreeMap<String, usize> {
        self.entries
            .iter()
            .map(|(k, metas)| (k.clone(), metas.len()))
            .collect()
    }

    fn is(&self, expected: &[(&str, usize)]) -> bool {
        let expected: BTreeMap<String, usize> =
            expected.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        self.got_state && self.counts() == expected
    }

    fn refs(&self) -> BTreeSet<String> {
        self.entries
            .values()
            .flat_map(|metas| metas.keys().cloned())
            .collect()
    }

    fn refs_of(&self, key: &str) -> BTreeSet<String> {
        self.entries
            .get(key)
            .map(|metas| metas.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A chat client in `room:lobby` that keeps its presence view and the shouts it got.
struct Member {
    label: String,
    client: Client,
    join_ref: String,
    view: View,
    /// Every join and leave applied to the view, with when it was read.
    events: Vec<(Instant, Event)>,
    shouts: Vec<Value>,
    others: Vec<Value>,
}

impl Member {
    /// Connects to the node on `port` as `user`, joins the lobby and waits (bounded) for its
    /// `presence_state`.
    async fn join(port: u16, user: &str, label: &str) -> Member {
        let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user_id={user}");
        let mut client = Client::connect(&url).await;
        let (join_ref, frame) = client.join(LOBBY, json!({})).await;
        reply(&frame, "ok");
        let mut member = Member {
            label: label.to_string(),
            client,
            join_ref,
            view: View::default(),
            events: Vec::new(),
            shouts: Vec::new(),
            others: Vec::new(),
        };
        member
            .wait_until("its presence_state", Instant::now() + CONVERGE, |v| {
                v.got_state
            })
            .await;
        member
    }

    fn handle(&mut self, frame: Value) {
        let now = Instant::now();
        match frame[3].as_str() {
            Some("presence_state" | "presence_diff") => {
                for event in self.view.apply(&frame) {
                    self.events.push((now, event));
                }
            }
            Some("shout") => self.shouts.push(frame),
            _ => self.others.push(frame),
        }
    }

    /// Reads one frame before `deadline`; false on timeout.
    async fn next(&mut self, deadline: Instant) -> bool {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // `Client::recv` only polls the stream: dropping it on timeout loses nothing.
        match tokio::time::timeout(remaining, self.client.recv()).await {
            Ok(frame) => {
                self.handle(frame);
                true
            }
            Err(_) => false,
        }
    }

    /// Reads frames until `pred` holds for the view; returns when it first held (as read).
    /// Panics at `deadline`.
    async fn wait_until(
        &mut self,
        what: &str,
        deadline: Instant,
        pred: impl Fn(&View) -> bool,
    ) -> Instant {
        loop {
            if pred(&self.view) {
                return Instant::now();
            }
            if !self.next(deadline).await {
                panic!(
                    "{}: timed out waiting for {what}; view {:?}, anomalies {:?}",
                    self.label,
                    self.view.counts(),
                    self.view.anomalies
                );
            }
        }
    }

    /// Reads every frame that arrives before `deadline` (pacing only: a quiet period in which
    /// nothing unexpected may show up).
    async fn drain_until(&mut self, deadline: Instant) {
        while self.next(deadline).await {}
    }

    async fn shout(&mut self, body: &str) {
        let msg_ref = self.client.next_ref();
        self.client
            .send(
                Some(&self.join_ref),
                &msg_ref,
                LOBBY,
                "shout",
                json!({ "body": body }),
            )
            .await;
    }

    fn shouts_of(&self, body: &str) -> usize {
        self.shouts.iter().filter(|f| f[4]["body"] == body).count()
    }
}

/// Every member's view satisfies `pred` (read concurrently, so the returned instants are
/// when each member saw it). Panics after `timeout`.
async fn all_until(
    members: &mut [&mut Member],
    what: &str,
    timeout: Duration,
    pred: impl Fn(&View) -> bool,
) -> Vec<Instant> {
    let deadline = Instant::now() + timeout;
    let pred = &pred;
    join_all(
        members
            .iter_mut()
            .map(|m| m.wait_until(what, deadline, move |v| pred(v))),
    )
    .await
}

/// Every member's view is exactly `expected` (key, count), and all hold the same refs.
async fn converge(members: &mut [&mut Member], expected: &[(&str, usize)]) {
    all_until(members, &format!("view {expected:?}"), CONVERGE, |v| {
        v.is(expected)
    })
    .await;
    assert_same_refs(members);
}

fn assert_same_refs(members: &[&mut Member]) {
    let first = members[0].view.refs();
    for m in members.iter().skip(1) {
        assert_eq!(
            m.view.refs(),
            first,
            "{} and {} disagree on phx_refs: {:?} vs {:?}",
            m.label,
            members[0].label,
            m.view.entries,
            members[0].view.entries
        );
    }
}

fn assert_no_anomalies(members: &[&mut Member]) {
    for m in members {
        assert!(
            m.view.anomalies.is_empty(),
            "{}: presence anomalies {:#?}",
            m.label,
            m.view.anomalies
        );
    }
}

/// Everyone in `members` gets `body` from `sender` exactly once.
///
/// Each member reads until a marker shout arrives. Redis delivers one channel to every
/// subscriber in a single order, so a duplicate that went through Redis (a node taking its
/// own message back, a double publish) would reach every node before a marker published
/// after it. The sender's own node delivers its local copy at once, though, ahead of its own
/// messages coming back from Redis: so, with `fence` (a member on another node), that
/// member shouts a second marker after it got the first, and everyone reads up to that one.
/// Without `fence` (a single node, or Redis down) the sender's marker is enough.
async fn assert_shout_once(
    sender: usize,
    fence: Option<usize>,
    members: &mut [&mut Member],
    body: &str,
) {
    let marker = format!("{body}/marker");
    members[sender].shout(body).await;
    members[sender].shout(&marker).await;
    let deadline = Instant::now() + CONVERGE;
    await_shout(members, &marker, deadline).await;
    if let Some(fence) = fence {
        let marker = format!("{body}/fence");
        members[fence].shout(&marker).await;
        await_shout(members, &marker, deadline).await;
    }
    for m in members.iter() {
        assert_eq!(
            m.shouts_of(body),
            1,
            "{} got {body:?} {} times: {:?}",
            m.label,
            m.shouts_of(body),
            m.shouts
        );
    }
}

/// Every member reads until it got a shout `body` (bounded by `deadline`).
async fn await_shout(members: &mut [&mut Member], body: &str, deadline: Instant) {
    join_all(members.iter_mut().map(|m| async move {
        while m.shouts_of(body) == 0 {
            assert!(
                m.next(deadline).await,
                "{}: the shout {body:?} never arrived; shouts {:?}",
                m.label,
                m.shouts
            );
        }
    }))
    .await;
}

// ---------------------------------------------------------------------------------------
// 1. Three nodes share one view; a shout crosses nodes once.

#[tokio::test]
async fn three_nodes_converge_and_shouts_cross_nodes_once() {
    let _serial = serial();
    let cluster = Cluster::start("presence_chat", &["a", "b", "c"], FAST);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    let mut alice2 = Member::join(cluster.port("c"), "alice", "alice@c").await;
    let mut members = [&mut alice, &mut bob, &mut carol, &mut alice2];
    converge(&mut members, &[("alice", 2), ("bob", 1), ("carol", 1)]).await;
    assert_shout_once(0, Some(1), &mut members, "hello from a").await;
    assert_shout_once(1, Some(2), &mut members, "hello from b").await;
    assert_no_anomalies(&members);
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 2. A SIGKILLed node's presences leave everywhere after down_period, long before permdown.

/// The down rule's test: a down period long enough that no load makes a leave "at once"
/// look late enough, and a permdown period far enough that no load makes the down rule look
/// like anything else.
const KILL: Periods = Periods {
    broadcast: BROADCAST_MS,
    down: 1200,
    permdown: 30_000,
};

#[tokio::test]
async fn a_killed_node_is_hidden_after_down_period() {
    let _serial = serial();
    let mut cluster = Cluster::start("presence_chat", &["a", "b", "c"], KILL);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    {
        let mut all = [&mut alice, &mut bob, &mut carol];
        converge(&mut all, &[("alice", 1), ("bob", 1), ("carol", 1)]).await;
    }
    let bob_ref = alice.view.refs_of("bob");

    let killed = Instant::now();
    cluster.node("b").kill();
    // Only now: closing bob's socket earlier could have untracked him (a prompt leave).
    drop(bob);
    let mut observers = [&mut alice, &mut carol];
    let seen = all_until(&mut observers, "bob's leave", CONVERGE, |v| {
        v.refs_of("bob").is_empty()
    })
    .await;
    // The leave is the down rule at work, whatever the machine's load. Not at once: a leave
    // without the down rule (a goodbye, a closed socket) takes a coalescing window; the
    // bound is half the down period, so b's last heartbeat may have left up to 600 ms before
    // the kill (b starved by a busy machine) without failing the test. And long before the
    // permdown period (30 s), with 5 s for a busy machine's late ticks and reads: nothing but
    // the down rule hides a killed node's entries in that time.
    let lower = ms(KILL.down / 2);
    let upper = ms(KILL.down + 5000);
    assert!(upper < CONVERGE && upper < ms(KILL.permdown));
    for (m, at) in observers.iter().zip(&seen) {
        let took = at.duration_since(killed);
        eprintln!("{}: bob left {took:?} after SIGKILL", m.label);
        assert!(
            took >= lower && took <= upper,
            "{}: bob left {took:?} after the kill, expected within [{lower:?}, {upper:?}]",
            m.label
        );
        // Exactly bob's one entry left, and nobody else's.
        let leaves: Vec<&Event> = m
            .events
            .iter()
            .filter(|(t, e)| *t >= killed && matches!(e, Event::Leave(..)))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(leaves.len(), 1, "{}: leaves {leaves:?}", m.label);
        assert!(
            matches!(leaves[0], Event::Leave(k, r) if k == "bob" && bob_ref.contains(r)),
            "{}: {leaves:?}",
            m.label
        );
    }
    // Nothing else changes afterwards (a and c still see each other).
    let quiet = Instant::now() + ms(KILL.down + 2 * BROADCAST_MS);
    for m in observers.iter_mut() {
        m.drain_until(quiet).await;
        assert!(
            m.view.is(&[("alice", 1), ("carol", 1)]),
            "{}: {:?}",
            m.label,
            m.view.counts()
        );
    }
    assert_no_anomalies(&observers);
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 3. A node restarted under the same name replaces its old incarnation at once.

#[tokio::test]
async fn a_restarted_node_replaces_its_old_incarnation_without_ghosts() {
    let _serial = serial();
    // The old entries would stay visible for 5 s if the new incarnation did not replace
    // them, so "gone quickly" can only come from the replacement.
    let mut cluster = Cluster::start("presence_chat", &["a", "b", "c"], SLOW_DOWN);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    {
        let mut all = [&mut alice, &mut bob, &mut carol];
        converge(&mut all, &[("alice", 1), ("bob", 1), ("carol", 1)]).await;
    }
    let old_bob = alice.view.refs_of("bob");
    assert_eq!(old_bob.len(), 1);

    cluster.node("b").kill();
    // Only now: closing bob's socket earlier could have untracked him (a prompt leave).
    drop(bob);
    let restarted = Instant::now();
    cluster.start_node("b");
    let listening = restarted.elapsed();
    let mut observers = [&mut alice, &mut carol];
    // Old bob still visible here (down_period is far away) until the new b's first
    // heartbeat replaces the incarnation.
    let seen = all_until(&mut observers, "old bob replaced", ms(3000), |v| {
        v.refs_of("bob").is_disjoint(&old_bob)
    })
    .await;
    for (m, at) in observers.iter().zip(&seen) {
        let took = at.duration_since(restarted);
        eprintln!(
            "{}: old bob gone {took:?} after the restart began (listening after {listening:?})",
            m.label
        );
        assert!(
            took < listening + ms(1500),
            "{}: old bob lingered {took:?}: not replaced by the new incarnation",
            m.label
        );
    }

    let mut bob2 = Member::join(cluster.port("b"), "bob", "bob@b (restarted)").await;
    let mut all = [&mut alice, &mut carol, &mut bob2];
    converge(&mut all, &[("alice", 1), ("bob", 1), ("carol", 1)]).await;
    assert!(alice.view.refs_of("bob").is_disjoint(&old_bob));
    // A quiet period of a few heartbeats: the old entry never comes back.
    let quiet = Instant::now() + ms(5 * BROADCAST_MS);
    for m in [&mut alice, &mut carol, &mut bob2] {
        m.drain_until(quiet).await;
        assert!(
            m.view.is(&[("alice", 1), ("bob", 1), ("carol", 1)]),
            "{}: {:?}",
            m.label,
            m.view.counts()
        );
    }
    // No ghost: once old bob left a view, it never joined it again.
    for m in [&alice, &carol, &bob2] {
        let gone_at = m
            .events
            .iter()
            .position(|(_, e)| matches!(e, Event::Leave(_, r) if old_bob.contains(r)));
        let after = gone_at.map_or(0, |i| i + 1);
        let ghosts: Vec<&Event> = m.events[after..]
            .iter()
            .map(|(_, e)| e)
            .filter(|e| matches!(e, Event::Join(_, r) if old_bob.contains(r)))
            .collect();
        assert!(
            ghosts.is_empty(),
            "{}: old bob came back: {ghosts:?}",
            m.label
        );
    }
    assert_no_anomalies(&[&mut alice, &mut carol, &mut bob2]);
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 4. A frozen node is hidden, and comes back with its presences when it resumes.

#[tokio::test]
async fn a_frozen_node_is_hidden_then_comes_back() {
    let _serial = serial();
    let mut cluster = Cluster::start("presence_chat", &["a", "b", "c"], FAST);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    let mut alice2 = Member::join(cluster.port("c"), "alice", "alice@c").await;
    let full = [("alice", 2), ("bob", 1), ("carol", 1)];
    converge(&mut [&mut alice, &mut bob, &mut carol, &mut alice2], &full).await;
    let before = alice.view.refs();

    let stopped = Instant::now();
    cluster.node("c").stop();
    all_until(
        &mut [&mut alice, &mut bob],
        "c's presences hidden",
        CONVERGE,
        |v| v.is(&[("alice", 1), ("bob", 1)]),
    )
    .await;
    let hidden_after = stopped.elapsed();
    eprintln!("c's presences hidden {hidden_after:?} after SIGSTOP");
    // Stay frozen a little past the down period (but far from permdown), then resume.
    let frozen_for = ms(DOWN_MS + 4 * BROADCAST_MS);
    tokio::time::sleep(frozen_for.saturating_sub(stopped.elapsed())).await;
    cluster.node("c").cont();
    let resumed = Instant::now();

    converge(&mut [&mut alice, &mut bob, &mut carol, &mut alice2], &full).await;
    eprintln!("converged {:?} after SIGCONT", resumed.elapsed());
    // Nor did they see the other nodes leave: the pause was c's own, and c does not count
    // the time it did not run as its peers' silence.
    for m in [&carol, &alice2] {
        let flaps: Vec<&Event> = m
            .events
            .iter()
            .filter(|(t, e)| *t >= resumed && matches!(e, Event::Leave(..)))
            .map(|(_, e)| e)
            .collect();
        assert!(
            flaps.is_empty(),
            "{}: leaves after SIGCONT {flaps:?}",
            m.label
        );
    }
    // The same entries came back (hidden, not dropped): nothing was re-tracked.
    assert_eq!(alice.view.refs(), before);
    // c's own clients never saw their own node's entries leave.
    for m in [&carol, &alice2] {
        let own_leaves: Vec<&Event> = m
            .events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| matches!(e, Event::Leave(k, _) if k == "carol"))
            .collect();
        assert!(own_leaves.is_empty(), "{}: {own_leaves:?}", m.label);
    }
    assert_no_anomalies(&[&mut alice, &mut bob, &mut carol, &mut alice2]);
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 5. Redis goes away and comes back on the same port.

#[tokio::test]
async fn redis_restart_keeps_nodes_serving_and_views_converge() {
    let _serial = serial();
    let mut cluster = Cluster::start("presence_chat", &["a", "b", "c"], FAST);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    converge(
        &mut [&mut alice, &mut bob, &mut carol],
        &[("alice", 1), ("bob", 1), ("carol", 1)],
    )
    .await;

    let outage = Instant::now();
    cluster.redis.kill();
    // During the outage a node still serves its own clients: a new client can connect, join
    // and sees its node's presences (its own and alice).
    let mut dave = Member::join(cluster.port("a"), "dave", "dave@a").await;
    assert_eq!(
        dave.view.refs_of("dave").len(),
        1,
        "{:?}",
        dave.view.counts()
    );
    assert!(dave.view.refs_of("alice") == alice.view.refs_of("alice"));
    // Local broadcasts still work.
    assert_shout_once(0, None, &mut [&mut dave, &mut alice], "local during outage").await;
    // Silent peers are hidden after down_period: the nodes noticed the outage.
    all_until(
        &mut [&mut alice, &mut dave],
        "b and c hidden on a",
        CONVERGE,
        |v| v.is(&[("alice", 1), ("dave", 1)]),
    )
    .await;
    all_until(&mut [&mut bob], "a and c hidden on b", CONVERGE, |v| {
        v.is(&[("bob", 1)])
    })
    .await;
    all_until(&mut [&mut carol], "a and b hidden on c", CONVERGE, |v| {
        v.is(&[("carol", 1)])
    })
    .await;
    // Keep Redis away a little longer than the down period in total (pacing: the outage
    // length is what is under test), then bring it back on the same port.
    tokio::time::sleep(ms(DOWN_MS + 2 * BROADCAST_MS).saturating_sub(outage.elapsed())).await;
    cluster.redis.restart();
    let back = Instant::now();
    eprintln!("redis back after an outage of {:?}", outage.elapsed());

    let full = [("alice", 1), ("bob", 1), ("carol", 1), ("dave", 1)];
    converge(&mut [&mut alice, &mut bob, &mut carol, &mut dave], &full).await;
    eprintln!("converged {:?} after redis came back", back.elapsed());
    // Pub/sub works again both ways (publisher and subscriber of every node reconnected).
    assert_shout_once(
        1,
        Some(2),
        &mut [&mut alice, &mut bob, &mut carol, &mut dave],
        "after redis",
    )
    .await;
    // And the view stays right for a few more heartbeats (no late ghosts or losses).
    let quiet = Instant::now() + ms(5 * BROADCAST_MS);
    for m in [&mut alice, &mut bob, &mut carol, &mut dave] {
        m.drain_until(quiet).await;
        assert!(m.view.is(&full), "{}: {:?}", m.label, m.view.counts());
    }
    assert_same_refs(&[&mut alice, &mut bob, &mut carol, &mut dave]);
    assert_no_anomalies(&[&mut alice, &mut bob, &mut carol, &mut dave]);
    for name in ["a", "b", "c"] {
        let stderr = cluster.node(name).stderr();
        assert!(
            stderr.contains("recovered"),
            "node {name} never logged a recovery: {stderr}"
        );
    }
    cluster.assert_no_panic();
}

/// A Redis that stops answering for a second and a half (SIGSTOP, as a fork for a snapshot
/// or a swapped-out server can) is not a failure: the publishers wait for the reply
/// (`PUBLISH_REPLY_TIMEOUT`) instead of failing after redis-rs' default 500 ms, backing off
/// and reconnecting (what a loaded 5-node cluster did, delaying its heartbeats), and the
/// broadcast sent meanwhile arrives once.
#[tokio::test]
async fn a_redis_pause_of_a_second_is_not_a_failure_and_loses_no_broadcast() {
    let _serial = serial();
    let cluster = Cluster::start("presence_chat", &["a", "b"], SLOW_DOWN);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut members = [&mut alice, &mut bob];
    converge(&mut members, &[("alice", 1), ("bob", 1)]).await;
    let redis = cluster.redis.pid().expect("redis runs") as i32;
    // SAFETY: kill(2) on our own redis-server child, not reaped before the cluster drops.
    assert_eq!(unsafe { libc::kill(redis, libc::SIGSTOP) }, 0);
    members[0].shout("during the pause").await;
    // The pause itself is what this test is about: no event could stand in for it.
    tokio::time::sleep(ms(1500)).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(redis, libc::SIGCONT) }, 0);
    let deadline = Instant::now() + CONVERGE;
    await_shout(&mut members, "during the pause", deadline).await;
    assert_shout_once(1, Some(0), &mut members, "after the pause").await;
    for m in members.iter() {
        assert_eq!(m.shouts_of("during the pause"), 1, "{}", m.label);
    }
    for (name, node) in &cluster.nodes {
        let stderr = node.stderr();
        assert!(
            !stderr.contains("publish failed"),
            "node {name} counted the pause as a failure: {stderr}"
        );
    }
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 6. Redis down at start is not an error.

#[tokio::test]
async fn a_node_starts_and_serves_while_redis_is_down() {
    let _serial = serial();
    let port = free_port(); // closed: nothing listens there (yet)
    let url = format!("redis://127.0.0.1:{port}/");
    let mut a = start_node("presence_chat", &url, "a", FAST);
    let mut alice = Member::join(a.port, "alice", "alice@a").await;
    assert!(alice.view.is(&[("alice", 1)]), "{:?}", alice.view.counts());
    assert_shout_once(0, None, &mut [&mut alice], "alone").await;
    assert!(
        a.wait_stderr("retrying", Duration::from_secs(5)),
        "no retry message on stderr: {}",
        a.stderr()
    );
    let stderr = a.stderr();
    // A clear message: it names Redis, the address it tries and that it retries.
    assert!(
        stderr.lines().any(|l| l.contains("redis")
            && l.contains("retrying")
            && l.contains(&format!("127.0.0.1:{port}"))),
        "{stderr}"
    );
    assert!(a.is_running(), "node exited: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // It keeps retrying: once Redis appears on that port, the node joins a cluster.
    let redis = Redis::start_on(port).expect("redis on the formerly closed port");
    let b = start_node("presence_chat", &redis.url(), "b", FAST);
    let mut bob = Member::join(b.port, "bob", "bob@b").await;
    converge(&mut [&mut alice, &mut bob], &[("alice", 1), ("bob", 1)]).await;
    assert_no_anomalies(&[&mut alice, &mut bob]);
    assert!(!a.stderr().contains("panicked"));
    drop((a, b)); // before Redis
}

// ---------------------------------------------------------------------------------------
// 7. A clean shutdown says goodbye: peers drop the node's presences at once.

#[tokio::test]
async fn sigterm_says_goodbye_and_peers_drop_presences_at_once() {
    let _serial = serial();
    let mut cluster = Cluster::start("presence_chat", &["a", "b", "c"], SLOW_DOWN);
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut alice2 = Member::join(cluster.port("a"), "alice", "alice@a#2").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    let mut carol = Member::join(cluster.port("c"), "carol", "carol@c").await;
    converge(
        &mut [&mut alice, &mut alice2, &mut bob, &mut carol],
        &[("alice", 2), ("bob", 1), ("carol", 1)],
    )
    .await;
    let alice_refs = bob.view.refs_of("alice");

    let mut node_a = cluster.nodes.remove("a").unwrap();
    let terminated = Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        let status = node_a.terminate();
        (status, node_a)
    });
    // a's own clients are closed with 1001 (going away).
    assert_eq!(alice.client.expect_close().await.0, 1001);
    assert_eq!(alice2.client.expect_close().await.0, 1001);
    let mut observers = [&mut bob, &mut carol];
    let seen = all_until(&mut observers, "alice's leaves", CONVERGE, |v| {
        v.refs_of("alice").is_empty()
    })
    .await;
    for (m, at) in observers.iter().zip(&seen) {
        let took = at.duration_since(terminated);
        eprintln!("{}: alice left {took:?} after SIGTERM", m.label);
        assert!(
            took < Duration::from_secs(2),
            "{}: alice left only {took:?} after SIGTERM (down_period is 5 s): no goodbye?",
            m.label
        );
        let left: BTreeSet<String> = m
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Leave(k, r) if k == "alice" => Some(r.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(left, alice_refs, "{}", m.label);
    }
    let (status, node_a) = exit.await.unwrap();
    assert!(
        status.success(),
        "a exited with {status}: {}",
        node_a.stderr()
    );
    assert!(observers[0].view.is(&[("bob", 1), ("carol", 1)]));
    assert_no_anomalies(&observers);
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 8. online_counter on two nodes: commander broadcasts reach pages on both.

/// `GET path`; asserts a 200 and returns the body.
async fn http_get(port: u16, path: &str) -> String {
    let response = support::http_get(port, path).await;
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "GET {path}: {response}"
    );
    let (_, body) = response.split_once("\r\n\r\n").expect("no body");
    body.to_string()
}

fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&#60;", "<")
        .replace("&gt;", ">")
        .replace("&#62;", ">")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The page token (`data-tether-token`) of an online_counter page.
fn page_token(html: &str) -> String {
    let start = html.find("data-tether-token=\"").expect("no token") + "data-tether-token=\"".len();
    let end = start + html[start..].find('"').unwrap();
    unescape(&html[start..end])
}

/// The server-rendered `#number_of_connections`.
fn connections_shown(html: &str) -> Option<usize> {
    let marker = "<span id=\"number_of_connections\">";
    let start = html.find(marker)? + marker.len();
    let end = start + html[start..].find('<')?;
    html[start..end].trim().parse().ok()
}

/// Loads `/` from the node on `port` and joins its page channel with the page's token.
/// Returns the page's socket and the frames it got up to the join reply (on_connect's
/// patches are pushed before the reply).
async fn open_page(port: u16) -> (Client, Vec<Value>) {
    let html = http_get(port, "/").await;
    let token = page_token(&html);
    let url = format!("ws://127.0.0.1:{port}/tether/socket/websocket?vsn=2.0.0");
    let mut page = Client::connect(&url).await;
    let join_ref = page.next_ref();
    page.send(
        Some(&join_ref),
        &join_ref,
        "tether:page:counter",
        "phx_join",
        json!({ "token": token }),
    )
    .await;
    let mut frames = Vec::new();
    loop {
        let frame = page.recv().await;
        if frame[3] == "phx_reply" && frame[1] == join_ref.as_str() {
            reply(&frame, "ok");
            return (page, frames);
        }
        frames.push(frame);
    }
}

/// The first `#number_of_connections` patch showing `n` among `seen`, else the next one
/// read (bounded; the panic lists every frame the page got).
async fn connections_patch(page: &mut Client, seen: &[Value], n: &str, label: &str) -> Value {
    let mut frames = seen.to_vec();
    let deadline = Instant::now() + CONVERGE;
    loop {
        if let Some(frame) = frames.iter().find(|f| is_connections_patch(f, n)) {
            return frame.clone();
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, page.recv()).await {
            Ok(frame) => frames.push(frame),
            Err(_) => panic!("{label}: no #number_of_connections patch {n:?}; frames {frames:?}"),
        }
    }
}

fn is_connections_patch(frame: &Value, n: &str) -> bool {
    frame[2] == "tether:topic:global"
        && frame[3] == "patch"
        && frame[4]["sel"] == "#number_of_connections"
        && frame[4]["text"] == n
}

#[tokio::test]
async fn online_counter_broadcasts_reach_pages_on_both_nodes() {
    let _serial = serial();
    let cluster = Cluster::start("online_counter", &["a", "b"], FAST);
    let (mut page_a, early_a) = open_page(cluster.port("a")).await;
    connections_patch(&mut page_a, &early_a, "1", "page on a").await;
    // Node b counts page a once a's heartbeat reached it (observed through b's own render).
    let deadline = Instant::now() + CONVERGE;
    loop {
        let html = http_get(cluster.port("b"), "/").await;
        if connections_shown(&html) == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node b never counted page a: {:?}",
            connections_shown(&html)
        );
        tokio::time::sleep(ms(20)).await; // polling interval
    }
    let (mut page_b, early_b) = open_page(cluster.port("b")).await;
    // b's on_connect broadcast "2" on tether:topic:global: its own page and, through Redis,
    // page a on node a receive it.
    let on_b = connections_patch(&mut page_b, &early_b, "2", "page on b").await;
    let on_a = connections_patch(&mut page_a, &[], "2", "page on a").await;
    assert_eq!(on_a, on_b);
    assert_eq!(on_a[0], Value::Null);
    // Both nodes now render 2 as well.
    for node in ["a", "b"] {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let html = http_get(cluster.port(node), "/").await;
            if connections_shown(&html) == Some(2) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {node} renders {:?}",
                connections_shown(&html)
            );
            tokio::time::sleep(ms(20)).await; // polling interval
        }
    }
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 9. Anyone who can PUBLISH on the Redis server: garbage, a forged goodbye, a heartbeat with
// seq = u64::MAX, a `js` patch. None of it has any effect; the nodes count and log it.

/// The parts of a bus envelope (version 1): `[1][mac: 32][instance: u64][u16 node][node]
/// [u16 topic][topic][payload]`.
struct Envelope {
    head: Vec<u8>,
    node: String,
    topic: String,
    payload: Vec<u8>,
}

impl Envelope {
    fn parse(bytes: &[u8]) -> Envelope {
        // Version, MAC, instance, counter, time.
        let head = bytes[..57].to_vec();
        let mut at = 57;
        let mut text = || {
            let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
            let s = String::from_utf8(bytes[at + 2..at + 2 + len].to_vec()).unwrap();
            at += 2 + len;
            s
        };
        let node = text();
        let topic = text();
        Envelope {
            head,
            node,
            topic,
            payload: bytes[at..].to_vec(),
        }
    }

    /// The same head (version, MAC, instance, counter, time) around another node, topic and payload: what
    /// an attacker who copied a genuine message can build.
    fn forge(&self, node: &str, topic: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = self.head.clone();
        for part in [node.as_bytes(), topic.as_bytes()] {
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(payload);
        out
    }
}

/// PUBLISHes each of `messages`, as it is, on `channel` (what anyone with access to the
/// Redis can do).
async fn publish_raw(redis: &redis::Client, channel: &str, messages: &[Vec<u8>]) {
    let mut publisher = redis.get_multiplexed_async_connection().await.unwrap();
    for message in messages {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message.as_slice())
            .query_async(&mut publisher)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn foreign_publishes_on_the_bus_have_no_effect() {
    let _serial = serial();
    let cluster = Cluster::start("presence_chat", &["a", "b"], FAST);
    // The examples run with TETHER_SECRET_KEY_BASE = "s" x 64 and no [pubsub] channel.
    let bus = tether::pubsub::BusIdentity::derive("s".repeat(64).as_bytes(), None);
    let channel = bus.channel().to_string();
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    converge(&mut [&mut alice, &mut bob], &[("alice", 1), ("bob", 1)]).await;
    assert_eq!(
        cluster.redis.subscribers(&channel),
        Some(2),
        "the nodes do not listen on the derived channel {channel}"
    );

    // Copy a genuine heartbeat of node a from the bus.
    let redis = redis::Client::open(cluster.redis.url()).unwrap();
    let mut sniffer = redis.get_async_pubsub().await.unwrap();
    sniffer.subscribe(&channel).await.unwrap();
    let heartbeat = {
        let mut messages = sniffer.on_message();
        let deadline = Instant::now() + CONVERGE;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let message = tokio::time::timeout(remaining, messages.next())
                .await
                .expect("no heartbeat of node a on the bus")
                .unwrap();
            let envelope = Envelope::parse(message.get_payload_bytes());
            let gossip: Value = serde_json::from_slice(&envelope.payload).unwrap_or_default();
            if envelope.node == "a" && gossip["g"]["Heartbeat"].is_object() {
                break (envelope, gossip);
            }
        }
    };
    let (envelope, gossip) = heartbeat;
    let from = gossip["g"]["Heartbeat"]["from"].clone();
    let mut frozen = gossip.clone();
    frozen["g"]["Heartbeat"]["seq"] = json!(u64::MAX);
    frozen["g"]["Heartbeat"]["ops"] = json!([]);
    let goodbye = json!({"v": 1, "g": {"Goodbye": {"from": from}}});
    let js = json!([null, null, LOBBY, "patch", {"op": "js", "js": "alert(1)"}]);
    let attacks: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        envelope.forge("a", &envelope.topic, goodbye.to_string().as_bytes()),
        envelope.forge("a", &envelope.topic, frozen.to_string().as_bytes()),
        envelope.forge("x", LOBBY, js.to_string().as_bytes()),
        envelope.forge("x", LOBBY, b"\xff\xfe not utf-8"),
    ];
    publish_raw(&redis, &channel, &attacks).await;
    // A forged goodbye would drop alice from b at once; several down periods pass quietly.
    let quiet = Instant::now() + ms(3 * DOWN_MS);
    bob.drain_until(quiet).await;
    alice.drain_until(Instant::now()).await;
    assert!(bob.view.is(&[("alice", 1), ("bob", 1)]), "{:?}", bob.view);
    // A frozen mirror would never show a's later changes: carol joins on a.
    let mut carol = Member::join(cluster.port("a"), "carol", "carol@a").await;
    converge(
        &mut [&mut alice, &mut bob, &mut carol],
        &[("alice", 1), ("bob", 1), ("carol", 1)],
    )
    .await;
    for member in [&alice, &bob, &carol] {
        assert!(
            member.others.iter().all(|f| f[3] != "patch"),
            "{} received a forged patch: {:?}",
            member.label,
            member.others
        );
    }
    assert_no_anomalies(&[&mut alice, &mut bob, &mut carol]);
    let b = &cluster.nodes["b"];
    assert!(
        b.wait_stderr("dropped a message on the redis bus", CONVERGE),
        "node b did not report the forged messages"
    );
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 10. Two processes under one node name ignore each other's messages (each takes the other's
// for its own); each must say so loudly instead of partitioning silently.

#[tokio::test]
async fn two_processes_with_one_node_name_are_reported() {
    let _serial = serial();
    let cluster = Cluster::start("presence_chat", &["a"], FAST);
    let twin = start_node("presence_chat", &cluster.redis.url(), "a", FAST);
    // Each publishes heartbeats every 100 ms; both hear the other under their own name.
    let needle = "another process publishes under this node's name";
    assert!(
        twin.wait_stderr(needle, CONVERGE),
        "the second process did not report the first"
    );
    assert!(
        cluster.nodes["a"].wait_stderr(needle, CONVERGE),
        "the first process did not report the second"
    );
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 11. Issue 21, N6: genuine messages of a node's previous run, published again after the
// permdown period since its restart, neither hide the live node nor bring back ghosts.

/// Every message on the bus, as published, from when it is called until the returned
/// task is aborted.
async fn capture_bus(
    redis: &Redis,
    channel: &str,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    tokio::task::JoinHandle<()>,
) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut sniffer = client.get_async_pubsub().await.unwrap();
    sniffer.subscribe(channel).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = seen.clone();
    let task = tokio::spawn(async move {
        let mut messages = sniffer.into_on_message();
        while let Some(message) = messages.next().await {
            into.lock()
                .unwrap()
                .push(message.get_payload_bytes().to_vec());
        }
    });
    (seen, task)
}

fn bus_channel() -> String {
    // The examples run with TETHER_SECRET_KEY_BASE = "s" x 64 and no [pubsub] channel.
    tether::pubsub::BusIdentity::derive("s".repeat(64).as_bytes(), None)
        .channel()
        .to_string()
}

#[tokio::test]
async fn replayed_messages_of_a_previous_run_do_not_black_out_the_restarted_node() {
    let _serial = serial();
    let mut cluster = Cluster::start("presence_chat", &["b"], FAST);
    let channel = bus_channel();
    // Everything node a says in its first run is copied, as an attacker with PUBLISH and
    // SUBSCRIBE on the Redis server could.
    let (captured, sniffer) = capture_bus(&cluster.redis, &channel).await;
    cluster.start_node("a");
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a (run 1)").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    converge(&mut [&mut alice, &mut bob], &[("alice", 1), ("bob", 1)]).await;
    let old_alice = bob.view.refs_of("alice");
    // The copy holds alice's join (b has seen it, so it went over the bus).
    let deadline = Instant::now() + CONVERGE;
    while !captured
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.windows(13).any(|w| w == br#""key":"alice""#))
    {
        assert!(Instant::now() < deadline, "alice's join was not captured");
        bob.drain_until(Instant::now() + ms(BROADCAST_MS)).await;
    }
    sniffer.abort();
    let replay: Vec<Vec<u8>> = captured.lock().unwrap().clone();

    // Node a restarts (a new incarnation); alice reconnects to it.
    cluster.node("a").kill();
    drop(alice);
    let restarted = Instant::now();
    cluster.start_node("a");
    let mut alice2 = Member::join(cluster.port("a"), "alice", "alice@a (run 2)").await;
    all_until(
        &mut [&mut alice2, &mut bob],
        "run 2's alice only",
        CONVERGE,
        |v| v.is(&[("alice", 1), ("bob", 1)]) && v.refs_of("alice").is_disjoint(&old_alice),
    )
    .await;
    assert_same_refs(&[&mut alice2, &mut bob]);
    let live_alice = bob.view.refs_of("alice");
    assert!(live_alice.is_disjoint(&old_alice));
    // Pacing: past the permdown period since the restart, b has forgotten run 1 (the
    // period is what is under test).
    let forgotten = restarted + ms(PERMDOWN_MS + 4 * BROADCAST_MS);
    bob.drain_until(forgotten).await;
    alice2.drain_until(Instant::now()).await;

    // Run 1's messages, published again, in order.
    let replayed_at = Instant::now();
    let client = redis::Client::open(cluster.redis.url()).unwrap();
    for _ in 0..3 {
        publish_raw(&client, &channel, &replay).await;
    }
    // Several down periods: b keeps showing the live alice, and never the old one.
    let quiet = Instant::now() + ms(3 * DOWN_MS);
    tokio::join!(bob.drain_until(quiet), alice2.drain_until(quiet));
    for member in [&bob, &alice2] {
        let after: Vec<&Event> = member
            .events
            .iter()
            .filter(|(t, _)| *t >= replayed_at)
            .map(|(_, e)| e)
            .collect();
        assert!(
            after.is_empty(),
            "{}: the replay changed the view: {after:?}",
            member.label
        );
    }
    assert!(bob.view.is(&[("alice", 1), ("bob", 1)]), "{:?}", bob.view);
    assert_eq!(bob.view.refs_of("alice"), live_alice);
    // Node a is not blacked out on b: a new join on it shows there.
    let mut carol = Member::join(cluster.port("a"), "carol", "carol@a").await;
    converge(
        &mut [&mut alice2, &mut bob, &mut carol],
        &[("alice", 1), ("bob", 1), ("carol", 1)],
    )
    .await;
    assert_no_anomalies(&[&mut alice2, &mut bob, &mut carol]);
    assert!(
        cluster.nodes["b"].wait_stderr("dropped a replayed or stale message", CONVERGE),
        "node b did not report the replay"
    );
    cluster.assert_no_panic();
}

// ---------------------------------------------------------------------------------------
// 12. Issue 21, N7: clients flooding presence updates neither overflow the bus nor cost
// other traffic: no message on the bus exceeds the heartbeat cap and every shout arrives.

/// Default `presence.max_heartbeat_bytes`.
const MAX_HEARTBEAT_BYTES: usize = 65_536;

/// Connects as `user` to the lobby on `port` and sends `update_status` with a ~3.9 KB
/// status, 50 at a time, until `until`; returns (ok replies, error replies) and the
/// client, still connected.
async fn flood_status(port: u16, user: &str, until: Instant) -> (usize, usize, Client) {
    let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user_id={user}");
    let mut client = Client::connect(&url).await;
    let (join_ref, frame) = client.join(LOBBY, json!({})).await;
    reply(&frame, "ok");
    let status = "x".repeat(3_900);
    let (mut ok, mut errors) = (0, 0);
    while Instant::now() < until {
        let mut waiting = BTreeSet::new();
        for _ in 0..50 {
            let msg_ref = client.next_ref();
            client
                .send(
                    Some(&join_ref),
                    &msg_ref,
                    LOBBY,
                    "update_status",
                    json!({ "status": status }),
                )
                .await;
            waiting.insert(msg_ref);
        }
        while !waiting.is_empty() {
            let frame = client.recv().await;
            let answered =
                frame[3] == "phx_reply" && frame[1].as_str().is_some_and(|r| waiting.remove(r));
            if answered {
                match frame[4]["status"].as_str() {
                    Some("ok") => ok += 1,
                    _ => {
                        assert!(
                            frame[4]["response"]["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("too many")),
                            "{frame}"
                        );
                        errors += 1
                    }
                }
            }
        }
    }
    (ok, errors, client)
}

/// Connects as `user` to the lobby on `port` and sets two ~3.9 KB statuses in a row (the
/// last one `"<user> last …"`), both accepted; returns the client, still connected.
async fn two_statuses(port: u16, user: String) -> Client {
    let url = format!("ws://127.0.0.1:{port}/socket/websocket?vsn=2.0.0&user_id={user}");
    let mut client = Client::connect(&url).await;
    let (join_ref, frame) = client.join(LOBBY, json!({})).await;
    reply(&frame, "ok");
    for which in ["first", "last"] {
        let status = format!("{user} {which} {}", "y".repeat(3_900));
        let msg_ref = client.next_ref();
        client
            .send(
                Some(&join_ref),
                &msg_ref,
                LOBBY,
                "update_status",
                json!({ "status": status }),
            )
            .await;
        let frame = client
            .recv_until(|f| f[3] == "phx_reply" && f[1] == msg_ref.as_str())
            .await;
        reply(&frame, "ok");
    }
    client
}

#[tokio::test]
async fn flooded_presence_updates_keep_bus_messages_capped_and_lose_no_shout() {
    let _serial = serial();
    let cluster = Cluster::start("presence_chat", &["a", "b"], FAST);
    let channel = bus_channel();
    let (captured, sniffer) = capture_bus(&cluster.redis, &channel).await;
    let mut alice = Member::join(cluster.port("a"), "alice", "alice@a").await;
    let mut bob = Member::join(cluster.port("b"), "bob", "bob@b").await;
    converge(&mut [&mut alice, &mut bob], &[("alice", 1), ("bob", 1)]).await;

    // Four clients on a flood updates for 3 s while alice and bob shout across nodes.
    let until = Instant::now() + ms(3_000);
    let port = cluster.port("a");
    let flooders: Vec<_> = (0..4)
        .map(|n| tokio::spawn(async move { flood_status(port, &format!("f{n}"), until).await }))
        .collect();
    // Meanwhile 30 clients on a set large statuses at once (within their budget): together
    // more than one heartbeat may carry.
    let setters: Vec<_> = (0..30)
        .map(|n| tokio::spawn(two_statuses(port, format!("s{n}"))))
        .collect();
    let mut bodies = Vec::new();
    for round in 0..20 {
        for (who, member) in [("a", &mut alice), ("b", &mut bob)] {
            let body = format!("shout {round} from {who}");
            member.shout(&body).await;
            bodies.push(body);
        }
        let pace = Instant::now() + ms(BROADCAST_MS);
        tokio::join!(alice.drain_until(pace), bob.drain_until(pace));
    }
    let (mut ok, mut errors) = (0, 0);
    let mut clients = Vec::new();
    for flooder in flooders {
        let (o, e, client) = flooder.await.unwrap();
        ok += o;
        errors += e;
        clients.push(client);
    }
    for setter in setters {
        clients.push(setter.await.unwrap());
    }
    eprintln!("flood: {ok} updates applied, {errors} refused");
    // Every shout reaches both nodes' members, once.
    let deadline = Instant::now() + CONVERGE;
    for body in &bodies {
        await_shout(&mut [&mut alice, &mut bob], body, deadline).await;
    }
    for member in [&alice, &bob] {
        for body in &bodies {
            assert_eq!(member.shouts_of(body), 1, "{}: {body}", member.label);
        }
    }
    // The flooders' presences converged (they are still connected or left cleanly: the
    // channel answered errors, it did not crash).
    all_until(
        &mut [&mut alice, &mut bob],
        "alice and bob",
        CONVERGE,
        |v| v.refs_of("alice").len() == 1 && v.refs_of("bob").len() == 1,
    )
    .await;
    sniffer.abort();
    let captured = captured.lock().unwrap();
    let largest = captured.iter().map(Vec::len).max().unwrap_or(0);
    eprintln!(
        "bus: {} messages, the largest {largest} bytes",
        captured.len()
    );
    assert!(
        largest <= MAX_HEARTBEAT_BYTES,
        "a bus message of {largest} bytes (cap {MAX_HEARTBEAT_BYTES})"
    );
    assert!(
        errors > 0,
        "the updates were not rate limited ({ok} applied)"
    );
    cluster.assert_no_panic();
}
