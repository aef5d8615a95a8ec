//! The admin API (API.md 3.8, 4.15-4.21): who may act as an admin, and what an admin may
//! do with the users and the audit log of an instance.
//!
//! Differences from upstream, each a fix of spec/WEAKNESSES.md:
//! - an admin whose power comes from their role acts on single users of their own audience
//!   only; a user of another audience answers `User not found` (21);
//! - a user created without a password gets no password at all, not a hash of the empty
//!   string, so nobody can log in with an empty password (2);
//! - an admin update validates the new email and refuses a duplicate (22);
//! - `per_page=0` is refused rather than crashing, and pages hold at most 1000 rows (31);
//! - the system user (`sub` `0` or the nil UUID) can be turned off with
//!   `GOTRUE_ADMIN_SYSTEM_USER_ENABLED=false` (9); the operator token is optional (10).

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{AuthError, Context as _};
use super::jwt;
use super::service::{Ctx, Service};
use crate::domain::audit::{Actor, AuditAction, AuditEntry, AuditSearch};
use crate::domain::page::{parse_sort, Page, Pagination, SortDirection};
use crate::domain::token::constant_time_eq;
use crate::domain::user::User;
use crate::ports::audit::AuditListQuery;
use crate::ports::users::{Effects, Guard, StoreError, UserListQuery};

/// The email the operator token acts under in audit entries (upstream's pseudo user).
pub const OPERATOR_EMAIL: &str = "operator@netlify.com";

/// Server-wide admin settings.
#[derive(Clone)]
pub struct AdminSettings {
    /// `GOTRUE_OPERATOR_TOKEN`: a bearer equal to it is an admin of every audience.
    pub operator_token: Option<SecretString>,
    /// `GOTRUE_ADMIN_SYSTEM_USER_ENABLED`: whether a token whose `sub` is `0` or the nil
    /// UUID is a super admin (upstream's behaviour, the default).
    pub system_user_enabled: bool,
    /// `GOTRUE_API_EXPORT_SECRET`: enables `GET /admin/users/export`.
    pub export_secret: Option<SecretString>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self { operator_token: None, system_user_enabled: true, export_secret: None }
    }
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("operator_token", &self.operator_token.is_some())
            .field("system_user_enabled", &self.system_user_enabled)
            .field("export_secret", &self.export_secret.is_some())
            .finish()
    }
}

/// Who acts as the admin.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// The bearer was the operator token.
    Operator,
    /// An access token for the system user: a super admin that exists in no table.
    SystemUser,
    /// A stored user: a super admin, or an admin of their audience.
    User(Box<User>),
}

/// A request that passed the admin check.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    principal: Principal,
    request_aud: String,
}

impl Admin {
    /// Who acts.
    #[must_use]
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The request's audience (API.md 3.7): what the user list shows and where invites go.
    #[must_use]
    pub fn request_aud(&self) -> &str {
        &self.request_aud
    }

    /// The actor recorded in audit entries.
    #[must_use]
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::Operator => Actor { id: Uuid::nil(), email: OPERATOR_EMAIL.into(), name: None },
            Principal::SystemUser => Actor { id: Uuid::nil(), email: String::new(), name: None },
            Principal::User(u) => Actor::user(u),
        }
    }

    /// The audience an admin by role is confined to; `None` for super admins, the system
    /// user and the operator.
    #[must_use]
    pub fn confined_to(&self) -> Option<&str> {
        match &self.principal {
            Principal::User(u) if !u.is_super_admin => Some(&u.aud),
            _ => None,
        }
    }

    /// Whether the admin may act on this user (same audience unless unconfined).
    #[must_use]
    pub fn may_manage(&self, target: &User) -> bool {
        self.confined_to().is_none_or(|aud| aud == target.aud)
    }

    /// Refuses to create users outside the admin's audience.
    fn require_audience(&self, aud: &str) -> Result<(), AuthError> {
        match self.confined_to() {
            Some(own) if own != aud => Err(AuthError::UserNotAllowed),
            _ => Ok(()),
        }
    }
}

