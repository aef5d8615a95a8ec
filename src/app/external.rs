//! External login (EXTERNAL.md 1, API.md 4.11-4.12) and the `authorization_code` grant.
//!
//! Departures from upstream, each deliberate (issue 7): the state is single use and bound
//! to the browser ([`state`]); PKCE goes to every provider that accepts it; a returning
//! user is found by provider and provider id before any email matching; an account links
//! to an existing user only through an address the provider says is verified, whatever
//! `MAILER_AUTOCONFIRM` says (WEAKNESSES.md 1); invites match emails case-insensitively
//! (16) and expire; the provider name is lower-cased (42); a client that sends a PKCE
//! challenge to `/authorize` receives a one-time code instead of tokens in the fragment.

pub mod state;
#[cfg(test)]
mod tests;
pub mod urls;

use serde_json::{Map, Value};

use self::state::StateClaims;
use super::error::{AuthError, Context as _};
use super::service::{Ctx, Grant, Service, TokenResponse};
use super::verify::confirmation_expired;
use crate::domain::audit::{Actor, AuditAction, AuditEntry};
use crate::domain::identity::{provider_name, Identity, ProviderEmail, ProviderUser};
use crate::domain::token::{digest, lookup_digest, NewToken};
use crate::domain::user::User;
use crate::ports::external::{AuthorizeRequest, CodeExchange, ProviderError, ProviderSettings};
use crate::ports::flows::AuthCode;
use crate::ports::hooks::HookEvent;
use crate::ports::mail::MailKind;
use crate::ports::users::{Effects, Guard, StoreError, TokenColumn};
use secrecy::ExposeSecret as _;

/// How long an authorization code may wait for its exchange, in seconds.
pub const AUTH_CODE_TTL_SECS: i64 = 300;

/// What goes wrong in the external login; the HTTP adapter renders each with upstream's
/// status and message (or, after the state is verified, as an error redirect).
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// `/callback` without `state`.
    #[error("OAuth state parameter missing")]
    StateMissing,
    /// The state failed verification, expired, was used already or belongs to another
    /// browser.
    #[error("OAuth state is invalid: {0}")]
    StateInvalid(String),
    /// Unknown, disabled or misconfigured provider.
    #[error("Unsupported provider: {0}")]
    UnsupportedProvider(String),
    /// `code_challenge_method` other than `S256`, or a malformed challenge.
    #[error("{0}")]
    BadChallenge(&'static str),
    /// `/callback` with neither `code` nor `error`.
    #[error("Authorization code missing")]
    CodeMissing,
    /// The provider answered the authorization request with an error (passed through).
    #[error("{description}")]
    Provider {
        /// The provider's `error`.
        error: String,
        /// The provider's `error_description`.
        description: String,
    },
    /// The provider's endpoints could not be learnt.
    #[error("Unable to reach the {provider} provider")]
    Unavailable {
        /// Provider name.
        provider: String,
        /// Why, for the log.
        cause: String,
    },
    /// The code exchange failed.
    #[error("Unable to exchange external code for {provider} provider")]
    Exchange {
        /// Provider name.
        provider: String,
        /// Why, for the log.
        cause: String,
    },
    /// The provider's user could not be read or has no address.
    #[error("Error getting user email from external provider")]
    UserData {
        /// Why, for the log.
        cause: String,
    },
    /// No provider address matches the invited one.
    #[error("Invited email does not match emails from external provider")]
    InviteEmailMismatch,
    /// The provider account is linked to another user.
    #[error("This external account is already linked to another user")]
    IdentityTaken,
    /// `authorization_code` grant without `code` or `code_verifier`.
    #[error("code and code_verifier are required")]
    CodeRequired,
    /// Unknown, used or foreign authorization code.
    #[error("Invalid authorization code")]
    InvalidCode,
    /// Authorization code past its lifetime.
    #[error("Authorization code expired")]
    CodeExpired,
    /// `code_verifier` does not match the challenge.
    #[error("code_verifier does not match the code_challenge")]
    VerifierMismatch,
}

