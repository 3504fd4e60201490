//! The `tracing` spans of a page's work, beside the metrics: one per handler run
//! (`tether.handler`), browser round trip (`tether.round_trip`) and navigation
//! (`tether.navigation`), each with the commander, what ran, and, recorded when it ends, its
//! `duration_ms` and `outcome` (`ok`, `skipped`, `error`, `timeout`, `disconnected`, …).
//! Target `tether::commander::spans`, level INFO: a subscriber shows or drops them like any
//! other span (`RUST_LOG=tether::commander::spans=info`).
//!
//! For: the page's task (handlers), round trips (`calls`) and navigation. Never: records a
//! sender, a payload, an argument or anything else a page sent (only names the server
//! declared), or costs anything when no subscriber wants the spans.

use std::time::Instant;

use tracing::{Span, field::Empty};

/// A span being timed: [`Timed::end`] records its duration and outcome.
pub(crate) struct Timed {
    span: Span,
    started: Instant,
}

impl Timed {
    fn new(span: Span) -> Timed {
        Timed {
            span,
            started: Instant::now(),
        }
    }

    /// The span, to instrument the work with.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// Records the duration and `outcome`; the span closes when the work's future drops it.
    pub(crate) fn end(self, outcome: &str) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.span.record("duration_ms", ms);
        self.span.record("outcome", outcome);
    }
}

/// The span of handler `handler` of `commander`.
pub(crate) fn handler(commander: &str, handler: &str) -> Timed {
    Timed::new(tracing::info_span!(
        target: "tether::commander::spans",
        "tether.handler",
        commander,
        handler,
        duration_ms = Empty,
        outcome = Empty,
    ))
}

/// The span of a round trip `op` (`query`, `js`, `modal`, …) asked by a page of `commander`.
pub(crate) fn round_trip(commander: &str, op: &str) -> Timed {
    Timed::new(tracing::info_span!(
        target: "tether::commander::spans",
        "tether.round_trip",
        commander,
        op,
        duration_ms = Empty,
        outcome = Empty,
    ))
}

/// The span of a navigation of a page of `commander` (`patch`: its `handle_params`) to `path`
/// (the path only: a query string may carry what a person typed). A `navigate` is a new
/// page's join, whose callbacks have their own spans.
pub(crate) fn navigation(commander: &str, kind: &str, path: &str) -> Timed {
    Timed::new(tracing::info_span!(
        target: "tether::commander::spans",
        "tether.navigation",
        commander,
        kind,
        path,
        duration_ms = Empty,
        outcome = Empty,
    ))
}
