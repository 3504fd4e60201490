//! The rooms scenario (issue 12): N clients in R rooms over K nodes joined through Redis,
//! held by S generator processes ("workers"), because one process may hold at most about
//! 19,000 sockets here (RLIMIT_NOFILE 20,000).
//!
//! Client `i` (among all N) connects to node `i mod K` and joins `<topic>:<(i / K) mod R>`,
//! so every room has N/R members, N/(K·R) on each node (N must be a multiple of K·R). The
//! sender joins every room on node-0 too (R/100 connections: `endpoint.max_channels` is 100),
//! so a converged client counts N/R + 1 members, from its `presence_state` and
//! `presence_diff`s alone ([`Storm`](crate::join_storm::Storm)'s byte scan).
//!
//! The coordinator (`--scenario rooms --nodes K --shards S`) starts redis-server and the K
//! nodes as `--nodes` does, joins the sender, reads the baseline RSS, then starts S copies of
//! this binary (`--worker i/S --ports …`), worker `i` holding the clients
//! [`shard_range`]`(N, K, i, S)`. It measures, in order:
//!
//! 1. the join: every client connects and joins, and then counts N/R + 1; reported is the
//!    time from the last join reply (any worker) to the last count change (any client), per
//!    node too;
//! 2. the servers' RSS once stable, per joined connection;
//! 3. CPU at idle over `--idle-secs` (clients heartbeat every `--heartbeat-secs`);
//! 4. one broadcast to all N, `--rounds` times (skipped with `--rounds 0`): the sender shouts
//!    on every room in one write, each frame carrying its send instant (`"t"`,
//!    `CLOCK_MONOTONIC` ns, which every process of the machine shares); every client takes
//!    its receive instant on the same clock;
//! 5. a SIGKILL of node `--kill-node` (K−1 by default): the time until every client on the
//!    other nodes counts N/R − N/(K·R) + 1 (its room's members on the dead node gone), as
//!    each survivor's presence takes the dead node down after
//!    `TETHER_PRESENCE_DOWN_PERIOD_MS` of silence.
//!
//! With `--counts` the nodes are `examples/anonymous_counts` (topic `video`; `--rooms 1` puts
//! all N on `video:0`), whose presence payloads are counts only
//! (`{"users":{"count":m},"viewers":{"count":n}}`): a client's members are then the sum of
//! the `"count":` numbers of its `presence_state`, plus those of each diff's joins, minus
//! those of its leaves, as a counts-only page keeps its totals. That example relays no
//! shouts, so step 4 is skipped (`--rounds 0`).
//!
//! Workers talk on their stdout: a [`Status`] line every [`STATUS_PERIOD`]; after `report`
//! on their stdin, the latency samples (`lat <round> <node> <µs>…`), failures and closes,
//! then `end`. `quit` or the end of stdin stops a worker.
//!
//! It must never wait unbounded (every wait has its bound: `--converge-timeout-secs`,
//! `--round-timeout-secs`, [`REPORT_WAIT`]) and never leave a worker running: workers die
//! with the coordinator (`PR_SET_PDEATHSIG`), are registered for the watchdog and are stopped
//! (SIGTERM, then SIGKILL) on every exit path.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    ops::Range,
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    fanout::Sender,
    join_storm::Storm,
    process::{die_with_parent, kill_child, register_child, stop_children},
    procfs::{CpuMark, proc_cpu_secs, rss_kib},
    run::RunCtx,
    shared::{Phase, Shared, mono_ns},
};

/// Upper bound of `--shards`.
pub const MAX_SHARDS: usize = 32;
/// How often a worker writes its status line.
const STATUS_PERIOD: Duration = Duration::from_millis(200);
/// Channels per sender connection (`endpoint.max_channels`, 100 by default).
const ROOMS_PER_SENDER: usize = 100;
/// The bound of the wait for the workers' samples after `report`.
const REPORT_WAIT: Duration = Duration::from_secs(60);

