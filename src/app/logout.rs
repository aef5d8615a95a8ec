//! `POST /logout` (API.md 4.8).

use uuid::Uuid;

use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::audit::{Actor, AuditAction, AuditEntry};

impl Service {
    /// Deletes every refresh token of the token's user. Access tokens stay valid until `exp`.
    ///
    /// # Errors
    /// [`AuthError::InvalidUser`] when `sub` names no user; internal errors.
    pub async fn logout(&self, ctx: &Ctx, sub: &str, email: &str) -> Result<(), AuthError> {
        let now = self.now();
        let actor = if sub == "0" || sub == Uuid::nil().to_string() {
            Actor { id: Uuid::nil(), email: email.to_owned(), name: None }
        } else {
            let id = Uuid::parse_str(sub).map_err(|_| AuthError::InvalidUser)?;
            let user = self.users.find_user_by_id(Some(ctx.instance_id), id).await.context("Error logging out user")?;
            Actor::user(&user.ok_or(AuthError::InvalidUser)?)
        };
        let audit = AuditEntry::new(ctx.instance_id, &actor, AuditAction::Logout, None, now);
        self.tokens.revoke_user_tokens(ctx.instance_id, actor.id, &[audit]).await.context("Error logging out user")
    }
}
