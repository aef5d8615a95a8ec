//! `POST /invite` (API.md 4.7): an admin creates a password-less user and mails them a
//! link; accepting it (`POST /verify` type `signup` with a password) confirms the account.

use serde_json::{Map, Value};

use super::admin::Admin;
use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::token::NewToken;
use crate::domain::user::User;
use crate::ports::hooks::HookEvent;
use crate::ports::mail::MailKind;
use crate::ports::users::{Effects, Guard, StoreError, TokenColumn};

impl Service {
    /// Invites `email` into the request's audience. Works with signups or the email
    /// provider disabled, as upstream.
    ///
    /// # Errors
    /// Email validation (422), [`AuthError::EmailTaken`], [`AuthError::UserNotAllowed`] for an
    /// admin by role inviting outside their audience, internal errors.
    pub async fn invite(&self, ctx: &Ctx, admin: &Admin, email: &str, data: Option<Map<String, Value>>) -> Result<User, AuthError> {
        let email = ctx.parse_email(email)?;
        let aud = admin.request_aud().to_owned();
        if admin.confined_to().is_some_and(|own| own != aud) {
            return Err(AuthError::UserNotAllowed);
        }
        let existing = self.users.find_user_by_email(ctx.instance_id, &aud, &email.key()).await.context("Database error finding user")?;
        if existing.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let now = self.now();
        let mut user = User::new(ctx.instance_id, &aud, email.as_str(), String::new(), data, now);
        Self::check_metadata(&user)?;
        user.role.clone_from(&ctx.config.jwt.default_group_name);
        let token = NewToken::generate();
        user.confirmation_token.clone_from(&token.digest);
        // `invited_at`, not `confirmation_sent_at`: verification expires invites from it.
        user.invited_at = Some(now);
        // The `validate` hook may veto the new user or set its metadata; nothing is stored yet.
        self.run_hooks(ctx, HookEvent::Validate, &mut user).await?;
        let audit = AuditEntry::new(ctx.instance_id, &admin.actor(), AuditAction::UserInvited, Some(AuditEntry::user_traits(&user)), now);
        let audit_id = audit.id;
        match self.users.insert_user(&user, &Effects::audit(vec![audit])).await {
            Ok(()) => {}
            Err(StoreError::EmailTaken) => return Err(AuthError::EmailTaken),
            Err(e) => return Err(AuthError::internal("Database error saving new user", e)),
        }
        // The mail goes out after the commit (no transaction waits on SMTP); if it fails,
        // the user and the audit entry are removed again, as upstream's rollback did.
        if let Err(e) = self.send_mail(ctx, MailKind::Invite, &user, &user.email, &token.secret).await {
            let guard = Guard::Token(TokenColumn::Confirmation, token.digest);
            if let Err(undo) = self.users.retract_user(&user, &guard, &[audit_id]).await {
                tracing::error!(error = %undo, "could not remove invited user after failed invite mail");
            }
            return Err(AuthError::internal("Error inviting user", e));
        }
        Ok(user)
    }
}