/// The `aud` of an admin request's JSON body (API.md 3.8 step 5), as the HTTP adapter read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAud {
    /// No body (always for `GET`), or no `aud` in it.
    Absent,
    /// The body's `aud` (an empty one counts as absent).
    Aud(String),
    /// The body is not the expected JSON (the decoder's message).
    Invalid(String),
}

/// A bearer that identified an operator or a user; [`AdminCandidate::authorize`] decides
/// whether they are an admin for the audience concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminCandidate {
    principal: Principal,
    request_aud: String,
}

impl AdminCandidate {
    /// Whether the body's `aud` matters: not for the operator, who has no audience.
    #[must_use]
    pub fn reads_body_aud(&self) -> bool {
        self.principal != Principal::Operator
    }

    /// The admin rule: super admin (or system user, or operator), or the admin role in the
    /// audience concerned, which is the body's `aud`, else the request's, else `JWT_AUD`.
    ///
    /// # Errors
    /// [`AuthError::AdminParams`] for a malformed body, [`AuthError::UserNotAllowed`].
    pub fn authorize(self, ctx: &Ctx, body: BodyAud) -> Result<Admin, AuthError> {
        let Self { principal, request_aud } = self;
        if principal == Principal::Operator {
            return Ok(Admin { principal, request_aud });
        }
        let mut aud = match body {
            BodyAud::Invalid(e) => return Err(AuthError::AdminParams(e)),
            BodyAud::Aud(a) if !a.is_empty() => a,
            BodyAud::Aud(_) | BodyAud::Absent => request_aud.clone(),
        };
        if aud.is_empty() {
            aud.clone_from(&ctx.config.jwt.aud);
        }
        let allowed = match &principal {
            Principal::Operator | Principal::SystemUser => true,
            Principal::User(u) => u.is_admin_for(&aud, &ctx.config.jwt.admin_group_name),
        };
        if !allowed {
            return Err(AuthError::UserNotAllowed);
        }
        Ok(Admin { principal, request_aud })
    }
}

/// A user an admin may act on, as [`Service::admin_load_user`] found it; the only way to
/// name the user of an update or delete, so that the instance and audience checks cannot
/// be skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Target(User);

impl Target {
    /// The user.
    #[must_use]
    pub fn user(&self) -> &User {
        &self.0
    }

    /// The user, owned.
    #[must_use]
    pub fn into_user(self) -> User {
        self.0
    }
}

/// Whether a `sub` names the system user.
fn is_system_sub(sub: &str) -> bool {
    sub == "0" || Uuid::parse_str(sub).is_ok_and(|u| u.is_nil())
}

/// The raw query of a user list (API.md 4.15).
#[derive(Debug, Clone, Default)]
pub struct UserListParams {
    /// `page`.
    pub page: Option<String>,
    /// `per_page`.
    pub per_page: Option<String>,
    /// Every `sort` value.
    pub sort: Vec<String>,
    /// `filter`.
    pub filter: String,
}

/// A page of users, the page it is, and the audience listed.
#[derive(Debug, Clone)]
pub struct UserList {
    /// The users and the total.
    pub page: Page<User>,
    /// The page served (for the `Link` header).
    pub pagination: Pagination,
    /// The audience listed.
    pub aud: String,
}

/// A page of audit entries and the page it is.
#[derive(Debug, Clone)]
pub struct AuditList {
    /// The entries and the total.
    pub page: Page<AuditEntry>,
    /// The page served (for the `Link` header).
    pub pagination: Pagination,
}

/// `POST /admin/users` and `PUT /admin/users/{id}` parameters (API.md 4.17, 4.19).
#[derive(Debug, Default)]
pub struct AdminUserParams {
    /// Audience of a new user (on update it only matters for the admin check).
    pub aud: String,
    /// Role.
    pub role: String,
    /// Address.
    pub email: String,
    /// Password (empty: none on create, unchanged on update).
    pub password: SecretString,
    /// Confirm the address now.
    pub confirm: bool,
    /// Merged into `user_metadata` (the initial value on create).
    pub user_metadata: Option<Map<String, Value>>,
    /// Merged into `app_metadata` on update (ignored on create, as upstream).
    pub app_metadata: Option<Map<String, Value>>,
}