/// The clients of worker `i` of `s`, among `n` over `nodes` nodes: contiguous, and starting at
/// a multiple of `nodes` (so a client's index within its worker gives its node as well).
pub fn shard_range(n: usize, nodes: usize, i: usize, s: usize) -> Range<usize> {
    let nodes = nodes.max(1);
    let bound = |k: usize| {
        if k >= s {
            n
        } else {
            (n * k / s) / nodes * nodes
        }
    };
    bound(i)..bound(i + 1)
}

/// What a worker reports every [`STATUS_PERIOD`].
#[derive(Debug, Default, Clone)]
struct Status {
    /// Clients that joined or failed; joined; connections that ended since.
    done: usize,
    joined: usize,
    closed: usize,
    /// The last join reply (0: none yet), [`mono_ns`].
    last_join: u64,
    presence_frames: u64,
    /// Clients that received shout `seq`, for each latency round.
    delivered: Vec<u64>,
    nodes: Vec<NodeCounts>,
}

/// A worker's clients on one node.
#[derive(Debug, Default, Clone)]
struct NodeCounts {
    joined: usize,
    /// The last change of any of their member counts ([`mono_ns`]).
    last_change: u64,
    /// Member count → clients, over the clients that got their `presence_state`.
    counts: BTreeMap<i64, usize>,
}

impl Status {
    fn of(shared: &Shared, storm: &Storm, rounds: usize) -> Status {
        let k = shared.nodes;
        let mut nodes = vec![NodeCounts::default(); k];
        for (node, joined) in nodes.iter_mut().zip(shared.joined_per_node.iter()) {
            node.joined = joined.load(Ordering::Acquire);
        }
        for idx in 0..shared.n {
            let node = &mut nodes[idx % k];
            node.last_change = node.last_change.max(storm.last_change(idx));
            if storm.has_state(idx) {
                *node.counts.entry(storm.count_of(idx)).or_default() += 1;
            }
        }
        Status {
            done: shared.connect_done.load(Ordering::Acquire),
            joined: shared.joined.load(Ordering::Acquire),
            closed: shared.disconnects.load(Ordering::Acquire),
            last_join: storm.last_join_ns.load(Ordering::Acquire),
            presence_frames: storm.presence_frames(),
            delivered: shared.recv_count[..rounds]
                .iter()
                .map(|c| c.load(Ordering::Acquire) as u64)
                .collect(),
            nodes,
        }
    }

    /// `status <done> <joined> <closed> <last_join> <frames> <d0,d1,…|-> <node>;<node>…`,
    /// a node being `<joined>:<last_change>:<count>=<clients>+…`.
    fn line(&self) -> String {
        let list = |items: Vec<String>, sep: &str| {
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(sep)
            }
        };
        let delivered = list(self.delivered.iter().map(u64::to_string).collect(), ",");
        let nodes = self.nodes.iter().map(|n| {
            let counts = n.counts.iter().map(|(c, k)| format!("{c}={k}")).collect();
            format!("{}:{}:{}", n.joined, n.last_change, list(counts, "+"))
        });
        format!(
            "status {} {} {} {} {} {delivered} {}",
            self.done,
            self.joined,
            self.closed,
            self.last_join,
            self.presence_frames,
            list(nodes.collect(), ";")
        )
    }

    fn parse(line: &str) -> Option<Status> {
        let f: Vec<&str> = line.strip_prefix("status ")?.split(' ').collect();
        let [done, joined, closed, last_join, frames, delivered, nodes] = f[..] else {
            return None;
        };
        let items = |s: &'static str, text: &str| -> Vec<String> {
            if text == "-" {
                Vec::new()
            } else {
                text.split(s).map(str::to_string).collect()
            }
        };
        let node = |text: &str| -> Option<NodeCounts> {
            let mut parts = text.splitn(3, ':');
            let joined = parts.next()?.parse().ok()?;
            let last_change = parts.next()?.parse().ok()?;
            let mut counts = BTreeMap::new();
            for pair in items("+", parts.next()?) {
                let (c, k) = pair.split_once('=')?;
                counts.insert(c.parse().ok()?, k.parse().ok()?);
            }
            Some(NodeCounts {
                joined,
                last_change,
                counts,
            })
        };
        Some(Status {
            done: done.parse().ok()?,
            joined: joined.parse().ok()?,
            closed: closed.parse().ok()?,
            last_join: last_join.parse().ok()?,
            presence_frames: frames.parse().ok()?,
            delivered: items(",", delivered)
                .iter()
                .map(|d| d.parse().ok())
                .collect::<Option<_>>()?,
            nodes: items(";", nodes)
                .iter()
                .map(|n| node(n))
                .collect::<Option<_>>()?,
        })
    }
}

