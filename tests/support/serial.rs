//! A machine-wide lock for the tests that measure memory or time.
//!
//! What it guards: a test that reads a server's RSS (`tests/mounting.rs`, `tests/hostile.rs`),
//! asserts that something happened within a period (`tests/hostile.rs`'s write timeout,
//! `tests/cluster.rs`'s down periods and outages) or pushes megabytes through real sockets
//! (`tests/hostile.rs`'s fast sender) must not run at the same time as another such test:
//! cargo runs the tests of one binary on parallel threads, and several `cargo test` (other
//! checkouts, `scripts/test --repeat`) can run on the same machine, so each would measure the
//! other's servers and load. Every such test calls [`serial`] first and holds the guard to its
//! end; they then run one at a time on the machine, whatever binary or process they are in.
//!
//! It is an advisory `flock(2)` on one file in the temp directory: the kernel releases it
//! when the holder's file is closed, so a test that panics or a process that is killed never
//! leaves it held. Two threads of one process conflict too (each opens the file itself, and
//! `flock` locks belong to the open file). The wait is bounded by [`MAX_WAIT`]. Tests that
//! measure nothing do not take it: they may run beside one that does (it measures its own
//! server), which keeps the suite's wall time down.

use std::{
    fs::{File, OpenOptions},
    os::fd::AsRawFd,
    path::PathBuf,
    time::{Duration, Instant},
};

/// The longest wait for the lock (another binary's whole serial tests may run before ours).
pub const MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// Held by a test that measures memory or time: the lock is released when it is dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct Serial {
    _file: File,
}

/// The lock file: one per machine (per temp directory).
pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("tether-measuring-tests.lock")
}

/// Waits (at most [`MAX_WAIT`]) until no other test that measures memory or time runs on this
/// machine, and returns the guard that keeps it so until dropped. Blocks its thread: call it
/// first in the test, before any server or task is started.
pub fn serial() -> Serial {
    let path = lock_path();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("cannot open the lock file {}: {err}", path.display()));
    let started = Instant::now();
    let mut told = false;
    loop {
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            if told {
                eprintln!(
                    "serial: got {} after {:?}",
                    path.display(),
                    started.elapsed()
                );
            }
            return Serial { _file: file };
        }
        let err = std::io::Error::last_os_error();
        let busy = matches!(err.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR));
        assert!(busy, "flock {}: {err}", path.display());
        assert!(
            started.elapsed() < MAX_WAIT,
            "another test held {} for over {MAX_WAIT:?}",
            path.display()
        );
        if !told {
            eprintln!(
                "serial: waiting for {} (another test that measures memory or time runs)",
                path.display()
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
