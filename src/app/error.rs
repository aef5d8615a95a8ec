//! What a use case can answer besides success. The HTTP adapter maps each variant to
//! upstream's status and message.

use crate::domain::audit::InvalidAuditQuery;
use crate::domain::email::EmailError;
use crate::domain::page::{PageError, SortError};
use crate::ports::hooks::HookError;
use crate::ports::users::StoreError;
use crate::ports::BoxError;

/// A use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// `GOTRUE_EXTERNAL_EMAIL_DISABLED` is on.
    #[error("Unsupported email provider")]
    EmailProviderDisabled,
    /// `GOTRUE_DISABLE_SIGNUP` is on.
    #[error("Signups not allowed for this instance")]
    SignupDisabled,
    /// Signup without a password.
    #[error("Signup requires a valid password")]
    PasswordRequired,
    /// The new password breaks the policy.
    #[error("{0}")]
    WeakPassword(String),
    /// The new password is known from a published breach (`GOTRUE_PASSWORD_HIBP_ENABLED`).
    #[error("This password has appeared in a data breach and cannot be used; please choose a different one")]
    BreachedPassword,
    /// The email is missing or malformed.
    #[error(transparent)]
    Email(#[from] EmailError),
    /// Signup of a confirmed address.
    #[error("A user with this email address has already been registered")]
    AlreadyRegistered,
    /// Invite, admin create or email change to a taken address.
    #[error("Email address already registered by another user")]
    EmailTaken,
    /// Password grant failed.
    #[error("No user found with that email, or password invalid.")]
    BadCredentials,
    /// Password grant of an unconfirmed user.
    #[error("Email not confirmed")]
    EmailNotConfirmed,
    /// `grant_type` missing or unknown.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Refresh grant without a token.
    #[error("refresh_token required")]
    RefreshTokenRequired,
    /// Unknown, revoked or foreign refresh token; `clear_cookie` when it was revoked.
    #[error("Invalid Refresh Token")]
    InvalidRefreshToken {
        /// Whether the `nf_jwt` cookie is cleared too.
        clear_cookie: bool,
    },
    /// Refresh token past its lifetime.
    #[error("Refresh token expired")]
    RefreshTokenExpired,
    /// `/verify` without a token.
    #[error("Verify requires a token")]
    VerifyTokenRequired,
    /// `/verify` with an unknown type.
    #[error("Verify requires a verification type")]
    VerifyTypeRequired,
    /// No user for the token or id.
    #[error("User not found")]
    UserNotFound,
    /// Confirmation or invite token past its age.
    #[error("Confirmation token expired")]
    ConfirmationTokenExpired,
    /// Recovery token past its age.
    #[error("Recovery token expired")]
    RecoveryTokenExpired,
    /// Accepting an invite needs a password.
    #[error("Invited users must specify a password")]
    InvitePasswordRequired,
    /// `/recover` without an email.
    #[error("Password recovery requires an email")]
    RecoverEmailRequired,
    /// A recovery mail went out less than `SMTP_MAX_FREQUENCY` ago.
    #[error("Rate limit exceeded, try again later")]
    RecoverRateLimited,
    /// The access token's `sub` is not a user id.
    #[error("Could not read User ID claim")]
    BadUserIdClaim,
    /// `X-JWT-AUD` disagrees with the token.
    #[error("Token audience doesn't match request audience")]
    AudienceMismatch,
    /// A non-admin tried to set `app_metadata`.
    #[error("Updating app_metadata requires admin privileges")]
    AppMetadataRequiresAdmin,
    /// `user_metadata` or `app_metadata` would exceed 64 KiB serialised.
    #[error("Metadata is too large (at most 65536 bytes serialised)")]
    MetadataTooLarge,
    /// Email-change token past its age.
    #[error("Email change token expired")]
    EmailChangeTokenExpired,
    /// Email-change token wrong or nothing pending.
    #[error("Email Change Token didn't match token on file")]
    EmailChangeTokenMismatch,
    /// Logout by a token whose user cannot be resolved.
    #[error("Invalid user")]
    InvalidUser,
    /// The CLI was asked to create a user whose (instance, audience, email) exists.
    #[error("user already exists")]
    UserExists,
    /// No usable `Authorization: Bearer` header.
    #[error("This endpoint requires a Bearer token")]
    BearerRequired,
    /// The bearer token does not verify (the reason follows `Invalid token: `).
    #[error("Invalid token: {0}")]
    InvalidToken(String),
    /// The admin token's `sub` names no user of this instance.
    #[error("Invalid admin user")]
    InvalidAdminUser,
    /// The caller is not an admin of the audience concerned.
    #[error("User not allowed")]
    UserNotAllowed,
    /// The body of an admin request is not the expected JSON.
    #[error("Could not decode admin user params: {0}")]
    AdminParams(String),
    /// `page` or `per_page` is malformed.
    #[error("Bad Pagination Parameters: {0}")]
    BadPagination(#[from] PageError),
    /// `sort` is malformed.
    #[error("Bad Sort Parameters: {0}")]
    BadSort(#[from] SortError),
    /// The audit `query` is malformed.
    #[error(transparent)]
    InvalidAuditQuery(#[from] InvalidAuditQuery),
    /// The export secret header is missing or wrong.
    #[error("Invalid export secret")]
    InvalidExportSecret,
    /// An admin path's user id is not a UUID.
    #[error("user_id must be an UUID")]
    BadUserId,
    /// A `validate`, `signup` or `login` webhook failed or refused; answered with the
    /// hook's own status and message (HOOKS_AND_MAIL.md 1.5).
    #[error(transparent)]
    Hook(#[from] HookError),
    /// External login (`/authorize`, `/callback`, the `authorization_code` grant).
    #[error(transparent)]
    External(#[from] super::external::ExternalError),
    /// The database cannot be reached right now; `msg` is upstream's message for the
    /// failed step, answered with 503 instead of 500 so that clients and load balancers
    /// know to retry.
    #[error("{msg}")]
    Unavailable {
        /// The public message (upstream's wording).
        msg: &'static str,
        /// The cause, logged but never shown.
        #[source]
        source: BoxError,
    },
    /// Something failed inside; `msg` is upstream's message for it.
    #[error("{msg}")]
    Internal {
        /// The public message (upstream's wording).
        msg: &'static str,
        /// The cause, logged but never shown.
        #[source]
        source: BoxError,
    },
}

impl AuthError {
    /// An internal failure with upstream's public message.
    /// A storage failure that means the database is unreachable becomes
    /// [`AuthError::Unavailable`] (503) instead.
    pub fn internal(msg: &'static str, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        if matches!(source.downcast_ref::<StoreError>(), Some(StoreError::Unavailable(_))) {
            return Self::Unavailable { msg, source };
        }
        Self::Internal { msg, source }
    }
}

/// Maps any error into [`AuthError::Internal`] with a message.
pub trait Context<T> {
    /// Wraps the error with upstream's public message.
    ///
    /// # Errors
    /// Always the wrapped error when `self` is `Err`.
    fn context(self, msg: &'static str) -> Result<T, AuthError>;
}

impl<T, E: Into<BoxError>> Context<T> for Result<T, E> {
    fn context(self, msg: &'static str) -> Result<T, AuthError> {
        self.map_err(|e| AuthError::internal(msg, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_with_the_same_message() {
        let e = AuthError::internal("Database error saving new user", StoreError::Unavailable("pool timed out".into()));
        assert!(matches!(e, AuthError::Unavailable { msg: "Database error saving new user", .. }), "{e:?}");
        assert_eq!(e.to_string(), "Database error saving new user");
        let r: Result<(), StoreError> = Err(StoreError::Unavailable("connection refused".into()));
        assert!(matches!(r.context("Database error finding user"), Err(AuthError::Unavailable { .. })));
    }

    #[test]
    fn other_failures_stay_internal() {
        let e = AuthError::internal("Database error saving new user", StoreError::Backend("syntax error".into()));
        assert!(matches!(e, AuthError::Internal { .. }), "{e:?}");
        let e = AuthError::internal("Error sending confirmation mail", "smtp refused");
        assert!(matches!(e, AuthError::Internal { .. }), "{e:?}");
    }
}
