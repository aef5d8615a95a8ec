//! `POST /token`: password and refresh-token grants (API.md 4.4).

use secrecy::{ExposeSecret as _, SecretString};

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service, TokenResponse};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::email::normalise;
use crate::domain::token::lookup_digest;
use crate::ports::hooks::HookEvent;
use crate::ports::users::{Effects, Guard, StoreError};

impl Service {
    /// The password grant.
    ///
    /// # Errors
    /// [`AuthError::BadCredentials`], [`AuthError::EmailNotConfirmed`], internal errors.
    pub async fn password_grant(&self, ctx: &Ctx, username: &str, password: SecretString) -> Result<TokenResponse, AuthError> {
        ctx.require_email_provider()?;
        let aud = ctx.aud(None);
        let found =
            self.users.find_user_by_email(ctx.instance_id, &aud, &normalise(username)).await.context("Database error finding user")?;
        let Some(mut user) = found.filter(|u| !u.encrypted_password.is_empty() && !password.expose_secret().is_empty()) else {
            self.hasher.verify_dummy(password).await;
            return Err(AuthError::BadCredentials);
        };
        // The password is checked before the confirmation state, so that "Email not
        // confirmed" only answers someone who knows the password (WEAKNESSES.md 18).
        let verified = match self.hasher.verify(password.clone(), user.encrypted_password.clone()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "stored password hash cannot be verified");
                return Err(AuthError::BadCredentials);
            }
        };
        if !verified.matches {
            return Err(AuthError::BadCredentials);
        }
        if !user.is_confirmed() {
            return Err(AuthError::EmailNotConfirmed);
        }
        if verified.needs_rehash {
            match self.hasher.hash(password).await {
                Ok(h) => user.encrypted_password = h,
                Err(e) => {
                    tracing::warn!(user_id = %user.id, error = %e, "could not upgrade password hash")
                }
            }
        }
        // The hook may refuse the login or rewrite metadata, which the new token then carries.
        let metadata_changed = self.run_hooks(ctx, HookEvent::Login, &mut user).await?;
        let now = self.now();
        user.last_sign_in_at = Some(now);
        user.updated_at = now;
        let grant = self.new_grant(&user, now);
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::Login, None, now);
        let effects = Effects { audit: vec![audit], grant: Some(grant.row), revoke_sessions: false };
        // Only what a login changes is written, unless a hook rewrote the metadata.
        let written = if metadata_changed {
            self.users.update_user(&user, &Guard::None, &effects).await
        } else {
            self.users.record_login(&user, &effects).await
        };
        written.context("Database error granting user")?;
        tracing::info!(action = "login", login_method = "password", instance_id = %ctx.instance_id, user_id = %user.id, "Login");
        self.token_response(ctx, &user, grant.secret, now)
    }

    /// The refresh-token grant: the presented token is rotated out.
    ///
    /// # Errors
    /// [`AuthError::RefreshTokenRequired`], [`AuthError::InvalidRefreshToken`],
    /// [`AuthError::RefreshTokenExpired`], internal errors.
    pub async fn refresh_grant(&self, ctx: &Ctx, refresh_token: &str) -> Result<TokenResponse, AuthError> {
        ctx.require_email_provider()?;
        let Some(digest) = lookup_digest(refresh_token) else {
            return Err(AuthError::RefreshTokenRequired);
        };
        // One lookup for the token and its user; a token of another tenant, or whose user
        // is gone or belongs elsewhere, is treated as unknown (WEAKNESSES.md 4).
        let session = self.tokens.find_refresh_session(&digest).await.context("Database error finding refresh token")?;
        let Some((token, Some(user))) =
            session.filter(|(t, u)| t.instance_id == ctx.instance_id && u.as_ref().is_none_or(|u| u.instance_id == ctx.instance_id))
        else {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: false });
        };
        if token.revoked {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: true });
        }
        let now = self.now();
        if token.created_at + Ctx::dur(ctx.config.jwt.refresh_token_lifetime) < now {
            return Err(AuthError::RefreshTokenExpired);
        }
        let grant = self.new_grant(&user, now);
        let actor = Actor::user(&user);
        let audit = [
            AuditEntry::new(ctx.instance_id, &actor, AuditAction::TokenRefreshed, None, now),
            AuditEntry::new(user.instance_id, &actor, AuditAction::TokenRevoked, None, now),
        ];
        match self.tokens.rotate_refresh_token(&token, &grant.row, &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(AuthError::InvalidRefreshToken { clear_cookie: true }),
            Err(e) => return Err(AuthError::internal("Database error granting user", e)),
        }
        tracing::info!(action = "login", login_method = "token", instance_id = %ctx.instance_id, user_id = %user.id, "Login");
        self.token_response(ctx, &user, grant.secret, now)
    }
}
