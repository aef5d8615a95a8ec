//! The system clock: the one place that reads the wall-clock time.

use chrono::{DateTime, Utc};

use crate::ports::clock::Clock;

/// Reads the operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(clippy::disallowed_methods, reason = "the Clock adapter is where time is read")]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
