//! Short-lived records of the external-login flow that must hold across server instances
//! sharing one database: OAuth states already used, and authorization codes waiting for
//! their PKCE exchange.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::StoreError;

/// A code handed to a client that started the flow with a PKCE challenge, redeemed at
/// `POST /token` with `grant_type=authorization_code`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode {
    /// Tenant.
    pub instance_id: Uuid,
    /// Digest of the code ([`crate::domain::token::digest`]); the code itself is never stored.
    pub digest: String,
    /// Whose tokens the code buys.
    pub user_id: Uuid,
    /// The client's S256 challenge (RFC 7636 4.2).
    pub code_challenge: String,
    /// Issue time.
    pub created_at: DateTime<Utc>,
    /// Refused from then on.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCode").field("user_id", &self.user_id).field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Single-use records of the external-login flow.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Records that the state `id` is being used; `false` when it already was. Records past
    /// their expiry are purged on the way.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn use_state(&self, instance_id: Uuid, id: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Stores a new authorization code (expired codes are purged on the way).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn insert_auth_code(&self, code: &AuthCode, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Removes the code with this digest and returns it: of two concurrent callers, one
    /// gets it.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn take_auth_code(&self, digest: &str) -> Result<Option<AuthCode>, StoreError>;
}
