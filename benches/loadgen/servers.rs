//! The servers under test: one tether server, or K nodes joined through a redis-server
//! (`--nodes K`), or a running server named by `--url` ([`Fleet`]); each server started with
//! `PORT=0`, its `listening on` line awaited, its stdout forwarded and its stderr scanned.
//!
//! It must never leave a child running: whatever started is stopped on every exit path
//! (SIGTERM, then SIGKILL; on drop too), and every wait for a server is bounded.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
    sync::{Arc, atomic::Ordering, mpsc},
    time::{Duration, Instant},
};

use crate::{
    connect::Target,
    options::Opts,
    process::{LogScan, die_with_parent, register_child, stop_children},
    procfs::Procs,
    redis::RedisServer,
    report::Report,
};

/// The Redis channel every node publishes to and subscribes (`src/pubsub/redis.rs`): every
/// server is told to use it (`TETHER_PUBSUB_CHANNEL`).
pub const BUS_CHANNEL: &str = "tether:bus:loadgen";
/// `TETHER_SECRET_KEY_BASE` given to every server (nodes of a cluster must agree); a
/// `--server-env TETHER_SECRET_KEY_BASE=…` overrides it.
const SECRET_KEY_BASE: &str =
    "loadgen-secret-key-base-0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

pub struct Server {
    child: Child,
    label: String,
    log: Arc<LogScan>,
    stopped: bool,
}