/// `GET /authorize` parameters.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    /// `provider`, any case.
    pub provider: String,
    /// `invite_token`.
    pub invite_token: String,
    /// `code_challenge` (authorization-code flow).
    pub code_challenge: String,
    /// `code_challenge_method`.
    pub code_challenge_method: String,
    /// The browser-binding cookie the request came with, to reuse (parallel flows).
    pub binding: Option<String>,
}

/// Where `/authorize` sends the browser, and the binding cookie to set.
#[derive(Clone)]
pub struct AuthorizeRedirect {
    /// The provider's authorization URL.
    pub location: String,
    /// The value of the browser-binding cookie.
    pub binding: String,
    /// The provider's configured redirect URI (decides the cookie's path and `Secure`).
    pub redirect_uri: String,
    /// Cookie lifetime in seconds.
    pub max_age: i64,
}

impl std::fmt::Debug for AuthorizeRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRedirect").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

/// `GET /callback` parameters.
#[derive(Default, Clone)]
pub struct CallbackParams {
    /// `state`.
    pub state: String,
    /// `code`.
    pub code: String,
    /// `error` (from the provider).
    pub error: String,
    /// `error_description`.
    pub error_description: String,
    /// The browser-binding cookie.
    pub binding: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams").field("error", &self.error).finish_non_exhaustive()
    }
}

/// How a verified callback ends.
#[derive(Debug)]
pub enum CallbackOutcome {
    /// Signed in: tokens for the fragment.
    Tokens(TokenResponse),
    /// Signed in through the authorization-code flow: the code for the query.
    Code(String),
    /// A confirmation mail was sent; nothing to hand out yet.
    ConfirmationSent,
}

/// A `/callback` failure: before the state is trusted it is answered as JSON, afterwards
/// with a redirect to `target` carrying the error.
#[derive(Debug)]
pub enum CallbackError {
    /// Missing or invalid state (or a database failure checking it).
    State(AuthError),
    /// Anything after: redirect to `target` with the error.
    Redirect {
        /// Where the browser goes.
        target: String,
        /// What failed.
        error: AuthError,
    },
}

enum SignedIn {
    User(Box<User>, Option<Grant>),
    ConfirmationSent,
}

fn unsupported(reason: impl Into<String>) -> AuthError {
    ExternalError::UnsupportedProvider(reason.into()).into()
}

/// The settings of provider `name`, with upstream's messages for what is missing.
fn provider_settings(ctx: &Ctx, name: &str) -> Result<ProviderSettings, AuthError> {
    let Some(c) = ctx.config.external.providers.get(name) else {
        return Err(unsupported(format!("Provider {name} could not be found")));
    };
    if !c.enabled {
        return Err(unsupported("Provider is not enabled"));
    }
    if c.client_id.is_empty() {
        return Err(unsupported("Missing Oauth client ID"));
    }
    let Some(secret) = c.secret.clone() else {
        return Err(unsupported("Missing Oauth secret"));
    };
    if c.redirect_uri.is_empty() {
        return Err(unsupported("Missing redirect URI"));
    }
    Ok(ProviderSettings { client_id: c.client_id.clone(), secret, redirect_uri: c.redirect_uri.clone(), url: c.url.clone() })
}

fn provider_error(provider: &str, e: ProviderError) -> AuthError {
    match e {
        ProviderError::Config(reason) => unsupported(reason),
        ProviderError::Unavailable(cause) => ExternalError::Unavailable { provider: provider.to_owned(), cause }.into(),
        ProviderError::Exchange(cause) => ExternalError::Exchange { provider: provider.to_owned(), cause }.into(),
        ProviderError::UserData(cause) => ExternalError::UserData { cause }.into(),
    }
}

impl Service {
    /// The HMAC key of OAuth states: `OPERATOR_TOKEN` when set, else the JWT secret.
    fn state_key(&self, ctx: &Ctx) -> Result<Vec<u8>, AuthError> {
        let key = match &self.operator_token {
            Some(t) => t.expose_secret().as_bytes().to_vec(),
            None => ctx.jwt_secret().to_vec(),
        };
        if key.is_empty() {
            return Err(AuthError::internal("Internal server error", "no key to sign OAuth states (set GOTRUE_JWT_SECRET)"));
        }
        Ok(key)
    }

