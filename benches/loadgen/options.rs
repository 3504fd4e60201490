//! The command line: every flag, its default and its `--help` text ([`USAGE`]), parsed with
//! `lexopt` and checked before anything starts, and the command echoed in the report.
//!
//! It only reads the arguments: it must never start a process, open a socket or measure
//! anything, and it must not accept a value that the run cannot honour (zero clients, more
//! than [`MAX_NODES`] nodes, a topic that would break the hand-built JSON frames, a page path
//! that would break the HTTP request line).

use std::{ops::Range, path::PathBuf, time::Duration};

use lexopt::Arg::{Long, Short, Value};

use crate::{
    rooms::{MAX_SHARDS, shard_range},
    server_metrics::METRICS_TOKEN,
    shared::MAX_SHOUTS,
};

pub const USAGE: &str = "\
usage: cargo bench --bench loadgen -- [options]

  --server <path>             server binary [target/release/examples/presence_chat;
                              target/release/examples/live_todo for pages]
  --url <ws://127.0.0.1:P/…>  use a running server instead (loopback only; no RSS figures)
  --clients <N>               WebSocket clients [10000]
  --rounds <R>                single-broadcast latency rounds [20]
  --seconds <S>               sustained fan-out duration [10]
  --window <K>                sustained: max shouts not yet delivered to all clients [32]
  --pad <bytes>               padding in each shout payload (frame ≈ 53 + pad bytes) [48]
  --deadline-secs <T>         hard deadline for the whole run [300]
  --connect-concurrency <C>   closed loop: handshakes in flight [200]
  --arrival-rate <R>          open loop instead: client i starts its handshake at
                              t0 + i/R s (R connects/s), whatever became of the
                              earlier ones; only a safety bound of 10000 handshakes
                              in flight holds a client back (counted) [off]
  --threads <W>               tokio worker threads of the generator [2]
  --read-buf <bytes>          read buffer per client; grows for a larger frame, then
                              shrinks back [4096]
  --heartbeat-secs <H>        client heartbeat interval [20]
  --round-timeout-secs <S>    per latency round [10]
  --fail-tolerance <pct>      allowed connect/join failures in percent [0.1]
  --topic <topic>             room to join [room:bench; room:storm for join-storm;
                              pages join the topic of the page's commander instead]
  --scenario <name>           fanout (steps above), join-storm, pages, rooms or soak
                              [fanout]
  --converge-timeout-secs <S> join-storm: give up if not converged S s after the
                              first join; pages: the bound of each wait (joins, first
                              patches, add replies, every page showing the adds) [120]
  --page <path>               pages: the page every client opens [/lists/bench]
  --adders <K>                pages: clients that each send one `add` event in the event
                              round [20, at most N]
  --hold-secs <S>             keep the clients connected S s before stopping (e.g. to
                              inspect the server with gdb) [0]
  --nodes <K>                 server processes [1]. K > 1 starts a redis-server on a free
                              port and K servers node-0…node-{K-1} joined through it; client
                              i goes to node i mod K, the fan-out sender to node-0
  --server-env <KEY=VALUE>    extra environment for every server (repeatable), e.g.
                              TETHER_PRESENCE_BROADCAST_PERIOD_MS=200
  --redis-server <path>       redis-server binary for --nodes > 1 [redis-server]
  --rooms <R>                 rooms: client i joins <topic>:<(i / K) mod R> [1000]
  --shards <S>                rooms: generator processes holding the clients [6]
  --kill-node <i>             rooms: the node killed with SIGKILL at the end [K-1]
  --idle-secs <S>             rooms: window of the idle CPU reading [30]
  --counts                    rooms: a client's members are the sum of the \"count\"
                              numbers of its presence payloads (counts-only pages);
                              server [target/release/examples/anonymous_counts], topic
                              [video]; needs --rounds 0 (it relays no shouts)
  --churn <R>                 soak: joins and as many leaves per second once the N
                              are in; a broadcast per second throughout [50]
  --sample-secs <S>           soak: RSS and gauge readings every S s [60]
  --settle-secs <S>           soak: RSS growth is measured from the reading S s into
                              the churn (a warm heap) to the last one [600]
                              (the soak's length is --seconds; topic room:soak)
                              Every server the loadgen starts gets TETHER_METRICS_TOKEN, so
                              that it reads /metrics (write timeouts, gauges)
  --worker <i/S>              (internal) rooms: be generator process i of S…
  --ports <p0,p1,…>           (internal) …connecting to the nodes on these 127.0.0.1 ports
";

/// Upper bound of `--nodes`.
pub const MAX_NODES: usize = 32;
/// With `--arrival-rate`: the most handshakes (connect + upgrade + join) in flight at once, a
/// safety bound only (the USAGE text repeats it). At 1,000 connects/s it is ten seconds of
/// arrivals that have not joined yet, and a client's connect + join gives up after 30 s
/// anyway; a client that finds the bound reached waits for a slot, and is counted as held
/// back (its lateness shows in the arrival-lag figures).
pub const OPEN_LOOP_MAX_IN_FLIGHT: usize = 10_000;
/// Default of `TETHER_PRESENCE_BROADCAST_PERIOD_MS` (`src/config.rs`).
const DEFAULT_BROADCAST_PERIOD_MS: u64 = 1500;

#[derive(Debug, Clone)]
pub struct Opts {
    pub server: PathBuf,
    pub url: Option<String>,
    pub clients: usize,
    pub rounds: usize,
    pub seconds: f64,
    pub window: usize,
    pub pad: usize,
    pub deadline_secs: u64,
    pub connect_concurrency: usize,
    /// `--arrival-rate`: connects per second of the open loop (`None`: the closed loop of
    /// `--connect-concurrency`).
    pub arrival_rate: Option<f64>,
    pub threads: usize,
    pub read_buf: usize,
    pub heartbeat_secs: f64,
    pub round_timeout_secs: f64,
    pub fail_tolerance: f64,
    pub topic: String,
    pub scenario: Scenario,
    pub converge_timeout_secs: f64,
    pub hold_secs: f64,
    pub nodes: usize,
    pub server_env: Vec<(String, String)>,
    pub redis_server: PathBuf,
    /// `--scenario pages`: the page path and the clients that send one `add` each.
    pub page: String,
    pub adders: usize,
    /// `--scenario rooms`: rooms, generator processes, the node killed, the idle window.
    pub rooms: usize,
    pub shards: usize,
    pub kill_node: Option<usize>,
    pub idle_secs: f64,
    /// `--counts`: members are summed from `"count":` numbers (`anonymous_counts`).
    pub counts: bool,
    /// `--scenario soak`: joins (and leaves) per second, the reading period, and when the
    /// RSS growth baseline is read.
    pub churn: f64,
    pub sample_secs: f64,
    pub settle_secs: f64,
    /// `--worker i/S` with `--ports`: this process is generator `i` of `S` of a rooms run.
    pub worker: Option<(usize, usize)>,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Idle RSS, one-broadcast latency, sustained fan-out.
    Fanout,
    /// N clients join one topic at once and count members from presence frames.
    JoinStorm,
    /// N commander pages (`live_todo`) join one list; join latency, first patch, memory per
    /// page, and a round of `add` events re-rendering every page.
    Pages,
    /// N clients in R rooms over K nodes, held by S generator processes: memory, idle CPU,
    /// one broadcast to all, convergence after the last join and after a node's SIGKILL.
    Rooms,
    /// N clients held for `--seconds` with `--churn` joins and leaves per second and a
    /// broadcast per second: RSS growth, and the server's gauges back at their baseline
    /// once the clients go.
    Soak,
}

/// The default server of `--scenario pages`.
pub const PAGES_SERVER: &str = "target/release/examples/live_todo";
/// The default server of `--counts`.
const COUNTS_SERVER: &str = "target/release/examples/anonymous_counts";

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
            arrival_rate: None,
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
            page: "/lists/bench".to_string(),
            adders: 20,
            rooms: 1000,
            shards: 6,
            kill_node: None,
            idle_secs: 30.0,
            counts: false,
            churn: 50.0,
            sample_secs: 60.0,
            settle_secs: 600.0,
            worker: None,
            ports: Vec::new(),
        }
    }
}

