//! Bounded waits on the wall clock. A test may pause tokio's clock (to run debounce and
//! throttle timers at once); then tokio's own timeouts would fire as soon as the test waits
//! on the socket (the paused clock jumps to the next timer whenever the runtime is idle).
//! The kit's waits for the server are therefore measured on the wall clock, by a thread.
//!
//! For: the kit's waits (a page, a reply, `wait_until`).
//! Never: uses tokio's clock, or keeps a thread once its wait is over or given up.

use std::{
    future::Future,
    pin::Pin,
    sync::mpsc::{self, RecvTimeoutError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

/// A moment on the wall clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Instant,
    wait: Duration,
}

impl Deadline {
    /// `wait` from now.
    pub(crate) fn after(wait: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + wait,
            wait,
        }
    }

    /// The wait it was made with (for messages).
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Resolves at the deadline. Dropping it ends its thread at once.
    pub(crate) fn alarm(&self) -> Alarm {
        let (cancel, cancelled) = mpsc::channel::<()>();
        let (fire, fired) = tokio::sync::oneshot::channel();
        let at = self.at;
        let spawned = std::thread::Builder::new()
            .name("tether-test-alarm".into())
            .spawn(move || {
                let wait = at.saturating_duration_since(Instant::now());
                if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(wait) {
                    let _ = fire.send(());
                }
            });
        if let Err(err) = spawned {
            panic!("tether::testing: cannot start a timer thread: {err}");
        }
        Alarm {
            fired,
            _cancel: cancel,
        }
    }

    /// `future`'s output, or `None` when the deadline comes first.
    pub(crate) async fn bound<F: Future>(&self, future: F) -> Option<F::Output> {
        let alarm = self.alarm();
        tokio::select! {
            biased;
            output = future => Some(output),
            _ = alarm => None,
        }
    }
}

/// A future that resolves at a [`Deadline`].
pub(crate) struct Alarm {
    fired: tokio::sync::oneshot::Receiver<()>,
    _cancel: mpsc::Sender<()>,
}

impl Future for Alarm {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.fired).poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With tokio's clock paused, a tokio timeout would fire at once; the alarm waits for
    /// the wall clock.
    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_does_not_bring_the_deadline_forward() {
        let started = Instant::now();
        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        let out = Deadline::after(Duration::from_millis(200))
            .bound(never)
            .await;
        assert!(out.is_none());
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn what_finishes_first_is_returned() {
        let out = Deadline::after(Duration::from_secs(10))
            .bound(async { 7 })
            .await;
        assert_eq!(out, Some(7));
    }
}
