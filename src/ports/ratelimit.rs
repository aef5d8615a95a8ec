//! Counting requests per key in fixed windows, shared across server processes when the
//! adapter is (Redis) and per process otherwise.

use std::time::Duration;

use async_trait::async_trait;

/// The answer to one counted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request is within the limit.
    pub allowed: bool,
    /// When refused: seconds until the window ends (for `Retry-After`, at least 1).
    pub retry_after_secs: u64,
}

impl RateDecision {
    /// Within the limit.
    pub const ALLOW: Self = Self { allowed: true, retry_after_secs: 0 };
}

/// A counter of requests per key.
#[cfg_attr(test, mockall::automock)] // must precede async_trait
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` in the current window of length `window` and says
    /// whether it is among the first `limit` of that window.
    ///
    /// Infallible by contract: an adapter whose backend is unreachable lets the request
    /// through and logs it (fail open), so that a limiter outage never takes logins down.
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision;
}

/// A limiter that allows everything: the default of a service built without one (unit
/// tests, the `admin` commands).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRateLimit;

#[async_trait]
impl RateLimiter for NoRateLimit {
    async fn hit(&self, _key: &str, _limit: u32, _window: Duration) -> RateDecision {
        RateDecision::ALLOW
    }
}
