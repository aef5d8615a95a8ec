//! Opaque random tokens (refresh, confirmation, invite, recovery, email change).
//!
//! A token is 16 bytes from the OS CSPRNG in unpadded base64url (22 characters, as
//! upstream). Only its digest is stored, so a copy of the database yields no usable token;
//! lookups compare digests, which leaks nothing about the token through timing.

use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// Prefix marking a stored value as a digest rather than an upstream plaintext token.
pub const DIGEST_PREFIX: &str = "h1:";

/// A freshly generated token: the secret to hand out and the digest to store.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The value given to the user (in a link or a token response). Never stored.
    pub secret: String,
    /// What the database keeps.
    pub digest: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken").field("digest", &self.digest).finish_non_exhaustive()
    }
}

impl NewToken {
    /// Generates a 128-bit token.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let digest = digest(&secret);
        Self { secret, digest }
    }
}

/// The stored form of a presented token, or `None` when it is blank (upstream refuses
/// blank and whitespace-only tokens before any lookup).
#[must_use]
pub fn lookup_digest(presented: &str) -> Option<String> {
    if presented.trim().is_empty() {
        None
    } else {
        Some(digest(presented))
    }
}

/// SHA-256 of the token, hex, with [`DIGEST_PREFIX`].
#[must_use]
pub fn digest(secret: &str) -> String {
    format!("{DIGEST_PREFIX}{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// Constant-time equality of two byte strings (lengths may leak, contents do not).
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.ct_eq(&db).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_22_url_safe_chars_and_differ() {
        let a = NewToken::generate();
        let b = NewToken::generate();
        assert_eq!(a.secret.len(), 22);
        assert!(a.secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.digest, digest(&a.secret));
        assert!(a.digest.starts_with(DIGEST_PREFIX));
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn blank_tokens_have_no_digest_and_case_matters() {
        for blank in ["", " ", "\t", "   "] {
            assert_eq!(lookup_digest(blank), None);
        }
        assert_ne!(lookup_digest("AbC"), lookup_digest("abc"));
    }

    #[test]
    fn constant_time_eq_compares_contents() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
