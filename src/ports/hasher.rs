//! Password hashing.

use async_trait::async_trait;
use secrecy::SecretString;

/// Hashing failed for a reason other than a wrong password.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored value is not a hash this server understands.
    #[error("unrecognised password hash format")]
    UnknownFormat,
    /// The hashing pool is gone or the hash function failed.
    #[error("password hashing failed: {0}")]
    Backend(String),
}

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub matches: bool,
    /// The hash uses an outdated scheme or parameters and should be replaced.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords, off the async executor.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a new password with the configured scheme.
    ///
    /// # Errors
    /// [`HashError::Backend`] when hashing fails.
    async fn hash(&self, password: SecretString) -> Result<String, HashError>;

    /// Checks a password against a stored hash (argon2id PHC or bcrypt).
    ///
    /// # Errors
    /// [`HashError::UnknownFormat`] for an empty or foreign hash.
    async fn verify(&self, password: SecretString, hash: String) -> Result<Verified, HashError>;

    /// Spends the time of one verification without a stored hash, so that "no such user"
    /// takes as long as "wrong password".
    async fn verify_dummy(&self, password: SecretString);
}