impl Opts {
    /// `TETHER_PRESENCE_BROADCAST_PERIOD_MS` as given with --server-env, or the default.
    pub fn broadcast_period(&self) -> Duration {
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
    pub fn warmup(&self) -> Duration {
        if self.nodes > 1 {
            Duration::from_secs(1).max(self.broadcast_period() * 2)
        } else {
            Duration::from_secs(1)
        }
    }

    /// The clients this process holds (indices into the N): all of them, a worker's share, or
    /// none for the rooms scenario's coordinator.
    pub fn client_range(&self) -> Range<usize> {
        match (self.scenario, self.worker) {
            (Scenario::Rooms, Some((i, s))) => shard_range(self.clients, self.ports.len(), i, s),
            (Scenario::Rooms, None) => 0..0,
            _ => 0..self.clients,
        }
    }

    /// Handshakes in flight at most: `--connect-concurrency`, or with `--arrival-rate` the
    /// open loop's safety bound [`OPEN_LOOP_MAX_IN_FLIGHT`].
    pub fn connect_slots(&self) -> usize {
        match self.arrival_rate {
            Some(_) => OPEN_LOOP_MAX_IN_FLIGHT,
            None => self.connect_concurrency,
        }
    }

    /// How the clients connect, for the progress lines and the report: `200 in flight` or
    /// `open loop, 1000 connects/s`.
    pub fn arrivals(&self) -> String {
        match self.arrival_rate {
            Some(rate) => format!("open loop, {rate} connects/s"),
            None => format!("{} in flight", self.connect_concurrency),
        }
    }

    /// Checks the parsed options; with join-storm and no `--topic`, the room is `room:storm`;
    /// with pages and no `--server`, the server is `live_todo`.
    fn validate(mut self, given: Given) -> Result<Opts, String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.scenario == Scenario::JoinStorm && !given.topic {
            self.topic = "room:storm".to_string();
        }
        if self.scenario == Scenario::Soak {
            if self.url.is_some() || self.nodes > 1 {
                return Err(
                    "--scenario soak starts its own single server (no --url, --nodes)".into(),
                );
            }
            if !given.topic {
                self.topic = "room:soak".to_string();
            }
            // Its clients come and go (indices beyond N): no per-client latency rounds.
            self.rounds = 0;
            if !(self.churn >= 0.0 && self.churn.is_finite() && self.sample_secs >= 1.0) {
                return Err("--churn must be ≥ 0 and --sample-secs ≥ 1".into());
            }
        }
        if self.url.is_none() {
            // Every server the loadgen starts lets it read /metrics (server_metrics).
            self.server_env
                .push(("TETHER_METRICS_TOKEN".into(), METRICS_TOKEN.into()));
        }
        if self.scenario == Scenario::Pages && !given.server {
            self.server = PathBuf::from(PAGES_SERVER);
        }
        if self.counts {
            if self.scenario != Scenario::Rooms || self.rounds > 0 {
                return Err("--counts needs --scenario rooms and --rounds 0".into());
            }
            if !given.server {
                self.server = PathBuf::from(COUNTS_SERVER);
            }
            if !given.topic {
                self.topic = "video".to_string();
            }
        }
        if !(self.page.starts_with('/') && self.page.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(
                "--page must be a path starting with / (printable ASCII, no spaces)".into(),
            );
        }
        if self.rounds + 1 >= MAX_SHOUTS {
            return Err(format!("--rounds must be below {}", MAX_SHOUTS - 1));
        }
        if self.window == 0 || self.connect_concurrency == 0 || self.threads == 0 {
            return Err("--window, --connect-concurrency and --threads must be at least 1".into());
        }
        if self
            .arrival_rate
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return Err("--arrival-rate must be a positive number of connects per second".into());
        }
        if !(self.heartbeat_secs > 0.0
            && self.round_timeout_secs > 0.0
            && self.seconds >= 0.0
            && self.hold_secs >= 0.0
            && self.idle_secs >= 0.0)
        {
            return Err("durations must be positive".into());
        }
        if self.nodes == 0 || self.nodes > MAX_NODES {
            return Err(format!("--nodes must be 1 to {MAX_NODES}"));
        }
        if self.nodes > 1 && self.scenario == Scenario::Pages {
            return Err(
                "--scenario pages runs one node (live_todo keeps its lists in the process)".into(),
            );
        }
        if self.nodes > 1 && self.url.is_some() {
            return Err(
                "--nodes > 1 starts its own servers; it cannot be combined with --url".into(),
            );
        }
        if self.scenario == Scenario::Rooms {
            self.validate_rooms()?;
        }
        if self.topic.contains(['"', '\\']) {
            return Err("--topic must not contain quotes or backslashes".into());
        }
        Ok(self)
    }
}