impl Service {
    /// The admin settings.
    #[must_use]
    pub fn admin_settings(&self) -> &AdminSettings {
        &self.admin
    }

    /// Identifies the bearer of an admin request (API.md 3.8 steps 1-4).
    ///
    /// # Errors
    /// [`AuthError::BearerRequired`], [`AuthError::InvalidToken`], [`AuthError::InvalidAdminUser`].
    pub async fn admin_candidate(&self, ctx: &Ctx, bearer: Option<&str>) -> Result<AdminCandidate, AuthError> {
        let token = bearer.ok_or(AuthError::BearerRequired)?;
        if let Some(op) = &self.admin.operator_token {
            if constant_time_eq(token.as_bytes(), op.expose_secret().as_bytes()) {
                return Ok(AdminCandidate { principal: Principal::Operator, request_aud: ctx.aud(None) });
            }
        }
        let claims = jwt::verify(token, ctx.jwt_secret(), self.now().timestamp(), None).map_err(AuthError::InvalidToken)?;
        let request_aud = ctx.aud(Some(claims.aud()));
        let principal = if claims.sub.is_empty() {
            return Err(AuthError::InvalidAdminUser);
        } else if is_system_sub(&claims.sub) {
            if !self.admin.system_user_enabled {
                return Err(AuthError::InvalidAdminUser);
            }
            Principal::SystemUser
        } else {
            let id = Uuid::parse_str(&claims.sub).map_err(|_| AuthError::InvalidAdminUser)?;
            let user = self.users.find_user_by_id(Some(ctx.instance_id), id).await.context("Database error finding user")?;
            Principal::User(Box::new(user.ok_or(AuthError::InvalidAdminUser)?))
        };
        Ok(AdminCandidate { principal, request_aud })
    }

    /// `GET /admin/users`: the request audience's users, filtered, sorted and paginated.
    ///
    /// # Errors
    /// [`AuthError::BadPagination`], [`AuthError::BadSort`], internal errors.
    pub async fn admin_list_users(&self, ctx: &Ctx, admin: &Admin, p: UserListParams) -> Result<UserList, AuthError> {
        let pagination = Pagination::parse(p.page.as_deref(), p.per_page.as_deref())?;
        let order = parse_sort(&p.sort)?;
        let aud = admin.request_aud().to_owned();
        let query = UserListQuery { aud: Some(aud.clone()), filter: (!p.filter.is_empty()).then_some(p.filter), order, page: pagination };
        let page = self.users.list_users(ctx.instance_id, &query).await.context("Database error finding users")?;
        Ok(UserList { page, pagination, aud })
    }

    /// `GET /admin/users/export`: the list, for holders of the export secret (header
    /// `EXPORT_SECRET` or `X-Export-Secret`).
    ///
    /// # Errors
    /// [`AuthError::InvalidExportSecret`], then as [`Service::admin_list_users`].
    pub async fn admin_export_users(
        &self,
        ctx: &Ctx,
        admin: &Admin,
        presented_secret: Option<&str>,
        p: UserListParams,
    ) -> Result<UserList, AuthError> {
        let expected = self.admin.export_secret.as_ref().ok_or(AuthError::InvalidExportSecret)?;
        let ok = presented_secret.is_some_and(|s| constant_time_eq(s.as_bytes(), expected.expose_secret().as_bytes()));
        if !ok {
            return Err(AuthError::InvalidExportSecret);
        }
        self.admin_list_users(ctx, admin, p).await
    }

    /// Loads the user an admin path names (`GET /admin/users/{user_id}`, and the first step
    /// of update and delete): same instance, and the admin's audience unless the admin is
    /// unconfined. The id may be hyphenated, 32 hex digits, `{braced}` or `urn:uuid:`.
    ///
    /// # Errors
    /// [`AuthError::BadUserId`], [`AuthError::UserNotFound`], internal errors.
    pub async fn admin_load_user(&self, ctx: &Ctx, admin: &Admin, user_id: &str) -> Result<Target, AuthError> {
        let id = Uuid::parse_str(user_id).map_err(|_| AuthError::BadUserId)?;
        let user = self.users.find_user_by_id(Some(ctx.instance_id), id).await.context("Database error loading user")?;
        user.filter(|u| admin.may_manage(u)).map(Target).ok_or(AuthError::UserNotFound)
    }

