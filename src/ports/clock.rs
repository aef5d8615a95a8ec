//! Time, injected so that rules about expiry can be tested with a fixed `now`.

use chrono::{DateTime, Utc};

/// A source of the current time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current time in UTC.
    fn now(&self) -> DateTime<Utc>;
}
