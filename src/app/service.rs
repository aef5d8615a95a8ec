//! The application service: the ports it needs and the per-request context.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use uuid::Uuid;

use super::admin::AdminSettings;
use super::config::InstanceConfig;
use super::config::EMAIL_SENT_WINDOW;
use super::error::{AuthError, Context as _};
use super::{jwt, links};
use crate::domain::email::{normalise, Email};
use crate::domain::password::{PasswordPolicy, BCRYPT_MAX_BYTES, MAX_PASSWORD_BYTES};
use crate::domain::token::NewToken;
use crate::domain::user::User;
use crate::ports::audit::AuditStore;
use crate::ports::breached::BreachedPasswords;
use crate::ports::clock::Clock;
use crate::ports::external::ProviderRegistry;
use crate::ports::flows::FlowStore;
use crate::ports::hasher::PasswordHasher;
use crate::ports::hooks::HookSender;
use crate::ports::identities::IdentityStore;
use crate::ports::mail::{Mail, MailError, MailKind, Mailer};
use crate::ports::ratelimit::{NoRateLimit, RateLimiter};
use crate::ports::tokens::{NewRefreshToken, TokenStore};
use crate::ports::users::UserStore;

/// The ports a [`Service`] is built from.
#[derive(Clone)]
pub struct Ports {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Refresh tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Mail.
    pub mailer: Arc<dyn Mailer>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Webhooks.
    pub hooks: Arc<dyn HookSender>,
    /// External login: the providers.
    pub providers: Arc<dyn ProviderRegistry>,
    /// External login: identities linked to users.
    pub identities: Arc<dyn IdentityStore>,
    /// External login: used states and authorization codes.
    pub flows: Arc<dyn FlowStore>,
}

/// The use cases. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub(crate) users: Arc<dyn UserStore>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) audit: Arc<dyn AuditStore>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hooks: Arc<dyn HookSender>,
    pub(crate) providers: Arc<dyn ProviderRegistry>,
    pub(crate) identities: Arc<dyn IdentityStore>,
    pub(crate) flows: Arc<dyn FlowStore>,
    /// `OPERATOR_TOKEN`: the key of OAuth states when set.
    pub(crate) operator_token: Option<SecretString>,
    pub(crate) admin: Arc<AdminSettings>,
    /// Counters for `/recover` per address and mails per address.
    pub(crate) limiter: Arc<dyn RateLimiter>,
    /// Mails one address may receive per [`EMAIL_SENT_WINDOW`] (0: no limit).
    pub(crate) email_sent_limit: u32,
    /// The breached-password corpus, when `GOTRUE_PASSWORD_HIBP_ENABLED` is on.
    pub(crate) breached: Option<Arc<dyn BreachedPasswords>>,
}

/// What a request brings to a use case: its tenant, configuration and audience.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Tenant.
    pub instance_id: Uuid,
    /// The tenant's configuration.
    pub config: Arc<InstanceConfig>,
    /// `X-JWT-AUD` when given and non-empty.
    pub aud_header: Option<String>,
    /// The request's `Referer`, for mail links.
    pub referrer: Option<String>,
    /// Multi-instance mode: the `netlify_id` claim of the operator's signature.
    pub netlify_id: String,
    /// Multi-instance mode: hook URLs by event (the `function_hooks` claim).
    pub function_hooks: Arc<super::instances::FunctionHooks>,
    /// Multi-instance mode: the instance's own mail delivery (else the service's).
    pub mailer: Option<CtxMailer>,
}

/// The mailer of a request's instance.
#[derive(Clone)]
pub struct CtxMailer(pub Arc<dyn Mailer>);

impl std::fmt::Debug for CtxMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtxMailer")
    }
}

impl Ctx {
    /// A context for `instance_id` with `config`, no request headers and no function hooks.
    #[must_use]
    pub fn new(instance_id: Uuid, config: Arc<InstanceConfig>) -> Self {
        Self {
            instance_id,
            config,
            aud_header: None,
            referrer: None,
            netlify_id: String::new(),
            function_hooks: Arc::default(),
            mailer: None,
        }
    }