impl Opts {
    /// The rooms scenario's own checks: a coordinator starts its cluster (K ≥ 2, a node to
    /// kill), a worker is given the nodes' ports.
    fn validate_rooms(&self) -> Result<(), String> {
        if self.rooms == 0 || self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(format!(
                "--rooms must be at least 1 and --shards 1 to {MAX_SHARDS}"
            ));
        }
        match self.worker {
            Some((i, s)) if i >= s || s > MAX_SHARDS || self.ports.is_empty() => {
                Err("--worker i/S needs i < S ≤ 32 and --ports".into())
            }
            Some(_) => Ok(()),
            None if self.nodes < 2 || self.url.is_some() => {
                Err("--scenario rooms starts its own cluster: --nodes ≥ 2, no --url".into())
            }
            None if self.kill_node.is_some_and(|k| k >= self.nodes) => {
                Err("--kill-node must be below --nodes".into())
            }
            None => Ok(()),
        }
    }
}

/// The options, or (after the usage text) an exit: 0 for `--help`, 2 for a bad command line.
pub fn parse_or_exit(args: &[String]) -> Opts {
    match parse_opts(args) {
        Ok(opts) => opts,
        Err(err) => {
            if !err.is_empty() {
                eprintln!("loadgen: {err}\n");
            }
            eprint!("{USAGE}");
            std::process::exit(if err.is_empty() { 0 } else { 2 });
        }
    }
}

