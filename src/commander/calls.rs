//! Round trips to the browser that are under way for one page: each has an id, a one-shot
//! slot for the browser's answer, and a deadline kept by the caller.
//!
//! Invariants: an entry lives from the `call` push until its answer, its timeout, the
//! caller giving up (its future dropped), or the page going away — whichever comes first;
//! after [`Calls::close`] no call can start and every pending one has failed with
//! [`CallError::Disconnected`]. At most [`MAX_PENDING_CALLS`] are pending per page.
//!
//! It must never push anything to the page itself (the page handle does).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use serde_json::Value;
use tokio::sync::oneshot;

/// Most round trips one page may have pending at once.
pub const MAX_PENDING_CALLS: usize = 64;

/// Why a browser round trip failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The browser did not answer in time (`[commander] browser_response_timeout_ms`, or
    /// the call's own timeout).
    #[error("the browser did not answer in time")]
    Timeout,
    /// The page went away (closed, navigated, connection lost) before answering.
    #[error("the page is gone")]
    Disconnected,
    /// The browser answered with an error: the script's exception message, an invalid
    /// selector, …
    #[error("browser error: {0}")]
    Browser(String),
    /// `exec_js` is off in the config.
    #[error("exec_js is disabled ([commander] exec_js = false)")]
    JsDisabled,
    /// `query_one` matched no element.
    #[error("no element matches `{0}`")]
    NotFound(String),
    /// `query_one` matched several elements.
    #[error("`{selector}` matches {count} elements, not one")]
    Ambiguous {
        /// The selector.
        selector: String,
        /// How many matched.
        count: usize,
    },
    /// The page already has [`MAX_PENDING_CALLS`] round trips pending.
    #[error("too many pending browser calls")]
    TooMany,
    /// The browser's answer did not have the expected shape.
    #[error("unexpected answer from the browser: {0}")]
    BadAnswer(String),
}

type Slot = oneshot::Sender<Result<Value, CallError>>;

#[derive(Default)]
struct Inner {
    next_id: u64,
    pending: HashMap<u64, Slot>,
    closed: bool,
}

/// The pending round trips of one page.
#[derive(Default)]
pub(crate) struct Calls(Mutex<Inner>);

impl Calls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a call: its id, and where its answer will arrive.
    pub(crate) fn open(
        &self,
    ) -> Result<(u64, oneshot::Receiver<Result<Value, CallError>>), CallError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(CallError::Disconnected);
        }
        if inner.pending.len() >= MAX_PENDING_CALLS {
            return Err(CallError::TooMany);
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let (slot, answer) = oneshot::channel();
        inner.pending.insert(id, slot);
        Ok((id, answer))
    }

    /// Forgets call `id` (timed out, or its caller gave up); `true` if it was pending.
    pub(crate) fn forget(&self, id: u64) -> bool {
        self.lock().pending.remove(&id).is_some()
    }

    /// Hands the browser's answer to call `id`; `false` if no such call is pending (late,
    /// unknown or forged ids are ignored).
    pub(crate) fn answer(&self, id: u64, answer: Result<Value, CallError>) -> bool {
        let slot = self.lock().pending.remove(&id);
        match slot {
            Some(slot) => {
                let _ = slot.send(answer);
                true
            }
            None => false,
        }
    }

    /// The page is gone: every pending call fails with `Disconnected`, and no new one opens.
    pub(crate) fn close(&self) {
        let pending = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.pending)
        };
        for (_, slot) in pending {
            let _ = slot.send(Err(CallError::Disconnected));
        }
    }

    /// How many calls are pending.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_call_once() {
        let calls = Calls::default();
        let (id, answer) = calls.open().unwrap();
        assert!(calls.answer(id, Ok(Value::from(4))));
        assert!(
            !calls.answer(id, Ok(Value::from(5))),
            "a second answer is ignored"
        );
        assert_eq!(answer.await.unwrap(), Ok(Value::from(4)));
        assert_eq!(calls.pending(), 0);
    }

    #[tokio::test]
    async fn closing_fails_every_pending_call_and_refuses_new_ones() {
        let calls = Calls::default();
        let (_, first) = calls.open().unwrap();
        let (_, second) = calls.open().unwrap();
        calls.close();
        assert_eq!(first.await.unwrap(), Err(CallError::Disconnected));
        assert_eq!(second.await.unwrap(), Err(CallError::Disconnected));
        assert_eq!(calls.open().err(), Some(CallError::Disconnected));
        assert_eq!(calls.pending(), 0);
    }

    #[test]
    fn pending_calls_are_bounded() {
        let calls = Calls::default();
        let open: Vec<_> = (0..MAX_PENDING_CALLS)
            .map(|_| calls.open().unwrap())
            .collect();
        assert_eq!(calls.open().err(), Some(CallError::TooMany));
        assert!(calls.forget(open[0].0));
        assert!(calls.open().is_ok());
    }
}
