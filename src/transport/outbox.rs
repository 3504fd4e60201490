//! A connection's outbound queue: bounded in bytes, written straight to the socket.
//!
//! Everything a connection will write (replies, pushes, broadcast frames, pongs, the close
//! frame) is queued in its [`Outbox`] and taken from there by the connection's HTTP response
//! body ([`super::body::OutboxBody`]), in order, in small chunks. Messages for the
//! connection's handler ([`Outbox::push_info`]) wait in a second queue that the connection
//! task drains. A push never blocks, so a publisher fanning out to thousands of outboxes is
//! never held up by one slow client.
//!
//! Invariants:
//! - The queues never hold more than the byte limit together. A push that would exceed it
//!   marks the outbox *overflowed*: both queues are dropped, later pushes fail, the body
//!   writes a close frame (1008) and ends, and the connection task is woken to clean up
//!   ("slow consumer").
//! - After [`Outbox::close`] nothing more is accepted; the frames already queued are still
//!   written, then the close frame, then the body ends.
//! - An idle outbox holds no buffer.

use std::{
    any::Any,
    collections::VecDeque,
    future::poll_fn,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;

use crate::pubsub::Subscriber;

/// Bytes charged for an info message, which has no byte length of its own.
const INFO_COST: usize = 64;

/// A close frame: code and reason (at most 123 bytes; longer is cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Close code (1000, 1001, 1008, …).
    pub code: u16,
    /// Reason text.
    pub reason: String,
}

/// What the socket writes, in order.
pub(crate) enum Wire {
    /// A text frame's payload.
    Text(Bytes),
    /// A pong with this payload.
    Pong(Bytes),
}

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

pub(crate) struct State {
    wire: VecDeque<Wire>,
    infos: VecDeque<Box<dyn Any + Send>>,
    bytes: usize,
    status: Status,
    /// Set by `close` (or an overflow): written after the queued frames.
    pub(crate) close: Option<Close>,
    /// The body went away (the client is gone).
    pub(crate) body_gone: bool,
    body_waker: Option<Waker>,
    task_waker: Option<Waker>,
}

pub(crate) struct Shared {
    limit: usize,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The sending side; cheap to clone and `Send`.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// What the connection task receives.
pub enum Received {
    /// Messages for the handler, in order (never empty).
    Infos(VecDeque<Box<dyn Any + Send>>),
    /// The byte limit was exceeded; the connection is closing as a slow consumer.
    Overflowed,
    /// The response body ended: the client is gone.
    BodyGone,
}

impl Outbox {
    /// A new outbox holding at most `limit_bytes` at a time.
    pub fn new(limit_bytes: usize) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                limit: limit_bytes,
                state: Mutex::new(State {
                    wire: VecDeque::new(),
                    infos: VecDeque::new(),
                    bytes: 0,
                    status: Status::Open,
                    close: None,
                    body_gone: false,
                    body_waker: None,
                    task_waker: None,
                }),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Queues a text frame (an encoded Phoenix frame).
    pub fn push_frame(&self, frame: Bytes) -> Result<(), PushError> {
        let cost = frame.len();
        self.push(cost, |state| {
            state.wire.push_back(Wire::Text(frame));
            state.body_waker.take()
        })
    }

    /// Queues a pong.
    pub(crate) fn push_pong(&self, payload: Bytes) -> Result<(), PushError> {
        let cost = payload.len();
        self.push(cost, |state| {
            state.wire.push_back(Wire::Pong(payload));
            state.body_waker.take()
        })
    }

    /// Queues a message for the connection's handler.
    pub fn push_info(&self, info: Box<dyn Any + Send>) -> Result<(), PushError> {
        self.push(INFO_COST, |state| {
            state.infos.push_back(info);
            state.task_waker.take()
        })
    }

    /// Whether the connection behind this outbox has ended or is ending.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().status != Status::Open
    }

    /// Adds an item with `add`, which returns the waker of the side that consumes it (a
    /// consumer's waker is present only while it waits on an empty queue).
    fn push(
        &self,
        cost: usize,
        add: impl FnOnce(&mut State) -> Option<Waker>,
    ) -> Result<(), PushError> {
        let mut state = self.shared.lock();
        match state.status {
            Status::Open => {}
            Status::Overflowed => return Err(PushError::Overflowed),
            Status::Closed => return Err(PushError::Closed),
        }
        if state.bytes + cost > self.shared.limit {
            state.status = Status::Overflowed;
            state.wire = VecDeque::new();
            state.infos = VecDeque::new();
            state.bytes = 0;
            state.close = Some(Close {
                code: 1008,
                reason: "outbound queue full".into(),
            });
            let (body, task) = (state.body_waker.take(), state.task_waker.take());
            drop(state);
            wake(body);
            wake(task);
            return Err(PushError::Overflowed);
        }
        state.bytes += cost;
        let waker = add(&mut state);
        drop(state);
        wake(waker);
        Ok(())
    }

