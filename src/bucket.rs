//! A token bucket: `burst` tokens at most, refilled at `rate` a second, one taken per
//! action. The one rate limiter of the crate (per-connection joins and pushes, presence
//! updates per join).
//!
//! Pure: no clock. Times are milliseconds on whatever monotonic clock the caller keeps (the
//! presence clock, or the time since a connection began); they must never go backwards for
//! one bucket (a time before the last one counts as no time passed).

/// One bucket; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    burst: f64,
    /// Tokens per millisecond.
    per_ms: f64,
    at_ms: u64,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub(crate) fn full(rate_per_s: f64, burst: f64, now_ms: u64) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            per_ms: rate_per_s / 1000.0,
            at_ms: now_ms,
        }
    }

    /// The tokens it would hold at `now_ms`.
    fn level(&self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        (self.tokens + elapsed * self.per_ms).min(self.burst)
    }

    /// Takes a token at `now_ms` if there is one.
    pub(crate) fn take(&mut self, now_ms: u64) -> bool {
        self.tokens = self.level(now_ms);
        self.at_ms = self.at_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether it is full again at `now_ms` (a full bucket is the same as a new one).
    pub(crate) fn is_full(&self, now_ms: u64) -> bool {
        self.level(now_ms) >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_full_again_in_time() {
        let mut bucket = Bucket::full(10.0, 3.0, 0);
        assert!((0..3).all(|_| bucket.take(0)));
        assert!(!bucket.take(0));
        assert!(!bucket.take(50), "half a token is not one");
        assert!(bucket.take(100), "one token every 100 ms");
        assert!(!bucket.is_full(300));
        assert!(bucket.is_full(400));
        // A time before the last one: no time passed.
        assert!(!bucket.take(10));
    }
}