/// Parses the arguments after `--` (`--key value` or `--key=value`). `Err("")` means
/// `--help`/`-h`: print the usage and exit 0.
fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut opts = Opts::default();
    let mut given = Given::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Err(String::new()),
            Long(name) => {
                let key = format!("--{name}");
                apply(&mut opts, &key, &mut parser, &mut given)?;
            }
            Short(c) => return Err(format!("unknown option \"-{c}\"")),
            Value(other) => return Err(format!("unknown option {other:?}")),
        }
    }
    opts.validate(given)
}

/// Options whose default depends on the scenario, and whether they were given.
#[derive(Debug, Default, Clone, Copy)]
struct Given {
    topic: bool,
    server: bool,
}

/// Sets option `key` (`--name`) from the value that follows it, noting in `given` a
/// `--topic` or `--server`.
fn apply(
    opts: &mut Opts,
    key: &str,
    parser: &mut lexopt::Parser,
    given: &mut Given,
) -> Result<(), String> {
    let mut value = || -> Result<String, String> {
        parser
            .value()
            .map_err(|_| format!("{key} needs a value"))?
            .into_string()
            .map_err(|v| format!("invalid value for {key}: {v:?}"))
    };
    match key {
        "--server" => {
            opts.server = PathBuf::from(value()?);
            given.server = true;
        }
        "--url" => opts.url = Some(value()?),
        "--clients" => opts.clients = num(key, &value()?)?,
        "--rounds" => opts.rounds = num(key, &value()?)?,
        "--seconds" => opts.seconds = num(key, &value()?)?,
        "--window" => opts.window = num(key, &value()?)?,
        "--pad" => opts.pad = num(key, &value()?)?,
        "--deadline-secs" => opts.deadline_secs = num(key, &value()?)?,
        "--connect-concurrency" => opts.connect_concurrency = num(key, &value()?)?,
        "--arrival-rate" => opts.arrival_rate = Some(num(key, &value()?)?),
        "--threads" => opts.threads = num(key, &value()?)?,
        "--read-buf" => opts.read_buf = num(key, &value()?)?,
        "--heartbeat-secs" => opts.heartbeat_secs = num(key, &value()?)?,
        "--round-timeout-secs" => opts.round_timeout_secs = num(key, &value()?)?,
        "--fail-tolerance" => opts.fail_tolerance = num(key, &value()?)?,
        "--topic" => {
            opts.topic = value()?;
            given.topic = true;
        }
        "--scenario" => opts.scenario = scenario(&value()?)?,
        "--converge-timeout-secs" => opts.converge_timeout_secs = num(key, &value()?)?,
        "--hold-secs" => opts.hold_secs = num(key, &value()?)?,
        "--nodes" => opts.nodes = num(key, &value()?)?,
        "--server-env" => opts.server_env.push(env_pair(&value()?)?),
        "--redis-server" => opts.redis_server = PathBuf::from(value()?),
        "--page" => opts.page = value()?,
        "--adders" => opts.adders = num(key, &value()?)?,
        "--rooms" => opts.rooms = num(key, &value()?)?,
        "--shards" => opts.shards = num(key, &value()?)?,
        "--kill-node" => opts.kill_node = Some(num(key, &value()?)?),
        "--idle-secs" => opts.idle_secs = num(key, &value()?)?,
        "--counts" => opts.counts = true,
        "--churn" => opts.churn = num(key, &value()?)?,
        "--sample-secs" => opts.sample_secs = num(key, &value()?)?,
        "--settle-secs" => opts.settle_secs = num(key, &value()?)?,
        "--worker" => {
            let v = value()?;
            let (i, s) = v.split_once('/').ok_or("--worker needs i/S")?;
            opts.worker = Some((num(key, i)?, num(key, s)?));
        }
        "--ports" => {
            opts.ports = value()?
                .split(',')
                .map(|p| num(key, p))
                .collect::<Result<_, _>>()?;
        }
        other => return Err(format!("unknown option {other:?}")),
    }
    Ok(())
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value for {key}: {value:?}"))
}

fn scenario(name: &str) -> Result<Scenario, String> {
    match name {
        "fanout" => Ok(Scenario::Fanout),
        "join-storm" => Ok(Scenario::JoinStorm),
        "pages" => Ok(Scenario::Pages),
        "rooms" => Ok(Scenario::Rooms),
        "soak" => Ok(Scenario::Soak),
        other => Err(format!("unknown scenario {other:?}")),
    }
}

/// `KEY=VALUE` of `--server-env` (a non-empty key).
fn env_pair(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("--server-env needs KEY=VALUE, got {pair:?}")),
    }
}

/// The command as the report shows it: `cargo bench --bench loadgen -- <args, shell-quoted>`.
pub fn command_line(args: &[String]) -> String {
    std::iter::once("cargo bench --bench loadgen --".to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
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
