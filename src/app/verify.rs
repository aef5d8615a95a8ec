//! `POST /verify`: signup confirmation, invite acceptance and recovery (API.md 4.5).

use secrecy::{ExposeSecret as _, SecretString};

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service, TokenResponse};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::token::lookup_digest;
use crate::domain::user::User;
use crate::ports::hooks::HookEvent;
use crate::ports::users::{Effects, Guard, StoreError, TokenColumn};

/// Verification parameters.
#[derive(Debug, Default)]
pub struct VerifyParams {
    /// `signup` or `recovery`.
    pub kind: String,
    /// The token from the mail.
    pub token: String,
    /// Password (required to accept an invite).
    pub password: SecretString,
}

/// Whether the user's pending confirmation or invite token is past its age. Invites
/// expire from `invited_at` (upstream never expired them, WEAKNESSES.md 13).
pub(crate) fn confirmation_expired(ctx: &Ctx, user: &User, now: chrono::DateTime<chrono::Utc>) -> bool {
    let mailer = &ctx.config.mailer;
    match user.invited_at {
        Some(invited) if user.confirmation_sent_at.is_none_or(|s| s <= invited) => {
            User::token_expired(Some(invited), Ctx::dur(mailer.invite_max_age), now, true)
        }
        _ => User::token_expired(user.confirmation_sent_at, Ctx::dur(mailer.confirmation_max_age), now, true),
    }
}

impl Service {
    /// Consumes a confirmation, invite or recovery token and logs the user in.
    ///
    /// # Errors
    /// The [`AuthError`] variants of API.md 4.5.
    pub async fn verify(&self, ctx: &Ctx, p: VerifyParams) -> Result<TokenResponse, AuthError> {
        let Some(digest) = lookup_digest(&p.token) else {
            return Err(AuthError::VerifyTokenRequired);
        };
        let column = match p.kind.as_str() {
            "signup" => TokenColumn::Confirmation,
            "recovery" => TokenColumn::Recovery,
            _ => return Err(AuthError::VerifyTypeRequired),
        };
        let found = self.users.find_user_by_token(Some(ctx.instance_id), column, &digest).await.context("Database error finding user")?;
        let mut user = found.ok_or(AuthError::UserNotFound)?;
        let now = self.now();
        let mailer = &ctx.config.mailer;
        let mut audit = Vec::new();
        if column == TokenColumn::Confirmation {
            if confirmation_expired(ctx, &user, now) {
                return Err(AuthError::ConfirmationTokenExpired);
            }
            if user.encrypted_password.is_empty() && user.invited_at.is_some() {
                if p.password.expose_secret().is_empty() {
                    return Err(AuthError::InvitePasswordRequired);
                }
                self.check_password(ctx, &p.password).await?;
                user.encrypted_password = self.hash_password(&p.password, "Error storing password").await?;
            }
            // Two requests racing with the same token may both reach the hook; the guarded
            // write below lets only one of them confirm.
            self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
            audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now));
            user.confirm(now);
        } else {
            if User::token_expired(user.recovery_sent_at, Ctx::dur(mailer.recovery_max_age), now, true) {
                return Err(AuthError::RecoveryTokenExpired);
            }
            user.recovery_token.clear();
            if !user.is_confirmed() {
                // Upstream answers any failure of this step, a hook's refusal included, with
                // this message.
                self.run_hooks(ctx, HookEvent::Signup, &mut user)
                    .await
                    .map_err(|e| AuthError::internal("Database error updating user", e))?;
                audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now));
                user.confirm(now);
            }
        }
        user.last_sign_in_at = Some(now);
        user.updated_at = now;
        let grant = self.new_grant(&user, now);
        // Recovery ends every existing session before the new one starts (ASVS 7.4.3):
        // whoever knew the old password may hold one.
        let effects = Effects { audit, grant: Some(grant.row), revoke_sessions: column == TokenColumn::Recovery, keep_session: None };
        let msg = if column == TokenColumn::Confirmation { "Error confirming user" } else { "Database error updating user" };
        match self.users.update_user(&user, &Guard::Token(column, digest), &effects).await {
            Ok(()) => {}
            // Someone used the same token a moment earlier: single use means it is gone.
            Err(StoreError::Conflict) => return Err(AuthError::UserNotFound),
            Err(e) => return Err(AuthError::internal(msg, e)),
        }
        self.token_response(ctx, &user, grant.secret, grant.session, now)
    }
}
