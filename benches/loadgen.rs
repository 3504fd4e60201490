//! Load generator: thousands of real WebSocket clients against `examples/presence_chat`.
//!
//! ```text
//! cargo build --release --example presence_chat
//! cargo bench --bench loadgen -- --clients 10000
//! ```
//!
//! It starts the server itself (`--server`, env `PORT=0`, `RUST_LOG=warn`), or targets a running
//! one (`--url ws://127.0.0.1:4000/socket/websocket`, loopback only, then no RSS figures), and:
//!
//! 1. connects N clients (each from its own source address in 127.0.0.2–127.0.0.250, at most
//!    `--connect-concurrency` handshakes in flight), all joining `room:bench`;
//! 2. reads the server's VmRSS before the N connect and once they are joined and idle (stable),
//!    and reports the delta per connection;
//! 3. measures one broadcast to all N, `--rounds` times: a separate sender pushes a `shout`
//!    carrying a sequence number; every client takes the receive instant (same process, monotonic
//!    clock) and latency = receive − send;
//! 4. saturates the fan-out for `--seconds`: the sender keeps at most `--window` shouts whose
//!    delivery to all N is incomplete, and the delivered frames/s are counted (plus closes, e.g.
//!    slow consumers);
//! 5. prints a Markdown result block and exits non-zero if more than `--fail-tolerance` percent
//!    of the clients could not connect and join, or if the run was aborted.
//!
//! `--scenario join-storm` replaces steps 2–4: the N clients (distinct `user_id`s) join
//! `room:storm` as fast as `--connect-concurrency` allows, and each counts the members it is
//! told about with a byte scan (occurrences of `"phx_ref":` in its `presence_state`, plus
//! those in every `presence_diff`'s `joins` part, minus those in its `leaves` part). It
//! reports the time from the first join sent until every client counts N, the presence
//! frames and bytes received (compared with N²), the server's peak and post-storm RSS, and
//! any client whose count ever exceeded N (a server bug). It exits non-zero if the clients
//! did not converge or anyone over-counted.
//!
//! `--nodes K` (K > 1) runs a cluster on this machine: it starts its own `redis-server`
//! (`--port <free> --bind 127.0.0.1 --save "" --appendonly no`), then K servers with
//! `TETHER_PUBSUB_URL` pointing at it, `TETHER_NODE=node-<i>` and one shared
//! `TETHER_SECRET_KEY_BASE`, and waits until all K subscribe the Redis bus. Client `i` connects
//! to node `i mod K`, the fan-out sender to node-0: one-broadcast latency is reported for the
//! sender's node (local) and the other nodes (remote, one Redis hop), and the join storm
//! reports when each node's clients converged. RSS and CPU are reported per node and summed.
//! `--server-env KEY=VALUE` (repeatable) passes e.g. `TETHER_PRESENCE_BROADCAST_PERIOD_MS` to
//! every server. Each server's stderr is scanned for `panicked`, ` ERROR ` and ` WARN `
//! lines, redis-server's log for warnings after start; the counts are in the report.
//!
//! Everything is bounded by `--deadline-secs`; every child (servers, redis-server) is stopped
//! on every exit path (SIGTERM, then SIGKILL after 5 s; a watchdog SIGKILLs them 20 s after the
//! deadline; each also gets SIGKILL if this process dies, through `PR_SET_PDEATHSIG`).
//!
//! Receive loops are kept cheap. tokio-tungstenite performs each client's handshake; the N
//! measured clients then continue on the same TCP stream with a minimal RFC 6455 codec
//! ([`RawWs`]: no per-read buffer zeroing, no per-message allocation, a read buffer that shrinks
//! back after a large frame such as a big `presence_state`). They never parse JSON: a broadcast
//! `shout` is recognised by its prefix `[null,null,` and the bytes `","shout",{`, and its
//! `"seq":` number is read by a byte search. Every other frame (replies, `presence_state`,
//! `presence_diff`, ...) is only counted. The sender is a plain tokio-tungstenite client.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs},
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use memchr::memmem;
use tokio::{net::TcpStream, sync::Notify};
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{Message, protocol::WebSocketConfig},
};

const USAGE: &str = "\
usage: cargo bench --bench loadgen -- [options]

  --server <path>             server binary [target/release/examples/presence_chat]
  --url <ws://127.0.0.1:P/…>  use a running server instead (loopback only; no RSS figures)
  --clients <N>               WebSocket clients [10000]
  --rounds <R>                single-broadcast latency rounds [20]
  --seconds <S>               sustained fan-out duration [10]
  --window <K>                sustained: max shouts not yet delivered to all clients [32]
  --pad <bytes>               padding in each shout payload (frame ≈ 53 + pad bytes) [48]
  --deadline-secs <T>         hard deadline for the whole run [300]
  --connect-concurrency <C>   handshakes in flight [200]
  --threads <W>               tokio worker threads of the generator [2]
  --read-buf <bytes>          read buffer per client; grows for a larger frame, then
                              shrinks back [4096]
  --heartbeat-secs <H>        client heartbeat interval [20]
  --round-timeout-secs <S>    per latency round [10]
  --fail-tolerance <pct>      allowed connect/join failures in percent [0.1]
  --topic <topic>             room to join [room:bench; room:storm for join-storm]
  --scenario <name>           fanout (steps above) or join-storm [fanout]
  --converge-timeout-secs <S> join-storm: give up if not converged S s after the
                              first join [120]
  --hold-secs <S>             keep the clients connected S s before stopping (e.g. to
                              inspect the server with gdb) [0]
  --nodes <K>                 server processes [1]. K > 1 starts a redis-server on a free
                              port and K servers node-0…node-{K-1} joined through it; client
                              i goes to node i mod K, the fan-out sender to node-0
  --server-env <KEY=VALUE>    extra environment for every server (repeatable), e.g.
                              TETHER_PRESENCE_BROADCAST_PERIOD_MS=200
  --redis-server <path>       redis-server binary for --nodes > 1 [redis-server]
";

const JOIN_REF: &str = "1";
/// Upper bound on shouts in one run (sizes the per-shout arrays).
const MAX_SHOUTS: usize = 1 << 20;
/// Upper bound of `--nodes`.
const MAX_NODES: usize = 32;
/// The Redis channel every node publishes to and subscribes (`src/pubsub/redis.rs`).
/// The Redis channel every server is told to use (`TETHER_PUBSUB_CHANNEL`).
const BUS_CHANNEL: &str = "tether:bus:loadgen";
/// `TETHER_SECRET_KEY_BASE` given to every server (nodes of a cluster must agree); a
/// `--server-env TETHER_SECRET_KEY_BASE=…` overrides it.
const SECRET_KEY_BASE: &str =
    "loadgen-secret-key-base-0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
/// Default of `TETHER_PRESENCE_BROADCAST_PERIOD_MS` (`src/config.rs`).
const DEFAULT_BROADCAST_PERIOD_MS: u64 = 1500;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    server: PathBuf,
    url: Option<String>,
    clients: usize,
    rounds: usize,
    seconds: f64,
    window: usize,
    pad: usize,
    deadline_secs: u64,
    connect_concurrency: usize,
    threads: usize,
    read_buf: usize,
    heartbeat_secs: f64,
    round_timeout_secs: f64,
    fail_tolerance: f64,
    topic: String,
    scenario: Scenario,
    converge_timeout_secs: f64,
    hold_secs: f64,
    nodes: usize,
    server_env: Vec<(String, String)>,
    redis_server: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Idle RSS, one-broadcast latency, sustained fan-out.
    Fanout,
    /// N clients join one topic at once and count members from presence frames.
    JoinStorm,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            server: PathBuf::from("target/release/examples/presence_chat"),
            url: None,
            clients: 10_000,
            rounds: 20,
            seconds: 10.0,
            window: 32,
            pad: 48,
            deadline_secs: 300,
            connect_concurrency: 200,
            threads: 2,
            read_buf: 4096,
            heartbeat_secs: 20.0,
            round_timeout_secs: 10.0,
            fail_tolerance: 0.1,
            topic: "room:bench".to_string(),
            scenario: Scenario::Fanout,
            converge_timeout_secs: 120.0,
            hold_secs: 0.0,
            nodes: 1,
            server_env: Vec::new(),
            redis_server: PathBuf::from("redis-server"),
        }
    }
}

impl Opts {
    /// `TETHER_PRESENCE_BROADCAST_PERIOD_MS` as given with --server-env, or the default.
    fn broadcast_period(&self) -> Duration {
        let ms = self
            .server_env
            .iter()
            .rev()
            .find(|(k, _)| k == "TETHER_PRESENCE_BROADCAST_PERIOD_MS")
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(DEFAULT_BROADCAST_PERIOD_MS);
        Duration::from_millis(ms)
    }

    /// Wait after the servers are up (and the sender joined) before the baseline RSS: 1 s,
    /// and with several nodes at least two presence broadcast periods, so that every node
    /// has heard every other's first heartbeat.
    fn warmup(&self) -> Duration {
        if self.nodes > 1 {
            Duration::from_secs(1).max(self.broadcast_period() * 2)
        } else {
            Duration::from_secs(1)
        }
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
        value
            .parse()
            .map_err(|_| format!("invalid value for {key}: {value:?}"))
    }
    let mut opts = Opts::default();
    let mut topic_given = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            return Err(String::new());
        }
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().cloned().ok_or(format!("{key} needs a value")),
            }
        };
        match key.as_str() {
            "--server" => opts.server = PathBuf::from(value()?),
            "--url" => opts.url = Some(value()?),
            "--clients" => opts.clients = num(&key, &value()?)?,
            "--rounds" => opts.rounds = num(&key, &value()?)?,
            "--seconds" => opts.seconds = num(&key, &value()?)?,
            "--window" => opts.window = num(&key, &value()?)?,
            "--pad" => opts.pad = num(&key, &value()?)?,
            "--deadline-secs" => opts.deadline_secs = num(&key, &value()?)?,
            "--connect-concurrency" => opts.connect_concurrency = num(&key, &value()?)?,
            "--threads" => opts.threads = num(&key, &value()?)?,
            "--read-buf" => opts.read_buf = num(&key, &value()?)?,
            "--heartbeat-secs" => opts.heartbeat_secs = num(&key, &value()?)?,
            "--round-timeout-secs" => opts.round_timeout_secs = num(&key, &value()?)?,
            "--fail-tolerance" => opts.fail_tolerance = num(&key, &value()?)?,
            "--topic" => {
                opts.topic = value()?;
                topic_given = true;
            }
            "--scenario" => {
                opts.scenario = match value()?.as_str() {
                    "fanout" => Scenario::Fanout,
                    "join-storm" => Scenario::JoinStorm,
                    other => return Err(format!("unknown scenario {other:?}")),
                }
            }
            "--converge-timeout-secs" => opts.converge_timeout_secs = num(&key, &value()?)?,
            "--hold-secs" => opts.hold_secs = num(&key, &value()?)?,
            "--nodes" => opts.nodes = num(&key, &value()?)?,
            "--server-env" => {
                let pair = value()?;
                let Some((k, v)) = pair.split_once('=').filter(|(k, _)| !k.is_empty()) else {
                    return Err(format!("--server-env needs KEY=VALUE, got {pair:?}"));
                };
                opts.server_env.push((k.to_string(), v.to_string()));
            }
            "--redis-server" => opts.redis_server = PathBuf::from(value()?),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if opts.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if opts.scenario == Scenario::JoinStorm && !topic_given {
        opts.topic = "room:storm".to_string();
    }
    if opts.rounds + 1 >= MAX_SHOUTS {
        return Err(format!("--rounds must be below {}", MAX_SHOUTS - 1));
    }
    if opts.window == 0 || opts.connect_concurrency == 0 || opts.threads == 0 {
        return Err("--window, --connect-concurrency and --threads must be at least 1".into());
    }
    if !(opts.heartbeat_secs > 0.0
        && opts.round_timeout_secs > 0.0
        && opts.seconds >= 0.0
        && opts.hold_secs >= 0.0)
    {
        return Err("durations must be positive".into());
    }
    if opts.nodes == 0 || opts.nodes > MAX_NODES {
        return Err(format!("--nodes must be 1 to {MAX_NODES}"));
    }
    if opts.nodes > 1 && opts.url.is_some() {
        return Err("--nodes > 1 starts its own servers; it cannot be combined with --url".into());
    }
    if opts.topic.contains(['"', '\\']) {
        return Err("--topic must not contain quotes or backslashes".into());
    }
    Ok(opts)
}

fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------------------------------------
// Process-level helpers: rlimit, CPU time, RSS

/// Raises RLIMIT_NOFILE to at least `want` (soft, and hard if allowed). Returns (soft, hard).
fn raise_nofile(want: u64) -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (0, 0);
        }
        if lim.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// CPU seconds (user + system) used by this process.
fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

/// CPU seconds (user + system) used by process `pid`, from /proc/<pid>/stat.
fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / hz)
}

/// Busy CPU seconds of the whole machine (all CPUs), from /proc/stat.
fn machine_busy_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(busy / hz)
}

/// VmRSS of process `pid` ("self" for this one) in KiB.
fn rss_kib(pid: &str) -> Option<u64> {
    proc_status_kib(pid, "VmRSS:")
}

/// A `kB` field of /proc/<pid>/status (`VmRSS:`, `VmHWM:` = peak RSS, …).
fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn machine_summary() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem_gib:.1} GiB RAM, Linux {kernel}")
}

// ---------------------------------------------------------------------------------------------
// The server child processes (and redis-server for --nodes > 1)

/// PIDs of every child still running (servers, redis-server), for the watchdog thread
/// (0 = free slot).
static CHILD_PIDS: [AtomicI32; MAX_NODES + 2] = [const { AtomicI32::new(0) }; MAX_NODES + 2];

