//! Per-connection rate limits: token buckets (`crate::bucket`) for joins and for the other
//! client pushes, and strikes that end a connection which keeps pushing past its limits.
//!
//! A bucket holds up to `burst` tokens and gains `rate` per second; a join or a push takes
//! one. A frame that finds its bucket empty is refused (the channel layer answers it with
//! `{"reason": "rate limited"}`) and costs one strike; strikes are forgiven at one per
//! second, and a connection with more than `rate_limit_strikes` is closed with 1008.
//!
//! Time is `tokio::time`, so tests can pause it. This module only counts: it never answers
//! a client nor closes anything itself.

use tokio::time::Instant;

use crate::bucket::Bucket;

/// What a connection may do per second (from `[endpoint]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateConfig {
    pub(crate) join_rate: f64,
    pub(crate) join_burst: u32,
    pub(crate) event_rate: f64,
    pub(crate) event_burst: u32,
    pub(crate) strikes: u32,
}

impl RateConfig {
    pub(crate) fn from_endpoint(e: &crate::config::EndpointConfig) -> RateConfig {
        RateConfig {
            join_rate: e.join_rate,
            join_burst: e.join_burst,
            event_rate: e.event_rate,
            event_burst: e.event_burst,
            strikes: e.rate_limit_strikes,
        }
    }
}

/// Which bucket a frame draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `phx_join`, first or again.
    Join,
    /// Any other client push but `phx_leave`.
    Event,
}

/// The verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limits.
    Allowed,
    /// Over the limit: refuse this frame.
    Refused,
    /// Over the limit too often: close the connection.
    Close,
}

/// The limits of one connection.
#[derive(Debug)]
pub(crate) struct RateLimits {
    /// The buckets' clock: milliseconds since this moment.
    began: Instant,
    joins: Bucket,
    events: Bucket,
    /// Strikes are a bucket too: each refusal takes a token, one comes back per second.
    strikes: Bucket,
}

impl RateLimits {
    pub(crate) fn new(config: RateConfig) -> RateLimits {
        let burst = |n: u32| f64::from(n);
        RateLimits {
            began: Instant::now(),
            joins: Bucket::full(config.join_rate, burst(config.join_burst), 0),
            events: Bucket::full(config.event_rate, burst(config.event_burst), 0),
            strikes: Bucket::full(1.0, burst(config.strikes), 0),
        }
    }

    /// Counts one frame of `kind` and says what to do with it.
    pub(crate) fn check(&mut self, kind: Kind) -> Verdict {
        let now = self.began.elapsed().as_millis() as u64;
        let bucket = match kind {
            Kind::Join => &mut self.joins,
            Kind::Event => &mut self.events,
        };
        if bucket.take(now) {
            return Verdict::Allowed;
        }
        let metrics = crate::metrics::metrics();
        metrics.rate_limited.inc();
        if self.strikes.take(now) {
            Verdict::Refused
        } else {
            metrics.rate_limit_closes.inc();
            Verdict::Close
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> RateConfig {
        RateConfig {
            join_rate: 2.0,
            join_burst: 3,
            event_rate: 10.0,
            event_burst: 5,
            strikes: 4,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_applies() {
        let mut limits = RateLimits::new(config());
        for _ in 0..3 {
            assert_eq!(limits.check(Kind::Join), Verdict::Allowed);
        }
        assert_eq!(limits.check(Kind::Join), Verdict::Refused);
        // Events have their own bucket.
        assert_eq!(limits.check(Kind::Event), Verdict::Allowed);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(limits.check(Kind::Join), Verdict::Allowed);
        assert_eq!(limits.check(Kind::Join), Verdict::Refused);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_beyond_the_strikes_close_and_strikes_are_forgiven_over_time() {
        let mut limits = RateLimits::new(config());
        for _ in 0..5 {
            assert_eq!(limits.check(Kind::Event), Verdict::Allowed);
        }
        for _ in 0..4 {
            assert_eq!(limits.check(Kind::Event), Verdict::Refused);
        }
        assert_eq!(limits.check(Kind::Event), Verdict::Close);

        let mut limits = RateLimits::new(config());
        for _ in 0..5 {
            limits.check(Kind::Event);
        }
        // One refusal a second, forgiven a second later: never closed.
        for _ in 0..20 {
            assert_eq!(limits.check(Kind::Event), Verdict::Refused);
            tokio::time::advance(Duration::from_millis(1000)).await;
            for _ in 0..5 {
                assert_eq!(limits.check(Kind::Event), Verdict::Allowed);
            }
        }
    }
}
