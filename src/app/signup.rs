//! `POST /signup` (API.md 4.3).

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::token::NewToken;
use crate::domain::user::User;
use crate::ports::hooks::HookEvent;
use crate::ports::mail::MailKind;
use crate::ports::users::{Effects, Guard, StoreError, TokenColumn};

/// Signup parameters.
#[derive(Debug, Default)]
pub struct SignupParams {
    /// Address.
    pub email: String,
    /// Password.
    pub password: SecretString,
    /// Initial `user_metadata`.
    pub data: Option<Map<String, Value>>,
}

impl Service {
    /// Creates an account (or re-sends the confirmation of an unconfirmed one).
    ///
    /// # Errors
    /// The [`AuthError`] variants of API.md 4.3.
    pub async fn signup(&self, ctx: &Ctx, p: SignupParams) -> Result<User, AuthError> {
        ctx.require_email_provider()?;
        ctx.require_signup_enabled()?;
        if p.password.expose_secret().is_empty() {
            return Err(AuthError::PasswordRequired);
        }
        let email = ctx.parse_email(&p.email)?;
        self.check_password(ctx, &p.password).await?;
        let aud = ctx.aud(None);
        let existing = self.users.find_user_by_email(ctx.instance_id, &aud, &email.key()).await.context("Database error finding user")?;
        match existing {
            Some(u) if u.is_confirmed() => {
                // Spend the hashing time a new signup would, so timing does not tell.
                self.hasher.verify_dummy(p.password).await;
                Err(AuthError::AlreadyRegistered)
            }
            Some(u) => self.signup_again(ctx, u, p).await,
            None => self.signup_new(ctx, &aud, email.as_str(), p).await,
        }
    }

    async fn signup_new(&self, ctx: &Ctx, aud: &str, email: &str, p: SignupParams) -> Result<User, AuthError> {
        let hash = self.hash_password(&p.password, "Database error saving new user").await?;
        let now = self.now();
        let mut user = User::new(ctx.instance_id, aud, email, hash, p.data, now);
        Self::check_metadata(&user)?;
        user.role.clone_from(&ctx.config.jwt.default_group_name);
        // Hooks see the user as it will be stored and may veto or rewrite its metadata;
        // nothing is written before they have answered (HOOKS_AND_MAIL.md 1.1).
        self.run_hooks(ctx, HookEvent::Validate, &mut user).await?;
        if ctx.config.mailer.autoconfirm {
            self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
            user.confirm(now);
            let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now);
            return match self.users.insert_user(&user, &Effects::audit(vec![audit])).await {
                Ok(()) => Ok(user),
                Err(StoreError::EmailTaken) => Err(AuthError::AlreadyRegistered),
                Err(e) => Err(AuthError::internal("Database error saving new user", e)),
            };
        }
        let token = NewToken::generate();
        user.confirmation_token.clone_from(&token.digest);
        user.confirmation_sent_at = Some(now);
        match self.users.insert_user(&user, &Effects::default()).await {
            Ok(()) => {}
            Err(StoreError::EmailTaken) => return Err(AuthError::AlreadyRegistered),
            Err(e) => return Err(AuthError::internal("Database error saving new user", e)),
        }
        if let Err(e) = self.send_mail(ctx, MailKind::Confirmation, &user, &user.email, &token.secret).await {
            // Undo the insert so the address can sign up again and receive a working link.
            let guard = Guard::Token(TokenColumn::Confirmation, token.digest);
            if let Err(undo) = self.users.delete_user(&user, &guard, &Effects::default()).await {
                tracing::error!(error = %undo, "could not remove user after failed confirmation mail");
            }
            return Err(AuthError::internal("Error sending confirmation mail", e));
        }
        Ok(user)
    }

    async fn signup_again(&self, ctx: &Ctx, mut user: User, p: SignupParams) -> Result<User, AuthError> {
        // Upstream merged `data` for anyone who knew the address (WEAKNESSES.md 3); we merge
        // only when the password matches the one chosen at the first signup.
        // Exactly one verification either way, so that timing does not tell.
        let owner = if user.encrypted_password.is_empty() {
            self.hasher.verify_dummy(p.password).await;
            false
        } else {
            self.hasher.verify(p.password, user.encrypted_password.clone()).await.is_ok_and(|v| v.matches)
        };
        let now = self.now();
        let mut changed = false;
        if owner {
            if let Some(data) = p.data {
                user.merge_user_metadata(data);
                Self::check_metadata(&user)?;
                changed = true;
            }
        }
        let throttle = Ctx::dur(ctx.config.smtp.max_frequency);
        if User::sent_within(user.confirmation_sent_at, throttle, now) {
            if changed {
                user.updated_at = now;
                self.users.update_user(&user, &Guard::None, &Effects::default()).await.context("Database error updating user")?;
            }
            return Ok(user);
        }
        let previous = (user.confirmation_token.clone(), user.confirmation_sent_at);
        let token = NewToken::generate();
        user.confirmation_token.clone_from(&token.digest);
        user.confirmation_sent_at = Some(now);
        user.updated_at = now;
        self.users.update_user(&user, &Guard::None, &Effects::default()).await.context("Database error updating user")?;
        if let Err(e) = self.send_mail(ctx, MailKind::Confirmation, &user, &user.email, &token.secret).await {
            (user.confirmation_token, user.confirmation_sent_at) = previous;
            let guard = Guard::Token(TokenColumn::Confirmation, token.digest);
            if let Err(undo) = self.users.update_user(&user, &guard, &Effects::default()).await {
                tracing::error!(error = %undo, "could not restore confirmation token after failed mail");
            }
            return Err(AuthError::internal("Error sending confirmation mail", e));
        }
        Ok(user)
    }
}