    /// Refuses further pushes and has the body write what is queued, then `close`, then end.
    /// A second close, or a close after an overflow, changes nothing.
    pub fn close(&self, close: Close) {
        let mut state = self.shared.lock();
        if state.status == Status::Open {
            state.status = Status::Closed;
            state.close = Some(close);
        }
        let waker = state.body_waker.take();
        drop(state);
        wake(waker);
    }

    /// Waits for messages for the handler, an overflow, or the end of the body. Cancel safe.
    pub async fn recv(&self) -> Received {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.status == Status::Overflowed {
                return Poll::Ready(Received::Overflowed);
            }
            if state.body_gone {
                return Poll::Ready(Received::BodyGone);
            }
            if state.infos.is_empty() {
                register(&mut state.task_waker, cx);
                return Poll::Pending;
            }
            state.bytes = state.bytes.saturating_sub(INFO_COST * state.infos.len());
            Poll::Ready(Received::Infos(std::mem::take(&mut state.infos)))
        })
        .await
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl State {
    /// The body takes the next wire item, or learns it must wait (`None` + waker kept).
    pub(crate) fn take_wire(&mut self, cx: &Context<'_>) -> Option<Wire> {
        match self.wire.pop_front() {
            Some(item) => {
                let cost = match &item {
                    Wire::Text(bytes) | Wire::Pong(bytes) => bytes.len(),
                };
                self.bytes = self.bytes.saturating_sub(cost);
                if self.wire.is_empty() {
                    self.wire = VecDeque::new(); // an idle outbox holds no buffer
                }
                Some(item)
            }
            None => {
                register(&mut self.body_waker, cx);
                None
            }
        }
    }

    /// The body has ended (written its close frame, or was dropped).
    pub(crate) fn body_ended(&mut self) -> Option<Waker> {
        self.body_gone = true;
        if self.status == Status::Open {
            self.status = Status::Closed;
        }
        self.wire = VecDeque::new();
        self.task_waker.take()
    }
}

impl Subscriber for Outbox {
    fn deliver(&self, message: &Bytes) {
        // A refused push means the connection is closing; its task logs why.
        let _ = self.push_frame(message.clone());
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn texts(outbox: &Outbox) -> Vec<Bytes> {
        let mut state = outbox.shared.lock();
        let mut out = Vec::new();
        while let Some(Wire::Text(bytes)) = state.take_wire(&cx()) {
            out.push(bytes);
        }
        out
    }

    #[test]
    fn frames_come_out_in_order_and_free_the_budget() {
        let outbox = Outbox::new(10);
        for round in 0..5u8 {
            outbox.push_frame(Bytes::from(vec![round; 4])).unwrap();
            outbox.push_frame(Bytes::from(vec![round; 4])).unwrap();
            assert_eq!(texts(&outbox).len(), 2);
        }
    }

    #[tokio::test]
    async fn overflow_drops_everything_refuses_more_and_tells_both_sides() {
        let outbox = Outbox::new(10);
        outbox.push_frame(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"123456")),
            Err(PushError::Overflowed)
        );
        assert!(matches!(outbox.recv().await, Received::Overflowed));
        assert!(texts(&outbox).is_empty());
        assert_eq!(
            outbox.shared.lock().close.as_ref().map(|c| c.code),
            Some(1008)
        );
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"1")),
            Err(PushError::Overflowed)
        );
    }

    #[tokio::test]
    async fn infos_reach_the_task_and_wake_it() {
        let outbox = Outbox::new(1024);
        let task = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                match outbox.recv().await {
                    Received::Infos(infos) => infos.len(),
                    _ => 0,
                }
            })
        };
        tokio::task::yield_now().await;
        outbox.push_info(Box::new(1u8)).unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("task not woken")
            .unwrap();
        assert_eq!(got, 1);
    }

    #[test]
    fn close_keeps_queued_frames_and_refuses_new_ones() {
        let outbox = Outbox::new(1024);
        outbox
            .push_frame(Bytes::from_static(b"last words"))
            .unwrap();
        outbox.close(Close {
            code: 1001,
            reason: "bye".into(),
        });
        assert_eq!(outbox.push_frame(Bytes::new()), Err(PushError::Closed));
        assert_eq!(texts(&outbox), vec![Bytes::from_static(b"last words")]);
        assert_eq!(
            outbox.shared.lock().close.as_ref().map(|c| c.code),
            Some(1001)
        );
    }
}
