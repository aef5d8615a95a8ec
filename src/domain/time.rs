//! Timestamps as upstream renders them.

use chrono::{DateTime, Timelike, Utc};

/// Formats like Go's `time.RFC3339Nano`: up to nine fractional digits with trailing zeros
/// trimmed (none at all for whole seconds) and `Z` for UTC.
#[must_use]
pub fn rfc3339_nano(t: &DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Formats with whole seconds (the audit payload's `timestamp`).
#[must_use]
pub fn rfc3339_seconds(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Serde helpers for optional timestamps in Go's format.
pub mod serde_opt {
    use super::rfc3339_nano;
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    /// Serialises `Some` as an RFC 3339 string (callers skip `None`).
    ///
    /// # Errors
    /// Never, beyond the serializer's own.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339_nano(t)),
            None => s.serialize_none(),
        }
    }
}

/// An HTTP date (RFC 7231 IMF-fixdate), as cookies' `Expires` uses.
#[must_use]
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn trims_fraction_like_go() {
        let t = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        assert_eq!(rfc3339_nano(&t), "2024-05-01T10:00:00Z");
        let t = t + chrono::Duration::microseconds(123_450);
        assert_eq!(rfc3339_nano(&t), "2024-05-01T10:00:00.12345Z");
        assert_eq!(rfc3339_seconds(&t), "2024-05-01T10:00:00Z");
    }
}
