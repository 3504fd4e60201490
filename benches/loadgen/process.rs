//! Child processes (the servers and redis-server) and this process's own limits: every
//! child dies with this process (`PR_SET_PDEATHSIG`), is registered for the watchdog, is
//! stopped with SIGTERM and then SIGKILL after 5 s, and has its log read on a thread of its
//! own and scanned ([`LogScan`]); RLIMIT_NOFILE is raised for the clients.
//!
//! It must never signal a pid it did not start (only registered children, 0 = free slot)
//! and never wait without a bound.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::process::CommandExt,
    process::{Child, Command},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use rustix::process::{Pid, Resource, Rlimit, Signal};

use crate::{options::MAX_NODES, rooms::MAX_SHARDS};

/// Children at most: the servers, redis-server and the rooms scenario's workers.
const MAX_CHILDREN: usize = MAX_NODES + 1 + MAX_SHARDS;

/// PIDs of every child still running (servers, redis-server, workers), for the watchdog
/// thread (0 = free slot).
static CHILD_PIDS: [AtomicI32; MAX_CHILDREN] = [const { AtomicI32::new(0) }; MAX_CHILDREN];

pub fn register_child(pid: u32) {
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

/// Sends `signal` to process `pid` (a child of ours); a pid that is not valid is ignored.
fn signal(pid: i32, signal: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// SIGKILL to `pid` if it is a registered child (the rooms scenario's node failure); `false`
/// for any other pid, which is left alone.
pub fn kill_child(pid: u32) -> bool {
    let registered = CHILD_PIDS
        .iter()
        .any(|slot| slot.load(Ordering::SeqCst) == pid as i32);
    if registered {
        signal(pid as i32, Signal::KILL);
    }
    registered
}

/// Sets PR_SET_PDEATHSIG = SIGKILL in the child, so it dies with this process.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: the closure runs between fork and exec; it only makes the prctl system call
    // (async-signal-safe) and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
            Ok(())
        });
    }
}

/// SIGTERM to every child, then SIGKILL to those still running after 5 s. Returns how each
/// ended.
pub fn stop_children(children: &mut [&mut Child]) -> Vec<String> {
    let start = Instant::now();
    let mut how: Vec<Option<String>> = vec![None; children.len()];
    for (i, child) in children.iter_mut().enumerate() {
        if let Ok(Some(status)) = child.try_wait() {
            how[i] = Some(format!("had already exited ({status})"));
        } else {
            signal(child.id() as i32, Signal::TERM);
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

/// Last-resort guard: if the async run does not come back `after` the start (the deadline
/// plus a grace period), kill every child and exit.
pub fn spawn_watchdog(after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!("loadgen: watchdog fired {after:?} after start; killing the servers and exiting");
        for slot in &CHILD_PIDS {
            let pid = slot.load(Ordering::SeqCst);
            if pid > 0 {
                signal(pid, Signal::KILL);
            }
        }
        std::process::exit(3);
    });
}

/// Raises RLIMIT_NOFILE for `clients` connections (plus 256) and says what it got.
pub fn check_nofile(clients: usize) {
    let want_fds = clients as u64 + 256;
    let (soft, hard) = raise_nofile(want_fds);
    if soft < want_fds {
        eprintln!(
            "loadgen: RLIMIT_NOFILE is {soft} (hard {hard}) but {want_fds} descriptors are needed \
             for {clients} clients; raise the hard limit (e.g. `ulimit -Hn {want_fds}` as root) or \
             use fewer --clients. Continuing: expect connect failures."
        );
    } else {
        eprintln!("loadgen: RLIMIT_NOFILE {soft} (hard {hard})");
    }
}

/// Raises RLIMIT_NOFILE to at least `want` (soft, and hard if allowed). Returns (soft, hard).
fn raise_nofile(want: u64) -> (u64, u64) {
    // `None` is RLIM_INFINITY.
    let limit = |v: Option<u64>| v.unwrap_or(u64::MAX);
    let mut lim = rustix::process::getrlimit(Resource::Nofile);
    if limit(lim.maximum) < want {
        let raised = Rlimit {
            current: Some(want),
            maximum: Some(want),
        };
        if rustix::process::setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    if limit(lim.current) < limit(lim.maximum) {
        let raised = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if rustix::process::setrlimit(Resource::Nofile, raised).is_ok() {
            lim = raised;
        }
    }
    (limit(lim.current), limit(lim.maximum))
}

/// What a child wrote to its log: every line is scanned for `panicked`, ` ERROR ` and
/// ` WARN ` (tracing's level column); the first such lines are kept for the report.
#[derive(Default)]
pub struct LogScan {
    pub lines: AtomicU64,
    pub panics: AtomicU64,
    pub errors: AtomicU64,
    pub warns: AtomicU64,
    /// Lines of redis-server's log at warning level (`#`) after it was ready.
    pub redis_warnings: AtomicU64,
    pub samples: Mutex<Vec<String>>,
    /// The reader reached EOF (the child closed its end).
    done: AtomicBool,
    /// Set before a deliberate stop, so that shutdown messages are not counted.
    pub stopping: AtomicBool,
}

impl LogScan {
    /// Reads `pipe` line by line on a thread of its own, handing each line to `each`, and
    /// marks the scan done at EOF.
    pub fn follow(
        self: &Arc<Self>,
        pipe: impl Read + Send + 'static,
        mut each: impl FnMut(&LogScan, &str) + Send + 'static,
    ) {
        let scan = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                each(&scan, &line);
            }
            scan.done.store(true, Ordering::Release);
        });
    }

    /// Keeps `line` (shortened, prefixed with `label`) for the report, up to 8 lines.
    pub fn keep(&self, label: &str, line: &str) {
        let mut samples = self.samples.lock().unwrap();
        if samples.len() < 8 {
            samples.push(format!(
                "{label}: {}",
                line.chars().take(240).collect::<String>()
            ));
        }
    }

    /// Classifies one line of a server's stderr.
    pub fn server_line(&self, label: &str, line: &str) {
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
    pub fn wait_done(&self, wait: Duration) {
        let start = Instant::now();
        while !self.done.load(Ordering::Acquire) && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The first flagged lines, as kept for the report.
    pub fn samples(&self) -> Vec<String> {
        self.samples.lock().unwrap().clone()
    }
}
