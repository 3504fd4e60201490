//! A connection's outbound queue: bounded in bytes, drained in whole batches.
//!
//! Everything a connection will write (replies, pushes, broadcast frames, messages for its
//! channels) goes through its [`Outbox`], so the order in which they were queued is the order
//! on the wire. The connection task takes *everything* queued at once ([`OutboxReceiver::recv`]),
//! which lets frames queued for one client be written together.
//!
//! Invariant: the queue never holds more than its byte limit. A push that would exceed it
//! marks the outbox *overflowed*: the queue is dropped, later pushes fail, and the connection
//! task is woken to close the connection ("slow consumer"). A push never blocks, so a
//! publisher fanning out to thousands of outboxes is never held up by one slow client.
//! An idle outbox holds no buffer.

use std::{
    any::Any,
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Poll, Waker},
};

use bytes::Bytes;

use crate::pubsub::Subscriber;

/// What an outbox carries.
pub enum Outbound {
    /// An encoded text frame, written as is.
    Frame(Bytes),
    /// A message for the connection's handler (e.g. for a channel's `handle_info`).
    Info(Box<dyn Any + Send>),
}

/// Bytes charged for an [`Outbound::Info`], which has no byte length of its own.
const INFO_COST: usize = 64;

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection has ended (or is ending).
    #[error("connection closed")]
    Closed,
    /// The queue was full: the connection is being closed as a slow consumer.
    #[error("outbound queue full")]
    Overflowed,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Open,
    Overflowed,
    Closed,
}

struct State {
    queue: VecDeque<Outbound>,
    bytes: usize,
    status: Status,
    waker: Option<Waker>,
}

struct Shared {
    limit: usize,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side; cheap to clone and `Send`.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// The receiving side, owned by the connection task. Dropping it closes the outbox.
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// What [`OutboxReceiver::recv`] returns.
pub enum Received {
    /// Everything queued since the last call, in order (never empty).
    Batch(VecDeque<Outbound>),
    /// The byte limit was exceeded; the connection must close.
    Overflowed,
}

impl Outbox {
    /// A new outbox holding at most `limit_bytes` at a time.
    pub fn new(limit_bytes: usize) -> (Outbox, OutboxReceiver) {
        let shared = Arc::new(Shared {
            limit: limit_bytes,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                bytes: 0,
                status: Status::Open,
                waker: None,
            }),
        });
        (
            Outbox {
                shared: shared.clone(),
            },
            OutboxReceiver { shared },
        )
    }

    /// Queues an encoded frame.
    pub fn push_frame(&self, frame: Bytes) -> Result<(), PushError> {
        let cost = frame.len();
        self.push(Outbound::Frame(frame), cost)
    }

    /// Queues a message for the connection's handler.
    pub fn push_info(&self, info: Box<dyn Any + Send>) -> Result<(), PushError> {
        self.push(Outbound::Info(info), INFO_COST)
    }

    /// Whether the connection behind this outbox has ended or is ending.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().status != Status::Open
    }

    fn push(&self, item: Outbound, cost: usize) -> Result<(), PushError> {
        let waker = {
            let mut state = self.shared.lock();
            match state.status {
                Status::Open => {}
                Status::Overflowed => return Err(PushError::Overflowed),
                Status::Closed => return Err(PushError::Closed),
            }
            if state.bytes + cost > self.shared.limit {
                state.status = Status::Overflowed;
                state.queue = VecDeque::new();
                state.bytes = 0;
                let waker = state.waker.take();
                drop(state);
                if let Some(waker) = waker {
                    waker.wake();
                }
                return Err(PushError::Overflowed);
            }
            state.bytes += cost;
            state.queue.push_back(item);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Subscriber for Outbox {
    fn deliver(&self, message: &Bytes) {
        // A refused push means the connection is closing; its task logs why.
        let _ = self.push_frame(message.clone());
    }
}

impl OutboxReceiver {
    /// Waits until something is queued (or the outbox overflowed) and takes all of it.
    /// Cancel safe: nothing is taken unless it is returned.
    pub async fn recv(&mut self) -> Received {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.status == Status::Overflowed {
                return Poll::Ready(Received::Overflowed);
            }
            if state.queue.is_empty() {
                match &state.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => state.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            state.bytes = 0;
            Poll::Ready(Received::Batch(std::mem::take(&mut state.queue)))
        })
        .await
    }
}

impl OutboxReceiver {
    /// Resolves once the outbox has overflowed; used while a write is blocked on a client
    /// that does not read, so that the connection is dropped instead of waiting forever.
    pub async fn overflowed(&mut self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.status == Status::Overflowed {
                return Poll::Ready(());
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

impl Drop for OutboxReceiver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.status = Status::Closed;
        state.queue = VecDeque::new();
        state.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(received: Received) -> Vec<Bytes> {
        match received {
            Received::Batch(batch) => batch
                .into_iter()
                .map(|item| match item {
                    Outbound::Frame(bytes) => bytes,
                    Outbound::Info(_) => panic!("unexpected info"),
                })
                .collect(),
            Received::Overflowed => panic!("unexpected overflow"),
        }
    }

    #[tokio::test]
    async fn delivers_everything_queued_in_one_batch_in_order() {
        let (outbox, mut rx) = Outbox::new(1024);
        for i in 0..5u8 {
            outbox.push_frame(Bytes::from(vec![i])).unwrap();
        }
        let got = frames(rx.recv().await);
        assert_eq!(
            got,
            (0..5u8).map(|i| Bytes::from(vec![i])).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn wakes_a_waiting_receiver() {
        let (outbox, mut rx) = Outbox::new(1024);
        let waiter = tokio::spawn(async move { frames(rx.recv().await) });
        tokio::task::yield_now().await;
        outbox.push_frame(Bytes::from_static(b"x")).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("receiver was not woken")
            .unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"x")]);
    }

    #[tokio::test]
    async fn overflow_drops_the_queue_and_refuses_more() {
        let (outbox, mut rx) = Outbox::new(10);
        outbox.push_frame(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"123456")),
            Err(PushError::Overflowed)
        );
        assert!(matches!(rx.recv().await, Received::Overflowed));
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"1")),
            Err(PushError::Overflowed)
        );
    }

    #[tokio::test]
    async fn draining_frees_the_budget() {
        let (outbox, mut rx) = Outbox::new(10);
        for _ in 0..5 {
            outbox.push_frame(Bytes::from_static(b"12345678")).unwrap();
            frames(rx.recv().await);
        }
    }

    #[tokio::test]
    async fn overflowed_resolves_only_after_an_overflow() {
        let (outbox, mut rx) = Outbox::new(4);
        let waiter = tokio::spawn(async move {
            rx.overflowed().await;
            rx
        });
        outbox.push_frame(Bytes::from_static(b"1234")).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"5")),
            Err(PushError::Overflowed)
        );
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("not woken on overflow")
            .unwrap();
    }

    #[test]
    fn dropping_the_receiver_closes() {
        let (outbox, rx) = Outbox::new(10);
        drop(rx);
        assert!(outbox.is_closed());
        assert_eq!(outbox.push_frame(Bytes::new()), Err(PushError::Closed));
    }
}
