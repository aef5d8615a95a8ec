//! `POST /token`: password and refresh-token grants (API.md 4.4).

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service, TokenResponse};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::email::normalise;
use crate::domain::session::{open, within_reuse_window, Lifetimes};
use crate::domain::token::lookup_digest;
use crate::domain::user::User;
use crate::ports::hooks::HookEvent;
use crate::ports::tokens::RefreshToken;
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
        // A login with the password ends a pending recovery: the mailed link stops working
        // (WEAKNESSES.md 15), as it would once used.
        user.recovery_token.clear();
        let grant = self.new_grant(&user, now);
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::Login, None, now);
        let effects = Effects { audit: vec![audit], grant: Some(grant.row), ..Effects::default() };
        // Only what a login changes is written, unless a hook rewrote the metadata.
        let written = if metadata_changed {
            self.users.update_user(&user, &Guard::None, &effects).await
        } else {
            self.users.record_login(&user, &effects).await
        };
        written.context("Database error granting user")?;
        tracing::info!(action = "login", login_method = "password", instance_id = %ctx.instance_id, user_id = %user.id, "Login");
        self.token_response(ctx, &user, grant.secret, grant.session, now)
    }

    /// The refresh-token grant: the presented token is rotated out, within its session.
    ///
    /// A token already rotated is answered with the session's current token while it is
    /// within `GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL` of its rotation (two tabs
    /// refreshing at once); later it is taken for a stolen copy and the whole session is
    /// revoked. A session past its absolute or idle lifetime is revoked too.
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
        // Re-checked at every refresh (WEAKNESSES.md 7): a user an admin has unconfirmed
        // since the login gets no new tokens, nor does a request naming another audience.
        // The `login` hook is not run again, as upstream: receivers see one event per login.
        if !user.is_confirmed() || ctx.aud_header.as_deref().is_some_and(|aud| aud != user.aud) {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: false });
        }
        let now = self.now();
        if token.revoked {
            return self.refresh_rotated(ctx, &token, &user, now, false).await;
        }
        if token.created_at + Ctx::dur(ctx.config.jwt.refresh_token_lifetime) < now {
            return Err(AuthError::RefreshTokenExpired);
        }
        // A row upstream wrote has no session: its first refresh starts one.
        let started = token.session_started_at.filter(|_| token.session_id.is_some()).unwrap_or(now);
        if let Some(sid) = token.session_id {
            if lifetimes(ctx).expired(started, token.created_at, now) {
                return Err(self.end_session(ctx, sid, &user, now, "session_expired").await);
            }
        } else if lifetimes(ctx).expired(now, token.created_at, now) {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: true });
        }
        let session_id = token.session_id.unwrap_or_else(Uuid::new_v4);
        let grant = Self::rotation_grant(ctx, &user, now, session_id, started);
        let actor = Actor::user(&user);
        let audit = [
            AuditEntry::new(ctx.instance_id, &actor, AuditAction::TokenRefreshed, None, now),
            AuditEntry::new(user.instance_id, &actor, AuditAction::TokenRevoked, None, now),
        ];
        match self.tokens.rotate_refresh_token(&token, &grant.row, &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // A concurrent refresh of the same token won: read what it left.
                let rotated = self.tokens.find_refresh_token(&digest).await.context("Database error finding refresh token")?;
                return match rotated {
                    Some(t) => self.refresh_rotated(ctx, &t, &user, now, true).await,
                    None => Err(AuthError::InvalidRefreshToken { clear_cookie: true }),
                };
            }
            Err(e) => return Err(AuthError::internal("Database error granting user", e)),
        }
        tracing::info!(action = "login", login_method = "token", instance_id = %ctx.instance_id, user_id = %user.id, "Login");
        self.token_response(ctx, &user, grant.secret, session_id, now)
    }

    /// A rotated token presented again: within the reuse window, the session's current
    /// token (unsealed) with a fresh access token; otherwise the session is revoked. A loser
    /// of a concurrent rotation (`raced`) is refused without revoking anything when there is
    /// no window to answer it from: it did not replay anything.
    async fn refresh_rotated(
        &self,
        ctx: &Ctx,
        token: &RefreshToken,
        user: &User,
        now: DateTime<Utc>,
        raced: bool,
    ) -> Result<TokenResponse, AuthError> {
        // A row upstream revoked belongs to no known chain.
        let Some(sid) = token.session_id else {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: true });
        };
        let rotated_at = token.updated_at.unwrap_or(token.created_at);
        if within_reuse_window(rotated_at, Ctx::dur(ctx.config.sessions.reuse_interval), now) {
            let current = self.tokens.current_session_token(sid).await.context("Database error finding refresh token")?;
            if let Some(current) = current.filter(|c| c.user_id == user.id && c.instance_id == ctx.instance_id) {
                let started = current.session_started_at.unwrap_or(current.created_at);
                if lifetimes(ctx).expired(started, current.created_at, now) {
                    return Err(self.end_session(ctx, sid, user, now, "session_expired").await);
                }
                // A value that does not open (JWT_SECRET changed) is as if outside the window.
                if let Some(secret) = current.sealed.as_deref().and_then(|s| open(ctx.jwt_secret(), sid, s)) {
                    tracing::info!(action = "login", login_method = "token", instance_id = %ctx.instance_id, user_id = %user.id, reused = true, "Login");
                    return self.token_response(ctx, user, secret, sid, now);
                }
            }
        }
        if raced && ctx.config.sessions.reuse_interval.is_zero() {
            return Err(AuthError::InvalidRefreshToken { clear_cookie: true });
        }
        tracing::warn!(instance_id = %ctx.instance_id, user_id = %user.id, session_id = %sid, "a rotated refresh token was presented again: session revoked");
        Err(self.end_session(ctx, sid, user, now, "refresh_token_reused").await)
    }

    /// Revokes a session (all its tokens) with a `token_revoked` audit entry giving the
    /// reason, and returns the error the request gets.
    async fn end_session(&self, ctx: &Ctx, sid: Uuid, user: &User, now: DateTime<Utc>, reason: &str) -> AuthError {
        let mut traits = Map::new();
        traits.insert("session_id".into(), Value::String(sid.to_string()));
        traits.insert("reason".into(), Value::String(reason.to_owned()));
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(user), AuditAction::TokenRevoked, Some(traits), now);
        match self.tokens.revoke_session(sid, &[audit]).await {
            Ok(()) => AuthError::InvalidRefreshToken { clear_cookie: true },
            Err(e) => AuthError::internal("Database error revoking session", e),
        }
    }
}

/// The configured session lifetimes.
fn lifetimes(ctx: &Ctx) -> Lifetimes {
    let s = &ctx.config.sessions;
    Lifetimes { timebox: Ctx::dur(s.timebox), inactivity: Ctx::dur(s.inactivity_timeout) }
}
