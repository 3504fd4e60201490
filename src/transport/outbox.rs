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
//! - The queues never hold more than the byte limit together, and every queued item is
//!   charged at least what it costs to keep: a frame its length plus [`ITEM_COST`], a pong
//!   its (copied) payload plus [`ITEM_COST`], an info [`INFO_COST`]. A push that would exceed
//!   the limit marks the outbox *overflowed*: both queues are dropped, later pushes fail, the
//!   body writes a close frame (1008) and ends, and the connection task is woken to clean up
//!   ("slow consumer").
//! - At most one pong is pending: a newer ping replaces the pong of an older one (RFC 6455
//!   §5.5.3 allows answering only the most recent ping).
//! - After [`Outbox::close`] nothing more is accepted; the frames already queued are still
//!   written, then the close frame, then the body ends.
//! - Progress is recorded: whenever the body hands bytes to the socket, and when output
//!   becomes pending on an idle outbox. [`Outbox::stalled_since`] tells the connection task
//!   since when pending output has not moved (the write timeout), and
//!   [`Outbox::wait_drained`] lets it stop reading while the outbox is above its high-water
//!   mark (backpressure). Progress is any bytes handed over, not a drained queue.
//! - The publisher pays: a delivery ([`Subscriber::deliver`]) that leaves the outbox above
//!   its high-water mark while a connection handles its client's message is recorded in that
//!   connection's [`Pacing`], and the connection waits (with [`Outbox::wait_drained`], which
//!   wakes every waiter) before reading its client again. Other pushes are never recorded.
//! - An idle outbox holds no buffer.

use std::{
    any::Any,
    cell::RefCell,
    collections::VecDeque,
    future::poll_fn,
    rc::Rc,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll, Waker},
};

use actix_http::ws::CloseCode;
use bytes::Bytes;
use tokio::time::Instant;

use crate::{
    metrics::{Held, metrics},
    pubsub::Subscriber,
};

/// Bytes charged for an info message, which has no byte length of its own.
pub(crate) const INFO_COST: usize = 64;

/// Bytes charged for every queued frame or pong on top of its payload: its slot in the
/// queue and its buffer handle.
pub(crate) const ITEM_COST: usize = 48;

/// A close frame: code and reason (at most 123 bytes; longer is cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Close {
    /// Close code (1000, 1001, 1008, …).
    pub code: CloseCode,
    /// Reason text.
    pub reason: String,
}

/// A text frame's payload: whole, or spliced from parts written one after the other as one
/// frame (a large part shared by many connections is then never copied per connection).
///
/// The spliced parts are boxed so that a `Text` is no larger than one [`Bytes`]: every
/// broadcast queues a `Whole` on every subscriber, and a wider queue entry costs memory
/// moves and reallocation on each of them; spliced frames are rare (one state per join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text {
    Whole(Bytes),
    Spliced(Box<[Bytes; 3]>),
}

impl Text {
    pub(crate) fn len(&self) -> usize {
        self.parts().iter().map(Bytes::len).sum()
    }

    pub(crate) fn parts(&self) -> &[Bytes] {
        match self {
            Text::Whole(whole) => std::slice::from_ref(whole),
            Text::Spliced(parts) => &parts[..],
        }
    }
}

/// What the socket writes next.
pub(crate) enum Wire {
    /// A text frame's payload.
    Text(Text),
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

/// A queued text frame and what it is charged.
struct Queued {
    frame: Text,
    charged: usize,
}

// The fields a push touches come first, so that it reads one or two cache lines of an
// outbox it does not own (`repr(C)` keeps this order; see `Shared`).
#[repr(C)]
pub(crate) struct State {
    status: Status,
    /// The body holds pieces of a large frame it has not handed over yet.
    body_busy: bool,
    /// The body went away (the client is gone).
    pub(crate) body_gone: bool,
    wire: VecDeque<Queued>,
    /// Charged for `wire` and `pong`.
    wire_bytes: usize,
    /// Charged for `infos`.
    info_bytes: usize,
    body_waker: Option<Waker>,
    /// The answer to the most recent ping, if not written yet.
    pong: Option<Bytes>,
    /// Set by `close` (or an overflow): written after the queued frames.
    pub(crate) close: Option<Close>,
    /// When pending output last moved (or became pending).
    last_progress: Instant,
    infos: VecDeque<Box<dyn Any + Send>>,
    task_waker: Option<Waker>,
    /// Tasks waiting for the outbox to drain below the low-water mark: the connection's own
    /// task (backpressure) and publishers paced by this outbox ([`Pacing`]). At most one
    /// entry per waiting task (a re-registration replaces nothing, it is deduplicated), so
    /// at most one per connection; emptied (and its buffer freed) at every wake.
    drain_wakers: Vec<Waker>,
}

impl State {
    /// Whether anything is waiting to be written (frames, a pong, a close frame, or the
    /// rest of a large frame).
    fn pending(&self) -> bool {
        !self.wire.is_empty() || self.pong.is_some() || self.close.is_some() || self.body_busy
    }

