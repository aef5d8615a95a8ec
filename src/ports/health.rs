//! Readiness: whether the database answers.

use async_trait::async_trait;

use super::users::StoreError;

/// Answers whether the storage backend can serve queries right now.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// Runs a trivial query.
    ///
    /// # Errors
    /// `StoreError::Backend` when the database does not answer it.
    async fn check_database(&self) -> Result<(), StoreError>;
}
