//! The `gotrue admin` commands (CONFIG.md 8): create, delete and list users from a shell,
//! with direct access to the database (no HTTP, no admin token).
//!
//! Fixes of upstream's CLI (WEAKNESSES.md 37): the instance id defaults to the nil UUID of
//! single-instance mode instead of crashing; `deleteuser` answers "not found" for an argument
//! that is neither a known email nor a user id; `createuser` sets `app_metadata.provider` and
//! the default role like every other way of creating a user.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use super::config::InstanceConfig;
use super::error::{AuthError, Context as _};
use super::service::{Ctx, Service};
use crate::domain::user::User;
use crate::ports::users::{Effects, Guard, StoreError};

/// `gotrue admin createuser` arguments.
#[derive(Debug)]
pub struct CreateUser {
    /// `-i`: tenant (the nil UUID in single-instance mode).
    pub instance_id: Uuid,
    /// `-a`: audience (default `JWT_AUD`).
    pub aud: Option<String>,
    /// The address.
    pub email: String,
    /// The password.
    pub password: SecretString,
    /// `[role]`: wins over `--admin`.
    pub role: Option<String>,
    /// `--admin`: the admin group as role.
    pub admin: bool,
    /// `--superadmin`.
    pub super_admin: bool,
    /// `--confirm` (also implied by `MAILER_AUTOCONFIRM`).
    pub confirm: bool,
}

fn cli_ctx(config: Arc<InstanceConfig>, instance_id: Uuid) -> Ctx {
    Ctx::new(instance_id, config)
}

impl Service {
    /// Creates a user.
    ///
    /// # Errors
    /// [`AuthError::UserExists`], email or password validation, internal errors.
    pub async fn cli_create_user(&self, config: Arc<InstanceConfig>, c: CreateUser) -> Result<User, AuthError> {
        let ctx = cli_ctx(config, c.instance_id);
        let email = ctx.parse_email(&c.email)?;
        if c.password.expose_secret().is_empty() {
            return Err(AuthError::PasswordRequired);
        }
        self.check_password(&ctx, &c.password).await?;
        let aud = c.aud.filter(|a| !a.is_empty()).unwrap_or_else(|| ctx.config.jwt.aud.clone());
        if self.users.find_user_by_email(ctx.instance_id, &aud, &email.key()).await.context("Database error finding user")?.is_some() {
            return Err(AuthError::UserExists);
        }
        let hash = self.hash_password(&c.password, "Error creating user").await?;
        let now = self.now();
        let mut user = User::new(ctx.instance_id, &aud, email.as_str(), hash, None, now);
        user.role = match (c.role.filter(|r| !r.trim().is_empty()), c.admin) {
            (Some(role), _) => role.trim().to_owned(),
            (None, true) => ctx.config.jwt.admin_group_name.clone(),
            (None, false) => ctx.config.jwt.default_group_name.clone(),
        };
        user.is_super_admin = c.super_admin;
        if c.confirm || ctx.config.mailer.autoconfirm {
            user.confirm(now);
        }
        match self.users.insert_user(&user, &Effects::default()).await {
            Ok(()) => Ok(user),
            Err(StoreError::EmailTaken) => Err(AuthError::UserExists),
            Err(e) => Err(AuthError::internal("Database error creating user", e)),
        }
    }

    /// Deletes the user `target` names: an email in (instance, audience), else a user id in
    /// the instance. Their refresh tokens go with them.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`] when `target` is neither; internal errors.
    pub async fn cli_delete_user(
        &self,
        config: Arc<InstanceConfig>,
        instance_id: Uuid,
        aud: Option<String>,
        target: &str,
    ) -> Result<User, AuthError> {
        let ctx = cli_ctx(config, instance_id);
        let aud = aud.filter(|a| !a.is_empty()).unwrap_or_else(|| ctx.config.jwt.aud.clone());
        let key = crate::domain::email::normalise(target);
        let mut user = self.users.find_user_by_email(instance_id, &aud, &key).await.context("Database error finding user")?;
        if user.is_none() {
            if let Ok(id) = Uuid::parse_str(target.trim()) {
                user = self.users.find_user_by_id(Some(instance_id), id).await.context("Database error finding user")?;
            }
        }
        let user = user.ok_or(AuthError::UserNotFound)?;
        match self.users.delete_user(&user, &Guard::None, &Effects::default()).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict) => Err(AuthError::UserNotFound),
            Err(e) => Err(AuthError::internal("Database error deleting user", e)),
        }
    }
}