    /// The request's audience (API.md 3.7) given the verified token's `aud`, if any.
    #[must_use]
    pub fn aud(&self, token_aud: Option<&str>) -> String {
        self.aud_header
            .clone()
            .or_else(|| token_aud.filter(|a| !a.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| self.config.jwt.aud.clone())
    }

    /// The HS256 key.
    #[must_use]
    pub fn jwt_secret(&self) -> &[u8] {
        self.config.jwt.secret.as_ref().map_or(&[][..], |s| s.expose_secret().as_bytes())
    }

    /// Fails when the email provider is disabled (API.md 3.10).
    ///
    /// # Errors
    /// [`AuthError::EmailProviderDisabled`].
    pub fn require_email_provider(&self) -> Result<(), AuthError> {
        if self.config.external.email_disabled {
            Err(AuthError::EmailProviderDisabled)
        } else {
            Ok(())
        }
    }

    /// Fails when signups are disabled.
    ///
    /// # Errors
    /// [`AuthError::SignupDisabled`].
    pub fn require_signup_enabled(&self) -> Result<(), AuthError> {
        if self.config.disable_signup {
            Err(AuthError::SignupDisabled)
        } else {
            Ok(())
        }
    }

    /// The password policy, tightened to bcrypt's limit when new hashes are bcrypt.
    #[must_use]
    pub fn password_policy(&self) -> PasswordPolicy {
        let p = &self.config.password;
        let max_bytes = match p.scheme {
            super::config::HashScheme::Bcrypt => BCRYPT_MAX_BYTES,
            super::config::HashScheme::Argon2id => MAX_PASSWORD_BYTES,
        };
        PasswordPolicy { min_length: p.min_length, max_bytes }
    }

    /// Parses an email address (RFC 5322, display names allowed as upstream does).
    ///
    /// # Errors
    /// [`AuthError::Email`].
    pub fn parse_email(&self, s: &str) -> Result<Email, AuthError> {
        Ok(Email::parse(s)?)
    }

    /// Converts a configured duration.
    #[must_use]
    pub fn dur(d: std::time::Duration) -> chrono::Duration {
        chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    }
}

/// The body of a successful token grant (API.md 3.4).
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// The new refresh token.
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// A new refresh token: what to store and what to hand out.
pub(crate) struct Grant {
    pub(crate) row: NewRefreshToken,
    pub(crate) secret: String,
    /// The session (also in `row`, which the write consumes).
    pub(crate) session: Uuid,
}

impl Service {
    /// Builds the service from its ports.
    #[must_use]
    pub fn new(p: Ports) -> Self {
        Self {
            users: p.users,
            tokens: p.tokens,
            audit: p.audit,
            mailer: p.mailer,
            hasher: p.hasher,
            clock: p.clock,
            hooks: p.hooks,
            providers: p.providers,
            identities: p.identities,
            flows: p.flows,
            operator_token: None,
            admin: Arc::new(AdminSettings::default()),
            limiter: Arc::new(NoRateLimit),
            email_sent_limit: 0,
            breached: None,
        }
    }

    /// Refuses new passwords that `corpus` knows from breaches; when it cannot answer the
    /// password is accepted and a warning logged (fail open).
    #[must_use]
    pub fn with_breached_passwords(mut self, corpus: Option<Arc<dyn BreachedPasswords>>) -> Self {
        self.breached = corpus;
        self
    }

    /// Counts `/recover` requests and mails per address with `limiter`; at most
    /// `email_sent_limit` mails to one address per hour (0: no limit).
    #[must_use]
    pub fn with_rate_limiter(mut self, limiter: Arc<dyn RateLimiter>, email_sent_limit: u32) -> Self {
        self.limiter = limiter;
        self.email_sent_limit = email_sent_limit;
        self
    }

    /// Signs OAuth states with the operator token (upstream's key) instead of the JWT
    /// secret; an empty token is ignored.
    #[must_use]
    pub fn with_operator_token(mut self, token: Option<SecretString>) -> Self {
        self.operator_token = token.filter(|t| !t.expose_secret().is_empty());
        self
    }

    /// Sets the operator token, the system-user switch and the export secret.
    #[must_use]
    pub fn with_admin_settings(mut self, settings: AdminSettings) -> Self {
        self.admin = Arc::new(settings);
        self
    }

    /// The current time from the injected clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The refresh token of a login: it starts a new session. Its secret is not sealed: no
    /// earlier token of the session can be replayed to ask for it.
    pub(crate) fn new_grant(&self, user: &User, now: DateTime<Utc>) -> Grant {
        let t = NewToken::generate();
        let session_id = Uuid::new_v4();
        Grant {
            row: NewRefreshToken {
                instance_id: user.instance_id,
                user_id: user.id,
                token: t.digest,
                created_at: now,
                session_id,
                session_started_at: now,
                sealed: None,
            },
            secret: t.secret,
            session: session_id,
        }
    }

