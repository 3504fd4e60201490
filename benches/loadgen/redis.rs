//! The `redis-server` of a `--nodes K > 1` run, started through the test harness
//! (`tests/support/redis.rs`): on a free 127.0.0.1 port, nothing persisted
//! (`--save "" --appendonly no`), its log scanned for warnings after start, and a wait until
//! the K servers are on the bus.
//!
//! It must never bind anything but 127.0.0.1, wait without a bound, or outlive the run: the
//! server dies with this process, is registered for the watchdog and is stopped on drop.

use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    process::{LogScan, die_with_parent, register_child, stop_children},
    redis_support::{Redis, RedisConfig},
    servers::BUS_CHANNEL,
};

/// The `redis-server` of a `--nodes K > 1` run: on a free 127.0.0.1 port, nothing persisted
/// (`--save "" --appendonly no`), its log scanned for warnings after start.
pub struct RedisServer {
    redis: Redis,
    pid: u32,
    pub log: Arc<LogScan>,
    stopped: bool,
}

impl RedisServer {
    /// Starts redis-server on a free port (another port if that one was taken meanwhile);
    /// each attempt waits ≤ `wait` for `PING`.
    pub fn spawn(path: &Path, wait: Duration) -> Result<RedisServer, String> {
        let mut redis = Redis::start_with(RedisConfig {
            binary: path.to_path_buf(),
            start_wait: wait,
            pipe_log: true,
            prepare: die_with_parent,
        })
        .map_err(|e| format!("{e} (apt-get install redis-server, or --redis-server <path>)"))?;
        let pid = redis.pid().ok_or("redis-server is not running")?;
        register_child(pid);
        let log = Arc::new(LogScan::default());
        if let Some(stdout) = redis.take_log() {
            let mut ready = false;
            log.follow(stdout, move |scan, line| {
                scan.lines.fetch_add(1, Ordering::Relaxed);
                if !ready {
                    ready = line.contains("Ready to accept connections");
                    return;
                }
                // `<pid>:M <date> # <text>` is LL_WARNING (e.g. a subscriber closed for
                // overcoming the output buffer limit).
                if line.contains(" # ") && !scan.stopping.load(Ordering::Acquire) {
                    scan.redis_warnings.fetch_add(1, Ordering::Relaxed);
                    scan.keep("redis", line);
                    eprintln!("[redis] {line}");
                }
            });
        }
        Ok(RedisServer {
            redis,
            pid,
            log,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn port(&self) -> u16 {
        self.redis.port
    }

    pub fn url(&self) -> String {
        self.redis.url()
    }

    /// Waits (≤ `wait`) until `nodes` processes subscribe the bus and hold a publishing
    /// connection too.
    pub fn wait_for_nodes(&self, nodes: usize, wait: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let subs = self.redis.subscribers(BUS_CHANNEL).unwrap_or(0);
            let clients = self.redis.connected_clients().unwrap_or(0);
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

    /// SIGTERM, then SIGKILL after 5 s; waits ≤ 1 s for the log reader. Returns how it ended.
    pub fn stop(&mut self) -> String {
        self.log.stopping.store(true, Ordering::Release);
        self.stopped = true;
        let how = match self.redis.child_mut() {
            Some(child) => stop_children(&mut [child]).remove(0),
            None => "had already exited".to_string(),
        };
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