    /// `POST /admin/users`: creates a user, recording `user_signedup` with the admin as actor.
    ///
    /// # Errors
    /// The [`AuthError`] variants of API.md 4.17.
    pub async fn admin_create_user(&self, ctx: &Ctx, admin: &Admin, p: AdminUserParams) -> Result<User, AuthError> {
        ctx.require_email_provider()?;
        let email = ctx.parse_email(&p.email)?;
        let has_password = !p.password.expose_secret().is_empty();
        if has_password {
            self.check_password(ctx, &p.password).await?;
        }
        let aud = if p.aud.is_empty() { admin.request_aud().to_owned() } else { p.aud };
        admin.require_audience(&aud)?;
        let existing = self.users.find_user_by_email(ctx.instance_id, &aud, &email.key()).await.context("Database error checking email")?;
        if existing.is_some() {
            return Err(AuthError::EmailTaken);
        }
        // Without a password the account has none (""): it cannot log in until the user
        // sets one through recovery. Upstream stored a hash of "" (WEAKNESSES.md 2).
        let hash = if has_password { self.hash_password(&p.password, "Error creating user").await? } else { String::new() };
        let now = self.now();
        let mut user = User::new(ctx.instance_id, &aud, email.as_str(), hash, p.user_metadata, now);
        Self::check_metadata(&user)?;
        user.role = if p.role.is_empty() { ctx.config.jwt.default_group_name.clone() } else { p.role.trim().to_owned() };
        if p.confirm {
            user.confirm(now);
        }
        let audit = AuditEntry::new(ctx.instance_id, &admin.actor(), AuditAction::UserSignedUp, Some(AuditEntry::user_traits(&user)), now);
        match self.users.insert_user(&user, &Effects::audit(vec![audit])).await {
            Ok(()) => Ok(user),
            Err(StoreError::EmailTaken) => Err(AuthError::EmailTaken),
            Err(e) => Err(AuthError::internal("Database error creating new user", e)),
        }
    }

    /// `PUT /admin/users/{user_id}`: changes what the body names, recording `user_modified`.
    ///
    /// # Errors
    /// The [`AuthError`] variants of API.md 4.19, plus email validation (422).
    pub async fn admin_update_user(&self, ctx: &Ctx, admin: &Admin, target: Target, p: AdminUserParams) -> Result<User, AuthError> {
        let Target(mut user) = target;
        let now = self.now();
        if !p.role.is_empty() {
            user.role = p.role.trim().to_owned();
        }
        if p.confirm && !user.is_confirmed() {
            user.confirm(now);
        }
        // A new password or address ends every session of the user (ASVS 7.4.3,
        // WEAKNESSES.md 6).
        let mut revoke_sessions = false;
        if !p.password.expose_secret().is_empty() {
            self.check_password(ctx, &p.password).await?;
            user.encrypted_password = self.hash_password(&p.password, "Error updating user").await?;
            revoke_sessions = true;
        }
        if !p.email.is_empty() && p.email != user.email {
            // Upstream set any string without a check (WEAKNESSES.md 22).
            let email = ctx.parse_email(&p.email)?;
            let taken =
                self.users.find_user_by_email(ctx.instance_id, &user.aud, &email.key()).await.context("Database error checking email")?;
            if taken.is_some_and(|t| t.id != user.id) {
                return Err(AuthError::EmailTaken);
            }
            user.email = email.as_str().to_owned();
            revoke_sessions = true;
        }
        if let Some(app) = p.app_metadata {
            user.merge_app_metadata(app);
        }
        if let Some(data) = p.user_metadata {
            user.merge_user_metadata(data);
        }
        Self::check_metadata(&user)?;
        user.updated_at = now;
        let audit = AuditEntry::new(ctx.instance_id, &admin.actor(), AuditAction::UserModified, Some(AuditEntry::user_traits(&user)), now);
        let effects = Effects { audit: vec![audit], revoke_sessions, ..Effects::default() };
        match self.users.update_user(&user, &Guard::None, &effects).await {
            Ok(()) => {
                // After the commit, as upstream: a failure is only logged, a reply's
                // metadata is stored and shown in the response.
                self.notify_user_modified(ctx, &mut user).await;
                Ok(user)
            }
            Err(StoreError::EmailTaken) => Err(AuthError::EmailTaken),
            Err(StoreError::Conflict) => Err(AuthError::UserNotFound),
            Err(e) => Err(AuthError::internal("Error updating user", e)),
        }
    }

