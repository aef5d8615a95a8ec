//! `POST /recover` (API.md 4.6).

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::email::normalise;
use crate::domain::token::NewToken;
use crate::domain::user::User;
use crate::ports::mail::MailKind;
use crate::ports::users::{Effects, Guard, TokenColumn};

impl Service {
    /// Mails a recovery link; unknown addresses succeed silently.
    ///
    /// # Errors
    /// [`AuthError::RecoverEmailRequired`], [`AuthError::RecoverRateLimited`], internal errors.
    pub async fn recover(&self, ctx: &Ctx, email: &str) -> Result<(), AuthError> {
        ctx.require_email_provider()?;
        if email.is_empty() {
            return Err(AuthError::RecoverEmailRequired);
        }
        let aud = ctx.aud(None);
        let normalised = normalise(email);
        let Some(mut user) =
            self.users.find_user_by_email(ctx.instance_id, &aud, &normalised).await.context("Database error finding user")?
        else {
            // An unknown address is counted too, so that a repeat within SMTP_MAX_FREQUENCY
            // answers 429 as it does for an account (WEAKNESSES.md 17). Accounts keep
            // upstream's durable rule on `recovery_sent_at` below.
            let key = format!("recover:{}:{aud}:{normalised}", ctx.instance_id);
            if !self.limiter.hit(&key, 1, ctx.config.smtp.max_frequency).await.allowed {
                return Err(AuthError::RecoverRateLimited);
            }
            return Ok(());
        };
        let now = self.now();
        if User::sent_within(user.recovery_sent_at, Ctx::dur(ctx.config.smtp.max_frequency), now) {
            return Err(AuthError::RecoverRateLimited);
        }
        let previous = (user.recovery_token.clone(), user.recovery_sent_at);
        let token = NewToken::generate();
        user.recovery_token.clone_from(&token.digest);
        user.recovery_sent_at = Some(now);
        user.updated_at = now;
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserRecoveryRequested, None, now);
        self.users.update_user(&user, &Guard::None, &Effects::audit(vec![audit])).await.context("Error recovering user")?;
        if let Err(e) = self.send_mail(ctx, MailKind::Recovery, &user, &user.email, &token.secret).await {
            (user.recovery_token, user.recovery_sent_at) = previous;
            let guard = Guard::Token(TokenColumn::Recovery, token.digest);
            if let Err(undo) = self.users.update_user(&user, &guard, &Effects::default()).await {
                tracing::error!(error = %undo, "could not restore recovery token after failed mail");
            }
            return Err(AuthError::internal("Error recovering user", e));
        }
        Ok(())
    }
}
