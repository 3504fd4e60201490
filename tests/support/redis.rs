//! A real `redis-server` for cluster tests: on a free port, nothing persisted
//! (`--save "" --appendonly no`), killed on drop. It can be killed and started again on the
//! same port (a Redis restart as the nodes see it). Every wait is bounded.
//!
//! `benches/loadgen` uses it too, through [`Redis::start_with`]: its own binary and wait,
//! the child made to die with the load generator, and the log piped for scanning.
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a starting `redis-server` may take to answer `PING`.
const START_WAIT: Duration = Duration::from_secs(10);

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
    config: RedisConfig,
}

/// How a `redis-server` is run; the default is what the tests use.
#[derive(Clone)]
pub struct RedisConfig {
    /// The binary to run.
    pub binary: PathBuf,
    /// How long a starting server may take to answer `PING`.
    pub start_wait: Duration,
    /// Pipe the server's stdout (its log) for [`Redis::take_log`]; otherwise it is discarded.
    pub pipe_log: bool,
    /// Called with the command before each spawn (e.g. to make the server die with the
    /// process that starts it).
    pub prepare: fn(&mut Command),
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            binary: PathBuf::from("redis-server"),
            start_wait: START_WAIT,
            pipe_log: false,
            prepare: |_| {},
        }
    }
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    try_free_port().unwrap()
}

/// [`free_port`], with an error instead of a panic.
pub fn try_free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Redis {
    /// Starts `redis-server` on a free port (retrying with another port if one was taken
    /// in between).
    pub fn start() -> Redis {
        Redis::start_with(RedisConfig::default()).unwrap_or_else(|err| panic!("{err}"))
    }

    /// [`Redis::start`] as `config` says, with an error instead of a panic.
    pub fn start_with(config: RedisConfig) -> Result<Redis, String> {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = try_free_port()?;
            match Redis::start_on_with(port, config.clone()) {
                Ok(redis) => return Ok(redis),
                Err(err) => last_error = err,
            }
        }
        Err(format!("could not start redis-server: {last_error}"))
    }

    /// Starts `redis-server` on `port`; waits (bounded) until it answers `PING`.
    pub fn start_on(port: u16) -> Result<Redis, String> {
        Redis::start_on_with(port, RedisConfig::default())
    }

    fn start_on_with(port: u16, config: RedisConfig) -> Result<Redis, String> {
        let dir = std::env::temp_dir().join(format!("tether-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut redis = Redis {
            port,
            child: None,
            dir,
            config,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(&self.config.binary);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(if self.config.pipe_log {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null());
        (self.config.prepare)(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {} (is it installed?): {e}",
                self.config.binary.display()
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + self.config.start_wait;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(format!(
                    "redis-server on port {} exited with {status}",
                    self.port
                ));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(format!(
                    "redis-server on port {} did not answer PING",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether a server answers `PING` on the port now.
    pub fn ping(&self) -> bool {
        self.command("PING\r\n")
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one inline command; returns the first reply bytes (bounded wait).
    pub fn command(&self, inline: &str) -> Option<String> {
        let addr = ("127.0.0.1", self.port);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
            .ok()?
            .next()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(1000)))
            .ok()?;
        stream.write_all(inline.as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// Number of clients subscribed to `channel` (`PUBSUB NUMSUB`).
    pub fn subscribers(&self, channel: &str) -> Option<usize> {
        let reply = self.command(&format!("PUBSUB NUMSUB {channel}\r\n"))?;
        // *2\r\n$<n>\r\n<channel>\r\n:<count>\r\n
        let count = reply.lines().find_map(|l| l.strip_prefix(':'))?;
        count.trim().parse().ok()
    }

    /// `connected_clients` of `INFO clients` (this query's own connection included).
    pub fn connected_clients(&self) -> Option<usize> {
        let reply = self.command("INFO clients\r\n")?;
        let count = reply
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))?;
        count.trim().parse().ok()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log (its stdout), once, if [`RedisConfig::pipe_log`] was set.
    pub fn take_log(&mut self) -> Option<ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// The server process, e.g. to stop it more gently than [`Redis::kill`].
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// SIGKILLs the server (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts a new one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // The port is free once the old process is reaped (redis sets SO_REUSEADDR); retry
        // briefly anyway in case the kernel is slow to release it.
        let deadline = Instant::now() + self.config.start_wait;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(err) if Instant::now() >= deadline => {
                    panic!("redis restart on port {} failed: {err}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