    /// Records that output moved, or became pending on an idle outbox.
    fn progressed(&mut self) {
        self.last_progress = Instant::now();
    }
}

/// Aligned to a cache line, with the lock and the state's hot fields first: a publisher
/// pushing to thousands of outboxes misses the cache once or twice per outbox, not once per
/// field (the reader's side is another core).
#[repr(C, align(64))]
pub(crate) struct Shared {
    state: Mutex<State>,
    limit: usize,
    /// This outbox in `tether_outboxes`.
    _alive: Held,
}

impl Shared {
    /// Reading pauses above this many queued bytes (half the limit).
    fn high_water(&self) -> usize {
        self.limit / 2
    }

    /// Reading resumes at or below this many queued bytes (a quarter of the limit).
    fn low_water(&self) -> usize {
        self.limit / 4
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes a consumer; during a publishing connection's poll the wake waits until that poll
/// returns (see [`super::wakes`]), so the consumer finds the whole run queued.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        super::wakes::wake(waker);
    }
}

/// Room reserved when a frame is queued on an empty (buffer-less) outbox.
const WIRE_START_CAPACITY: usize = 16;

/// The sending side; cheap to clone and `Send`.
#[derive(Clone)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

/// What the connection task receives.
pub(crate) enum Received {
    /// Messages for the handler, in order (never empty).
    Infos(VecDeque<Box<dyn Any + Send>>),
    /// The byte limit was exceeded; the connection is closing as a slow consumer.
    Overflowed,
    /// The response body ended: the client is gone.
    BodyGone,
}

impl Outbox {
    /// A new outbox holding at most `limit_bytes` at a time.
    pub(crate) fn new(limit_bytes: usize) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                limit: limit_bytes,
                state: Mutex::new(State {
                    wire: VecDeque::new(),
                    pong: None,
                    infos: VecDeque::new(),
                    wire_bytes: 0,
                    info_bytes: 0,
                    status: Status::Open,
                    close: None,
                    body_gone: false,
                    body_busy: false,
                    last_progress: Instant::now(),
                    body_waker: None,
                    task_waker: None,
                    drain_wakers: Vec::new(),
                }),
                _alive: Held::new(&metrics().outboxes),
            }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Queues a text frame (an encoded Phoenix frame).
    pub(crate) fn push_frame(&self, frame: Bytes) -> Result<(), PushError> {
        let cost = frame.len() + ITEM_COST;
        self.push_charged(Text::Whole(frame), cost)
    }

    /// Queues one frame made of `parts`, written in order, whose payload is exempt from the
    /// byte limit: it is charged only [`ITEM_COST`], so it is accepted even when it alone
    /// exceeds the limit. For frames a client cannot do without and whose number is bounded
    /// elsewhere (a `presence_state`: one per presence subscription); the write timeout still
    /// drops a client that does not read it. A large part shared by many connections (the
    /// state's body) is queued by reference, never copied per connection.
    pub(crate) fn push_exempt_spliced(&self, parts: [Bytes; 3]) -> Result<(), PushError> {
        self.push_charged(Text::Spliced(Box::new(parts)), ITEM_COST)
    }

    fn push_charged(&self, frame: Text, charged: usize) -> Result<(), PushError> {
        self.push_noting_high(frame, charged).map(|_high| ())
    }

    /// Queues `frame`; `Ok(true)` if the queued output is then above the high-water mark.
    fn push_noting_high(&self, frame: Text, charged: usize) -> Result<bool, PushError> {
        let high_water = self.shared.high_water();
        let mut high = false;
        self.push(
            |_| charged,
            |state| {
                if !state.pending() {
                    state.progressed();
                }
                crate::metrics::observe_outbox_depth(state.wire.len());
                if state.wire.capacity() == 0 {
                    // One allocation for a typical run instead of growing 4, 8, 16.
                    state.wire.reserve(WIRE_START_CAPACITY);
                }
                state.wire.push_back(Queued { frame, charged });
                state.wire_bytes += charged;
                high = state.wire_bytes > high_water;
                state.body_waker.take()
            },
        )?;
        Ok(high)
    }

