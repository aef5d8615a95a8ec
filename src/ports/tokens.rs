//! Storage of refresh tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::StoreError;
use crate::domain::audit::AuditEntry;
use crate::domain::user::User;

/// A stored refresh token (one row of `refresh_tokens`); `token` is the digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Tenant (copied from the user).
    pub instance_id: Uuid,
    /// Row id.
    pub id: i64,
    /// Digest of the token.
    pub token: String,
    /// Owner.
    pub user_id: Uuid,
    /// Rotated out or revoked.
    pub revoked: bool,
    /// Issue time; expiry is computed from it.
    pub created_at: DateTime<Utc>,
}

/// A refresh token to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// Tenant.
    pub instance_id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Digest of the token.
    pub token: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
}

/// Refresh tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The token row with this digest.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_refresh_token(&self, digest: &str) -> Result<Option<RefreshToken>, StoreError>;

    /// The token row with this digest and its user (`None` when the user is gone), in one
    /// lookup: the refresh grant's read.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_refresh_session(&self, digest: &str) -> Result<Option<(RefreshToken, Option<User>)>, StoreError>;

    /// Issues a token and appends audit entries, atomically.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn grant_refresh_token(&self, token: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// Revokes `old` and issues `new`, atomically, only if `old` was not yet revoked.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `old` was already revoked (a concurrent rotation won).
    async fn rotate_refresh_token(&self, old: &RefreshToken, new: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// Deletes every refresh token of the user in the instance, with audit entries.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn revoke_user_tokens(&self, instance_id: Uuid, user_id: Uuid, audit: &[AuditEntry]) -> Result<(), StoreError>;
}
