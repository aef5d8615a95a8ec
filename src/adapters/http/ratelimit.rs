//! Upstream's `/token` limiter (API.md 3.12): a token bucket per value of the header named
//! by `GOTRUE_RATE_LIMIT_HEADER`, burst 30, one token back every 10 s, in process memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BURST: f64 = 30.0;
const REFILL_PER_SEC: f64 = 0.1;
const FORGET_AFTER: Duration = Duration::from_secs(3600);
const MAX_KEYS: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
    created: Instant,
}

/// Buckets keyed by header value.
pub struct HeaderLimiter {
    /// The request header whose value is the key.
    pub header: String,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl HeaderLimiter {
    /// A limiter keyed by `header`.
    #[must_use]
    pub fn new(header: &str) -> Self {
        Self { header: header.to_owned(), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`; `false` when the bucket is empty.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let Ok(mut map) = self.buckets.lock() else {
            return true;
        };
        if map.len() >= MAX_KEYS {
            map.retain(|_, b| now.duration_since(b.created) < FORGET_AFTER);
        }
        let b = map.entry(key.to_owned()).or_insert(Bucket { tokens: BURST, last: now, created: now });
        if now.duration_since(b.created) >= FORGET_AFTER {
            *b = Bucket { tokens: BURST, last: now, created: now };
        }
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * REFILL_PER_SEC).min(BURST);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_key() {
        let l = HeaderLimiter::new("My-Custom-Header");
        let t = Instant::now();
        for _ in 0..30 {
            assert!(l.allow("1.2.3.4", t));
        }
        assert!(!l.allow("1.2.3.4", t));
        assert!(l.allow("5.6.7.8", t));
        assert!(l.allow("1.2.3.4", t + Duration::from_secs(10)));
        assert!(!l.allow("1.2.3.4", t + Duration::from_secs(10)));
    }
}
