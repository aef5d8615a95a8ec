//! Whether a new password is known from published breaches (ASVS 5.0 6.2.12).

use async_trait::async_trait;
use secrecy::SecretString;

use super::BoxError;

/// The breach corpus could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum BreachCheckError {
    /// No answer in time, a transport error or an answer that is not the expected list.
    #[error("breached-password service unavailable: {0}")]
    Unavailable(#[source] BoxError),
}

/// A corpus of breached passwords.
#[cfg_attr(test, mockall::automock)] // must precede async_trait
#[async_trait]
pub trait BreachedPasswords: Send + Sync {
    /// How many times `password` appears in the corpus (0: not known to be breached).
    ///
    /// # Errors
    /// [`BreachCheckError::Unavailable`]: the caller decides whether to fail open.
    async fn times_seen(&self, password: &SecretString) -> Result<u64, BreachCheckError>;
}