fn register_child(pid: u32) {
    for slot in &CHILD_PIDS {
        if slot
            .compare_exchange(0, pid as i32, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn unregister_child(pid: u32) {
    for slot in &CHILD_PIDS {
        let _ = slot.compare_exchange(pid as i32, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// What a child wrote to its log: every line is scanned for `panicked`, ` ERROR ` and
/// ` WARN ` (tracing's level column); the first such lines are kept for the report.
#[derive(Default)]
struct LogScan {
    lines: AtomicU64,
    panics: AtomicU64,
    errors: AtomicU64,
    warns: AtomicU64,
    /// Lines of redis-server's log at warning level (`#`) after it was ready.
    redis_warnings: AtomicU64,
    samples: Mutex<Vec<String>>,
    /// The reader reached EOF (the child closed its end).
    done: AtomicBool,
    /// Set before a deliberate stop, so that shutdown messages are not counted.
    stopping: AtomicBool,
}

impl LogScan {
    fn keep(&self, label: &str, line: &str) {
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 8 {
            samples.push(format!(
                "{label}: {}",
                line.chars().take(240).collect::<String>()
            ));
        }
    }

    /// Classifies one line of a server's stderr.
    fn server_line(&self, label: &str, line: &str) {
        self.lines.fetch_add(1, Ordering::Relaxed);
        let flagged = if line.contains("panicked") {
            self.panics.fetch_add(1, Ordering::Relaxed);
            true
        } else if line.contains(" ERROR ") || line.starts_with("ERROR") {
            self.errors.fetch_add(1, Ordering::Relaxed);
            true
        } else if line.contains(" WARN ") || line.starts_with("WARN") {
            self.warns.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        };
        if flagged {
            self.keep(label, line);
        }
    }

    /// Waits (≤ `wait`) until the reader saw EOF.
    fn wait_done(&self, wait: Duration) {
        let start = Instant::now();
        while !self.done.load(Ordering::Acquire) && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Sets PR_SET_PDEATHSIG = SIGKILL in the child, so it dies with this process.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// SIGTERM to every child, then SIGKILL to those still running after 5 s. Returns how each
/// ended.
fn stop_children(children: &mut [&mut Child]) -> Vec<String> {
    let start = Instant::now();
    let mut how: Vec<Option<String>> = vec![None; children.len()];
    for (i, child) in children.iter_mut().enumerate() {
        if let Ok(Some(status)) = child.try_wait() {
            how[i] = Some(format!("had already exited ({status})"));
        } else {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
    }
    while how.iter().any(Option::is_none) && start.elapsed() < Duration::from_secs(5) {
        for (i, child) in children.iter_mut().enumerate() {
            if how[i].is_none() {
                if let Ok(Some(status)) = child.try_wait() {
                    how[i] = Some(format!(
                        "stopped on SIGTERM in {:.2} s ({status})",
                        start.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (i, child) in children.iter_mut().enumerate() {
        if how[i].is_none() {
            let _ = child.kill();
            let _ = child.wait();
            how[i] = Some("did not stop within 5 s of SIGTERM; killed with SIGKILL".into());
        }
        unregister_child(child.id());
    }
    how.into_iter().map(Option::unwrap_or_default).collect()
}

struct Server {
    child: Child,
    label: String,
    log: Arc<LogScan>,
    stopped: bool,
}

impl Server {
    /// Starts the server with PORT=0 (plus `env`, applied last) and waits for its
    /// `listening on` line. `label` prefixes its forwarded log lines.
    fn spawn(
        path: &PathBuf,
        wait: Duration,
        label: &str,
        env: &[(String, String)],
    ) -> Result<(Server, u16), String> {
        if !path.exists() {
            return Err(format!(
                "server binary {} not found; build it with \
                 `cargo build --release --example presence_chat` or pass --server/--url",
                path.display()
            ));
        }
        let mut cmd = Command::new(path);
        cmd.env("PORT", "0")
            .env("RUST_LOG", "warn")
            .env("TETHER_SECRET_KEY_BASE", SECRET_KEY_BASE)
            .env("TETHER_PUBSUB_CHANNEL", BUS_CHANNEL)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        register_child(child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
        let tag = label.to_string();
        std::thread::spawn(move || {
            let mut forwarded = 0usize;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                    if let Some(port) = addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
                        let _ = port_tx.send(port);
                        continue;
                    }
                }
                forwarded += 1;
                if forwarded <= 50 {
                    eprintln!("[{tag} stdout] {line}");
                }
            }
        });
        let log = Arc::new(LogScan::default());
        let scan = log.clone();
        let tag = label.to_string();
        std::thread::spawn(move || {
            let mut forwarded = 0usize;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                scan.server_line(&tag, &line);
                forwarded += 1;
                if forwarded <= 100 {
                    eprintln!("[{tag}] {line}");
                } else if forwarded == 101 {
                    eprintln!("[{tag}] (further log lines are not shown, only counted)");
                }
            }
            scan.done.store(true, Ordering::Release);
        });
        let mut server = Server {
            child,
            label: label.to_string(),
            log,
            stopped: false,
        };
        let start = Instant::now();
        loop {
            match port_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(port) => return Ok((server, port)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    server.stop();
                    return Err(format!(
                        "{label} closed stdout without a `listening on` line"
                    ));
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                server.stop();
                return Err(format!("{label} exited before listening: {status}"));
            }
            if start.elapsed() > wait {
                server.stop();
                return Err(format!(
                    "no `listening on` line from {label} within {wait:?}"
                ));
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 5 s. Returns a description of how it ended.
    fn stop(&mut self) -> String {
        stop_servers(std::slice::from_mut(self)).remove(0)
    }
}

/// Stops every server at once (SIGTERM to all, SIGKILL after 5 s), then waits ≤ 1 s for
/// each log reader to drain.
fn stop_servers(servers: &mut [Server]) -> Vec<String> {
    for server in servers.iter() {
        server.log.stopping.store(true, Ordering::Release);
    }
    let mut children: Vec<&mut Child> = servers.iter_mut().map(|s| &mut s.child).collect();
    let how = stop_children(&mut children);
    for server in servers.iter_mut() {
        server.stopped = true;
        server.log.wait_done(Duration::from_secs(1));
    }
    how
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
    }
}

/// The `redis-server` of a `--nodes K > 1` run: on a free 127.0.0.1 port, nothing persisted
/// (`--save "" --appendonly no`), its log scanned for warnings after start.
struct RedisServer {
    child: Child,
    port: u16,
    log: Arc<LogScan>,
    stopped: bool,
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl RedisServer {
    /// Starts redis-server on a free port (another port if that one was taken meanwhile);
    /// each attempt waits ≤ `wait` for `PING`.
    fn spawn(path: &PathBuf, wait: Duration) -> Result<RedisServer, String> {
        let mut last = String::new();
        for _ in 0..5 {
            match RedisServer::spawn_on(path, free_port()?, wait) {
                Ok(redis) => return Ok(redis),
                Err(err) => last = err,
            }
        }
        Err(format!("could not start redis-server: {last}"))
    }

    fn spawn_on(path: &PathBuf, port: u16, wait: Duration) -> Result<RedisServer, String> {
        let mut cmd = Command::new(path);
        cmd.args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {} (apt-get install redis-server, or --redis-server <path>): {e}",
                path.display()
            )
        })?;
        register_child(child.id());
        let stdout = child.stdout.take().expect("piped stdout");
        let log = Arc::new(LogScan::default());
        let scan = log.clone();
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                scan.lines.fetch_add(1, Ordering::Relaxed);
                if !ready {
                    ready = line.contains("Ready to accept connections");
                    continue;
                }
                // `<pid>:M <date> # <text>` is LL_WARNING (e.g. a subscriber closed for
                // overcoming the output buffer limit).
                if line.contains(" # ") && !scan.stopping.load(Ordering::Acquire) {
                    scan.redis_warnings.fetch_add(1, Ordering::Relaxed);
                    scan.keep("redis", &line);
                    eprintln!("[redis] {line}");
                }
            }
            scan.done.store(true, Ordering::Release);
        });
        let mut redis = RedisServer {
            child,
            port,
            log,
            stopped: false,
        };
        let start = Instant::now();
        loop {
            if redis
                .command("PING\r\n")
                .is_some_and(|r| r.starts_with("+PONG"))
            {
                return Ok(redis);
            }
            if let Ok(Some(status)) = redis.child.try_wait() {
                redis.stop();
                return Err(format!("redis-server on port {port} exited with {status}"));
            }
            if start.elapsed() > wait {
                redis.stop();
                return Err(format!("redis-server on port {port} did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends one inline command and returns the reply (bounded waits, one read).
    fn command(&self, inline: &str) -> Option<String> {
        use std::io::{Read, Write};
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port);
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(1000)))
            .ok()?;
        stream.write_all(inline.as_bytes()).ok()?;
        let mut buf = [0u8; 8192];
        let n = stream.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Subscribers of `channel` (`PUBSUB NUMSUB`).
    fn subscribers(&self, channel: &str) -> Option<usize> {
        let reply = self.command(&format!("PUBSUB NUMSUB {channel}\r\n"))?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    }

    /// `connected_clients` of `INFO clients` (this query's own connection included).
    fn connected_clients(&self) -> Option<usize> {
        let reply = self.command("INFO clients\r\n")?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))?
            .trim()
            .parse()
            .ok()
    }

    /// Waits (≤ `wait`) until `nodes` processes subscribe the bus and hold a publishing
    /// connection too.
    fn wait_for_nodes(&self, nodes: usize, wait: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let subs = self.subscribers(BUS_CHANNEL).unwrap_or(0);
            let clients = self.connected_clients().unwrap_or(0);
            if subs >= nodes && clients > 2 * nodes {
                return Ok(());
            }
            if start.elapsed() > wait {
                return Err(format!(
                    "after {wait:?}, {subs} of {nodes} nodes subscribe {BUS_CHANNEL} and redis \
                     has {clients} clients (want {} + this query)",
                    2 * nodes
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> String {
        self.log.stopping.store(true, Ordering::Release);
        self.stopped = true;
        let how = stop_children(&mut [&mut self.child]).remove(0);
        self.log.wait_done(Duration::from_secs(1));
        how
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop();
        }
    }
}

/// The processes a run measures: the servers (empty with `--url`) and redis-server.
#[derive(Debug, Clone, Default)]
struct Procs {
    servers: Vec<u32>,
    redis: Option<u32>,
}

impl Procs {
    /// A `/proc/<pid>/status` field of every server, in KiB; `None` if any is unreadable
    /// or there are no servers.
    fn status_kib(&self, field: &str) -> Option<Vec<u64>> {
        if self.servers.is_empty() {
            return None;
        }
        self.servers
            .iter()
            .map(|pid| proc_status_kib(&pid.to_string(), field))
            .collect()
    }

    fn rss(&self) -> Option<Vec<u64>> {
        self.status_kib("VmRSS:")
    }
}

/// Last-resort guard: if the async run does not come back `grace` after the deadline, kill
/// every child and exit.
fn spawn_watchdog(after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!("loadgen: watchdog fired {after:?} after start; killing the servers and exiting");
        for slot in &CHILD_PIDS {
            let pid = slot.load(Ordering::SeqCst);
            if pid > 0 {
                // SAFETY: kill(2) on our child's pid.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        std::process::exit(3);
    });
}

// ---------------------------------------------------------------------------------------------
// Target address

#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    /// `ws://host:port/path?` or `…?query&`, ready for `vsn=…&user_id=…`.
    url_prefix: String,
}

impl Target {
    fn from_port(port: u16) -> Target {
        Target {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            url_prefix: format!("ws://127.0.0.1:{port}/socket/websocket?"),
        }
    }

    fn from_url(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("--url must start with ws:// (no TLS)")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/socket/websocket"),
        };
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
            .next()
            .ok_or(format!("cannot resolve {hostport}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "refusing to load {addr}: only loopback (127.0.0.0/8, ::1) targets are allowed"
            ));
        }
        let path = if path.contains('?') {
            format!("{path}&")
        } else {
            format!("{path}?")
        };
        Ok(Target {
            addr,
            url_prefix: format!("ws://{hostport}{path}"),
        })
    }

    fn url(&self, user_id: &str) -> String {
        format!("{}vsn=2.0.0&user_id={user_id}", self.url_prefix)
    }

    /// Source address for client `i`: 127.0.0.2–127.0.0.250 when the target is IPv4 loopback.
    fn source(&self, i: usize) -> Option<SocketAddr> {
        match self.addr {
            SocketAddr::V4(v4) if v4.ip().is_loopback() => Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 249) as u8)),
                0,
            )),
            _ => None,
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn connect_ws(
    target: &Target,
    source: Option<SocketAddr>,
    user_id: &str,
    config: WebSocketConfig,
) -> Result<Ws, String> {
    let socket = match target.addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {}", e.kind()))?;
    if let Some(source) = source {
        socket
            .bind(source)
            .map_err(|e| format!("bind: {}", e.kind()))?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let (ws, _response) = client_async_with_config(target.url(user_id), stream, Some(config))
        .await
        .map_err(|e| {
            let text = e.to_string();
            format!("handshake: {}", text.chars().take(80).collect::<String>())
        })?;
    Ok(ws)
}

/// Sends `phx_join` and waits for its reply (other frames, e.g. presence_state, are skipped).
async fn join(ws: &mut Ws, topic: &str) -> Result<(), String> {
    let frame = format!(r#"["{JOIN_REF}","1","{topic}","phx_join",{{}}]"#);
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("join send: {e}"))?;
    let expected = format!(r#"["{JOIN_REF}","1","{topic}","phx_reply","#);
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if text.as_str().starts_with(&expected) {
                    return if text.as_str().contains(r#""status":"ok""#) {
                        Ok(())
                    } else {
                        Err("join: error reply".into())
                    };
                }
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(format!(
                    "join: closed ({})",
                    frame.map(|f| u16::from(f.code)).unwrap_or(0)
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("join: {e}")),
            None => return Err("join: connection ended".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared measurement state

/// Lock-free log-linear histogram of microseconds (64 sub-buckets per power of two, ≤1.6 %).
struct Histogram {
    buckets: Box<[AtomicU64]>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..128 + 57 * 64).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn index(v: u64) -> usize {
        if v < 128 {
            v as usize
        } else {
            let e = 63 - v.leading_zeros() as usize;
            let sub = ((v >> (e - 6)) & 63) as usize;
            128 + (e - 7) * 64 + sub
        }
    }

    /// Smallest value that falls into the bucket after `i` (an upper bound for bucket `i`).
    fn upper(i: usize) -> u64 {
        let next = i + 1;
        if next < 128 {
            next as u64
        } else {
            let e = (next - 128) / 64 + 7;
            let sub = ((next - 128) % 64) as u64;
            (64 + sub) << (e - 6)
        }
    }

    fn record(&self, v: u64) {
        self.buckets[Self::index(v)].fetch_add(1, Ordering::Relaxed);
    }

    /// (count, p50, p99, max) in microseconds, as bucket upper bounds, of the union of
    /// several histograms.
    fn merged(histograms: &[&Histogram]) -> (u64, u64, u64, u64) {
        let mut counts = vec![0u64; histograms.first().map_or(0, |h| h.buckets.len())];
        for h in histograms {
            for (sum, b) in counts.iter_mut().zip(h.buckets.iter()) {
                *sum += b.load(Ordering::Relaxed);
            }
        }
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return (0, 0, 0, 0);
        }
        let quantile = |q: f64| {
            let rank = ((q * total as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Self::upper(i);
                }
            }
            0
        };
        let max = counts
            .iter()
            .rposition(|&c| c > 0)
            .map(Self::upper)
            .unwrap_or(0);
        (total, quantile(0.5), quantile(0.99), max)
    }
}

struct Shared {
    base: Instant,
    n: usize,
    rounds: usize,
    /// Send instant of shout `seq`, ns since `base`.
    send_ns: Box<[AtomicU64]>,
    /// How many of the N clients have received shout `seq`.
    recv_count: Box<[AtomicU32]>,
    /// Latency-round samples in µs, `[round * n + client]`; u32::MAX = not received.
    round_lat: Box<[AtomicU32]>,
    /// Number of server nodes; client `idx` is on node `idx % nodes`.
    nodes: usize,
    /// Latencies during the sustained phase, per node of the receiving client.
    sustained_lat: Vec<Histogram>,
    /// A shout became complete (received by every live client).
    completed: Notify,
    connect_done: AtomicUsize,
    joined: AtomicUsize,
    /// Clients joined on each node.
    joined_per_node: Box<[AtomicUsize]>,
    live: AtomicUsize,
    /// Counting of closes stops when the run is over (the server's shutdown closes everyone).
    counting_closes: AtomicBool,
    disconnects: AtomicUsize,
    close_reasons: Mutex<BTreeMap<String, usize>>,
    failures: Mutex<BTreeMap<String, usize>>,
    /// Frames other than shouts and heartbeat replies (presence_state/diff, ...).
    other_frames: AtomicU64,
    heartbeats: AtomicU64,
    /// Join-storm bookkeeping (`None` in the fan-out scenario).
    storm: Option<Storm>,
}

/// Per-client member counts kept by the join-storm scenario, from presence frames only.
struct Storm {
    /// `["…",…,"<topic>","presence_state",` after the refs.
    state_event: memmem::Finder<'static>,
    /// `"<topic>","presence_diff",`.
    diff_event: memmem::Finder<'static>,
    /// Member count of each client: metas in its state + diff joins − diff leaves.
    counts: Box<[AtomicI64]>,
    /// When each client's count last changed (ns since `base`).
    last_change_ns: Box<[AtomicU64]>,
    /// Presence frames received by each client.
    frames: Box<[AtomicU32]>,
    /// Each client received its `presence_state` (a second one is reported).
    got_state: Box<[AtomicBool]>,
    first_join_ns: AtomicU64,
    last_join_ns: AtomicU64,
    state_frames: AtomicU64,
    diff_frames: AtomicU64,
    presence_bytes: AtomicU64,
    state_metas: AtomicU64,
    join_metas: AtomicU64,
    leave_metas: AtomicU64,
    /// Presence frames received after every client had converged.
    late_frames: AtomicU64,
    converged: AtomicBool,
    /// Updates that left a client's count above N (a server bug), and the highest count.
    overcounts: AtomicU64,
    max_count: AtomicI64,
    /// Second `presence_state` to the same client; diffs without a `"leaves":` part.
    repeated_states: AtomicU64,
    malformed: AtomicU64,
}

impl Storm {
    fn new(n: usize, topic: &str) -> Storm {
        let state = format!("\"{topic}\",\"presence_state\",").into_bytes();
        let diff = format!("\"{topic}\",\"presence_diff\",").into_bytes();
        Storm {
            state_event: memmem::Finder::new(&state).into_owned(),
            diff_event: memmem::Finder::new(&diff).into_owned(),
            counts: (0..n).map(|_| AtomicI64::new(0)).collect(),
            last_change_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
            frames: (0..n).map(|_| AtomicU32::new(0)).collect(),
            got_state: (0..n).map(|_| AtomicBool::new(false)).collect(),
            first_join_ns: AtomicU64::new(u64::MAX),
            last_join_ns: AtomicU64::new(0),
            state_frames: AtomicU64::new(0),
            diff_frames: AtomicU64::new(0),
            presence_bytes: AtomicU64::new(0),
            state_metas: AtomicU64::new(0),
            join_metas: AtomicU64::new(0),
            leave_metas: AtomicU64::new(0),
            late_frames: AtomicU64::new(0),
            converged: AtomicBool::new(false),
            overcounts: AtomicU64::new(0),
            max_count: AtomicI64::new(0),
            repeated_states: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        }
    }

    /// Counts a presence frame for client `idx`; `false` if `frame` is not one.
    fn on_frame(&self, idx: usize, n: usize, now_ns: u64, frame: &[u8]) -> bool {
        // The event name comes right after the two refs and the topic.
        let head = &frame[..frame.len().min(64 + self.state_event.needle().len())];
        let (delta, is_state) = if self.state_event.find(head).is_some() {
            let metas = PHX_REF.find_iter(frame).count() as i64;
            self.state_frames.fetch_add(1, Ordering::Relaxed);
            self.state_metas.fetch_add(metas as u64, Ordering::Relaxed);
            if self.got_state[idx].swap(true, Ordering::Relaxed) {
                self.repeated_states.fetch_add(1, Ordering::Relaxed);
            }
            (metas, true)
        } else if self.diff_event.find(head).is_some() {
            self.diff_frames.fetch_add(1, Ordering::Relaxed);
            let split = LEAVES_KEY.find(frame).unwrap_or_else(|| {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                frame.len()
            });
            let joins = PHX_REF.find_iter(&frame[..split]).count() as i64;
            let leaves = PHX_REF.find_iter(&frame[split..]).count() as i64;
            self.join_metas.fetch_add(joins as u64, Ordering::Relaxed);
            self.leave_metas.fetch_add(leaves as u64, Ordering::Relaxed);
            (joins - leaves, false)
        } else {
            return false;
        };
        self.presence_bytes
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        self.frames[idx].fetch_add(1, Ordering::Relaxed);
        if self.converged.load(Ordering::Relaxed) {
            self.late_frames.fetch_add(1, Ordering::Relaxed);
        }
        // Only this client's task writes its count.
        let count = self.counts[idx].load(Ordering::Relaxed) + delta;
        self.counts[idx].store(count, Ordering::Release);
        if delta != 0 || is_state {
            self.last_change_ns[idx].store(now_ns, Ordering::Release);
        }
        self.max_count.fetch_max(count, Ordering::Relaxed);
        if count > n as i64 {
            let events = self.overcounts.fetch_add(1, Ordering::Relaxed);
            if events < 10 {
                eprintln!(
                    "loadgen: OVER-COUNT: client {idx} counts {count} members (> N = {n}) after a \
                     {} of {} bytes",
                    if is_state {
                        "presence_state"
                    } else {
                        "presence_diff"
                    },
                    frame.len()
                );
            }
        }
        true
    }
}

impl Shared {
    fn new(n: usize, rounds: usize, nodes: usize) -> Shared {
        Shared {
            base: Instant::now(),
            n,
            rounds,
            send_ns: (0..MAX_SHOUTS).map(|_| AtomicU64::new(0)).collect(),
            recv_count: (0..MAX_SHOUTS).map(|_| AtomicU32::new(0)).collect(),
            round_lat: (0..n * rounds).map(|_| AtomicU32::new(u32::MAX)).collect(),
            nodes,
            sustained_lat: (0..nodes).map(|_| Histogram::new()).collect(),
            completed: Notify::new(),
            connect_done: AtomicUsize::new(0),
            joined: AtomicUsize::new(0),
            joined_per_node: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            live: AtomicUsize::new(0),
            counting_closes: AtomicBool::new(true),
            disconnects: AtomicUsize::new(0),
            close_reasons: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(BTreeMap::new()),
            other_frames: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            storm: None,
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn fail(&self, reason: String) {
        *self.failures.lock().unwrap().entry(reason).or_default() += 1;
        self.connect_done.fetch_add(1, Ordering::AcqRel);
    }

    fn closed(&self, reason: String) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        // A shout may now be complete for the remaining clients.
        self.completed.notify_one();
        if self.counting_closes.load(Ordering::Acquire) {
            self.disconnects.fetch_add(1, Ordering::AcqRel);
            *self
                .close_reasons
                .lock()
                .unwrap()
                .entry(reason)
                .or_default() += 1;
        }
    }

    /// Handles one text frame received by client `idx`. No JSON parsing.
    fn on_text(&self, idx: usize, frame: &[u8]) {
        let now = self.now_ns();
        if let Some(storm) = &self.storm {
            if storm.on_frame(idx, self.n, now, frame) {
                return;
            }
        }
        let Some(seq) = shout_seq(frame) else {
            let heartbeat_reply =
                frame.starts_with(b"[null,\"") && HEARTBEAT_REPLY.find(frame).is_some();
            if !heartbeat_reply {
                self.other_frames.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let seq = seq as usize;
        if seq >= MAX_SHOUTS {
            return;
        }
        let sent = self.send_ns[seq].load(Ordering::Acquire);
        let lat_us = now.saturating_sub(sent) / 1000;
        if seq < self.rounds {
            self.round_lat[seq * self.n + idx]
                .store(lat_us.min(u32::MAX as u64 - 1) as u32, Ordering::Relaxed);
        } else {
            self.sustained_lat[idx % self.nodes].record(lat_us);
        }
        let got = self.recv_count[seq].fetch_add(1, Ordering::AcqRel) as usize + 1;
        if got >= self.live.load(Ordering::Acquire) {
            self.completed.notify_one();
        }
    }
}

static SHOUT_EVENT: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\",\"shout\",{"));
static SEQ_KEY: LazyLock<memmem::FinderRev<'static>> =
    LazyLock::new(|| memmem::FinderRev::new(b"\"seq\":"));
static PHX_REF: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"phx_ref\":"));
static LEAVES_KEY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"leaves\":"));
static HEARTBEAT_REPLY: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"phoenix\",\"phx_reply\""));

/// `Some(seq)` for a broadcast `[null,null,"<topic>","shout",{…"seq":N…}]`.
fn shout_seq(frame: &[u8]) -> Option<u64> {
    if !frame.starts_with(b"[null,null,\"") {
        return None;
    }
    let at = SHOUT_EVENT.find(frame)?;
    let payload = &frame[at..];
    let seq_at = SEQ_KEY.rfind(payload)? + 6;
    let mut value: u64 = 0;
    let mut digits = 0;
    for &b in &payload[seq_at..] {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        digits += 1;
    }
    (digits > 0).then_some(value)
}

// ---------------------------------------------------------------------------------------------
// Clients

#[derive(Clone)]
struct ClientCtx {
    shared: Arc<Shared>,
    /// One per server node; client `idx` connects to `targets[idx % targets.len()]`.
    targets: Arc<Vec<Target>>,
    connect_slots: Arc<tokio::sync::Semaphore>,
    config: WebSocketConfig,
    topic: Arc<str>,
    heartbeat: Duration,
    read_buf: usize,
}

async fn run_client(idx: usize, ctx: ClientCtx) {
    let shared = &ctx.shared;
    let Ok(permit) = ctx.connect_slots.acquire().await else {
        shared.fail("semaphore closed".into());
        return;
    };
    let user_id = format!("u{idx}");
    let attempt = async {
        let target = &ctx.targets[idx % ctx.targets.len()];
        let ws = connect_ws(target, target.source(idx), &user_id, ctx.config).await?;
        // The server sends nothing before the join, so tungstenite holds no buffered bytes
        // beyond the handshake response: the raw stream continues exactly at a frame boundary.
        let mut ws = RawWs::new(ws.into_inner(), ctx.read_buf, idx as u32);
        if let Some(storm) = &shared.storm {
            storm
                .first_join_ns
                .fetch_min(shared.now_ns(), Ordering::AcqRel);
        }
        ws.join(&ctx.topic, |frame| shared.on_text(idx, frame))
            .await?;
        if let Some(storm) = &shared.storm {
            storm
                .last_join_ns
                .fetch_max(shared.now_ns(), Ordering::AcqRel);
        }
        Ok::<_, String>(ws)
    };
    let result = tokio::time::timeout(Duration::from_secs(30), attempt).await;
    drop(permit);
    let mut ws = match result {
        Ok(Ok(ws)) => ws,
        Ok(Err(reason)) => return shared.fail(reason),
        Err(_) => return shared.fail("connect+join timed out (30 s)".into()),
    };
    shared.joined.fetch_add(1, Ordering::AcqRel);
    shared.joined_per_node[idx % shared.nodes].fetch_add(1, Ordering::AcqRel);
    shared.live.fetch_add(1, Ordering::AcqRel);
    shared.connect_done.fetch_add(1, Ordering::AcqRel);

    // Spread heartbeats over the interval so they do not arrive in bursts.
    let first = ctx
        .heartbeat
        .mul_f64(((idx as u64 * 7919) % 1000) as f64 / 1000.0);
    let sleep = tokio::time::sleep(first);
    tokio::pin!(sleep);
    let mut next_ref: u64 = 2;
    loop {
        let step = tokio::select! {
            filled = ws.fill() => match filled {
                Ok(()) => ws.process(|frame| shared.on_text(idx, frame)),
                Err(reason) => Err(reason),
            },
            () = &mut sleep => {
                let frame = format!(r#"[null,"{next_ref}","phoenix","heartbeat",{{}}]"#);
                next_ref += 1;
                shared.heartbeats.fetch_add(1, Ordering::Relaxed);
                sleep.as_mut().reset(tokio::time::Instant::now() + ctx.heartbeat);
                ws.send(0x1, frame.as_bytes()).await
            }
        };
        let step = match step {
            Ok(()) => ws.send_pongs().await,
            Err(reason) => Err(reason),
        };
        if let Err(reason) = step {
            return shared.closed(reason);
        }
    }
}

/// A minimal client-side WebSocket codec over the raw TCP stream, used for the N measured
/// clients after tungstenite did the handshake. It exists to keep 10,000 receive loops cheap:
/// no zeroing of a read buffer per read, no per-message allocation, no UTF-8 validation
/// (frames are only byte-searched), and the buffer shrinks back after a large frame (e.g. a
/// big `presence_state`) instead of keeping its high-water mark per client.
///
/// It handles what a server may send: text (also fragmented), binary (ignored), ping (answered
/// with pong), pong, close. Outgoing frames are masked as RFC 6455 requires.
struct RawWs {
    stream: TcpStream,
    /// Storage; bytes `[start, end)` are received and not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes needed from `start` before the next frame can be parsed.
    need: usize,
    default_len: usize,
    /// A fragmented text message being assembled.
    fragments: Option<Vec<u8>>,
    pongs: Vec<Vec<u8>>,
    mask_state: u32,
}

/// Largest frame or message accepted from the server.
const MAX_MESSAGE: usize = 64 << 20;

impl RawWs {
    fn new(stream: TcpStream, default_len: usize, seed: u32) -> RawWs {
        let default_len = default_len.max(256);
        RawWs {
            stream,
            buf: vec![0; default_len],
            start: 0,
            end: 0,
            need: 2,
            default_len,
            fragments: None,
            pongs: Vec::new(),
            mask_state: seed.wrapping_mul(2_654_435_761).max(1),
        }
    }

    /// Sends `["1","1",topic,"phx_join",{}]` and reads until its reply; every other frame read
    /// meanwhile goes to `other`.
    async fn join(&mut self, topic: &str, mut other: impl FnMut(&[u8])) -> Result<(), String> {
        let frame = format!(r#"["{JOIN_REF}","1","{topic}","phx_join",{{}}]"#);
        self.send(0x1, frame.as_bytes()).await?;
        let expected = format!(r#"["{JOIN_REF}","1","{topic}","phx_reply","#);
        let mut reply: Option<bool> = None;
        while reply.is_none() {
            self.fill().await.map_err(|e| format!("join: {e}"))?;
            self.process(|frame| {
                if reply.is_none() && frame.starts_with(expected.as_bytes()) {
                    reply = Some(memmem::find(frame, br#""status":"ok""#).is_some());
                } else {
                    other(frame);
                }
            })
            .map_err(|e| format!("join: {e}"))?;
            self.send_pongs().await?;
        }
        match reply {
            Some(true) => Ok(()),
            _ => Err("join: error reply".into()),
        }
    }

    /// Reads at least one more chunk from the socket. Cancel-safe: the only await is the read.
    async fn fill(&mut self) -> Result<(), String> {
        use tokio::io::AsyncReadExt;
        if self.start + self.need > self.buf.len() || self.end == self.buf.len() {
            // Move the unconsumed bytes to the front, and grow only for a frame that needs it.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.need > self.buf.len() {
                self.buf.resize(self.need, 0);
            }
            if self.end == self.buf.len() {
                // Cannot happen (a full buffer holds a complete frame, already consumed), but
                // a zero-length read would look like EOF.
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        match self.stream.read(&mut self.buf[self.end..]).await {
            Ok(0) => Err("eof".into()),
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) => Err(format!("read: {}", e.kind())),
        }
    }

    /// Handles every complete frame in the buffer; text messages go to `on_text`.
    /// `Err` means the connection is over (close frame or protocol error), with the reason.
    fn process(&mut self, mut on_text: impl FnMut(&[u8])) -> Result<(), String> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                self.need = 2;
                break;
            }
            let (b0, b1) = (avail[0], avail[1]);
            let (fin, opcode, masked) = (b0 & 0x80 != 0, b0 & 0x0f, b1 & 0x80 != 0);
            let (mut header, len) = match b1 & 0x7f {
                126 if avail.len() < 4 => {
                    self.need = 4;
                    break;
                }
                126 => (4, u16::from_be_bytes([avail[2], avail[3]]) as u64),
                127 if avail.len() < 10 => {
                    self.need = 10;
                    break;
                }
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (10, u64::from_be_bytes(b))
                }
                n => (2, n as u64),
            };
            if len > MAX_MESSAGE as u64 {
                return Err(format!("protocol: frame of {len} bytes"));
            }
            let mask_at = header;
            if masked {
                header += 4;
            }
            let total = header + len as usize;
            if avail.len() < total {
                self.need = total;
                break;
            }
            let frame_at = self.start;
            self.start += total;
            let payload = frame_at + header..frame_at + total;
            if masked {
                let at = frame_at + mask_at;
                let key = [
                    self.buf[at],
                    self.buf[at + 1],
                    self.buf[at + 2],
                    self.buf[at + 3],
                ];
                for (i, b) in self.buf[payload.clone()].iter_mut().enumerate() {
                    *b ^= key[i & 3];
                }
            }
            let data = &self.buf[payload];
            match opcode {
                0x1 if fin => on_text(data),
                0x1 => self.fragments = Some(data.to_vec()),
                0x0 => {
                    let Some(mut message) = self.fragments.take() else {
                        return Err("protocol: continuation without a start".into());
                    };
                    if message.len() + data.len() > MAX_MESSAGE {
                        return Err("protocol: message too large".into());
                    }
                    message.extend_from_slice(data);
                    if fin {
                        on_text(&message);
                    } else {
                        self.fragments = Some(message);
                    }
                }
                0x2 => {}
                0x8 => {
                    let code = if data.len() >= 2 {
                        u16::from_be_bytes([data[0], data[1]])
                    } else {
                        1005
                    };
                    let reason = String::from_utf8_lossy(data.get(2..).unwrap_or_default());
                    return Err(format!("close {code} {reason}"));
                }
                0x9 => self.pongs.push(data.to_vec()),
                0xA => {}
                other => return Err(format!("protocol: opcode {other:#x}")),
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > self.default_len {
                // Give back what a large frame needed.
                self.buf = vec![0; self.default_len];
            }
        }
        Ok(())
    }

    /// Writes one masked frame (FIN set) with `opcode`.
    async fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // xorshift32: masking keys need not be cryptographic for a load generator.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        let key = x.to_be_bytes();
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        self.stream
            .write_all(&frame)
            .await
            .map_err(|e| format!("write: {}", e.kind()))
    }

    async fn send_pongs(&mut self) -> Result<(), String> {
        for payload in std::mem::take(&mut self.pongs) {
            self.send(0xA, &payload).await?;
        }
        Ok(())
    }
}

/// The separate client that pushes shouts. Its own copies of the broadcasts are drained and
/// not counted.
struct Sender {
    sink: Arc<tokio::sync::Mutex<SplitSink<Ws, Message>>>,
    topic: String,
    pad: String,
    next_ref: u64,
    alive: Arc<AtomicBool>,
}

impl Sender {
    async fn connect(ctx: &ClientCtx, pad: usize) -> Result<Sender, String> {
        // On node 0: its clients are "local" to the sender, the others "remote".
        let mut ws = connect_ws(&ctx.targets[0], None, "bench-sender", ctx.config).await?;
        join(&mut ws, &ctx.topic).await?;
        let (sink, mut stream) = ws.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let alive = Arc::new(AtomicBool::new(true));
        let reader_alive = alive.clone();
        let shared = ctx.shared.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Close(frame) = message {
                    if shared.counting_closes.load(Ordering::Acquire) {
                        eprintln!("loadgen: the sender was closed by the server: {frame:?}");
                    }
                    break;
                }
            }
            reader_alive.store(false, Ordering::Release);
        });
        let hb_sink = sink.clone();
        let heartbeat = ctx.heartbeat;
        tokio::spawn(async move {
            let mut hb_ref = 1_000_000_000u64;
            loop {
                tokio::time::sleep(heartbeat).await;
                hb_ref += 1;
                let frame = format!(r#"[null,"{hb_ref}","phoenix","heartbeat",{{}}]"#);
                if hb_sink
                    .lock()
                    .await
                    .send(Message::text(frame))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Sender {
            sink,
            topic: ctx.topic.to_string(),
            pad: "x".repeat(pad),
            next_ref: 2,
            alive,
        })
    }

    /// The shout payload; keys in sorted order, as the server re-encodes them.
    fn payload(&self, seq: usize) -> String {
        if self.pad.is_empty() {
            format!(r#"{{"seq":{seq}}}"#)
        } else {
            format!(r#"{{"pad":"{}","seq":{seq}}}"#, self.pad)
        }
    }

    fn frame(&mut self, seq: usize) -> String {
        let r = self.next_ref;
        self.next_ref += 1;
        format!(
            r#"["{JOIN_REF}","{r}","{}","shout",{}]"#,
            self.topic,
            self.payload(seq)
        )
    }

    /// Size of the broadcast frame the clients receive for `seq`.
    fn broadcast_len(&self, seq: usize) -> usize {
        format!(
            r#"[null,null,"{}","shout",{}]"#,
            self.topic,
            self.payload(seq)
        )
        .len()
    }

    /// Stamps the send instant of `seq` and sends it.
    async fn shout(&mut self, shared: &Shared, seq: usize) -> Result<(), String> {
        if !self.alive.load(Ordering::Acquire) {
            return Err("the sender connection is gone".into());
        }
        let frame = Message::text(self.frame(seq));
        let mut sink = self.sink.lock().await;
        shared.send_ns[seq].store(shared.now_ns(), Ordering::Release);
        sink.send(frame).await.map_err(|e| format!("sender: {e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Debug, Default, Clone)]
struct PhaseCpu {
    wall: f64,
    generator: f64,
    /// Sum over the servers.
    server: Option<f64>,
    /// Each server, when there are several.
    server_each: Vec<f64>,
    redis: Option<f64>,
    /// Busy time of all CPUs (every process, interrupts included).
    machine: Option<f64>,
}

impl PhaseCpu {
    fn describe(&self) -> String {
        let pct = |cpu: f64| {
            if self.wall > 0.0 {
                cpu / self.wall * 100.0
            } else {
                0.0
            }
        };
        let mut text = format!("generator {:.0} %", pct(self.generator));
        if let Some(server) = self.server {
            if self.server_each.len() > 1 {
                let each: Vec<String> = self
                    .server_each
                    .iter()
                    .map(|&c| format!("{:.0}", pct(c)))
                    .collect();
                text += &format!(
                    ", servers {:.0} % (node-0…: {} %)",
                    pct(server),
                    each.join(" / ")
                );
            } else {
                text += &format!(", server {:.0} %", pct(server));
            }
        }
        if let Some(redis) = self.redis {
            text += &format!(", redis {:.0} %", pct(redis));
        }
        if let Some(machine) = self.machine {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            text += &format!(", whole machine {:.0} % of {} %", pct(machine), cores * 100);
        }
        text + &format!(" (100 % = one core; over {:.1} s)", self.wall)
    }
}

struct CpuMark {
    at: Instant,
    generator: f64,
    /// Each server (`None` if one was unreadable or there are none).
    servers: Option<Vec<f64>>,
    redis: Option<f64>,
    machine: Option<f64>,
}

impl CpuMark {
    fn now(procs: &Procs) -> CpuMark {
        CpuMark {
            at: Instant::now(),
            generator: self_cpu_secs(),
            servers: if procs.servers.is_empty() {
                None
            } else {
                procs.servers.iter().map(|&p| proc_cpu_secs(p)).collect()
            },
            redis: procs.redis.and_then(proc_cpu_secs),
            machine: machine_busy_secs(),
        }
    }

    fn since(&self, procs: &Procs) -> PhaseCpu {
        let end = CpuMark::now(procs);
        let each: Option<Vec<f64>> = match (&end.servers, &self.servers) {
            (Some(a), Some(b)) if a.len() == b.len() => {
                Some(a.iter().zip(b).map(|(a, b)| a - b).collect())
            }
            _ => None,
        };
        PhaseCpu {
            wall: end.at.duration_since(self.at).as_secs_f64(),
            generator: end.generator - self.generator,
            server: each.as_ref().map(|e| e.iter().sum()),
            server_each: each.unwrap_or_default(),
            redis: match (end.redis, self.redis) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            },
            machine: match (end.machine, self.machine) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Report {
    requested: usize,
    joined: Option<usize>,
    failures: BTreeMap<String, usize>,
    connect: Option<PhaseCpu>,
    /// Clients joined per node (client `idx` is on node `idx % nodes`).
    joined_per_node: Vec<usize>,
    /// VmRSS of each server, in KiB.
    rss_before: Option<Vec<u64>>,
    rss_joined: Option<Vec<u64>>,
    rss_settle: Option<(f64, bool)>,
    rss_after_load: Option<Vec<u64>>,
    /// Frames other than shouts/heartbeat replies received by all clients after joining.
    other_frames_at_idle: Option<u64>,
    rounds_done: usize,
    /// Latency-round samples (µs), per node of the receiving client.
    round_samples: Vec<Vec<u32>>,
    /// Per node, per round: the earliest receive among that node's clients (µs), i.e. when
    /// the node started writing the broadcast.
    round_first: Vec<Vec<u32>>,
    round_misses: usize,
    latency: Option<PhaseCpu>,
    sustained_sent: Option<usize>,
    sustained_delivered: u64,
    sustained_elapsed: f64,
    sustained_abandoned: usize,
    /// Sustained-phase latency (count, p50, p99, max in µs): all, clients on the sender's
    /// node, clients on the other nodes.
    sustained_lat: Option<(u64, u64, u64, u64)>,
    sustained_lat_local: Option<(u64, u64, u64, u64)>,
    sustained_lat_remote: Option<(u64, u64, u64, u64)>,
    sustained: Option<PhaseCpu>,
    disconnects: usize,
    close_reasons: BTreeMap<String, usize>,
    generator_rss_kib: Option<u64>,
    frame_bytes: usize,
    server_stop: Option<String>,
    /// Description of the cluster (nodes, ports, pids, redis).
    cluster: Option<String>,
    /// Per server node: (panicked, ERROR, WARN lines, first flagged lines).
    server_logs: Vec<(u64, u64, u64)>,
    log_samples: Vec<String>,
    /// Warning lines in redis-server's log after start.
    redis_warnings: Option<u64>,
    redis_stop: Option<String>,
    aborted: Option<String>,
    elapsed: f64,
    storm: Option<StormReport>,
}

#[derive(Debug, Default, Clone)]
struct StormReport {
    /// First join sent → last join reply received.
    join_phase: f64,
    /// First join sent → the last change of any client's count, once all equal `target`.
    convergence: Option<f64>,
    /// Per-client time from the first join sent to its count's last change: p50, p99, max.
    client_convergence: (f64, f64, f64),
    /// Expected count (clients joined).
    target: usize,
    converged_clients: usize,
    /// The most frequent counts among clients that did not converge: (count, clients).
    stuck: Vec<(i64, usize)>,
    no_state: usize,
    state_frames: u64,
    diff_frames: u64,
    presence_bytes: u64,
    state_metas: u64,
    join_metas: u64,
    leave_metas: u64,
    max_frames_per_client: u32,
    late_frames: u64,
    overcounts: u64,
    max_count: i64,
    repeated_states: u64,
    malformed: u64,
    /// After the settle period: clients whose count is no longer `target`.
    drifted_after: usize,
    cpu: Option<PhaseCpu>,
    /// Per node: the last change of any of its clients' counts (s after the first join),
    /// and how many of its clients count the target.
    per_node: Vec<(f64, usize, usize)>,
    /// VmHWM and settled VmRSS of each server, in KiB.
    rss_peak: Option<Vec<u64>>,
    rss_post: Option<Vec<u64>>,
    rss_settle: Option<(f64, bool)>,
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The sum, and each node's figure when there are several: `912.3 MiB (node-0 …, …)`.
fn mib_nodes(kib: &[u64]) -> String {
    let total = mib(kib.iter().sum());
    if kib.len() > 1 {
        let each: Vec<String> = kib
            .iter()
            .enumerate()
            .map(|(i, &k)| format!("node-{i} {:.1}", k as f64 / 1024.0))
            .collect();
        format!("{total} (MiB: {})", each.join(", "))
    } else {
        total
    }
}

/// Per-connection growth: the sum over nodes, and each node's own when there are several.
fn per_conn_nodes(before: &[u64], after: &[u64], joined: &[usize]) -> String {
    let total: usize = joined.iter().sum();
    let delta = |b: u64, a: u64| a as f64 - b as f64;
    let sum: f64 = before.iter().zip(after).map(|(&b, &a)| delta(b, a)).sum();
    let mut text = format!("{:.2} KiB", sum / total.max(1) as f64);
    if after.len() > 1 {
        let each: Vec<String> = (0..after.len())
            .map(|i| {
                format!(
                    "node-{i} {:.2}",
                    delta(before[i], after[i]) / joined.get(i).copied().unwrap_or(0).max(1) as f64
                )
            })
            .collect();
        text += &format!(" (KiB: {})", each.join(", "));
    }
    text
}

/// p50 / p99 / max (ms) of sorted µs samples.
fn quantiles_ms(sorted: &[u32]) -> String {
    if sorted.is_empty() {
        return "no samples".into();
    }
    let q = |p: f64| -> u64 {
        let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1] as u64
    };
    format!(
        "{} / {} / {} ms",
        ms(q(0.5)),
        ms(q(0.99)),
        ms(*sorted.last().unwrap() as u64)
    )
}

fn print_report(report: &Report, opts: &Opts, command: &str) {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_string(), v));
    let joined = report.joined.unwrap_or(0);
    row(
        "clients joined / requested (N)",
        format!("{joined} / {}", report.requested),
    );
    let failed: usize = report.failures.values().sum();
    if failed > 0 {
        let detail: Vec<String> = report
            .failures
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect();
        row(
            "connect/join failures",
            format!("{failed} ({})", detail.join("; ")),
        );
    }
    if let Some(c) = &report.connect {
        row(
            "connect + join time",
            format!(
                "{:.2} s ({:.0} joins/s, {} in flight)",
                c.wall,
                joined as f64 / c.wall.max(1e-9),
                opts.connect_concurrency
            ),
        );
    }
    if let Some(cluster) = &report.cluster {
        row("cluster", cluster.clone());
        let per: Vec<String> = report
            .joined_per_node
            .iter()
            .enumerate()
            .map(|(i, j)| format!("node-{i} {j}"))
            .collect();
        row("clients joined per node", per.join(", "));
    }
    match (&report.rss_before, &report.rss_joined) {
        (Some(before), Some(after)) => {
            row("server RSS before clients", mib_nodes(before));
            let settle = settle_note(report.rss_settle);
            row(
                "server RSS, N joined and idle",
                format!("{}{settle}", mib_nodes(after)),
            );
            if joined > 0 {
                row(
                    "**RSS per idle joined connection**",
                    format!(
                        "**{}**",
                        per_conn_nodes(before, after, &report.joined_per_node)
                    ),
                );
            }
        }
        (Some(before), None) => row("server RSS before clients", mib_nodes(before)),
        _ => row("server RSS", "not measured (--url)".into()),
    }
    if let Some(other) = report.other_frames_at_idle {
        row(
            "non-shout frames received while joining",
            format!("{other}"),
        );
    }
    if report.rounds_done > 0 {
        let sorted = |nodes: std::ops::Range<usize>| -> Vec<u32> {
            let mut v: Vec<u32> = report.round_samples[nodes].concat();
            v.sort_unstable();
            v
        };
        let k = report.round_samples.len();
        let all = sorted(0..k);
        row(
            "broadcast latency rounds",
            format!(
                "{} of {} ({} samples, {} missed)",
                report.rounds_done,
                opts.rounds,
                all.len(),
                report.round_misses
            ),
        );
        row(
            "**one broadcast to N: p50 / p99 / max**",
            format!("**{}**", quantiles_ms(&all)),
        );
        if k > 1 {
            let local = sorted(0..1);
            let remote = sorted(1..k);
            row(
                "**… to clients on the sender's node (local)**",
                format!("**{}** ({} samples)", quantiles_ms(&local), local.len()),
            );
            row(
                "**… to clients on the other nodes (remote, via Redis)**",
                format!("**{}** ({} samples)", quantiles_ms(&remote), remote.len()),
            );
            let each: Vec<String> = (0..k)
                .map(|i| format!("node-{i} {}", quantiles_ms(&sorted(i..i + 1))))
                .collect();
            row("… per node", each.join("; "));
            let first: Vec<String> = report
                .round_first
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut v = v.clone();
                    v.sort_unstable();
                    let median = v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0);
                    let max = v.last().copied().unwrap_or(0);
                    format!("node-{i} {} / {} ms", ms(median as u64), ms(max as u64))
                })
                .collect();
            row(
                "… first client reached on each node, median / max over rounds",
                first.join("; "),
            );
        }
    }
    if let Some(c) = &report.latency {
        row("CPU during latency rounds", c.describe());
    }
    if let Some(sent) = report.sustained_sent {
        let fps = report.sustained_delivered as f64 / report.sustained_elapsed.max(1e-9);
        row(
            "sustained fan-out",
            format!(
                "{sent} shouts sent in {:.1} s (window {}), {} frames delivered in {:.2} s",
                opts.seconds, opts.window, report.sustained_delivered, report.sustained_elapsed
            ),
        );
        row("**delivered frames/s**", format!("**{fps:.0}**"));
        if report.sustained_abandoned > 0 {
            row(
                "shouts not delivered to all within 10 s",
                format!("{}", report.sustained_abandoned),
            );
        }
        let lat = |(count, p50, p99, max): (u64, u64, u64, u64)| {
            format!(
                "{} / {} / {} ms ({count} samples)",
                ms(p50),
                ms(p99),
                ms(max)
            )
        };
        if let Some(all) = report.sustained_lat {
            row("latency under sustained load p50 / p99 / max", lat(all));
        }
        if let (Some(local), Some(remote)) =
            (report.sustained_lat_local, report.sustained_lat_remote)
        {
            row(
                "… local (sender's node) / remote",
                format!("{} / {}", lat(local), lat(remote)),
            );
        }
    }
    if let Some(c) = &report.sustained {
        row("CPU during sustained fan-out", c.describe());
    }
    if let Some(kib) = &report.rss_after_load {
        row("server RSS after sustained load", mib_nodes(kib));
    }
    if let Some(st) = &report.storm {
        storm_rows(st, report, joined, &mut row);
    }
    let reasons: Vec<String> = report
        .close_reasons
        .iter()
        .map(|(k, v)| format!("{v}× {k}"))
        .collect();
    row(
        "**disconnects during the run**",
        if reasons.is_empty() {
            format!("**{}**", report.disconnects)
        } else {
            format!("**{}** ({})", report.disconnects, reasons.join("; "))
        },
    );
    if report.storm.is_none() {
        row("shout frame size", format!("{} bytes", report.frame_bytes));
    }
    if let Some(kib) = report.generator_rss_kib {
        row("generator RSS", mib(kib));
    }
    if !report.server_logs.is_empty() {
        let (panics, errors, warns) = report
            .server_logs
            .iter()
            .fold((0, 0, 0), |acc, l| (acc.0 + l.0, acc.1 + l.1, acc.2 + l.2));
        let mut text = format!("{panics} panicked, {errors} ERROR, {warns} WARN lines");
        if report.server_logs.len() > 1 {
            let each: Vec<String> = report
                .server_logs
                .iter()
                .enumerate()
                .map(|(i, l)| format!("node-{i} {}/{}/{}", l.0, l.1, l.2))
                .collect();
            text += &format!(" ({})", each.join(", "));
        }
        if panics + errors + warns > 0 {
            text = format!("**{text}**");
        }
        row("server stderr", text);
    }
    if let Some(warnings) = report.redis_warnings {
        row("redis-server warnings after start", format!("{warnings}"));
    }
    if !report.log_samples.is_empty() {
        let samples: Vec<String> = report
            .log_samples
            .iter()
            .map(|l| format!("`{}`", l.replace('|', "\\|").replace('`', "'")))
            .collect();
        row("first flagged log lines", samples.join("<br>"));
    }
    if let Some(stop) = &report.server_stop {
        row("server shutdown", stop.clone());
    }
    if let Some(stop) = &report.redis_stop {
        row("redis-server shutdown", stop.clone());
    }
    if let Some(reason) = &report.aborted {
        row("**ABORTED**", reason.clone());
    }
    row("elapsed", format!("{:.1} s", report.elapsed));

    println!();
    println!("### loadgen result");
    println!();
    println!("Machine: {}", machine_summary());
    println!();
    println!("Command: `{command}`");
    println!();
    println!("| metric | value |");
    println!("|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    println!();
}

fn storm_rows(
    st: &StormReport,
    report: &Report,
    joined: usize,
    row: &mut impl FnMut(&str, String),
) {
    let n = joined as f64;
    let n2 = n * n;
    row(
        "join phase (first join sent → last join reply)",
        format!("{:.2} s", st.join_phase),
    );
    match st.convergence {
        Some(secs) => row(
            "**convergence (first join sent → every client counts N)**",
            format!("**{secs:.2} s**"),
        ),
        None => row(
            "**convergence**",
            format!(
                "**NOT CONVERGED**: {} of {joined} clients count {}",
                st.converged_clients, st.target
            ),
        ),
    }
    row(
        "per client, first join sent → its count's last change: p50 / p99 / max",
        format!(
            "{:.2} / {:.2} / {:.2} s",
            st.client_convergence.0, st.client_convergence.1, st.client_convergence.2
        ),
    );
    if st.per_node.len() > 1 {
        let each: Vec<String> = st
            .per_node
            .iter()
            .enumerate()
            .map(|(i, (last, ok, of))| format!("node-{i} {last:.2} s ({ok}/{of} at N)"))
            .collect();
        row(
            "**per node, last count change of its clients**",
            format!("**{}**", each.join(", ")),
        );
    }
    if !st.stuck.is_empty() {
        let stuck: Vec<String> = st
            .stuck
            .iter()
            .map(|(count, clients)| format!("{clients} at {count}"))
            .collect();
        row("counts of clients not converged", stuck.join(", "));
    }
    let frames = st.state_frames + st.diff_frames;
    row(
        "**presence frames received (= sent)**",
        format!(
            "**{frames}** ({} states + {} diffs) = {:.5} × N² = {:.5} × N²/2; {:.1} per client, \
             at most {}",
            st.state_frames,
            st.diff_frames,
            frames as f64 / n2,
            frames as f64 / (n2 / 2.0),
            frames as f64 / n,
            st.max_frames_per_client
        ),
    );
    row(
        "**presence bytes received**",
        format!(
            "**{:.1} MiB** ({:.1} bytes × N²; {:.1} KiB per client)",
            st.presence_bytes as f64 / 1048576.0,
            st.presence_bytes as f64 / n2,
            st.presence_bytes as f64 / n / 1024.0
        ),
    );
    row(
        "metas received: in states / diff joins / diff leaves",
        format!(
            "{} ({:.3} × N²/2) / {} / {}",
            st.state_metas,
            st.state_metas as f64 / (n2 / 2.0),
            st.join_metas,
            st.leave_metas
        ),
    );
    row(
        "**over-counts (a client counted more than N)**",
        if st.overcounts == 0 {
            format!("**0** (highest count {})", st.max_count)
        } else {
            format!(
                "**{} updates — SERVER BUG** (highest count {})",
                st.overcounts, st.max_count
            )
        },
    );
    if st.repeated_states > 0 || st.malformed > 0 || st.no_state > 0 {
        row(
            "**anomalies**",
            format!(
                "**{} second presence_state, {} diffs without \"leaves\", {} clients without a \
                 state**",
                st.repeated_states, st.malformed, st.no_state
            ),
        );
    }
    row(
        "presence frames after convergence / counts changed since",
        format!("{} / {}", st.late_frames, st.drifted_after),
    );
    if let Some(c) = &st.cpu {
        row("CPU, first join → convergence", c.describe());
    }
    if let Some(before) = &report.rss_before {
        if let Some(peak) = &st.rss_peak {
            row(
                "**server peak RSS (VmHWM)**",
                format!("**{}**", mib_nodes(peak)),
            );
        }
        if let Some(post) = &st.rss_post {
            let settle = settle_note(st.rss_settle);
            row(
                "**server RSS after the storm, idle**",
                format!(
                    "**{}**{settle}; {} per joined connection",
                    mib_nodes(post),
                    per_conn_nodes(before, post, &report.joined_per_node)
                ),
            );
        }
    }
}

/// Waits (≤ 30 s) until every server's RSS is stable (3 readings 1 s apart within 0.5 %)
/// and no non-shout frame arrived in the last second. Returns (last readings, seconds,
/// stable); `None` readings without servers (`--url`).
async fn settle_rss(procs: &Procs, shared: &Shared) -> (Option<Vec<u64>>, f64, bool) {
    let start = Instant::now();
    if procs.servers.is_empty() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        return (None, start.elapsed().as_secs_f64(), false);
    }
    let mut readings: Vec<Vec<u64>> = Vec::new();
    let frames_seen = || {
        shared.other_frames.load(Ordering::Relaxed)
            + shared.storm.as_ref().map_or(0, |s| {
                s.state_frames.load(Ordering::Relaxed) + s.diff_frames.load(Ordering::Relaxed)
            })
    };
    let mut frames_before = frames_seen();
    while start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(rss) = procs.rss() else { break };
        readings.push(rss);
        let frames = frames_seen();
        let quiet = frames == frames_before;
        frames_before = frames;
        if readings.len() >= 3 && quiet {
            let last = &readings[readings.len() - 3..];
            let stable = (0..procs.servers.len()).all(|node| {
                let values = last.iter().map(|r| r[node]);
                let (lo, hi) = (values.clone().min().unwrap(), values.max().unwrap());
                hi - lo <= (hi / 200).max(512)
            });
            if stable {
                return (readings.pop(), start.elapsed().as_secs_f64(), true);
            }
        }
    }
    (readings.pop(), start.elapsed().as_secs_f64(), false)
}

/// The join-storm scenario: N clients join one topic at once; every client must end up
/// counting N members, from its `presence_state` and the `presence_diff`s after it.
async fn run_storm(
    opts: &Opts,
    ctx: ClientCtx,
    procs: &Procs,
    shared: Arc<Shared>,
    report: Arc<Mutex<Report>>,
) -> Result<(), String> {
    let storm = shared.storm.as_ref().expect("storm state");
    let n = opts.clients;
    if !procs.servers.is_empty() {
        tokio::time::sleep(opts.warmup()).await;
        report.lock().unwrap().rss_before = procs.rss();
    }
    report.lock().unwrap().storm = Some(StormReport::default());
    eprintln!(
        "loadgen: join storm: {n} clients join {} ({} in flight)…",
        opts.topic, opts.connect_concurrency
    );
    let mark = CpuMark::now(procs);
    for idx in 0..n {
        tokio::spawn(run_client(idx, ctx.clone()));
    }
    let timeout = Duration::from_secs_f64(opts.converge_timeout_secs);
    let started = Instant::now();
    let mut last_print = started;
    let mut target: Option<usize> = None;
    let (converged_clients, converged) = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let done = shared.connect_done.load(Ordering::Acquire);
        if target.is_none() && done >= n {
            let joined = shared.joined.load(Ordering::Acquire);
            target = Some(joined);
            let mut r = report.lock().unwrap();
            r.connect = Some(mark.since(procs));
            r.joined = Some(joined);
            r.failures = shared.failures.lock().unwrap().clone();
            if joined == 0 {
                return Err("no client could connect and join".into());
            }
        }
        let at_target = |t: usize| {
            storm
                .counts
                .iter()
                .filter(|c| c.load(Ordering::Acquire) == t as i64)
                .count()
        };
        let converged_clients = target.map_or(0, at_target);
        let all = target.is_some_and(|t| converged_clients >= t);
        if all || started.elapsed() >= timeout {
            break (converged_clients, all);
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   t={:.0}s joined {} converged {} presence frames {} ({:.0} MiB)",
                started.elapsed().as_secs_f64(),
                shared.joined.load(Ordering::Relaxed),
                at_target(n),
                storm.state_frames.load(Ordering::Relaxed)
                    + storm.diff_frames.load(Ordering::Relaxed),
                storm.presence_bytes.load(Ordering::Relaxed) as f64 / 1048576.0
            );
        }
    };
    storm.converged.store(converged, Ordering::Release);
    let cpu = mark.since(procs);
    let target = target.unwrap_or(shared.joined.load(Ordering::Acquire));
    let first = storm.first_join_ns.load(Ordering::Acquire);
    let secs = |ns: u64| ns.saturating_sub(first) as f64 / 1e9;
    let mut changes: Vec<u64> = storm
        .last_change_ns
        .iter()
        .map(|t| t.load(Ordering::Acquire))
        .filter(|&t| t > 0)
        .collect();
    changes.sort_unstable();
    let q = |p: f64| -> f64 {
        if changes.is_empty() {
            return 0.0;
        }
        let rank = ((p * changes.len() as f64).ceil() as usize).clamp(1, changes.len());
        secs(changes[rank - 1])
    };
    let k = shared.nodes;
    let per_node: Vec<(f64, usize, usize)> = (0..k)
        .map(|node| {
            let clients = (node..n).step_by(k);
            let last = clients
                .clone()
                .map(|i| storm.last_change_ns[i].load(Ordering::Acquire))
                .max()
                .unwrap_or(0);
            let ok = clients
                .clone()
                .filter(|&i| storm.counts[i].load(Ordering::Acquire) == target as i64)
                .count();
            (secs(last), ok, clients.count())
        })
        .collect();
    let mut stuck: BTreeMap<i64, usize> = BTreeMap::new();
    for count in storm.counts.iter().map(|c| c.load(Ordering::Acquire)) {
        if count != target as i64 {
            *stuck.entry(count).or_default() += 1;
        }
    }
    let mut stuck: Vec<(i64, usize)> = stuck.into_iter().collect();
    stuck.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    stuck.truncate(8);
    eprintln!(
        "loadgen: {}",
        if converged {
            format!("all {target} clients count {target} after {:.2} s", q(1.0))
        } else {
            format!("NOT converged: {converged_clients} of {target} clients count {target}")
        }
    );
    let final_counts: Vec<i64> = storm
        .counts
        .iter()
        .map(|c| c.load(Ordering::Acquire))
        .collect();

    // Idle after the storm: RSS once stable, then check that nothing changed meanwhile.
    let (rss_post, settle_secs, settled) = settle_rss(procs, &shared).await;
    let drifted_after = storm
        .counts
        .iter()
        .zip(&final_counts)
        .filter(|(c, f)| c.load(Ordering::Acquire) != **f)
        .count();
    let st = StormReport {
        join_phase: secs(storm.last_join_ns.load(Ordering::Acquire)),
        convergence: converged.then(|| q(1.0)),
        client_convergence: (q(0.5), q(0.99), q(1.0)),
        target,
        converged_clients,
        stuck,
        no_state: storm
            .got_state
            .iter()
            .filter(|g| !g.load(Ordering::Relaxed))
            .count(),
        state_frames: storm.state_frames.load(Ordering::Relaxed),
        diff_frames: storm.diff_frames.load(Ordering::Relaxed),
        presence_bytes: storm.presence_bytes.load(Ordering::Relaxed),
        state_metas: storm.state_metas.load(Ordering::Relaxed),
        join_metas: storm.join_metas.load(Ordering::Relaxed),
        leave_metas: storm.leave_metas.load(Ordering::Relaxed),
        max_frames_per_client: storm
            .frames
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0),
        late_frames: storm.late_frames.load(Ordering::Relaxed),
        overcounts: storm.overcounts.load(Ordering::Relaxed),
        max_count: storm.max_count.load(Ordering::Relaxed),
        repeated_states: storm.repeated_states.load(Ordering::Relaxed),
        malformed: storm.malformed.load(Ordering::Relaxed),
        drifted_after,
        cpu: Some(cpu),
        per_node,
        rss_peak: procs.status_kib("VmHWM:"),
        rss_post,
        rss_settle: (!procs.servers.is_empty()).then_some((settle_secs, settled)),
    };
    report.lock().unwrap().storm = Some(st);
    hold(opts, procs).await;
    if !converged {
        return Err(format!(
            "join storm did not converge within {} s",
            opts.converge_timeout_secs
        ));
    }
    Ok(())
}

/// `--hold-secs`: keeps every client connected a while longer.
async fn hold(opts: &Opts, procs: &Procs) {
    if opts.hold_secs > 0.0 {
        eprintln!(
            "loadgen: holding the clients for {} s (server pids {:?})",
            opts.hold_secs, procs.servers
        );
        tokio::time::sleep(Duration::from_secs_f64(opts.hold_secs)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run(
    opts: Opts,
    targets: Vec<Target>,
    procs: Procs,
    shared: Arc<Shared>,
    report: Arc<Mutex<Report>>,
) -> Result<(), String> {
    // tungstenite does the handshakes and runs the sender; the N clients continue on RawWs.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let ctx = ClientCtx {
        shared: shared.clone(),
        targets: Arc::new(targets),
        connect_slots: Arc::new(tokio::sync::Semaphore::new(opts.connect_concurrency)),
        config,
        topic: Arc::from(opts.topic.as_str()),
        heartbeat: Duration::from_secs_f64(opts.heartbeat_secs),
        read_buf: opts.read_buf,
    };
    let n = opts.clients;
    if opts.scenario == Scenario::JoinStorm {
        return run_storm(&opts, ctx, &procs, shared, report).await;
    }

    // Sender first, so that the RSS delta covers only the N clients.
    let mut sender = Sender::connect(&ctx, opts.pad).await?;
    report.lock().unwrap().frame_bytes = sender.broadcast_len(opts.rounds + 100);

    if !procs.servers.is_empty() {
        tokio::time::sleep(opts.warmup()).await;
        report.lock().unwrap().rss_before = procs.rss();
    }

    // Connect and join N clients.
    eprintln!(
        "loadgen: connecting {n} clients ({} in flight)…",
        opts.connect_concurrency
    );
    let mark = CpuMark::now(&procs);
    for idx in 0..n {
        tokio::spawn(run_client(idx, ctx.clone()));
    }
    let mut last_print = Instant::now();
    while shared.connect_done.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_print.elapsed() > Duration::from_secs(2) {
            last_print = Instant::now();
            eprintln!(
                "loadgen:   {} joined, {} failed",
                shared.joined.load(Ordering::Relaxed),
                shared.failures.lock().unwrap().values().sum::<usize>()
            );
        }
    }
    let joined = shared.joined.load(Ordering::Acquire);
    {
        let mut r = report.lock().unwrap();
        r.connect = Some(mark.since(&procs));
        r.joined = Some(joined);
        r.failures = shared.failures.lock().unwrap().clone();
    }
    eprintln!(
        "loadgen: {joined} joined in {:.2} s",
        report
            .lock()
            .unwrap()
            .connect
            .as_ref()
            .map(|c| c.wall)
            .unwrap_or(0.0)
    );
    if joined == 0 {
        return Err("no client could connect and join".into());
    }

    // Idle: wait until the servers' RSS is stable and no presence traffic flows (≤ 30 s).
    {
        let (rss, secs, settled) = settle_rss(&procs, &shared).await;
        let mut r = report.lock().unwrap();
        r.other_frames_at_idle = Some(shared.other_frames.load(Ordering::Relaxed));
        if !procs.servers.is_empty() {
            r.rss_joined = rss;
            r.rss_settle = Some((secs, settled));
            eprintln!(
                "loadgen: server RSS {} → {} ({})",
                r.rss_before.as_deref().map(mib_nodes).unwrap_or_default(),
                r.rss_joined.as_deref().map(mib_nodes).unwrap_or_default(),
                if settled { "stable" } else { "not stable" }
            );
        }
    }

    // Latency: one broadcast to all N at a time.
    eprintln!("loadgen: {} latency rounds…", opts.rounds);
    let mark = CpuMark::now(&procs);
    let round_timeout = Duration::from_secs_f64(opts.round_timeout_secs);
    let mut misses = 0usize;
    for round in 0..opts.rounds {
        let expected = shared.live.load(Ordering::Acquire);
        sender.shout(&shared, round).await?;
        let sent_at = Instant::now();
        loop {
            let got = shared.recv_count[round].load(Ordering::Acquire) as usize;
            if got >= shared.live.load(Ordering::Acquire) {
                misses += expected.saturating_sub(got);
                break;
            }
            if sent_at.elapsed() >= round_timeout {
                misses += expected.saturating_sub(got);
                eprintln!(
                    "loadgen:   round {round}: only {got} of {expected} within {round_timeout:?}"
                );
                break;
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(5), shared.completed.notified()).await;
        }
        {
            let mut r = report.lock().unwrap();
            r.rounds_done = round + 1;
            r.round_misses = misses;
            let k = shared.nodes;
            r.round_samples.resize(k, Vec::new());
            r.round_first.resize(k, Vec::new());
            let mut first = vec![u32::MAX; k];
            for (idx, sample) in shared.round_lat[round * n..(round + 1) * n]
                .iter()
                .enumerate()
            {
                let v = sample.load(Ordering::Relaxed);
                if v != u32::MAX {
                    r.round_samples[idx % k].push(v);
                    first[idx % k] = first[idx % k].min(v);
                }
            }
            for (node, v) in first.into_iter().enumerate() {
                if v != u32::MAX {
                    r.round_first[node].push(v);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if opts.rounds > 0 {
        report.lock().unwrap().latency = Some(mark.since(&procs));
    }

    // Sustained fan-out with at most `window` incomplete shouts.
    if opts.seconds > 0.0 {
        eprintln!(
            "loadgen: sustained fan-out for {} s, window {}…",
            opts.seconds, opts.window
        );
        let mark = CpuMark::now(&procs);
        let first = opts.rounds;
        let mut next = first;
        let mut oldest = first;
        let mut abandoned = 0usize;
        let t0 = Instant::now();
        let send_until = t0 + Duration::from_secs_f64(opts.seconds);
        let drain_until = send_until + Duration::from_secs(10);
        let mut last_completion = t0;
        let mut last_print = t0;
        loop {
            let now = Instant::now();
            while oldest < next {
                let got = shared.recv_count[oldest].load(Ordering::Acquire) as usize;
                let sent_ns = shared.send_ns[oldest].load(Ordering::Acquire);
                let age = Duration::from_nanos(shared.now_ns().saturating_sub(sent_ns));
                if got >= shared.live.load(Ordering::Acquire) {
                    oldest += 1;
                    last_completion = now;
                } else if age > Duration::from_secs(10) {
                    oldest += 1;
                    abandoned += 1;
                } else {
                    break;
                }
            }
            if now < send_until && next - oldest < opts.window && next < MAX_SHOUTS {
                sender.shout(&shared, next).await?;
                next += 1;
                continue;
            }
            if (now >= send_until && oldest == next) || now >= drain_until {
                break;
            }
            if last_print.elapsed() >= Duration::from_secs(2) {
                last_print = Instant::now();
                let delivered: u64 = shared.recv_count[first..next]
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed) as u64)
                    .sum();
                eprintln!(
                    "loadgen:   t={:.0}s sent {} delivered {} ({:.0}/s) live {}",
                    t0.elapsed().as_secs_f64(),
                    next - first,
                    delivered,
                    delivered as f64 / t0.elapsed().as_secs_f64(),
                    shared.live.load(Ordering::Relaxed)
                );
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(2), shared.completed.notified()).await;
        }
        let delivered: u64 = shared.recv_count[first..next]
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .sum();
        let end = if oldest == next {
            last_completion
        } else {
            Instant::now()
        };
        let mut r = report.lock().unwrap();
        r.sustained = Some(mark.since(&procs));
        r.sustained_sent = Some(next - first);
        r.sustained_delivered = delivered;
        r.sustained_elapsed = end.duration_since(t0).as_secs_f64();
        r.sustained_abandoned = abandoned + (next - oldest);
        let hist: Vec<&Histogram> = shared.sustained_lat.iter().collect();
        r.sustained_lat = Some(Histogram::merged(&hist));
        if hist.len() > 1 {
            r.sustained_lat_local = Some(Histogram::merged(&hist[..1]));
            r.sustained_lat_remote = Some(Histogram::merged(&hist[1..]));
        }
    }

    if !procs.servers.is_empty() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        report.lock().unwrap().rss_after_load = procs.rss();
    }
    hold(&opts, &procs).await;
    Ok(())
}

/// Starts the server (`--nodes 1`), or redis-server and K servers joined through it.
/// Returns the servers, redis-server, one target per server, and a description. On error,
/// everything started so far is stopped (dropped) before returning.
#[allow(clippy::type_complexity)]
fn start_servers(
    opts: &Opts,
    wait: Duration,
) -> Result<
    (
        Vec<Server>,
        Option<RedisServer>,
        Vec<Target>,
        Option<String>,
    ),
    String,
> {
    let redis = if opts.nodes > 1 {
        let redis = RedisServer::spawn(&opts.redis_server, wait)?;
        eprintln!(
            "loadgen: redis-server pid {} on 127.0.0.1:{}",
            redis.pid(),
            redis.port
        );
        Some(redis)
    } else {
        None
    };
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    for i in 0..opts.nodes {
        let label = if opts.nodes > 1 {
            format!("node-{i}")
        } else {
            "server".to_string()
        };
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(redis) = &redis {
            env.push(("TETHER_PUBSUB_URL".into(), redis.url()));
            env.push(("TETHER_NODE".into(), label.clone()));
        }
        env.extend(opts.server_env.iter().cloned());
        let (server, port) = Server::spawn(&opts.server, wait, &label, &env)?;
        eprintln!(
            "loadgen: {label} {} pid {} listening on port {port}",
            opts.server.display(),
            server.pid()
        );
        servers.push(server);
        targets.push(Target::from_port(port));
    }
    let cluster = match &redis {
        Some(redis) => {
            redis.wait_for_nodes(opts.nodes, wait)?;
            let nodes: Vec<String> = servers
                .iter()
                .zip(&targets)
                .map(|(s, t)| format!("{} :{} pid {}", s.label, t.addr.port(), s.pid()))
                .collect();
            Some(format!(
                "{} × {} ({}), redis-server :{} pid {}; all {} subscribe `{BUS_CHANNEL}`",
                opts.nodes,
                opts.server
                    .file_name()
                    .map_or("server".into(), |f| f.to_string_lossy()),
                nodes.join(", "),
                redis.port,
                redis.pid(),
                opts.nodes
            ))
        }
        None => None,
    };
    Ok((servers, redis, targets, cluster))
}

fn main() {
    // `cargo bench` appends `--bench` to a harness-less bench's arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let opts = match parse_opts(&args) {
        Ok(opts) => opts,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("loadgen: {err}\n");
            }
            eprint!("{USAGE}");
            std::process::exit(if err.is_empty() { 0 } else { 2 });
        }
    };
    let command = std::iter::once("cargo bench --bench loadgen --".to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let started = Instant::now();

    let want_fds = opts.clients as u64 + 256;
    let (soft, hard) = raise_nofile(want_fds);
    if soft < want_fds {
        eprintln!(
            "loadgen: RLIMIT_NOFILE is {soft} (hard {hard}) but {want_fds} descriptors are needed \
             for {} clients; raise the hard limit (e.g. `ulimit -Hn {want_fds}` as root) or use \
             fewer --clients. Continuing: expect connect failures.",
            opts.clients
        );
    } else {
        eprintln!("loadgen: RLIMIT_NOFILE {soft} (hard {hard})");
    }

    let deadline = Duration::from_secs(opts.deadline_secs);
    spawn_watchdog(deadline + Duration::from_secs(20));

    // The servers are started from the main thread (PR_SET_PDEATHSIG follows the spawning
    // thread).
    let (mut servers, mut redis, targets, cluster) = match &opts.url {
        Some(url) => match Target::from_url(url) {
            Ok(target) => (Vec::new(), None, vec![target], None),
            Err(err) => {
                eprintln!("loadgen: {err}");
                std::process::exit(2);
            }
        },
        None => match start_servers(&opts, Duration::from_secs(20).min(deadline)) {
            Ok(started) => started,
            Err(err) => {
                // Whatever had started was stopped when `start_servers` returned.
                eprintln!("loadgen: {err}");
                std::process::exit(2);
            }
        },
    };
    let procs = Procs {
        servers: servers.iter().map(Server::pid).collect(),
        redis: redis.as_ref().map(RedisServer::pid),
    };

    let report = Arc::new(Mutex::new(Report {
        requested: opts.clients,
        cluster,
        ..Report::default()
    }));
    let mut shared = Shared::new(opts.clients, opts.rounds, targets.len());
    if opts.scenario == Scenario::JoinStorm {
        shared.storm = Some(Storm::new(opts.clients, &opts.topic));
    }
    let shared = Arc::new(shared);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let remaining = deadline.saturating_sub(started.elapsed());
    let outcome: Result<(), String> = runtime.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(
                remaining,
                run(opts.clone(), targets, procs, shared.clone(), report.clone()),
            ) => match r {
                Ok(r) => r,
                Err(_) => Err(format!("global deadline of {} s reached", opts.deadline_secs)),
            },
            _ = tokio::signal::ctrl_c() => Err("interrupted (Ctrl-C)".into()),
        }
    });

    // Stop counting closes before the server's shutdown closes every connection.
    shared.counting_closes.store(false, Ordering::Release);
    {
        let mut r = report.lock().unwrap();
        r.disconnects = shared.disconnects.load(Ordering::Acquire);
        r.close_reasons = shared.close_reasons.lock().unwrap().clone();
        if r.joined.is_none() {
            r.joined = Some(shared.joined.load(Ordering::Acquire));
            r.failures = shared.failures.lock().unwrap().clone();
        }
        r.generator_rss_kib = rss_kib("self");
        r.joined_per_node = shared
            .joined_per_node
            .iter()
            .map(|j| j.load(Ordering::Acquire))
            .collect();
        if let Err(err) = &outcome {
            r.aborted = Some(err.clone());
        }
    }
    // Servers first (a clean stop says goodbye through Redis), then redis-server.
    if !servers.is_empty() {
        let how = stop_servers(&mut servers);
        let how = if how.len() == 1 {
            how[0].clone()
        } else {
            let each: Vec<String> = how
                .iter()
                .enumerate()
                .map(|(i, h)| format!("node-{i} {h}"))
                .collect();
            each.join("; ")
        };
        let mut r = report.lock().unwrap();
        r.server_stop = Some(how);
        for server in &servers {
            let log = &server.log;
            r.server_logs.push((
                log.panics.load(Ordering::Acquire),
                log.errors.load(Ordering::Acquire),
                log.warns.load(Ordering::Acquire),
            ));
            r.log_samples
                .extend(log.samples.lock().unwrap().iter().cloned());
        }
    }
    if let Some(redis) = redis.as_mut() {
        let how = redis.stop();
        let mut r = report.lock().unwrap();
        r.redis_stop = Some(how);
        r.redis_warnings = Some(redis.log.redis_warnings.load(Ordering::Acquire));
        r.log_samples
            .extend(redis.log.samples.lock().unwrap().iter().cloned());
    }
    let mut r = report.lock().unwrap().clone();
    r.elapsed = started.elapsed().as_secs_f64();
    print_report(&r, &opts, &command);

    let joined = r.joined.unwrap_or(0);
    let failed = opts.clients - joined.min(opts.clients);
    let allowed = (opts.clients as f64 * opts.fail_tolerance / 100.0).floor() as usize;
    let code = if let Err(err) = &outcome {
        eprintln!("loadgen: run aborted: {err}");
        2
    } else if r.storm.as_ref().is_some_and(|st| st.overcounts > 0) {
        eprintln!("loadgen: OVER-COUNT: some client counted more members than clients joined");
        1
    } else if failed > allowed {
        eprintln!(
            "loadgen: {failed} of {} clients failed to connect/join (tolerance {allowed})",
            opts.clients
        );
        1
    } else {
        0
    };
    // Exit without tearing down thousands of sockets one by one.
    std::process::exit(code);
}

/// ", stable after N s" (or NOT stable) for an RSS reading that waited to settle.
fn settle_note(settle: Option<(f64, bool)>) -> String {
    settle
        .map(|(s, ok)| {
            if ok {
                format!(", stable after {s:.0} s")
            } else {
                format!(", NOT stable after {s:.0} s")
            }
        })
        .unwrap_or_default()
}