    /// `GET /authorize`: checks the provider and invite, signs a state bound to the
    /// browser, and returns the provider's authorization URL.
    ///
    /// # Errors
    /// [`ExternalError::UnsupportedProvider`], [`ExternalError::BadChallenge`],
    /// [`AuthError::UserNotFound`] for an unknown invite, internal errors.
    pub async fn external_authorize(&self, ctx: &Ctx, p: AuthorizeParams) -> Result<AuthorizeRedirect, AuthError> {
        let name = provider_name(&p.provider);
        if !self.providers.knows(&name) {
            return Err(unsupported(format!("Provider {name} could not be found")));
        }
        let settings = provider_settings(ctx, &name)?;
        let provider = self.providers.build(&name, &settings).map_err(|e| provider_error(&name, e))?;
        let code_challenge = match (p.code_challenge.trim(), p.code_challenge_method.trim()) {
            ("", "") => None,
            ("", _) => return Err(ExternalError::BadChallenge("code_challenge is required with code_challenge_method").into()),
            (c, m) if m.eq_ignore_ascii_case("S256") => {
                if !state::valid_challenge(c) {
                    return Err(ExternalError::BadChallenge("code_challenge must be the base64url SHA-256 of the code_verifier").into());
                }
                Some(c.to_owned())
            }
            _ => return Err(ExternalError::BadChallenge("code_challenge_method must be S256").into()),
        };
        let invite = match lookup_digest(p.invite_token.trim()) {
            None => None,
            Some(d) => {
                let user = self
                    .users
                    .find_user_by_token(Some(ctx.instance_id), TokenColumn::Confirmation, &d)
                    .await
                    .context("Database error finding user")?;
                let user = user.ok_or(AuthError::UserNotFound)?;
                if confirmation_expired(ctx, &user, self.now()) {
                    return Err(AuthError::ConfirmationTokenExpired);
                }
                Some(d)
            }
        };
        let key = self.state_key(ctx)?;
        let binding = p.binding.filter(|b| b.len() == 43 && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let binding = binding.unwrap_or_else(state::random_value);
        let jti = state::random_value();
        let claims = StateClaims {
            exp: self.now().timestamp() + state::STATE_TTL_SECS,
            site_url: ctx.config.site_url.clone(),
            id: ctx.instance_id.to_string(),
            netlify_id: ctx.netlify_id.clone(),
            function_hooks: ctx
                .function_hooks
                .iter()
                .map(|(event, urls)| (event.clone(), Value::Array(urls.iter().cloned().map(Value::String).collect())))
                .collect::<Map<String, Value>>(),
            provider: name.clone(),
            invite,
            referrer: urls::kept_referrer(ctx.referrer.as_deref(), &ctx.config.site_url),
            jti: jti.clone(),
            bnd: state::binding_hash(&binding),
            code_challenge,
        };
        let signed = state::sign(&claims, &key).context("Internal server error")?;
        let request =
            AuthorizeRequest { state: signed, pkce_verifier: state::provider_pkce_verifier(&key, &jti), nonce: state::nonce(&key, &jti) };
        let location = provider.authorize_url(&request).await.map_err(|e| provider_error(&name, e))?;
        Ok(AuthorizeRedirect { location, binding, redirect_uri: settings.redirect_uri, max_age: state::STATE_TTL_SECS })
    }

    /// `GET /callback`: verifies and consumes the state, then exchanges the code, signs the
    /// user in (or up) and says what to hand back.
    ///
    /// # Errors
    /// [`CallbackError::State`] before the state is trusted, [`CallbackError::Redirect`]
    /// after.
    pub async fn external_callback(&self, ctx: &Ctx, p: CallbackParams) -> Result<(String, CallbackOutcome), CallbackError> {
        let claims = self.consume_state(ctx, &p).await.map_err(CallbackError::State)?;
        let target = urls::redirect_target(&ctx.config.external.redirect_url, claims.referrer.as_deref(), &ctx.config.site_url);
        match self.finish_callback(ctx, &p, &claims).await {
            Ok(outcome) => Ok((target, outcome)),
            Err(error) => Err(CallbackError::Redirect { target, error }),
        }
    }

    async fn consume_state(&self, ctx: &Ctx, p: &CallbackParams) -> Result<StateClaims, AuthError> {
        if p.state.is_empty() {
            return Err(ExternalError::StateMissing.into());
        }
        let key = self.state_key(ctx)?;
        let now = self.now();
        let claims = state::verify(&p.state, &key, now.timestamp()).map_err(ExternalError::StateInvalid)?;
        if claims.id != ctx.instance_id.to_string() {
            return Err(ExternalError::StateInvalid("issued for another instance".into()).into());
        }
        if !state::bound_to(&claims, p.binding.as_deref()) {
            return Err(ExternalError::StateInvalid("issued to another browser".into()).into());
        }
        let expires = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
        if !self.flows.use_state(ctx.instance_id, &claims.jti, expires, now).await.context("Database error checking OAuth state")? {
            return Err(ExternalError::StateInvalid("already used".into()).into());
        }
        Ok(claims)
    }

    async fn finish_callback(&self, ctx: &Ctx, p: &CallbackParams, claims: &StateClaims) -> Result<CallbackOutcome, AuthError> {
        if !p.error.is_empty() {
            return Err(ExternalError::Provider { error: p.error.clone(), description: p.error_description.clone() }.into());
        }
        if p.code.is_empty() {
            return Err(ExternalError::CodeMissing.into());
        }
        let name = claims.provider.clone();
        let settings = provider_settings(ctx, &name)?;
        let provider = self.providers.build(&name, &settings).map_err(|e| provider_error(&name, e))?;
        let key = self.state_key(ctx)?;
        let exchange = CodeExchange {
            code: p.code.clone(),
            pkce_verifier: state::provider_pkce_verifier(&key, &claims.jti),
            nonce: state::nonce(&key, &claims.jti),
        };
        let pu = provider.user(&exchange).await.map_err(|e| provider_error(&name, e))?;
        if pu.emails.is_empty() {
            return Err(ExternalError::UserData { cause: "the provider reported no address".into() }.into());
        }
        let with_grant = claims.code_challenge.is_none();
        let signed = match &claims.invite {
            Some(invite) => self.accept_invite(ctx, &name, &pu, invite, with_grant).await?,
            None => self.sign_in_external(ctx, &name, &pu, with_grant).await?,
        };
        let now = self.now();
        match (signed, &claims.code_challenge) {
            (SignedIn::ConfirmationSent, _) => Ok(CallbackOutcome::ConfirmationSent),
            (SignedIn::User(user, _), Some(challenge)) => {
                let code = NewToken::generate();
                let row = AuthCode {
                    instance_id: ctx.instance_id,
                    digest: code.digest.clone(),
                    user_id: user.id,
                    code_challenge: challenge.clone(),
                    created_at: now,
                    expires_at: now + chrono::Duration::seconds(AUTH_CODE_TTL_SECS),
                };
                self.flows.insert_auth_code(&row, now).await.context("Database error granting user")?;
                Ok(CallbackOutcome::Code(code.secret))
            }
            (SignedIn::User(user, Some(grant)), None) => {
                tracing::info!(action = "login", login_method = "external", provider = %name, instance_id = %ctx.instance_id, user_id = %user.id, "Login");
                Ok(CallbackOutcome::Tokens(self.token_response(ctx, &user, grant.secret, grant.session, now)?))
            }
            (SignedIn::User(_, None), None) => Err(AuthError::internal("Database error granting user", "no refresh token was issued")),
        }
    }

    /// EXTERNAL.md 1.4 A, with the invite's age checked and emails compared
    /// case-insensitively.
    async fn accept_invite(
        &self,
        ctx: &Ctx,
        provider: &str,
        pu: &ProviderUser,
        invite: &str,
        with_grant: bool,
    ) -> Result<SignedIn, AuthError> {
        let found = self
            .users
            .find_user_by_token(Some(ctx.instance_id), TokenColumn::Confirmation, invite)
            .await
            .context("Database error finding user")?;
        let mut user = found.ok_or(AuthError::UserNotFound)?;
        let now = self.now();
        if confirmation_expired(ctx, &user, now) {
            return Err(AuthError::ConfirmationTokenExpired);
        }
        let email = pu.email_matching(&user.email).ok_or(ExternalError::InviteEmailMismatch)?.clone();
        let identity = self.identity_for(ctx, provider, pu, &user, &email, now).await?;
        let mut app = Map::new();
        app.insert("provider".into(), Value::String(provider.to_owned()));
        user.merge_app_metadata(app);
        user.merge_user_metadata(pu.user_metadata());
        self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
        let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::InviteAccepted, None, now);
        user.confirm(now);
        let guard = Guard::Token(TokenColumn::Confirmation, invite.to_owned());
        self.write_sign_in(user, &guard, &identity, vec![audit], with_grant, now).await
    }