impl Server {
    /// Starts the server with PORT=0 (plus `env`, applied last) and waits for its
    /// `listening on` line. `label` prefixes its forwarded log lines.
    fn spawn(
        path: &Path,
        wait: Duration,
        label: &str,
        env: &[(String, String)],
    ) -> Result<(Server, u16), String> {
        if !path.exists() {
            let example = path
                .file_name()
                .map_or("presence_chat".into(), |f| f.to_string_lossy());
            return Err(format!(
                "server binary {} not found; build it with \
                 `cargo build --release --example {example}` or pass --server/--url",
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
        let port_rx = read_stdout(stdout, label);
        let log = Arc::new(LogScan::default());
        let tag = label.to_string();
        let mut forwarded = 0usize;
        log.follow(stderr, move |scan, line| {
            scan.server_line(&tag, line);
            forwarded += 1;
            if forwarded <= 100 {
                eprintln!("[{tag}] {line}");
            } else if forwarded == 101 {
                eprintln!("[{tag}] (further log lines are not shown, only counted)");
            }
        });
        let mut server = Server {
            child,
            label: label.to_string(),
            log,
            stopped: false,
        };
        match server.wait_listening(&port_rx, wait) {
            Ok(port) => Ok((server, port)),
            Err(err) => {
                server.stop();
                Err(err)
            }
        }
    }

    /// Waits (≤ `wait`) for the port of the `listening on` line.
    fn wait_listening(
        &mut self,
        port_rx: &mpsc::Receiver<u16>,
        wait: Duration,
    ) -> Result<u16, String> {
        let label = &self.label;
        let start = Instant::now();
        loop {
            match port_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(port) => return Ok(port),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{label} closed stdout without a `listening on` line"
                    ));
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{label} exited before listening: {status}"));
            }
            if start.elapsed() > wait {
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

/// Reads the server's stdout on a thread of its own: the port of its `listening on` line goes
/// to the returned channel, the first 50 other lines to stderr.
fn read_stdout(stdout: ChildStdout, label: &str) -> mpsc::Receiver<u16> {
    let (port_tx, port_rx) = mpsc::channel::<u16>();
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
    port_rx
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

/// The processes of a run and where the clients connect: the servers (none with `--url`),
/// redis-server (with `--nodes > 1`), one target per server, and a description of the cluster.
pub struct Fleet {
    servers: Vec<Server>,
    redis: Option<RedisServer>,
    pub targets: Vec<Target>,
    pub cluster: Option<String>,
}

impl Fleet {
    /// The `--url` target, a rooms worker's `--ports`, or the servers started (see [`Fleet::start_servers`]).
    pub fn start(opts: &Opts, wait: Duration) -> Result<Fleet, String> {
        let running = |targets| {
            Ok(Fleet {
                servers: Vec::new(),
                redis: None,
                targets,
                cluster: None,
            })
        };
        match &opts.url {
            Some(url) => running(vec![Target::from_url(url)?]),
            // A rooms worker: the coordinator's nodes.
            None if opts.worker.is_some() => {
                running(opts.ports.iter().map(|&p| Target::from_port(p)).collect())
            }
            None => Fleet::start_servers(opts, wait),
        }
    }

    /// Starts the server (`--nodes 1`), or redis-server and K servers joined through it.
    /// On error, everything started so far is stopped (dropped) before returning.
    fn start_servers(opts: &Opts, wait: Duration) -> Result<Fleet, String> {
        let redis = if opts.nodes > 1 {
            let redis = RedisServer::spawn(&opts.redis_server, wait)?;
            eprintln!(
                "loadgen: redis-server pid {} on 127.0.0.1:{}",
                redis.pid(),
                redis.port()
            );
            Some(redis)
        } else {
            None
        };
        let mut fleet = Fleet {
            servers: Vec::new(),
            redis,
            targets: Vec::new(),
            cluster: None,
        };
        for i in 0..opts.nodes {
            fleet.start_node(opts, i, wait)?;
        }
        if let Some(redis) = &fleet.redis {
            redis.wait_for_nodes(opts.nodes, wait)?;
            fleet.cluster = Some(fleet.describe(opts, redis));
        }
        Ok(fleet)
    }

    /// Starts server `i` (`node-<i>` of a cluster, joined through redis-server).
    fn start_node(&mut self, opts: &Opts, i: usize, wait: Duration) -> Result<(), String> {
        let label = if opts.nodes > 1 {
            format!("node-{i}")
        } else {
            "server".to_string()
        };
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(redis) = &self.redis {
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
        self.servers.push(server);
        self.targets.push(Target::from_port(port));
        Ok(())
    }

    /// `K × <binary> (node-0 :port pid …, …), redis-server :port pid …; all K subscribe …`.
    fn describe(&self, opts: &Opts, redis: &RedisServer) -> String {
        let nodes: Vec<String> = self
            .servers
            .iter()
            .zip(&self.targets)
            .map(|(s, t)| format!("{} :{} pid {}", s.label, t.addr.port(), s.pid()))
            .collect();
        format!(
            "{} × {} ({}), redis-server :{} pid {}; all {} subscribe `{BUS_CHANNEL}`",
            opts.nodes,
            opts.server
                .file_name()
                .map_or("server".into(), |f| f.to_string_lossy()),
            nodes.join(", "),
            redis.port(),
            redis.pid(),
            opts.nodes
        )
    }

    pub fn procs(&self) -> Procs {
        Procs {
            servers: self.servers.iter().map(Server::pid).collect(),
            redis: self.redis.as_ref().map(RedisServer::pid),
        }
    }

    /// Stops the servers first (a clean stop says goodbye through Redis), then
    /// redis-server; adds how they ended and what their logs showed to `r`.
    pub fn stop(&mut self, r: &mut Report) {
        if !self.servers.is_empty() {
            let how = stop_servers(&mut self.servers);
            r.server_stop = Some(if how.len() == 1 {
                how[0].clone()
            } else {
                let each: Vec<String> = how
                    .iter()
                    .enumerate()
                    .map(|(i, h)| format!("node-{i} {h}"))
                    .collect();
                each.join("; ")
            });
            for server in &self.servers {
                let log = &server.log;
                r.server_logs.push((
                    log.panics.load(Ordering::Acquire),
                    log.errors.load(Ordering::Acquire),
                    log.warns.load(Ordering::Acquire),
                ));
                r.log_samples.extend(log.samples());
            }
        }
        if let Some(redis) = self.redis.as_mut() {
            r.redis_stop = Some(redis.stop());
            r.redis_warnings = Some(redis.log.redis_warnings.load(Ordering::Acquire));
            r.log_samples.extend(redis.log.samples());
        }
    }
}
