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
    /// Issue time; expiry is computed from it, and the session's idle time.
    pub created_at: DateTime<Utc>,
    /// Last change: for a rotated token, when it was rotated.
    pub updated_at: Option<DateTime<Utc>>,
    /// The session (chain of rotations) the token belongs to; `None` for a row upstream
    /// wrote, which is a one-token session until its first refresh.
    pub session_id: Option<Uuid>,
    /// When the session started (its login, or the first refresh of an upstream row).
    pub session_started_at: Option<DateTime<Utc>>,
    /// The token's secret, sealed (see `domain::session`); only a session's current token,
    /// and only once it replaced another, has one.
    pub sealed: Option<String>,
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
    /// The session: new at a login, the rotated token's on a refresh.
    pub session_id: Uuid,
    /// When the session started.
    pub session_started_at: DateTime<Utc>,
    /// The secret, sealed, kept while this is the session's current token.
    pub sealed: Option<String>,
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

    /// Revokes `old` and issues `new`, atomically, only if `old` was not yet revoked. The
    /// rotated row loses its sealed secret and, when it had no session (an upstream row),
    /// joins `new`'s, so that a later replay of it is traced to the chain.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `old` was already revoked (a concurrent rotation won).
    async fn rotate_refresh_token(&self, old: &RefreshToken, new: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// The session's current (not revoked) token, the newest when several are.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn current_session_token(&self, session_id: Uuid) -> Result<Option<RefreshToken>, StoreError>;

    /// Ends a session: deletes every token of it, with audit entries, atomically.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn revoke_session(&self, session_id: Uuid, audit: &[AuditEntry]) -> Result<(), StoreError>;

    /// Deletes every refresh token of the user in the instance, with audit entries.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn revoke_user_tokens(&self, instance_id: Uuid, user_id: Uuid, audit: &[AuditEntry]) -> Result<(), StoreError>;
}