    /// EXTERNAL.md 1.4 B, with identities first and linking only through verified
    /// addresses.
    async fn sign_in_external(&self, ctx: &Ctx, provider: &str, pu: &ProviderUser, with_grant: bool) -> Result<SignedIn, AuthError> {
        let now = self.now();
        let existing = self.identities.find_identity(ctx.instance_id, provider, &pu.id).await.context("Database error finding identity")?;
        if let Some(mut identity) = existing {
            let user = self.users.find_user_by_id(Some(ctx.instance_id), identity.user_id).await.context("Database error finding user")?;
            if let Some(user) = user {
                identity.refresh(pu, now);
                return self.returning_user(ctx, user, identity, with_grant, now).await;
            }
            // A user deleted by another program left its identity behind: link anew below,
            // reusing the row.
        }
        let aud = ctx.aud(None);
        for email in pu.linkable_emails() {
            let found = self
                .users
                .find_user_by_email(ctx.instance_id, &aud, &crate::domain::email::normalise(&email.address))
                .await
                .context("Database error finding user")?;
            if let Some(user) = found {
                let identity = self.identity_for(ctx, provider, pu, &user, email, now).await?;
                return self.link_verified(ctx, user, identity, with_grant, now).await;
            }
        }
        self.signup_external(ctx, provider, pu, &aud, with_grant, now).await
    }

