//! A real `redis-server` for cluster tests: on a free port, nothing persisted
//! (`--save "" --appendonly no`), killed on drop. It can be killed and started again on the
//! same port (a Redis restart as the nodes see it). Every wait is bounded.
#![allow(dead_code)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a starting `redis-server` may take to answer `PING`.
const START_WAIT: Duration = Duration::from_secs(10);

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts `redis-server` on a free port (retrying with another port if one was taken
    /// in between).
    pub fn start() -> Redis {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Redis::start_on(port) {
                Ok(redis) => return redis,
                Err(err) => last_error = err,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    /// Starts `redis-server` on `port`; waits (bounded) until it answers `PING`.
    pub fn start_on(port: u16) -> Result<Redis, String> {
        let dir = std::env::temp_dir().join(format!("tether-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut redis = Redis {
            port,
            child: None,
            dir,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server (is it installed?): {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
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

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
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
        let deadline = Instant::now() + START_WAIT;
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