    /// `DELETE /admin/users/{user_id}`: removes the user and their refresh tokens,
    /// recording `user_deleted`, in one transaction. Returns the deleted user.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`] when the user vanished meanwhile, internal errors.
    pub async fn admin_delete_user(&self, ctx: &Ctx, admin: &Admin, target: Target) -> Result<User, AuthError> {
        let Target(user) = target;
        let now = self.now();
        let audit = AuditEntry::new(ctx.instance_id, &admin.actor(), AuditAction::UserDeleted, Some(AuditEntry::user_traits(&user)), now);
        match self.users.delete_user(&user, &Guard::None, &Effects::audit(vec![audit])).await {
            Ok(()) => {
                self.notify_user_deleted(ctx, &user).await;
                Ok(user)
            }
            Err(StoreError::Conflict) => Err(AuthError::UserNotFound),
            Err(e) => Err(AuthError::internal("Database error deleting user", e)),
        }
    }

    /// `GET /admin/audit`: the instance's audit log, newest first, searched by `query`.
    ///
    /// # Errors
    /// [`AuthError::BadPagination`], [`AuthError::InvalidAuditQuery`], internal errors.
    pub async fn admin_audit(
        &self,
        ctx: &Ctx,
        _admin: &Admin,
        page: Option<&str>,
        per_page: Option<&str>,
        query: &str,
    ) -> Result<AuditList, AuthError> {
        let pagination = Pagination::parse(page, per_page)?;
        let query = AuditListQuery { search: AuditSearch::parse(query)?, page: pagination };
        let page = self.audit.list_audit(ctx.instance_id, &query).await.context("Error searching for audit logs")?;
        Ok(AuditList { page, pagination })
    }

    /// Every user of an instance (of one audience when given), oldest first, fetched page by
    /// page (the CLI's `listusers`).
    ///
    /// # Errors
    /// Internal errors.
    pub async fn all_users(&self, instance_id: Uuid, aud: Option<&str>) -> Result<Vec<User>, AuthError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let pagination = Pagination { page, per_page: crate::domain::page::MAX_PER_PAGE, capped: false };
            let query = UserListQuery { aud: aud.map(str::to_owned), filter: None, order: SortDirection::Asc, page: pagination };
            let got = self.users.list_users(instance_id, &query).await.context("Database error finding users")?;
            let n = got.items.len() as u64;
            out.extend(got.items);
            if n < pagination.per_page || out.len() as u64 >= got.total {
                return Ok(out);
            }
            page += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{TimeZone as _, Utc};
    use mockall::predicate::eq;
    use serde_json::json;

    use super::*;
    use crate::app::config::{Config, Env};
    use crate::app::service::Ports;
    use crate::ports::audit::MockAuditStore;
    use crate::ports::clock::MockClock;
    use crate::ports::hasher::MockPasswordHasher;
    use crate::ports::hooks::MockHookSender;
    use crate::ports::mail::MockMailer;
    use crate::ports::tokens::MockTokenStore;
    use crate::ports::users::MockUserStore;

    const SECRET: &str = "testsecret";

