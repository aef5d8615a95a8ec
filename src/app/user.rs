//! `GET /user` and `PUT /user` (API.md 4.9-4.10).

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::token::{constant_time_eq, digest, NewToken};
use crate::domain::user::User;
use crate::ports::mail::MailKind;
use crate::ports::users::{Effects, Guard, StoreError, TokenColumn};

/// The caller, as the verified access token describes them.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `sub`.
    pub sub: String,
    /// `aud` (`""` when absent).
    pub aud: String,
    /// `session_id`: the refresh-token session the access token came with, if any.
    pub session_id: Option<Uuid>,
}

/// `PUT /user` parameters; every field optional.
#[derive(Debug, Default)]
pub struct UserUpdateParams {
    /// New address (starts an email change).
    pub email: String,
    /// New password.
    pub password: SecretString,
    /// Confirms a pending email change.
    pub email_change_token: String,
    /// Merged into `user_metadata`.
    pub data: Option<Map<String, Value>>,
    /// Merged into `app_metadata` (admins only).
    pub app_metadata: Option<Map<String, Value>>,
}

impl Service {
    async fn caller_user(&self, ctx: &Ctx, caller: &Caller) -> Result<User, AuthError> {
        let id = Uuid::parse_str(&caller.sub).map_err(|_| AuthError::BadUserIdClaim)?;
        if id.is_nil() {
            // The system user has no row: upstream looks it up and answers 404 (API.md 4.9).
            return Err(AuthError::UserNotFound);
        }
        self.users.find_user_by_id(Some(ctx.instance_id), id).await.context("Database error finding user")?.ok_or(AuthError::UserNotFound)
    }

    /// The caller's account.
    ///
    /// # Errors
    /// [`AuthError::BadUserIdClaim`], [`AuthError::AudienceMismatch`], [`AuthError::UserNotFound`].
    pub async fn get_user(&self, ctx: &Ctx, caller: &Caller) -> Result<User, AuthError> {
        Uuid::parse_str(&caller.sub).map_err(|_| AuthError::BadUserIdClaim)?;
        if ctx.aud(Some(&caller.aud)) != caller.aud {
            return Err(AuthError::AudienceMismatch);
        }
        self.caller_user(ctx, caller).await
    }

    /// Updates the caller's account.
    ///
    /// # Errors
    /// The [`AuthError`] variants of API.md 4.10.
    pub async fn update_user(&self, ctx: &Ctx, caller: &Caller, p: UserUpdateParams) -> Result<User, AuthError> {
        let mut user = self.caller_user(ctx, caller).await?;
        let original = user.clone();
        let now = self.now();
        let password_changed = !p.password.expose_secret().is_empty();
        if password_changed {
            self.check_password(ctx, &p.password).await?;
            user.encrypted_password = self.hash_password(&p.password, "Error during password storage").await?;
        }
        if let Some(data) = p.data {
            user.merge_user_metadata(data);
        }
        if let Some(app) = p.app_metadata {
            if !user.is_admin_for(&ctx.config.jwt.aud, &ctx.config.jwt.admin_group_name) {
                return Err(AuthError::AppMetadataRequiresAdmin);
            }
            user.merge_app_metadata(app);
        }
        Self::check_metadata(&user)?;
        let mut change_mails: Vec<(String, NewToken)> = Vec::new();
        if !p.email_change_token.is_empty() {
            Self::confirm_email_change(ctx, &mut user, &p.email_change_token, now)?;
        } else if !p.email.is_empty() && p.email != user.email {
            let email = ctx.parse_email(&p.email)?;
            let taken =
                self.users.find_user_by_email(ctx.instance_id, &user.aud, &email.key()).await.context("Database error checking email")?;
            if taken.is_some_and(|t| t.id != user.id) {
                return Err(AuthError::EmailTaken);
            }
            let token = NewToken::generate();
            user.email_change = email.as_str().to_owned();
            user.email_change_token.clone_from(&token.digest);
            user.email_change_sent_at = Some(now);
            user.email_change_token_current.clear();
            user.email_change_half_confirmed = false;
            change_mails.push((user.email_change.clone(), token));
            if ctx.config.mailer.secure_email_change {
                // WEAKNESSES.md 14: the current address must agree too.
                let current = NewToken::generate();
                user.email_change_token_current.clone_from(&current.digest);
                change_mails.push((user.email.clone(), current));
            }
        }
        user.updated_at = now;
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserModified, None, now);
        // A new password ends the user's other sessions (ASVS 7.4.3, WEAKNESSES.md 6); the
        // caller's own, named by the token's `session_id`, goes on.
        let effects = Effects { audit: vec![audit], revoke_sessions: password_changed, keep_session: caller.session_id, grant: None };
        match self.users.update_user(&user, &Guard::None, &effects).await {
            Ok(()) => {}
            // The new address was taken between the request and its confirmation.
            Err(StoreError::EmailTaken) => return Err(AuthError::EmailTaken),
            Err(e) => return Err(AuthError::internal("Error updating user", e)),
        }
        let guard_digest = change_mails.first().map(|(_, t)| t.digest.clone());
        for (to, token) in &change_mails {
            if let Err(e) = self.send_mail(ctx, MailKind::EmailChange, &user, to, &token.secret).await {
                if let Some(d) = &guard_digest {
                    let guard = Guard::Token(TokenColumn::EmailChange, d.clone());
                    if let Err(undo) = self.users.update_user(&original, &guard, &Effects::default()).await {
                        tracing::error!(error = %undo, "could not restore user after failed email-change mail");
                    }
                }
                return Err(AuthError::internal("Error sending change email", e));
            }
        }
        Ok(user)
    }
    /// Applies a presented email-change token (API.md 4.10 step 3.4). With a secure change
    /// pending (a token was also mailed to the current address), the first matching link only
    /// records its half; the second one completes the change.
    fn confirm_email_change(ctx: &Ctx, user: &mut User, presented: &str, now: chrono::DateTime<chrono::Utc>) -> Result<(), AuthError> {
        // Upstream's order (API.md 4.10): the age first, when a sending time is known.
        if user.email_change_sent_at.is_some()
            && User::token_expired(user.email_change_sent_at, Ctx::dur(ctx.config.mailer.confirmation_max_age), now, true)
        {
            return Err(AuthError::EmailChangeTokenExpired);
        }
        let pending_new = !user.email_change_token.is_empty();
        let pending_current = !user.email_change_token_current.is_empty();
        if user.email_change.is_empty() || !(pending_new || pending_current) {
            return Err(AuthError::EmailChangeTokenMismatch);
        }
        let presented = digest(presented);
        let new_ok = pending_new && constant_time_eq(presented.as_bytes(), user.email_change_token.as_bytes());
        let current_ok = pending_current && constant_time_eq(presented.as_bytes(), user.email_change_token_current.as_bytes());
        if !new_ok && !current_ok {
            return Err(AuthError::EmailChangeTokenMismatch);
        }
        let secure = pending_current || user.email_change_half_confirmed;
        if secure && !user.email_change_half_confirmed {
            if new_ok {
                user.email_change_token.clear();
            } else {
                user.email_change_token_current.clear();
            }
            user.email_change_half_confirmed = true;
            return Ok(());
        }
        user.email = std::mem::take(&mut user.email_change);
        user.email_change_token.clear();
        user.email_change_token_current.clear();
        user.email_change_half_confirmed = false;
        Ok(())
    }
}
