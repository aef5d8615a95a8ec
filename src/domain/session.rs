//! Refresh-token sessions: the rules of the reuse window and of session lifetimes, and the
//! sealing of the one secret kept at rest.
//!
//! A session is the chain of refresh tokens one login starts; each refresh rotates its
//! token. Tokens are stored as digests, except that the session's current token is also
//! kept sealed (ChaCha20-Poly1305 under a key derived with HKDF-SHA256 from `JWT_SECRET`), so
//! that a concurrent refresh of an already rotated token (two tabs) can be answered with the
//! very token the winner got. A copy of the database without the secret yields no usable
//! token.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore as _;
use uuid::Uuid;

/// Prefix of a sealed token (format version 1: base64url of nonce and ciphertext).
pub const SEALED_PREFIX: &str = "c1:";

/// HKDF `info`: binds the derived key to this one use of `JWT_SECRET`.
const KEY_INFO: &[u8] = b"gotrue-rs refresh-token seal v1";

fn key(secret: &[u8]) -> Key {
    let mut okm = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 * 32, so expand cannot fail.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(None, secret).expand(KEY_INFO, &mut okm);
    Key::from(okm)
}

/// Seals the secret of a session's current token. The session id is authenticated with it,
/// so a sealed value copied to another session does not open.
#[must_use]
pub fn seal(jwt_secret: &[u8], session_id: Uuid, token: &str) -> Option<String> {
    let cipher = ChaCha20Poly1305::new(&key(jwt_secret));
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = session_id.to_string();
    let ct = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: token.as_bytes(), aad: aad.as_bytes() }).ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Some(format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)))
}

/// Opens a sealed token; `None` when it is malformed, was sealed under another secret or
/// for another session (the caller then behaves as outside the reuse window).
#[must_use]
pub fn open(jwt_secret: &[u8], session_id: Uuid, sealed: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let cipher = ChaCha20Poly1305::new(&key(jwt_secret));
    let aad = session_id.to_string();
    let pt = cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() }).ok()?;
    String::from_utf8(pt).ok()
}

/// The session lifetimes in force (zero: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetimes {
    /// Absolute: from the session's start.
    pub timebox: Duration,
    /// Idle: from the last refresh (or the login).
    pub inactivity: Duration,
}

impl Lifetimes {
    /// Whether a session started at `started` and last refreshed at `last_used` has ended.
    #[must_use]
    pub fn expired(&self, started: DateTime<Utc>, last_used: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let over = |from: DateTime<Utc>, limit: Duration| limit > Duration::zero() && from + limit < now;
        over(started, self.timebox) || over(last_used, self.inactivity)
    }
}

/// Whether a token rotated at `rotated_at` and presented at `now` is within the reuse
/// window (zero: there is none).
#[must_use]
pub fn within_reuse_window(rotated_at: DateTime<Utc>, interval: Duration, now: DateTime<Utc>) -> bool {
    interval > Duration::zero() && now <= rotated_at + interval
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn sealed_tokens_open_only_with_the_same_secret_and_session() {
        let s = Uuid::new_v4();
        let sealed = seal(b"secret", s, "the-token").unwrap_or_default();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("the-token"));
        assert_eq!(open(b"secret", s, &sealed).as_deref(), Some("the-token"));
        assert_eq!(open(b"other", s, &sealed), None);
        assert_eq!(open(b"secret", Uuid::new_v4(), &sealed), None);
        assert_eq!(open(b"secret", s, "c1:short"), None);
        assert_eq!(open(b"secret", s, "garbage"), None);
        assert_ne!(seal(b"secret", s, "the-token"), Some(sealed), "a fresh nonce each time");
    }

    #[test]
    fn lifetimes_are_off_at_zero() {
        let off = Lifetimes::default();
        assert!(!off.expired(t(0), t(0), t(10_000_000)));
        let l = Lifetimes { timebox: Duration::seconds(100), inactivity: Duration::seconds(10) };
        assert!(!l.expired(t(0), t(95), t(100)));
        assert!(l.expired(t(0), t(95), t(101)), "past the timebox");
        assert!(l.expired(t(0), t(5), t(16)), "idle too long");
        assert!(!l.expired(t(0), t(5), t(15)));
    }

    #[test]
    fn the_reuse_window_is_inclusive_and_off_at_zero() {
        assert!(within_reuse_window(t(0), Duration::seconds(10), t(10)));
        assert!(!within_reuse_window(t(0), Duration::seconds(10), t(11)));
        assert!(!within_reuse_window(t(0), Duration::zero(), t(0)));
    }
}
