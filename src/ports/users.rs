//! Storage of users, with the audit entries and refresh tokens written atomically beside
//! them.

use async_trait::async_trait;
use uuid::Uuid;

use super::tokens::NewRefreshToken;
use super::BoxError;
use crate::domain::audit::AuditEntry;
use crate::domain::page::{Page, Pagination, SortDirection};
use crate::domain::user::User;

/// Storage failures a use case can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this (instance, audience, email).
    #[error("email address already registered")]
    EmailTaken,
    /// A guarded write found the row changed (token already used, row gone).
    #[error("the row was changed by another request")]
    Conflict,
    /// The database cannot be reached right now (connection refused or lost, no pooled
    /// connection free within the acquire timeout): worth retrying later, answered 503.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The database failed.
    #[error("database error: {0}")]
    Backend(#[source] BoxError),
}

/// Which token column a lookup or guard concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenColumn {
    /// `confirmation_token` (signup confirmation and invites).
    Confirmation,
    /// `recovery_token`.
    Recovery,
    /// `email_change_token`.
    EmailChange,
}

/// A condition a write must still find true, making token consumption single-use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// Unconditional.
    None,
    /// The named column still holds this digest.
    Token(TokenColumn, String),
}

/// What is written in the same transaction as a user change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    /// Audit entries to append.
    pub audit: Vec<AuditEntry>,
    /// A refresh token to issue.
    pub grant: Option<NewRefreshToken>,
    /// Revoke the user's sessions first (password change, recovery, admin change): delete
    /// their refresh tokens, except those of `keep_session`.
    pub revoke_sessions: bool,
    /// The session that survives `revoke_sessions` (the caller's own, on a password change).
    pub keep_session: Option<Uuid>,
}

impl Effects {
    /// Only audit entries.
    #[must_use]
    pub fn audit(entries: Vec<AuditEntry>) -> Self {
        Self { audit: entries, ..Self::default() }
    }
}

/// Which users a list returns (admin API and CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserListQuery {
    /// Only this audience; `None`: every audience of the instance.
    pub aud: Option<String>,
    /// Only users whose email or `user_metadata.full_name` contains this text,
    /// case-insensitively (`%` and `_` match themselves).
    pub filter: Option<String>,
    /// By creation time, ties by id.
    pub order: SortDirection,
    /// Which rows.
    pub page: Pagination,
}

/// Users, keyed by id and by (instance, audience, normalised email).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UserStore: Send + Sync {
    /// The user with this email key in (instance, aud).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_user_by_email(&self, instance_id: Uuid, aud: &str, email_key: &str) -> Result<Option<User>, StoreError>;

    /// The user with this id, in `instance_id` when given.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_user_by_id(&self, instance_id: Option<Uuid>, id: Uuid) -> Result<Option<User>, StoreError>;

    /// The user whose token column holds this digest, in `instance_id` when given.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn find_user_by_token(&self, instance_id: Option<Uuid>, column: TokenColumn, digest: &str) -> Result<Option<User>, StoreError>;

    /// Inserts a user with its effects.
    ///
    /// # Errors
    /// [`StoreError::EmailTaken`] when (instance, aud, email key) exists.
    async fn insert_user(&self, user: &User, effects: &Effects) -> Result<(), StoreError>;

    /// Writes every column of the user (and `updated_at`) with its effects, if `guard` holds.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the guard fails or the row is gone;
    /// [`StoreError::EmailTaken`] when the new email collides.
    async fn update_user(&self, user: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError>;

    /// Records a login: writes only the password hash (which a login may upgrade), the
    /// recovery token (a login ends a pending recovery), `last_sign_in_at` and
    /// `updated_at`, with its effects. Cheaper than
    /// [`UserStore::update_user`] on the hottest write path of a login.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the row is gone.
    async fn record_login(&self, user: &User, effects: &Effects) -> Result<(), StoreError>;

    /// One page of the instance's users matching `query`, and how many match overall.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn list_users(&self, instance_id: Uuid, query: &UserListQuery) -> Result<Page<User>, StoreError>;

    /// Undoes the insert of a user whose follow-up failed (an invite whose mail could not be
    /// sent): deletes the user, if `guard` holds, and the audit entries the insert wrote, in
    /// one transaction, so the log does not tell of what never was.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the guard fails or the row is gone.
    async fn retract_user(&self, user: &User, guard: &Guard, audit_ids: &[Uuid]) -> Result<(), StoreError>;

    /// Deletes the user, their refresh tokens and their external identities, if `guard`
    /// holds, with its effects.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the guard fails or the row is gone.
    async fn delete_user(&self, user: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError>;
}