    /// Queues the answer to a ping, replacing the pong of an earlier ping not written yet.
    /// The payload is copied, so it never keeps the read buffer it was sliced from alive.
    pub(crate) fn push_pong(&self, payload: &[u8]) -> Result<(), PushError> {
        let payload = Bytes::copy_from_slice(&payload[..payload.len().min(125)]);
        let cost = payload.len() + ITEM_COST;
        let replaced = |state: &State| state.pong.as_ref().map_or(0, |old| old.len() + ITEM_COST);
        self.push(
            |state| cost.saturating_sub(replaced(state)),
            |state| {
                if !state.pending() {
                    state.progressed();
                }
                state.wire_bytes = state.wire_bytes - replaced(state) + cost;
                state.pong = Some(payload);
                state.body_waker.take()
            },
        )
    }

    /// Queues a message for the connection's handler.
    pub(crate) fn push_info(&self, info: Box<dyn Any + Send>) -> Result<(), PushError> {
        self.push(
            |_| INFO_COST,
            |state| {
                state.infos.push_back(info);
                state.info_bytes += INFO_COST;
                state.task_waker.take()
            },
        )
    }

    /// Adds an item that adds `cost(state)` bytes with `add` (which charges it and returns
    /// the waker of the side that consumes it: a consumer's waker is present only while it
    /// waits).
    fn push(
        &self,
        cost: impl FnOnce(&State) -> usize,
        add: impl FnOnce(&mut State) -> Option<Waker>,
    ) -> Result<(), PushError> {
        let mut state = self.shared.lock();
        match state.status {
            Status::Open => {}
            Status::Overflowed => return Err(PushError::Overflowed),
            Status::Closed => return Err(PushError::Closed),
        }
        if state.wire_bytes + state.info_bytes + cost(&state) > self.shared.limit {
            state.status = Status::Overflowed;
            state.drop_queues();
            state.close = Some(Close {
                code: CloseCode::Policy,
                reason: "outbound queue full".into(),
            });
            let wakers = [state.body_waker.take(), state.task_waker.take()];
            let drained = std::mem::take(&mut state.drain_wakers);
            drop(state);
            wakers.into_iter().for_each(wake);
            drained.into_iter().for_each(Waker::wake);
            return Err(PushError::Overflowed);
        }
        let waker = add(&mut state);
        drop(state);
        wake(waker);
        Ok(())
    }

    /// Whether the queued output is above the high-water mark (half the limit): the
    /// connection should stop reading its client until [`Outbox::wait_drained`] returns.
    pub(crate) fn is_high(&self) -> bool {
        self.shared.lock().wire_bytes > self.shared.high_water()
    }

    /// Waits until the queued output is at or below the low-water mark (a quarter of the
    /// limit), or the outbox is no longer open. Cancel safe.
    pub(crate) async fn wait_drained(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.wire_bytes <= self.shared.low_water() || state.status != Status::Open {
                return Poll::Ready(());
            }
            if !state.drain_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                state.drain_wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Since when pending output (frames, a pong, the close frame) has not moved, or `None`
    /// if nothing is pending or the body has ended.
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        let state = self.shared.lock();
        (state.pending() && !state.body_gone).then_some(state.last_progress)
    }

    /// Waits until the body has ended (written its close frame, or was dropped). Cancel
    /// safe.
    pub(crate) async fn body_ended(&self) {
        poll_fn(|cx| {
            let mut state = self.shared.lock();
            if state.body_gone {
                return Poll::Ready(());
            }
            register(&mut state.task_waker, cx);
            Poll::Pending
        })
        .await
    }

    /// Gives up on writing: drops everything queued (frames, pong, close frame) and refuses
    /// further pushes. For a connection whose writes made no progress for the write timeout.
    pub(crate) fn abandon(&self) {
        let mut state = self.shared.lock();
        if state.status == Status::Open {
            state.status = Status::Closed;
        }
        state.drop_queues();
        state.close = None;
        let task = state.task_waker.take();
        let drained = std::mem::take(&mut state.drain_wakers);
        drop(state);
        wake(task);
        drained.into_iter().for_each(Waker::wake);
    }

