//! Storage of external identities, written in the same transaction as their user.

use async_trait::async_trait;
use uuid::Uuid;

use super::users::{Effects, Guard, StoreError};
use crate::domain::identity::Identity;
use crate::domain::user::User;

/// Identities, keyed by (instance, provider, provider id). Deleting a user deletes its
/// identities ([`super::users::UserStore::delete_user`]).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The identity of this provider account in the instance.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_identity(&self, instance_id: Uuid, provider: &str, provider_id: &str) -> Result<Option<Identity>, StoreError>;

    /// Every identity linked to the user, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn user_identities(&self, instance_id: Uuid, user_id: Uuid) -> Result<Vec<Identity>, StoreError>;

    /// Inserts a new user with its first identity and the effects, atomically.
    ///
    /// # Errors
    /// [`StoreError::EmailTaken`] when (instance, aud, email key) exists;
    /// [`StoreError::Conflict`] when the provider account is already linked.
    async fn insert_user_with_identity(&self, user: &User, identity: &Identity, effects: &Effects) -> Result<(), StoreError>;

    /// Writes every column of the user if `guard` holds, inserts the identity or refreshes
    /// it (same id), and applies the effects, atomically.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the guard fails, the user is gone, or the provider
    /// account is linked to another user.
    async fn update_user_with_identity(&self, user: &User, guard: &Guard, identity: &Identity, effects: &Effects)
        -> Result<(), StoreError>;
}