/// A worker: connects its share of the clients, then writes its status every
/// [`STATUS_PERIOD`] and answers `report` until `quit` or the end of stdin.
pub async fn run_worker(run: &RunCtx<'_>) -> Result<(), String> {
    let shared = run.shared;
    let storm = shared.storm.as_ref().expect("rooms: member counts");
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    run.spawn_clients();
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => println!("{}", Status::of(shared, storm, run.opts.rounds).line()),
            command = commands.recv() => match command.as_deref() {
                Some("report") => print_samples(shared, run.opts.rounds),
                Some("closes") => print_closes(shared),
                Some("quit") | None => return Ok(()),
                Some(other) => eprintln!("loadgen worker: unknown command {other:?}"),
            },
        }
    }
}

/// A worker's answer to `report`: the latency samples of every round by node
/// (`lat <round> <node> <µs>…`), the failures (`failure\t<phase>\t<n>\t<cause>`), then
/// [`print_closes`].
fn print_samples(shared: &Shared, rounds: usize) {
    let (n, k) = (shared.n, shared.nodes);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for round in 0..rounds {
        for node in 0..k {
            let _ = write!(out, "lat {round} {node}");
            for idx in (node..n).step_by(k) {
                let v = shared.round_lat[round * n + idx].load(Ordering::Relaxed);
                if v != u32::MAX {
                    let _ = write!(out, " {v}");
                }
            }
            let _ = writeln!(out);
        }
    }
    for ((phase, cause), count) in shared.failures.lock().unwrap().iter() {
        let _ = writeln!(out, "failure\t{phase}\t{count}\t{cause}");
    }
    drop(out);
    print_closes(shared);
}

/// A worker's answer to `closes`: why its connections ended so far
/// (`closed\t<n>\t<reason>`), then `end`.
fn print_closes(shared: &Shared) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (reason, count) in shared.close_reasons.lock().unwrap().iter() {
        let _ = writeln!(out, "closed\t{count}\t{reason}");
    }
    let _ = writeln!(out, "end");
}

/// What the coordinator has read from one worker.
#[derive(Default)]
struct View {
    status: Status,
    /// (round, node, samples in µs).
    samples: Vec<(usize, usize, Vec<u32>)>,
    failures: Vec<(Phase, String, usize)>,
    closes: Vec<(String, usize)>,
    ended: bool,
}

/// The coordinator's workers: their processes, stdins and what they reported.
struct Workers {
    children: Vec<Child>,
    stdins: Vec<ChildStdin>,
    views: Vec<Arc<Mutex<View>>>,
}