    /// Refuses further pushes and has the body write what is queued, then `close`, then end.
    /// A second close, or a close after an overflow, changes nothing.
    pub(crate) fn close(&self, close: Close) {
        let mut state = self.shared.lock();
        if state.status == Status::Open {
            // The close frame becomes pending: on an idle outbox the write timeout counts
            // from now, not from its last write (an idle or shut-down connection silent for
            // longer than the write timeout was abandoned without its close frame, and
            // counted as a write timeout).
            if !state.pending() {
                state.progressed();
            }
            state.status = Status::Closed;
            state.close = Some(close);
        }
        let waker = state.body_waker.take();
        drop(state);
        wake(waker);
    }

    /// Waits for messages for the handler, an overflow, or the end of the body. Cancel safe.
    pub(crate) async fn recv(&self) -> Received {
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
            state.info_bytes = 0;
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
    fn drop_queues(&mut self) {
        self.wire = VecDeque::new();
        self.pong = None;
        self.infos = VecDeque::new();
        self.wire_bytes = 0;
        self.info_bytes = 0;
    }

    /// The body takes the next wire item (a pending pong first), or learns it must wait
    /// (`None` + waker kept). Wakes the connection task if it waits for the outbox to drain.
    pub(crate) fn take_wire(&mut self, shared: &Shared, cx: &Context<'_>) -> Option<Wire> {
        let (item, charged) = match self.pong.take() {
            Some(pong) => {
                let charged = pong.len() + ITEM_COST;
                (Wire::Pong(pong), charged)
            }
            None => match self.wire.pop_front() {
                Some(Queued { frame, charged }) => (Wire::Text(frame), charged),
                None => {
                    register(&mut self.body_waker, cx);
                    return None;
                }
            },
        };
        self.wire_bytes = self.wire_bytes.saturating_sub(charged);
        if self.wire.is_empty() {
            self.wire = VecDeque::new(); // an idle outbox holds no buffer
        }
        if self.wire_bytes <= shared.low_water() && !self.drain_wakers.is_empty() {
            std::mem::take(&mut self.drain_wakers)
                .into_iter()
                .for_each(Waker::wake);
        }
        Some(item)
    }

    /// The body handed bytes to the socket; `busy`: it still holds pieces of a large frame.
    pub(crate) fn wrote(&mut self, busy: bool) {
        self.body_busy = busy;
        self.progressed();
    }

    /// The body has ended (written its close frame, or was dropped).
    pub(crate) fn body_ended(&mut self) -> Option<Waker> {
        self.body_gone = true;
        self.body_busy = false;
        if self.status == Status::Open {
            self.status = Status::Closed;
        }
        self.wire = VecDeque::new();
        self.pong = None;
        self.wire_bytes = 0;
        std::mem::take(&mut self.drain_wakers)
            .into_iter()
            .for_each(Waker::wake);
        self.task_waker.take()
    }
}

impl Subscriber for Outbox {
    fn deliver(&self, message: &Bytes) {
        let cost = message.len() + ITEM_COST;
        // A refused push means the connection is closing; its task logs why.
        if let Ok(true) = self.push_noting_high(Text::Whole(message.clone()), cost) {
            // Above high water: if a client's message is being handled (its connection
            // published this), that connection waits for this outbox before reading on.
            Pacing::note(self);
        }
    }
}

/// Most subscriber outboxes one handled message records for its publisher to wait on; a
/// message that fills more waits for these (they drain side by side), and the next message
/// records the rest.
pub(crate) const PACED_MAX: usize = 32;

tokio::task_local! {
    static PACING: Rc<Pacing>;
}

/// The publisher pays: the subscriber outboxes that a connection's handling of one client
/// message pushed above their high-water mark (broadcasts, delivered synchronously on this
/// node). The connection task ([`super::connection`]) runs each message's handling inside
/// [`Pacing::scope`], then waits for those outboxes to drain below their low-water mark (or
/// to close) before it reads the client's next message. So a client that publishes faster
/// than its subscribers read is slowed down to their pace, instead of the readers being cut
/// as slow consumers. Deliveries outside a scope (server-originated broadcasts, other tasks,
/// other nodes) are not paced: the byte limit cuts their slow readers.
///
/// Costs nothing on the fan-out path below high water; above it, one task-local lookup and
/// at most [`PACED_MAX`] handle clones per handled message.
#[derive(Default)]
pub(crate) struct Pacing {
    high: RefCell<Vec<Outbox>>,
}

impl Pacing {
    /// Runs `handling` with deliveries that go above high water recorded in `pacing`.
    /// Not an `async fn`: that would store `handling` twice (its argument and the scope
    /// future it is moved into), growing every connection task by the size of a handling.
    pub(crate) fn scope<F: std::future::Future>(
        pacing: &Rc<Pacing>,
        handling: F,
    ) -> tokio::task::futures::TaskLocalFuture<Rc<Pacing>, F> {
        PACING.scope(pacing.clone(), handling)
    }

