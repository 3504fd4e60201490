//! Runs a compiled example (`target/<profile>/examples/<name>`) as a child process.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct Example {
    pub child: Child,
    pub port: u16,
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
        let path = example_path(name);
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --examples`",
            path.display()
        );
        let mut command = Command::new(&path);
        command
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .env("TETHER_SECRET_KEY_BASE", "s".repeat(64))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
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
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no `listening on` line")
            .expect("bad port in `listening on` line");
        Example { child, port }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