    /// The refresh token that replaces one of `session_id`: the session's new current token,
    /// its secret sealed for the reuse window.
    pub(crate) fn rotation_grant(ctx: &Ctx, user: &User, now: DateTime<Utc>, session_id: Uuid, session_started_at: DateTime<Utc>) -> Grant {
        let t = NewToken::generate();
        let sealed = crate::domain::session::seal(ctx.jwt_secret(), session_id, &t.secret);
        Grant {
            row: NewRefreshToken {
                instance_id: user.instance_id,
                user_id: user.id,
                token: t.digest,
                created_at: now,
                session_id,
                session_started_at,
                sealed,
            },
            secret: t.secret,
            session: session_id,
        }
    }

    /// Signs the access token for `user` and packs it with the refresh token.
    pub(crate) fn token_response(
        &self,
        ctx: &Ctx,
        user: &User,
        refresh_secret: String,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<TokenResponse, AuthError> {
        let exp_secs = i64::try_from(ctx.config.jwt.exp.as_secs()).unwrap_or(3600);
        let access_token =
            jwt::sign(user, now.timestamp() + exp_secs, Some(session_id), ctx.jwt_secret()).context("error generating jwt token")?;
        Ok(TokenResponse { access_token, token_type: "bearer", expires_in: exp_secs, refresh_token: refresh_secret })
    }

    /// Hashes a password that already passed the policy.
    pub(crate) async fn hash_password(&self, password: &SecretString, msg: &'static str) -> Result<String, AuthError> {
        self.hasher.hash(password.clone()).await.context(msg)
    }

    /// Refuses a user whose metadata grew past [`crate::domain::metadata::MAX_METADATA_BYTES`].
    pub(crate) fn check_metadata(user: &User) -> Result<(), AuthError> {
        use crate::domain::metadata::too_large;
        if too_large(&user.user_metadata) || too_large(&user.app_metadata) {
            return Err(AuthError::MetadataTooLarge);
        }
        Ok(())
    }

    /// Checks a new password against the policy, then (when configured) against the
    /// breached-password corpus, failing open when the corpus cannot answer.
    pub(crate) async fn check_password(&self, ctx: &Ctx, password: &SecretString) -> Result<(), AuthError> {
        ctx.password_policy().check(password.expose_secret()).map_err(|e| AuthError::WeakPassword(e.to_string()))?;
        if let Some(corpus) = &self.breached {
            match corpus.times_seen(password).await {
                Ok(0) => {}
                Ok(_) => return Err(AuthError::BreachedPassword),
                // The error names the service and the failure, never the password.
                Err(e) => tracing::warn!(error = %e, "breached-password check skipped: password accepted unchecked"),
            }
        }
        Ok(())
    }

    /// Sends one of the four mails with a link carrying `token`.
    pub(crate) async fn send_mail(&self, ctx: &Ctx, kind: MailKind, user: &User, to: &str, token: &str) -> Result<(), MailError> {
        let fragment_key = match kind {
            MailKind::Confirmation => "confirmation_token",
            MailKind::Invite => "invite_token",
            MailKind::Recovery => "recovery_token",
            MailKind::EmailChange => "email_change_token",
        };
        let path = ctx.config.mailer.url_paths.get(kind);
        let url = links::confirmation_url(ctx.referrer.as_deref(), &ctx.config.site_url, path, &format!("{fragment_key}={token}"));
        let mail = Mail {
            kind,
            to: to.to_owned(),
            site_url: ctx.config.site_url.clone(),
            confirmation_url: url,
            email: user.email.clone(),
            new_email: user.email_change.clone(),
            token: token.to_owned(),
            data: user.user_metadata.clone().unwrap_or_default(),
            subject_template: ctx.config.mailer.subjects.get(kind).to_owned(),
            template_url: ctx.config.mailer.templates.get(kind).to_owned(),
        };
        if self.email_sent_limit > 0 {
            let key = format!("mail:{}:{}", ctx.instance_id, normalise(to));
            if !self.limiter.hit(&key, self.email_sent_limit, EMAIL_SENT_WINDOW).await.allowed {
                // Dropped rather than refused: an error would tell an address that has an
                // account (and so receives mail) from one that has not (WEAKNESSES.md 17).
                tracing::warn!(kind = ?kind, "mail not sent: GOTRUE_RATE_LIMIT_EMAIL_SENT reached for this address");
                return Ok(());
            }
        }
        match &ctx.mailer {
            Some(CtxMailer(m)) => m.send(&mail).await,
            None => self.mailer.send(&mail).await,
        }
    }
}