    /// Records `outbox` if a publisher's handling is running on this task.
    fn note(outbox: &Outbox) {
        let _ = PACING.try_with(|pacing| {
            let mut high = pacing.high.borrow_mut();
            if high.len() < PACED_MAX
                && !high.iter().any(|o| Arc::ptr_eq(&o.shared, &outbox.shared))
            {
                high.push(outbox.clone());
            }
        });
    }

    /// Takes the outboxes recorded so far (most recent last).
    pub(crate) fn take(&self) -> Vec<Outbox> {
        std::mem::take(&mut *self.high.borrow_mut())
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
        let shared = outbox.shared.clone();
        let mut state = shared.lock();
        let mut out = Vec::new();
        while let Some(Wire::Text(text)) = state.take_wire(&shared, &cx()) {
            out.push(Bytes::from(text.parts().concat()));
        }
        out
    }

    #[test]
    fn a_queued_frame_is_as_small_as_a_plain_bytes_entry() {
        // Every broadcast queues one entry on every subscriber: a spliced frame's parts
        // must not widen them all (fan-out paid for it in reallocation and copies).
        assert_eq!(
            std::mem::size_of::<Queued>(),
            std::mem::size_of::<Bytes>() + std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn frames_come_out_in_order_and_free_the_budget() {
        let outbox = Outbox::new(2 * (4 + ITEM_COST));
        for round in 0..5u8 {
            outbox.push_frame(Bytes::from(vec![round; 4])).unwrap();
            outbox.push_frame(Bytes::from(vec![round; 4])).unwrap();
            assert_eq!(texts(&outbox).len(), 2);
        }
    }

    #[test]
    fn empty_frames_and_pongs_are_charged_too() {
        let outbox = Outbox::new(10 * ITEM_COST);
        for _ in 0..10 {
            outbox.push_frame(Bytes::new()).unwrap();
        }
        assert_eq!(outbox.push_frame(Bytes::new()), Err(PushError::Overflowed));
    }

    #[test]
    fn at_most_one_pong_is_pending_and_it_answers_the_latest_ping() {
        let outbox = Outbox::new(2 * ITEM_COST + 10);
        // A million pings cost one pong's worth.
        for n in 0..1_000_000u32 {
            outbox.push_pong(&n.to_be_bytes()).unwrap();
        }
        let shared = outbox.shared.clone();
        let mut state = shared.lock();
        match state.take_wire(&shared, &cx()) {
            Some(Wire::Pong(payload)) => assert_eq!(&payload[..], &999_999u32.to_be_bytes()),
            _ => panic!("expected the latest pong"),
        }
        assert!(state.take_wire(&shared, &cx()).is_none());
        assert_eq!(state.wire_bytes, 0);
    }

    #[tokio::test]
    async fn overflow_drops_everything_refuses_more_and_tells_both_sides() {
        let outbox = Outbox::new(10 + 2 * ITEM_COST);
        outbox.push_frame(Bytes::from_static(b"123456")).unwrap();
        assert_eq!(
            outbox.push_frame(Bytes::from_static(b"123456")),
            Err(PushError::Overflowed)
        );
        assert!(matches!(outbox.recv().await, Received::Overflowed));
        assert!(texts(&outbox).is_empty());
        assert_eq!(
            outbox.shared.lock().close.as_ref().map(|c| c.code),
            Some(CloseCode::Policy)
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

    #[tokio::test]
    async fn a_pacing_scope_does_not_store_the_handling_twice() {
        let payload = [0u8; 4096];
        let handling = async move {
            std::future::pending::<()>().await;
            std::hint::black_box(&payload);
        };
        let alone = std::mem::size_of_val(&handling);
        let pacing = Rc::new(Pacing::default());
        let scoped = Pacing::scope(&pacing, handling);
        let wrapped = std::mem::size_of_val(&scoped);
        assert!(wrapped < alone + 64, "{alone} bytes became {wrapped}");
    }

    #[tokio::test]
    async fn deliveries_above_high_water_are_recorded_for_the_publisher_inside_its_scope() {
        let outbox = Outbox::new(1000); // high water 500
        let frame = Bytes::from(vec![b'x'; 200 - ITEM_COST]); // charged 200
        let pacing = Rc::new(Pacing::default());
        // Outside a scope (a server-originated broadcast) nothing is recorded.
        for _ in 0..3 {
            outbox.deliver(&frame);
        }
        assert!(pacing.take().is_empty());
        texts(&outbox);
        // Inside: only once the outbox is above high water, and once however often.
        Pacing::scope(&pacing, async {
            outbox.deliver(&frame);
            outbox.deliver(&frame);
        })
        .await;
        assert!(pacing.take().is_empty(), "400 bytes are not above 500");
        Pacing::scope(&pacing, async {
            outbox.deliver(&frame);
            outbox.deliver(&frame);
        })
        .await;
        let high = pacing.take();
        assert_eq!(high.len(), 1);
        assert!(Arc::ptr_eq(&high[0].shared, &outbox.shared));
        // A direct push (not a delivery) is the connection's own output: never recorded.
        texts(&outbox);
        Pacing::scope(&pacing, async {
            for _ in 0..4 {
                outbox.push_frame(frame.clone()).unwrap();
            }
        })
        .await;
        assert!(pacing.take().is_empty());
    }

    #[tokio::test]
    async fn draining_below_low_water_wakes_every_waiter() {
        // The connection's own task and two paced publishers wait on one outbox: all three
        // must be woken (a single waker slot would lose two of them).
        let outbox = Outbox::new(1000);
        for _ in 0..6 {
            outbox
                .push_frame(Bytes::from(vec![b'x'; 100 - ITEM_COST]))
                .unwrap();
        }
        assert!(outbox.is_high());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let outbox = outbox.clone();
                tokio::spawn(async move { outbox.wait_drained().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(outbox.shared.lock().drain_wakers.len(), 3);
        // 600 queued; low water is 250: taking four frames leaves 200.
        {
            let shared = outbox.shared.clone();
            let mut state = shared.lock();
            for _ in 0..4 {
                assert!(state.take_wire(&shared, &cx()).is_some());
            }
            assert!(state.drain_wakers.is_empty(), "woken and forgotten");
        }
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
                .await
                .expect("a waiter was not woken")
                .unwrap();
        }
    }

    #[test]
    fn progress_is_any_bytes_handed_over_not_a_drained_queue() {
        // The write timeout's clock: a push on an idle outbox starts it, every hand-over to
        // the socket restarts it although the queue is still far from empty.
        let outbox = Outbox::new(1 << 20);
        assert_eq!(outbox.stalled_since(), None, "nothing pending");
        for _ in 0..10 {
            outbox
                .push_frame(Bytes::from_static(b"0123456789"))
                .unwrap();
        }
        let started = outbox.stalled_since().expect("pending output");
        std::thread::sleep(std::time::Duration::from_millis(5));
        outbox.push_frame(Bytes::from_static(b"more")).unwrap();
        assert_eq!(
            outbox.stalled_since(),
            Some(started),
            "a push is not progress"
        );
        let shared = outbox.shared.clone();
        let mut state = shared.lock();
        assert!(state.take_wire(&shared, &cx()).is_some());
        state.wrote(false);
        drop(state);
        let moved = outbox.stalled_since().expect("still pending");
        assert!(moved > started, "one frame written is progress");
    }

    #[test]
    fn close_keeps_queued_frames_and_refuses_new_ones() {
        let outbox = Outbox::new(1024);
        outbox
            .push_frame(Bytes::from_static(b"last words"))
            .unwrap();
        outbox.close(Close {
            code: CloseCode::Away,
            reason: "bye".into(),
        });
        assert_eq!(outbox.push_frame(Bytes::new()), Err(PushError::Closed));
        assert_eq!(texts(&outbox), vec![Bytes::from_static(b"last words")]);
        assert_eq!(
            outbox.shared.lock().close.as_ref().map(|c| c.code),
            Some(CloseCode::Away)
        );
    }
}
