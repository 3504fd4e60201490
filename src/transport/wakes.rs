//! Wakes held back until a publishing connection's task yields, then given all at once.
//!
//! A connection that handles a run of client messages (a burst of broadcasts) pushes frames
//! into many other connections' outboxes, and each push onto an idle outbox wakes that
//! connection's response body. Woken one push at a time, a body on another worker thread
//! runs at once and writes one or two frames per system call while the publisher is still
//! pushing; woken once the publisher's task yields, it finds the whole run queued and writes
//! it in one. [`batched`] wraps the connection task: every wake that [`wake`] is handed
//! while that task is being polled on this thread is held in a thread-local list and given
//! when the poll returns (also by unwinding).
//!
//! Invariants: a held wake never outlives the poll that held it, so nothing waits on a wake
//! that was not given; outside a batched poll [`wake`] wakes at once; a batch never nests
//! (an inner [`batched`] poll on the same thread adds to the outer batch). This module must
//! never poll anything itself nor hold the list while waking (a waker may push again).

use std::{
    cell::RefCell,
    future::Future,
    pin::Pin,
    task::{Context, Poll, Waker},
};

/// Capacity kept for the next batch; a larger list (a poll that woke more connections) is
/// freed.
const KEPT_CAPACITY: usize = 4096;

#[derive(Default)]
struct Batch {
    active: bool,
    held: Vec<Waker>,
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::default();
}

/// Wakes `waker` now, or when the batched poll running on this thread returns.
pub(crate) fn wake(waker: Waker) {
    let waker = BATCH.with(|batch| {
        let mut batch = batch.borrow_mut();
        if batch.active {
            batch.held.push(waker);
            None
        } else {
            Some(waker)
        }
    });
    if let Some(waker) = waker {
        waker.wake();
    }
}

pin_project_lite::pin_project! {
    /// A future whose polls hold back the wakes handed to [`wake`] until each poll returns
    /// ([`batched`]). A plain struct, not an `async fn`: the task it wraps is stored once (an
    /// `async fn` would keep its argument and the pinned local apart, doubling a connection
    /// task's size).
    pub(crate) struct Batched<F> {
        #[pin]
        task: F,
    }
}

/// Runs `task` with the wakes handed to [`wake`] during each of its polls held until that
/// poll returns.
pub(crate) fn batched<F: Future>(task: F) -> Batched<F> {
    Batched { task }
}

impl<F: Future> Future for Batched<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _batch = Opened::open();
        self.project().task.poll(cx)
    }
}

/// An open batch: gives the held wakes when dropped (if it opened the batch).
struct Opened {
    outer: bool,
}

impl Opened {
    fn open() -> Opened {
        let outer = BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            !std::mem::replace(&mut batch.active, true)
        });
        Opened { outer }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if !self.outer {
            return;
        }
        crate::metrics::flush_thread_local();
        let mut held = BATCH.with(|batch| {
            let mut batch = batch.borrow_mut();
            batch.active = false;
            std::mem::take(&mut batch.held)
        });
        for waker in held.drain(..) {
            waker.wake();
        }
        if held.capacity() <= KEPT_CAPACITY {
            BATCH.with(|batch| {
                let mut batch = batch.borrow_mut();
                if batch.held.is_empty() {
                    batch.held = held;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::Wake,
    };

    use super::*;

    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let count = Arc::new(Counting(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// A future of `N` bytes that never completes.
    fn big<const N: usize>() -> impl Future<Output = ()> {
        let payload = [0u8; N];
        async move {
            std::future::pending::<()>().await;
            std::hint::black_box(&payload);
        }
    }

    #[test]
    fn batching_a_task_does_not_store_it_twice() {
        let task = big::<4096>();
        let alone = std::mem::size_of_val(&task);
        let wrapped = std::mem::size_of_val(&batched(task));
        assert!(wrapped < alone + 64, "{alone} bytes became {wrapped}");
    }

    #[test]
    fn outside_a_batch_a_wake_is_given_at_once() {
        let (count, waker) = counting();
        wake(waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wakes_during_a_poll_are_given_when_that_poll_returns_pending() {
        let (count, waker) = counting();
        let seen = Arc::new(AtomicUsize::new(usize::MAX));
        let seen_inside = seen.clone();
        let count_inside = count.clone();
        let mut first = true;
        let task = std::future::poll_fn(move |_| {
            if std::mem::take(&mut first) {
                wake(waker.clone());
                wake(waker.clone());
                seen_inside.store(count_inside.0.load(Ordering::SeqCst), Ordering::SeqCst);
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        });
        let mut task = Box::pin(batched(task));
        let (_, outer) = counting();
        let mut cx = Context::from_waker(&outer);
        assert!(task.as_mut().poll(&mut cx).is_pending());
        assert_eq!(seen.load(Ordering::SeqCst), 0, "held during the poll");
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "given when it returned");
        assert!(task.as_mut().poll(&mut cx).is_ready());
        // The batch is closed again: a wake now is given at once.
        let (after, waker) = counting();
        wake(waker);
        assert_eq!(after.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_nested_batch_adds_to_the_outer_one() {
        let (count, waker) = counting();
        let inner = batched(async move { wake(waker) });
        let outer = batched(async move {
            inner.await;
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                0,
                "still held by the outer poll"
            );
            count
        });
        let count = futures_util::FutureExt::now_or_never(outer).expect("ready");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
