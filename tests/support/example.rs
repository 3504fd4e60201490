//! Runs a compiled example (`target/<profile>/examples/<name>`) as a child process.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

pub struct Example {
    pub child: Child,
    pub port: u16,
    /// Everything the process wrote to stderr so far, when started with `capture_stderr`.
    stderr: Option<Arc<Mutex<String>>>,
}

/// How to start an example beyond its environment.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Listen on this port instead of `PORT=0` (a free one).
    pub port: Option<u16>,
    /// Keep stderr (see [`Example::stderr`]) instead of inheriting it; each line is also
    /// echoed to the test's output, prefixed with `label`.
    pub capture_stderr: bool,
    /// Prefix of echoed stderr lines (e.g. the node name).
    pub label: String,
}

fn example_path(name: &str) -> PathBuf {
    // target/<profile>/deps/<test binary> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    profile_dir.join("examples").join(name)
}

impl Example {
    /// Starts the example with `PORT=0` and `env`, and waits (bounded) for its
    /// `listening on http://127.0.0.1:<port>` line.
    pub fn start(name: &str, env: &[(&str, &str)]) -> Example {
        Example::start_with(name, env, &Launch::default())
    }

    /// [`Example::start`] with a fixed port and/or captured stderr.
    pub fn start_with(name: &str, env: &[(&str, &str)], launch: &Launch) -> Example {
        let path = example_path(name);
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --examples`",
            path.display()
        );
        let mut command = Command::new(&path);
        command
            .env("PORT", launch.port.unwrap_or(0).to_string())
            .env("RUST_LOG", "warn")
            .env("TETHER_SECRET_KEY_BASE", "s".repeat(64))
            .stdout(Stdio::piped())
            .stderr(if launch.capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().map(|pipe| {
            let kept = Arc::new(Mutex::new(String::new()));
            let sink = kept.clone();
            let label = launch.label.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[{label}] {line}");
                    let mut kept = sink.lock().unwrap_or_else(PoisonError::into_inner);
                    kept.push_str(&line);
                    kept.push('\n');
                }
            });
            kept
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://127.0.0.1:") {
                    let _ = tx.send(addr.trim().parse::<u16>());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port.expect("bad port in `listening on` line"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = stderr
                    .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
                    .unwrap_or_default();
                panic!("no `listening on` line from {name}; stderr: {said}");
            }
        };
        Example {
            child,
            port,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; the child is not reaped until `wait`.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// What the process wrote to stderr so far (empty unless started with `capture_stderr`).
    pub fn stderr(&self) -> String {
        self.stderr
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Waits (bounded by `timeout`) until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit("SIGTERM")
    }

    /// Sends SIGKILL (no clean shutdown) and reaps the process.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGKILL);
        self.wait_exit("SIGKILL")
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but does nothing.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn cont(&self) {
        self.signal(libc::SIGCONT);
    }

    fn wait_exit(&mut self, after: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit after {after}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config file for an example (`TETHER_CONFIG`), in the temp dir, removed on drop.
pub struct ConfigFile(PathBuf);

impl ConfigFile {
    pub fn new(text: &str) -> ConfigFile {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "tether-test-config-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
