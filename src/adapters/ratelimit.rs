//! [`RateLimiter`] adapters: fixed-window counters in process memory (bounded) or in
//! Redis (shared by every server process pointing at the same Redis and key prefix).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::ports::ratelimit::{RateDecision, RateLimiter};

/// How many keys the in-process limiter remembers at most.
pub const MAX_KEYS: usize = 100_000;

fn refuse(remaining: Duration) -> RateDecision {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    RateDecision { allowed: false, retry_after_secs: secs.max(1) }
}

struct Window {
    start: Instant,
    len: Duration,
    count: u32,
}

/// Counters in this process's memory: at most [`MAX_KEYS`] keys; when full, expired
/// windows are dropped first, then the oldest window.
#[derive(Default)]
pub struct MemoryRateLimiter {
    windows: Mutex<HashMap<String, Window>>,
}

impl MemoryRateLimiter {
    /// An empty limiter.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// [`RateLimiter::hit`] at a given instant (tests).
    pub fn hit_at(&self, key: &str, limit: u32, window: Duration, now: Instant) -> RateDecision {
        let Ok(mut map) = self.windows.lock() else {
            return RateDecision::ALLOW;
        };
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, w| now.duration_since(w.start) < w.len);
            if map.len() >= MAX_KEYS {
                if let Some(oldest) = map.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| k.clone()) {
                    map.remove(&oldest);
                }
            }
        }
        let w = map.entry(key.to_owned()).or_insert(Window { start: now, len: window, count: 0 });
        if now.duration_since(w.start) >= w.len {
            *w = Window { start: now, len: window, count: 0 };
        }
        w.count = w.count.saturating_add(1);
        if w.count <= limit {
            RateDecision::ALLOW
        } else {
            refuse(w.len.saturating_sub(now.duration_since(w.start)))
        }
    }

    /// How many keys are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.windows.lock().map_or(0, |m| m.len())
    }

    /// Whether no key is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision {
        self.hit_at(key, limit, window, Instant::now())
    }
}

/// One atomic step: count, start the window's expiry on the first hit, report the count
/// and the time left (a key that lost its expiry gets it back).
const SCRIPT: &str = r"
local c = redis.call('INCR', KEYS[1])
if c == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local t = redis.call('PTTL', KEYS[1])
if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); t = tonumber(ARGV[1]) end
return {c, t}
";

/// How long one Redis round trip (or the first connection) may take before the request
/// goes through unlimited.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Counters in Redis under `<prefix><key>`, one `INCR` + `PEXPIRE` script per request.
/// Connects lazily and reconnects by itself; while Redis is unreachable every request is
/// allowed and a warning is logged (fail open).
pub struct RedisRateLimiter {
    client: redis::Client,
    prefix: String,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    /// When the last connection attempt failed: no new attempt for [`RECONNECT_PAUSE`].
    failed_at: Mutex<Option<Instant>>,
}

/// How long after a failed first connection the next request tries again.
pub const RECONNECT_PAUSE: Duration = Duration::from_secs(5);

impl RedisRateLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`), keys under `prefix`.
    ///
    /// # Errors
    /// A URL the client cannot parse.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("GOTRUE_RATE_LIMIT_REDIS_URL: {e}"))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            conn: OnceCell::new(),
            script: redis::Script::new(SCRIPT),
            failed_at: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT)
            .set_number_of_retries(1);
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        if let Ok(f) = self.failed_at.lock() {
            if f.is_some_and(|t| t.elapsed() < RECONNECT_PAUSE) {
                return Err("not connected (retrying shortly)".into());
            }
        }
        let r = self
            .conn
            .get_or_try_init(|| async {
                tokio::time::timeout(REDIS_TIMEOUT * 2, ConnectionManager::new_with_config(self.client.clone(), config))
                    .await
                    .map_err(|_| "connection timed out".to_owned())?
                    .map_err(|e| e.to_string())
            })
            .await
            .cloned();
        if r.is_err() {
            if let Ok(mut f) = self.failed_at.lock() {
                *f = Some(Instant::now());
            }
        }
        r
    }

    async fn try_hit(&self, key: &str, limit: u32, window: Duration) -> Result<RateDecision, String> {
        let mut conn = self.connection().await?;
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation.arg(ms);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        let (count, ttl_ms) =
            tokio::time::timeout(REDIS_TIMEOUT, call).await.map_err(|_| "command timed out".to_owned())?.map_err(|e| e.to_string())?;
        if count <= i64::from(limit) {
            Ok(RateDecision::ALLOW)
        } else {
            Ok(refuse(Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0))))
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, key: &str, limit: u32, window: Duration) -> RateDecision {
        match self.try_hit(key, limit, window).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter: Redis unreachable, request allowed (fail open)");
                RateDecision::ALLOW
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_counts_per_key_and_window() {
        let l = MemoryRateLimiter::new();
        let t = Instant::now();
        let w = Duration::from_secs(300);
        assert!(l.hit_at("a", 2, w, t).allowed);
        assert!(l.hit_at("a", 2, w, t).allowed);
        let d = l.hit_at("a", 2, w, t + Duration::from_secs(100));
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 200);
        assert!(l.hit_at("b", 2, w, t).allowed);
        assert!(l.hit_at("a", 2, w, t + w).allowed);
    }

    #[test]
    fn memory_is_bounded() {
        let l = MemoryRateLimiter::new();
        let t = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            l.hit_at(&i.to_string(), 1, Duration::from_secs(300), t + Duration::from_nanos(i as u64));
        }
        assert_eq!(l.len(), MAX_KEYS);
        // The newest key is still counted.
        assert!(!l.hit_at(&(MAX_KEYS + 9).to_string(), 1, Duration::from_secs(300), t).allowed);
    }

    #[tokio::test]
    async fn redis_down_fails_open() {
        let l = RedisRateLimiter::new("redis://127.0.0.1:1/", "t:").unwrap();
        for _ in 0..3 {
            assert!(l.hit("k", 1, Duration::from_secs(60)).await.allowed);
        }
    }
}