impl Workers {
    /// Starts the S workers (this binary, `--worker i/S`), each with the run's options.
    fn spawn(run: &RunCtx<'_>) -> Result<Workers, String> {
        let opts = run.opts;
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let ports: Vec<String> = run
            .clients
            .targets
            .iter()
            .map(|t| t.addr.port().to_string())
            .collect();
        let mut workers = Workers {
            children: Vec::new(),
            stdins: Vec::new(),
            views: Vec::new(),
        };
        for i in 0..opts.shards {
            let mut cmd = Command::new(&exe);
            let s = opts.shards;
            cmd.args(["--scenario", "rooms", "--worker", &format!("{i}/{s}")])
                .args(["--ports", &ports.join(",")])
                .args(["--clients", &opts.clients.to_string()])
                .args(["--rooms", &opts.rooms.to_string()])
                .args(["--topic", &opts.topic])
                .args(["--rounds", &opts.rounds.to_string()])
                .args(["--threads", &opts.threads.to_string()])
                .args(["--read-buf", &opts.read_buf.to_string()])
                .args(["--heartbeat-secs", &opts.heartbeat_secs.to_string()])
                .args(["--deadline-secs", &opts.deadline_secs.to_string()])
                .args([
                    "--connect-concurrency",
                    &opts.connect_concurrency.to_string(),
                ]);
            if let Some(rate) = opts.arrival_rate {
                cmd.args(["--arrival-rate", &(rate / s as f64).to_string()]);
            }
            if opts.counts {
                cmd.arg("--counts");
            }
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            die_with_parent(&mut cmd);
            let mut child = cmd.spawn().map_err(|e| format!("worker {i}: {e}"))?;
            register_child(child.id());
            let stdout = child.stdout.take().expect("piped stdout");
            workers
                .stdins
                .push(child.stdin.take().expect("piped stdin"));
            workers.children.push(child);
            let view = Arc::new(Mutex::new(View::default()));
            workers.views.push(view.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    read_line(&view, &line);
                }
            });
        }
        Ok(workers)
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// The workers' CPU seconds so far (sum).
    fn cpu_secs(&self) -> f64 {
        self.pids().into_iter().filter_map(proc_cpu_secs).sum()
    }

    fn statuses(&self) -> Vec<Status> {
        self.views
            .iter()
            .map(|v| v.lock().unwrap().status.clone())
            .collect()
    }

    fn send(&mut self, command: &str) {
        for stdin in &mut self.stdins {
            let _ = writeln!(stdin, "{command}");
        }
    }

    /// Sends `command` (answered with `end`) and waits ≤ [`REPORT_WAIT`] for every answer.
    async fn ask(&mut self, command: &str) {
        for view in &self.views {
            let mut v = view.lock().unwrap();
            v.ended = false;
            v.closes.clear();
        }
        self.send(command);
        let started = Instant::now();
        while started.elapsed() < REPORT_WAIT && !self.views.iter().all(|v| v.lock().unwrap().ended)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `quit`, then SIGTERM (SIGKILL after 5 s) to those still running.
    fn stop(&mut self) {
        self.send("quit");
        let mut children: Vec<&mut Child> = self.children.iter_mut().collect();
        stop_children(&mut children);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One line of a worker's stdout into its view.
fn read_line(view: &Mutex<View>, line: &str) {
    let mut v = view.lock().unwrap();
    if let Some(status) = Status::parse(line) {
        v.status = status;
    } else if let Some(rest) = line.strip_prefix("lat ") {
        let mut f = rest.split(' ');
        let (Some(Ok(round)), Some(Ok(node))) =
            (f.next().map(str::parse), f.next().map(str::parse))
        else {
            return;
        };
        v.samples
            .push((round, node, f.filter_map(|s| s.parse().ok()).collect()));
    } else if let Some(rest) = line.strip_prefix("failure\t") {
        let f: Vec<&str> = rest.splitn(3, '\t').collect();
        if let [phase, count, cause] = f[..] {
            let phase = match phase {
                "connect" => Phase::Connect,
                "handshake" => Phase::Handshake,
                _ => Phase::Join,
            };
            v.failures
                .push((phase, cause.to_string(), count.parse().unwrap_or(0)));
        }
    } else if let Some(rest) = line.strip_prefix("closed\t") {
        if let Some((count, reason)) = rest.split_once('\t') {
            v.closes
                .push((reason.to_string(), count.parse().unwrap_or(0)));
        }
    } else if line == "end" {
        v.ended = true;
    }
}

/// Over the clients on the nodes `include` that got their `presence_state`: how many there
/// are, how many count `target`, and the last change of any count ([`mono_ns`]), per node
/// (0 for a node not included).
fn counting(statuses: &[Status], include: impl Fn(usize) -> bool, target: i64) -> Counting {
    let mut c = Counting::default();
    for s in statuses {
        c.last_per_node
            .resize(s.nodes.len().max(c.last_per_node.len()), 0);
        for (node, counts) in s.nodes.iter().enumerate().filter(|(i, _)| include(*i)) {
            c.with_state += counts.counts.values().sum::<usize>();
            c.at_target += counts.counts.get(&target).copied().unwrap_or(0);
            c.last_per_node[node] = c.last_per_node[node].max(counts.last_change);
            for (&count, &clients) in &counts.counts {
                if count != target {
                    *c.others.entry(count).or_default() += clients;
                }
            }
        }
    }
    c
}

#[derive(Debug, Default)]
struct Counting {
    with_state: usize,
    at_target: usize,
    last_per_node: Vec<u64>,
    /// Counts other than the target → clients.
    others: BTreeMap<i64, usize>,
}

impl Counting {
    fn last(&self) -> u64 {
        self.last_per_node.iter().copied().max().unwrap_or(0)
    }

    /// `node-0 1.23 s; …` after `since` ([`mono_ns`]), for the nodes included.
    fn per_node(&self, since: u64) -> String {
        let each: Vec<String> = self
            .last_per_node
            .iter()
            .enumerate()
            .filter(|(_, t)| **t > 0)
            .map(|(i, &t)| format!("node-{i} {:.2} s", secs(t.saturating_sub(since))))
            .collect();
        each.join("; ")
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Sums over the workers' statuses.
fn sum(statuses: &[Status], f: impl Fn(&Status) -> usize) -> usize {
    statuses.iter().map(f).sum()
}

/// The coordinator: steps 1–5 of the module doc.
pub async fn run_rooms(run: &RunCtx<'_>) -> Result<(), String> {
    let opts = run.opts;
    let k = run.clients.targets.len();
    let (n, rooms) = (opts.clients, opts.rooms);
    if n % (k * rooms) != 0 {
        return Err(format!(
            "rooms: --clients must be a multiple of nodes × rooms ({})",
            k * rooms
        ));
    }
    let kill = opts.kill_node.unwrap_or(k - 1);
    if kill == 0 {
        return Err("rooms: --kill-node 0 would kill the sender's node".into());
    }
    let mut senders = connect_senders(run).await?;
    run.baseline_rss().await;
    eprintln!(
        "loadgen: {n} clients in {rooms} rooms over {k} nodes, {} generator processes…",
        opts.shards
    );
    let mark = CpuMark::now(run.procs);
    let mut workers = Workers::spawn(run)?;
    let outcome = measure(run, &mut workers, &mut senders, &mark, kill).await;
    workers.stop();
    outcome
}

/// The sender's connections on node-0, each joined to up to [`ROOMS_PER_SENDER`] rooms.
async fn connect_senders(run: &RunCtx<'_>) -> Result<Vec<Sender>, String> {
    let topics: Vec<String> = (0..run.opts.rooms)
        .map(|r| format!("{}:{r}", run.opts.topic))
        .collect();
    let mut senders = Vec::new();
    for chunk in topics.chunks(ROOMS_PER_SENDER) {
        senders.push(Sender::connect_to(&run.clients, run.opts.pad, chunk.to_vec()).await?);
    }
    run.report.lock().unwrap().frame_bytes = senders[0].broadcast_len(0, Some(mono_ns()));
    Ok(senders)
}

async fn measure(
    run: &RunCtx<'_>,
    workers: &mut Workers,
    senders: &mut [Sender],
    mark: &CpuMark,
    kill: usize,
) -> Result<(), String> {
    let opts = run.opts;
    let k = run.clients.targets.len();
    let per_room = (opts.clients / opts.rooms) as i64;
    // The sender is a member of every room.
    let target = per_room + 1;
    // Not converged: the other steps are still measured, and the run fails at the end.
    let (joined, converged) = join_phase(run, workers, mark, target).await?;
    run.record_idle_rss().await;
    idle_cpu(run, workers).await;
    if opts.rounds > 0 {
        rounds(run, workers, senders).await?;
    }
    collect_samples(run, workers, joined).await;
    let after_kill = target - per_room / k as i64;
    kill_phase(run, workers, kill, after_kill).await?;
    if !converged {
        return Err("rooms: the clients did not converge after the joins".into());
    }
    Ok(())
}

/// Step 1: waits until every client joined or failed, then until every one counts
/// `target`; records the convergence rows. Returns the clients joined.
async fn join_phase(
    run: &RunCtx<'_>,
    workers: &Workers,
    mark: &CpuMark,
    target: i64,
) -> Result<(usize, bool), String> {
    let opts = run.opts;
    let n = opts.clients;
    let cpu_before = workers.cpu_secs();
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(opts.converge_timeout_secs);
    let mut last_print = started;
    let mut connected: Option<Instant> = None;
    let (joined, c) = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = workers.statuses();
        let (done, joined) = (sum(&st, |s| s.done), sum(&st, |s| s.joined));
        if connected.is_none() && done >= n {
            connected = Some(Instant::now());
            absorb_joined(run.shared, &st);
            let mut cpu = mark.since(run.procs);
            cpu.generator += workers.cpu_secs() - cpu_before;
            let joined = run.record_joined(cpu);
            eprintln!("loadgen: {joined} joined, {} failed", n - joined);
        }
        let c = counting(&st, |_| true, target);
        let converged = connected.is_some() && c.with_state == joined && c.at_target == joined;
        if converged || connected.is_some_and(|t| t.elapsed() > timeout) {
            break (joined, c);
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   t={:.0}s done {done} joined {joined}, {} count {target} (others: \
                 {:?}), presence frames {}",
                started.elapsed().as_secs_f64(),
                c.at_target,
                c.others.iter().take(6).collect::<Vec<_>>(),
                sum(&st, |s| s.presence_frames as usize)
            );
        }
    };
    let st = workers.statuses();
    let last_join = st.iter().map(|s| s.last_join).max().unwrap_or(0);
    let converged = c.at_target == joined && joined > 0;
    let mut r = run.report.lock().unwrap();
    r.rooms.push((
        "rooms".into(),
        format!(
            "{} rooms of {} clients + the sender (on node-0); {} generator processes",
            opts.rooms,
            opts.clients / opts.rooms,
            opts.shards
        ),
    ));
    r.rooms.push((
        "**last join reply → every client counts its room (all nodes)**".into(),
        if converged {
            format!(
                "**{:.2} s** (per node, last count change: {})",
                secs(c.last().saturating_sub(last_join)),
                c.per_node(last_join)
            )
        } else {
            format!(
                "**NOT converged**: {} of {joined} count {target}; others {:?}",
                c.at_target, c.others
            )
        },
    ));
    let frames = sum(&st, |s| s.presence_frames as usize);
    r.rooms.push((
        "presence frames received (all clients)".into(),
        format!(
            "{frames} ({:.1} per client)",
            frames as f64 / joined.max(1) as f64
        ),
    ));
    drop(r);
    eprintln!(
        "loadgen: {} of {joined} clients count {target}, last change {:.2} s after the last join",
        c.at_target,
        secs(c.last().saturating_sub(last_join))
    );
    Ok((joined, converged))
}

/// The workers' joins, per node, into the coordinator's counters (the report reads them).
fn absorb_joined(shared: &Shared, st: &[Status]) {
    shared
        .joined
        .store(sum(st, |s| s.joined), Ordering::Release);
    for (node, count) in shared.joined_per_node.iter().enumerate() {
        count.store(
            sum(st, |s| s.nodes.get(node).map_or(0, |c| c.joined)),
            Ordering::Release,
        );
    }
}

/// Step 3: CPU of every process over `--idle-secs` with the clients joined and idle.
async fn idle_cpu(run: &RunCtx<'_>, workers: &Workers) {
    let secs = run.opts.idle_secs;
    eprintln!("loadgen: idle CPU over {secs} s…");
    let mark = CpuMark::now(run.procs);
    let before = workers.cpu_secs();
    let frames_before = sum(&workers.statuses(), |s| s.presence_frames as usize);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let mut cpu = mark.since(run.procs);
    cpu.generator += workers.cpu_secs() - before;
    let frames = sum(&workers.statuses(), |s| s.presence_frames as usize) - frames_before;
    let pct = |c: f64| c / cpu.wall * 100.0;
    let each: Vec<String> = cpu
        .server_each
        .iter()
        .map(|&c| format!("{:.2}", pct(c)))
        .collect();
    let gen_rss: u64 = workers
        .pids()
        .iter()
        .filter_map(|p| rss_kib(&p.to_string()))
        .sum();
    let mut r = run.report.lock().unwrap();
    r.rooms.push((
        format!(
            "**CPU at idle over {:.0} s** (heartbeats every {} s, {frames} presence frames)",
            cpu.wall, run.opts.heartbeat_secs
        ),
        format!(
            "**servers {:.2} %** (node-0…: {} %), redis {:.2} %, generators {:.2} %, machine {:.2} %",
            pct(cpu.server.unwrap_or(0.0)),
            each.join(" / "),
            pct(cpu.redis.unwrap_or(0.0)),
            pct(cpu.generator),
            pct(cpu.machine.unwrap_or(0.0)),
        ),
    ));
    r.rooms.push((
        "generator processes' RSS (sum)".into(),
        format!("{:.1} MiB", gen_rss as f64 / 1024.0),
    ));
}

/// Step 4: `--rounds` broadcasts to all N, each a shout on every room in one write.
async fn rounds(run: &RunCtx<'_>, workers: &Workers, senders: &mut [Sender]) -> Result<(), String> {
    let opts = run.opts;
    eprintln!("loadgen: {} broadcast rounds…", opts.rounds);
    let mark = CpuMark::now(run.procs);
    let before = workers.cpu_secs();
    let timeout = Duration::from_secs_f64(opts.round_timeout_secs);
    let mut writes = Vec::new();
    for round in 0..opts.rounds {
        let st = workers.statuses();
        let live = sum(&st, |s| s.joined - s.closed.min(s.joined));
        let mut first = u64::MAX;
        let mut last = 0;
        for sender in senders.iter_mut() {
            let (f, l) = sender.shout_stamped(round).await?;
            first = first.min(f);
            last = l;
        }
        writes.push(last.saturating_sub(first) / 1000);
        let sent = Instant::now();
        loop {
            tokio::time::sleep(STATUS_PERIOD / 2).await;
            let got = sum(&workers.statuses(), |s| {
                s.delivered.get(round).copied().unwrap_or(0) as usize
            });
            if got >= live || sent.elapsed() > timeout {
                if got < live {
                    eprintln!("loadgen:   round {round}: {got} of {live} within {timeout:?}");
                }
                break;
            }
        }
    }
    let mut cpu = mark.since(run.procs);
    cpu.generator += workers.cpu_secs() - before;
    let writes = crate::histogram::Summary::of(writes);
    let mut r = run.report.lock().unwrap();
    r.latency = Some(cpu);
    r.rooms.push((
        format!("sender: the {} shouts of a round written in", opts.rooms),
        format!(
            "{:.1} ms median, {:.1} ms max (each frame stamped as written)",
            writes.p50 as f64 / 1000.0,
            writes.max as f64 / 1000.0
        ),
    ));
    Ok(())
}

/// After the rounds: the workers' samples, failures and closes into the report.
async fn collect_samples(run: &RunCtx<'_>, workers: &mut Workers, joined: usize) {
    let (opts, shared) = (run.opts, run.shared);
    let k = run.clients.targets.len();
    workers.ask("report").await;
    let mut r = run.report.lock().unwrap();
    r.round_samples = vec![Vec::new(); k];
    let mut first = vec![vec![u32::MAX; opts.rounds]; k];
    let mut received = vec![0usize; opts.rounds];
    for view in &workers.views {
        let v = view.lock().unwrap();
        for (round, node, samples) in &v.samples {
            let (round, node) = (*round, *node);
            if round < opts.rounds && node < k {
                received[round] += samples.len();
                if let Some(&min) = samples.iter().min() {
                    first[node][round] = first[node][round].min(min);
                }
                r.round_samples[node].extend_from_slice(samples);
            }
        }
        let mut failures = shared.failures.lock().unwrap();
        for (phase, cause, count) in &v.failures {
            *failures.entry((*phase, cause.clone())).or_default() += count;
        }
    }
    r.round_first = first
        .into_iter()
        .map(|f| f.into_iter().filter(|&v| v != u32::MAX).collect())
        .collect();
    r.rounds_done = opts.rounds;
    r.round_misses = received.iter().map(|&g| joined.saturating_sub(g)).sum();
    r.failures = shared.failures.lock().unwrap().clone();
}

/// Step 5: SIGKILL of node `kill`; waits until every client on the other nodes counts
/// `target`.
async fn kill_phase(
    run: &RunCtx<'_>,
    workers: &mut Workers,
    kill: usize,
    target: i64,
) -> Result<(), String> {
    let opts = run.opts;
    let pid = run.procs.servers[kill];
    let closed_before = sum(&workers.statuses(), |s| s.closed);
    eprintln!("loadgen: SIGKILL to node-{kill} (pid {pid})…");
    let killed_at = mono_ns();
    if !kill_child(pid) {
        return Err(format!(
            "node-{kill} (pid {pid}) is not a child of this run"
        ));
    }
    let started = Instant::now();
    let timeout = Duration::from_secs_f64(opts.converge_timeout_secs);
    let survivors = |node: usize| node != kill;
    let c = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c = counting(&workers.statuses(), survivors, target);
        if (c.with_state > 0 && c.at_target == c.with_state) || started.elapsed() > timeout {
            break c;
        }
    };
    workers.ask("closes").await;
    let st = workers.statuses();
    let closed = sum(&st, |s| s.closed) - closed_before;
    let converged = c.with_state > 0 && c.at_target == c.with_state;
    // The survivors' closes and reasons, for the report.
    let shared = run.shared;
    shared
        .disconnects
        .store(sum(&st, |s| s.closed), Ordering::Release);
    for view in &workers.views {
        let mut reasons = shared.close_reasons.lock().unwrap();
        for (reason, count) in &view.lock().unwrap().closes {
            *reasons.entry(reason.clone()).or_default() += count;
        }
    }
    let mut r = run.report.lock().unwrap();
    r.rooms.push((
        format!("**SIGKILL of node-{kill} → every client on the other nodes counts {target}**"),
        if converged {
            format!(
                "**{:.2} s** (per node, last count change after the kill: {}); {closed} \
                 connections to node-{kill} closed; down period {}",
                secs(c.last().saturating_sub(killed_at)),
                c.per_node(killed_at),
                down_period(opts)
            )
        } else {
            format!(
                "**NOT converged** within {timeout:?}: {} of {} count {target}; others {:?}",
                c.at_target, c.with_state, c.others
            )
        },
    ));
    if !converged {
        return Err(format!(
            "rooms: the survivors did not converge after node-{kill} died"
        ));
    }
    eprintln!(
        "loadgen: survivors count {target} {:.2} s after the kill",
        secs(c.last().saturating_sub(killed_at))
    );
    Ok(())
}

/// `TETHER_PRESENCE_DOWN_PERIOD_MS` as given with `--server-env`, or the default.
fn down_period(opts: &crate::options::Opts) -> String {
    opts.server_env
        .iter()
        .rev()
        .find(|(key, _)| key == "TETHER_PRESENCE_DOWN_PERIOD_MS")
        .map_or("30000 ms (default)".into(), |(_, v)| format!("{v} ms"))
}