    /// The identity to write for `user`: the existing row of this provider account when
    /// there is one (refreshed), a new one otherwise.
    async fn identity_for(
        &self,
        ctx: &Ctx,
        provider: &str,
        pu: &ProviderUser,
        user: &User,
        email: &ProviderEmail,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Identity, AuthError> {
        let existing = self.identities.find_identity(ctx.instance_id, provider, &pu.id).await.context("Database error finding identity")?;
        match existing {
            Some(i) if i.user_id != user.id => {
                let owner = self.users.find_user_by_id(Some(ctx.instance_id), i.user_id).await.context("Database error finding user")?;
                if owner.is_some() {
                    return Err(ExternalError::IdentityTaken.into());
                }
                let mut fresh = Identity::new(ctx.instance_id, user.id, provider, pu, email, now);
                fresh.id = i.id;
                fresh.created_at = i.created_at;
                Ok(fresh)
            }
            Some(mut i) => {
                i.refresh(pu, now);
                Ok(i)
            }
            None => Ok(Identity::new(ctx.instance_id, user.id, provider, pu, email, now)),
        }
    }

    /// A user found through its identity.
    async fn returning_user(
        &self,
        ctx: &Ctx,
        mut user: User,
        identity: Identity,
        with_grant: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedIn, AuthError> {
        let mut audit = Vec::new();
        if user.is_confirmed() {
            self.run_hooks(ctx, HookEvent::Login, &mut user).await?;
            audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::Login, None, now));
        } else if identity.email_verified || ctx.config.mailer.autoconfirm {
            self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
            audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now));
            user.confirm(now);
        } else {
            return self.resend_confirmation(ctx, user, &identity, now).await;
        }
        self.write_sign_in(user, &Guard::None, &identity, audit, with_grant, now).await
    }

    /// An existing user whose address the provider says is verified: the provider account
    /// is linked to it.
    async fn link_verified(
        &self,
        ctx: &Ctx,
        mut user: User,
        identity: Identity,
        with_grant: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedIn, AuthError> {
        let mut audit = Vec::new();
        if user.is_confirmed() {
            self.run_hooks(ctx, HookEvent::Login, &mut user).await?;
            audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::Login, None, now));
        } else {
            // The address is proven by the provider, the password of this unconfirmed
            // account is not: whoever signed up with it may not be the address's owner
            // (account pre-hijacking), so it is dropped; the owner can set one by recovery.
            user.encrypted_password.clear();
            self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
            audit.push(AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now));
            user.confirm(now);
        }
        self.write_sign_in(user, &Guard::None, &identity, audit, with_grant, now).await
    }

    /// No identity and no verified address of an existing user: a new account.
    async fn signup_external(
        &self,
        ctx: &Ctx,
        provider: &str,
        pu: &ProviderUser,
        aud: &str,
        with_grant: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedIn, AuthError> {
        ctx.require_signup_enabled()?;
        let email = pu.signup_email().ok_or_else(|| ExternalError::UserData { cause: "no address".into() })?.clone();
        let mut user = User::new(ctx.instance_id, aud, &email.address, String::new(), Some(pu.user_metadata()), now);
        let mut app = Map::new();
        app.insert("provider".into(), Value::String(provider.to_owned()));
        user.app_metadata = Some(app);
        user.role.clone_from(&ctx.config.jwt.default_group_name);
        self.run_hooks(ctx, HookEvent::Validate, &mut user).await?;
        let existing = self.identities.find_identity(ctx.instance_id, provider, &pu.id).await.context("Database error finding identity")?;
        let mut identity = Identity::new(ctx.instance_id, user.id, provider, pu, &email, now);
        if let Some(orphan) = existing {
            identity.id = orphan.id;
        }
        if email.verified || ctx.config.mailer.autoconfirm {
            self.run_hooks(ctx, HookEvent::Signup, &mut user).await?;
            let audit = AuditEntry::new(ctx.instance_id, &Actor::user(&user), AuditAction::UserSignedUp, None, now);
            user.confirm(now);
            user.last_sign_in_at = Some(now);
            let grant = with_grant.then(|| self.new_grant(&user, now));
            let effects = Effects { audit: vec![audit], grant: grant.as_ref().map(|g| g.row.clone()), ..Effects::default() };
            self.insert_external_user(&user, &identity, &effects).await?;
            return Ok(SignedIn::User(Box::new(user), grant));
        }
        // An address the provider does not vouch for: the account waits for the owner of
        // the address to confirm it, as upstream does without autoconfirm.
        let token = NewToken::generate();
        user.confirmation_token.clone_from(&token.digest);
        user.confirmation_sent_at = Some(now);
        self.insert_external_user(&user, &identity, &Effects::default()).await?;
        if let Err(e) = self.send_mail(ctx, MailKind::Confirmation, &user, &user.email, &token.secret).await {
            let guard = Guard::Token(TokenColumn::Confirmation, token.digest);
            if let Err(undo) = self.users.delete_user(&user, &guard, &Effects::default()).await {
                tracing::error!(error = %undo, "could not remove user after failed confirmation mail");
            }
            return Err(AuthError::internal("Error sending confirmation mail", e));
        }
        Ok(SignedIn::ConfirmationSent)
    }

    async fn insert_external_user(&self, user: &User, identity: &Identity, effects: &Effects) -> Result<(), AuthError> {
        match self.identities.insert_user_with_identity(user, identity, effects).await {
            Ok(()) => Ok(()),
            // The address belongs to an account the provider does not prove it owns.
            Err(StoreError::EmailTaken) => Err(AuthError::AlreadyRegistered),
            Err(StoreError::Conflict) => Err(ExternalError::IdentityTaken.into()),
            Err(e) => Err(AuthError::internal("Database error saving new user", e)),
        }
    }

    /// An unconfirmed account whose address the provider still does not vouch for: the
    /// confirmation mail again (at most every `SMTP_MAX_FREQUENCY`), no tokens.
    async fn resend_confirmation(
        &self,
        ctx: &Ctx,
        mut user: User,
        identity: &Identity,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedIn, AuthError> {
        let throttle = Ctx::dur(ctx.config.smtp.max_frequency);
        if User::sent_within(user.confirmation_sent_at, throttle, now) {
            self.identities
                .update_user_with_identity(&user, &Guard::None, identity, &Effects::default())
                .await
                .context("Database error updating user")?;
            return Ok(SignedIn::ConfirmationSent);
        }
        let token = NewToken::generate();
        user.confirmation_token.clone_from(&token.digest);
        user.confirmation_sent_at = Some(now);
        user.updated_at = now;
        self.identities
            .update_user_with_identity(&user, &Guard::None, identity, &Effects::default())
            .await
            .context("Database error updating user")?;
        self.send_mail(ctx, MailKind::Confirmation, &user, &user.email, &token.secret)
            .await
            .map_err(|e| AuthError::internal("Error sending confirmation mail", e))?;
        Ok(SignedIn::ConfirmationSent)
    }

    /// Writes the signed-in user, its identity, the audit entries and (unless an
    /// authorization code is handed out instead) a refresh token, in one transaction.
    async fn write_sign_in(
        &self,
        mut user: User,
        guard: &Guard,
        identity: &Identity,
        audit: Vec<AuditEntry>,
        with_grant: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SignedIn, AuthError> {
        user.last_sign_in_at = Some(now);
        user.updated_at = now;
        let grant = with_grant.then(|| self.new_grant(&user, now));
        let effects = Effects { audit, grant: grant.as_ref().map(|g| g.row.clone()), ..Effects::default() };
        match self.identities.update_user_with_identity(&user, guard, identity, &effects).await {
            Ok(()) => Ok(SignedIn::User(Box::new(user), grant)),
            // The invite was used a moment earlier (single use), or the account vanished.
            Err(StoreError::Conflict) if *guard != Guard::None => Err(AuthError::UserNotFound),
            Err(StoreError::Conflict) => Err(ExternalError::IdentityTaken.into()),
            Err(e) => Err(AuthError::internal("Database error granting user", e)),
        }
    }

    /// `POST /token` with `grant_type=authorization_code`: redeems a code handed out by
    /// `/callback` against the client's PKCE verifier (RFC 7636 4.6).
    ///
    /// # Errors
    /// [`ExternalError::CodeRequired`], [`ExternalError::InvalidCode`],
    /// [`ExternalError::CodeExpired`], [`ExternalError::VerifierMismatch`], internal errors.
    pub async fn authorization_code_grant(&self, ctx: &Ctx, code: &str, code_verifier: &str) -> Result<TokenResponse, AuthError> {
        if code.trim().is_empty() || code_verifier.is_empty() {
            return Err(ExternalError::CodeRequired.into());
        }
        // Taken before anything is checked: a code is gone after one attempt, right or wrong.
        let taken = self.flows.take_auth_code(&digest(code)).await.context("Database error finding authorization code")?;
        let Some(row) = taken.filter(|c| c.instance_id == ctx.instance_id) else {
            return Err(ExternalError::InvalidCode.into());
        };
        let now = self.now();
        if row.expires_at < now {
            return Err(ExternalError::CodeExpired.into());
        }
        if !state::pkce_matches(code_verifier, &row.code_challenge) {
            return Err(ExternalError::VerifierMismatch.into());
        }
        let user = self.users.find_user_by_id(Some(ctx.instance_id), row.user_id).await.context("Database error finding user")?;
        let user = user.ok_or(ExternalError::InvalidCode)?;
        let grant = self.new_grant(&user, now);
        self.tokens.grant_refresh_token(&grant.row, &[]).await.context("Database error granting user")?;
        tracing::info!(action = "login", login_method = "authorization_code", instance_id = %ctx.instance_id, user_id = %user.id, "Login");
        self.token_response(ctx, &user, grant.secret, grant.session, now)
    }
}