    fn now() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    }

    fn ctx() -> Ctx {
        let env = Env::from_pairs([("GOTRUE_JWT_SECRET", SECRET), ("GOTRUE_JWT_AUD", "api.netlify.com")]);
        let config = Config::from_env(&env).unwrap();
        Ctx::new(Uuid::nil(), Arc::new(config.instance))
    }

    fn service(users: MockUserStore, settings: AdminSettings) -> Service {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        Service::new(Ports {
            users: Arc::new(users),
            tokens: Arc::new(MockTokenStore::new()),
            audit: Arc::new(MockAuditStore::new()),
            mailer: Arc::new(MockMailer::new()),
            hasher: Arc::new(MockPasswordHasher::new()),
            clock: Arc::new(clock),
            hooks: Arc::new(MockHookSender::new()),
            providers: Arc::new(crate::ports::external::MockProviderRegistry::new()),
            identities: Arc::new(crate::ports::identities::MockIdentityStore::new()),
            flows: Arc::new(crate::ports::flows::MockFlowStore::new()),
        })
        .with_admin_settings(settings)
    }

    fn token(sub: &str, aud: &str) -> String {
        let claims = json!({"sub": sub, "aud": aud, "exp": 4_000_000_000i64});
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
    }

    fn user(aud: &str, role: &str) -> User {
        let mut u = User::new(Uuid::nil(), aud, "admin@example.com", String::new(), None, now());
        u.role = role.into();
        u
    }

    #[tokio::test]
    async fn the_operator_token_is_an_admin_only_when_configured() {
        let settings = AdminSettings { operator_token: Some(SecretString::from("foobar")), ..AdminSettings::default() };
        let s = service(MockUserStore::new(), settings);
        let c = s.admin_candidate(&ctx(), Some("foobar")).await.unwrap();
        assert!(!c.reads_body_aud());
        let admin = c.authorize(&ctx(), BodyAud::Invalid("ignored".into())).unwrap();
        assert_eq!(admin.actor().email, OPERATOR_EMAIL);
        let s = service(MockUserStore::new(), AdminSettings::default());
        let err = s.admin_candidate(&ctx(), Some("foobar")).await.unwrap_err();
        assert!(matches!(err, AuthError::InvalidToken(_)), "{err:?}");
    }

    #[tokio::test]
    async fn the_system_user_is_a_super_admin_unless_turned_off() {
        let s = service(MockUserStore::new(), AdminSettings::default());
        for sub in ["0", "00000000-0000-0000-0000-000000000000"] {
            let admin = s.admin_candidate(&ctx(), Some(&token(sub, "other"))).await.unwrap().authorize(&ctx(), BodyAud::Absent).unwrap();
            assert_eq!(admin.principal(), &Principal::SystemUser);
            assert_eq!(admin.confined_to(), None);
            assert_eq!(admin.request_aud(), "other");
        }
        let s = service(MockUserStore::new(), AdminSettings { system_user_enabled: false, ..AdminSettings::default() });
        let err = s.admin_candidate(&ctx(), Some(&token("0", "x"))).await.unwrap_err();
        assert!(matches!(err, AuthError::InvalidAdminUser));
    }

    #[tokio::test]
    async fn role_admins_are_admins_of_their_audience_only() {
        let admin_user = user("api.netlify.com", "admin");
        let id = admin_user.id;
        let mut users = MockUserStore::new();
        let found = admin_user.clone();
        users.expect_find_user_by_id().with(eq(Some(Uuid::nil())), eq(id)).returning(move |_, _| Ok(Some(found.clone())));
        let s = service(users, AdminSettings::default());
        let t = token(&id.to_string(), "api.netlify.com");
        let admin = s.admin_candidate(&ctx(), Some(&t)).await.unwrap().authorize(&ctx(), BodyAud::Absent).unwrap();
        assert_eq!(admin.confined_to(), Some("api.netlify.com"));
        assert!(admin.may_manage(&user("api.netlify.com", "")));
        assert!(!admin.may_manage(&user("other", "")));
        assert!(matches!(admin.require_audience("other"), Err(AuthError::UserNotAllowed)));
        let err = s.admin_candidate(&ctx(), Some(&t)).await.unwrap().authorize(&ctx(), BodyAud::Aud("other".into())).unwrap_err();
        assert!(matches!(err, AuthError::UserNotAllowed));
        let err = s.admin_candidate(&ctx(), Some(&t)).await.unwrap().authorize(&ctx(), BodyAud::Invalid("EOF".into())).unwrap_err();
        assert_eq!(err.to_string(), "Could not decode admin user params: EOF");
    }

    #[tokio::test]
    async fn unknown_or_malformed_subjects_are_invalid_admin_users() {
        let mut users = MockUserStore::new();
        users.expect_find_user_by_id().returning(|_, _| Ok(None));
        let s = service(users, AdminSettings::default());
        for sub in ["", "not-a-uuid", &Uuid::new_v4().to_string()] {
            let err = s.admin_candidate(&ctx(), Some(&token(sub, "a"))).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidAdminUser), "{sub}: {err:?}");
        }
        assert!(matches!(s.admin_candidate(&ctx(), None).await, Err(AuthError::BearerRequired)));
    }

    #[tokio::test]
    async fn admin_create_without_password_stores_no_password() {
        let mut users = MockUserStore::new();
        users.expect_find_user_by_email().returning(|_, _, _| Ok(None));
        users
            .expect_insert_user()
            .withf(|u, e| {
                u.encrypted_password.is_empty()
                    && u.is_confirmed()
                    && e.audit.len() == 1
                    && e.audit[0].payload["action"] == "user_signedup"
                    && e.audit[0].payload["traits"]["user_email"] == "new@example.com"
            })
            .returning(|_, _| Ok(()));
        let s = service(users, AdminSettings::default());
        let admin = Admin { principal: Principal::SystemUser, request_aud: "api.netlify.com".into() };
        let p = AdminUserParams { email: "new@example.com".into(), confirm: true, ..AdminUserParams::default() };
        let u = s.admin_create_user(&ctx(), &admin, p).await.unwrap();
        assert_eq!(u.app_metadata, Some(json!({"provider": "email"}).as_object().cloned().unwrap()));
    }

    #[tokio::test]
    async fn an_admin_change_of_address_ends_the_users_sessions_a_role_change_does_not() {
        for (email, role, revokes) in [("moved@example.com", "", true), ("", "editor", false)] {
            let mut users = MockUserStore::new();
            users.expect_find_user_by_email().returning(|_, _, _| Ok(None));
            users
                .expect_update_user()
                .withf(move |_, _, e| e.revoke_sessions == revokes && e.keep_session.is_none())
                .times(1)
                .returning(|_, _, _| Ok(()));
            let s = service(users, AdminSettings::default());
            let admin = Admin { principal: Principal::SystemUser, request_aud: "api.netlify.com".into() };
            let p = AdminUserParams { email: email.into(), role: role.into(), ..AdminUserParams::default() };
            s.admin_update_user(&ctx(), &admin, Target(user("api.netlify.com", "")), p).await.unwrap();
        }
    }

    #[tokio::test]
    async fn single_user_operations_stay_inside_the_admins_audience() {
        let foreign = user("other", "");
        let fid = foreign.id;
        let mut users = MockUserStore::new();
        users.expect_find_user_by_id().returning(move |_, _| Ok(Some(foreign.clone())));
        let s = service(users, AdminSettings::default());
        let admin = Admin { principal: Principal::User(Box::new(user("api.netlify.com", "admin"))), request_aud: "api.netlify.com".into() };
        let err = s.admin_load_user(&ctx(), &admin, &fid.to_string()).await.unwrap_err();
        assert!(matches!(err, AuthError::UserNotFound));
        let err = s.admin_load_user(&ctx(), &admin, "nope").await.unwrap_err();
        assert!(matches!(err, AuthError::BadUserId));
        let system = Admin { principal: Principal::SystemUser, request_aud: "api.netlify.com".into() };
        for form in [fid.simple().to_string(), fid.braced().to_string(), fid.urn().to_string()] {
            assert_eq!(s.admin_load_user(&ctx(), &system, &form).await.unwrap().user().id, fid);
        }
    }
}
