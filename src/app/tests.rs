//! Unit tests of the use-case rules (API.md 4.3-4.10): mockall mocks of every port and a
//! clock stopped at [`now`].
//!
//! Each test states what the use case answers and what it asked of the ports; a port
//! method without an expectation panics when called, `.never()` marks the calls that
//! matter for the rule under test.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::app::config::{Config, Env};
use crate::app::error::AuthError;
use crate::app::jwt;
use crate::app::service::{Ctx, Ports, Service, TokenResponse};
use crate::app::signup::SignupParams;
use crate::app::user::{Caller, UserUpdateParams};
use crate::app::verify::VerifyParams;
use crate::domain::audit::AuditEntry;
use crate::domain::token::digest;
use crate::domain::user::User;
use crate::ports::clock::MockClock;
use crate::ports::hasher::{MockPasswordHasher, Verified};
use crate::ports::hooks::MockHookSender;
use crate::ports::mail::{Mail, MailError, MailKind, MockMailer};
use crate::ports::tokens::{MockTokenStore, NewRefreshToken, RefreshToken};
use crate::ports::users::{Effects, Guard, MockUserStore, StoreError, TokenColumn};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

const SITE: &str = "https://example.netlify.com";
const AUD: &str = "api.netlify.com";
const SECRET: &str = "testsecret";
const GROUP: &str = "member";
const EMAIL: &str = "a@example.com";
const PASSWORD: &str = "correct horse";
const STORED_HASH: &str = "$argon2id$v=19$stored";
const NEW_HASH: &str = "$argon2id$v=19$new";

/// The fixed time every mocked clock returns.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

/// The request's tenant (not nil, so that "another instance" means something).
fn instance() -> Uuid {
    Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
}

fn other_instance() -> Uuid {
    Uuid::from_u128(0xdead_beef)
}

/// A request context whose configuration comes from the environment pairs, over the
/// defaults every test shares.
fn ctx_with(extra: &[(&str, &str)]) -> Ctx {
    let mut pairs =
        vec![("GOTRUE_JWT_SECRET", SECRET), ("GOTRUE_JWT_AUD", AUD), ("GOTRUE_SITE_URL", SITE), ("GOTRUE_JWT_DEFAULT_GROUP_NAME", GROUP)];
    pairs.extend_from_slice(extra);
    let config = Config::from_env(&Env::from_pairs(pairs)).expect("test configuration");
    Ctx::new(instance(), Arc::new(config.instance))
}

fn ctx() -> Ctx {
    ctx_with(&[])
}

/// The port mocks; [`Mocks::service`] adds the stopped clock.
struct Mocks {
    users: MockUserStore,
    tokens: MockTokenStore,
    mailer: MockMailer,
    hasher: MockPasswordHasher,
    /// Without `GOTRUE_WEBHOOK_URL` no hook is ever sent: any call panics.
    hooks: MockHookSender,
}

impl Mocks {
    fn new() -> Self {
        Self {
            users: MockUserStore::new(),
            tokens: MockTokenStore::new(),
            mailer: MockMailer::new(),
            hasher: MockPasswordHasher::new(),
            hooks: MockHookSender::new(),
        }
    }

    fn service(self) -> Service {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        Service::new(Ports {
            users: Arc::new(self.users),
            tokens: Arc::new(self.tokens),
            audit: Arc::new(crate::ports::audit::MockAuditStore::new()),
            mailer: Arc::new(self.mailer),
            hasher: Arc::new(self.hasher),
            clock: Arc::new(clock),
            hooks: Arc::new(self.hooks),
            providers: Arc::new(crate::ports::external::MockProviderRegistry::new()),
            identities: Arc::new(crate::ports::identities::MockIdentityStore::new()),
            flows: Arc::new(crate::ports::flows::MockFlowStore::new()),
        })
    }

    /// `find_user_by_email(instance, AUD, key)` answers `user`, once.
    fn user_by_email(&mut self, key: &'static str, user: Option<User>) {
        self.users
            .expect_find_user_by_email()
            .withf(move |i, aud, k| *i == instance() && aud == AUD && k == key)
            .times(1)
            .returning(move |_, _, _| Ok(user.clone()));
    }

    /// `find_user_by_id(Some(instance), id)` answers `user`, once.
    fn user_by_id(&mut self, id: Uuid, user: Option<User>) {
        self.users
            .expect_find_user_by_id()
            .withf(move |i, uid| *i == Some(instance()) && *uid == id)
            .times(1)
            .returning(move |_, _| Ok(user.clone()));
    }

    /// `find_user_by_token(Some(instance), column, digest(token))` answers `user`, once.
    fn user_by_token(&mut self, column: TokenColumn, token: &str, user: Option<User>) {
        let d = digest(token);
        self.users
            .expect_find_user_by_token()
            .withf(move |i, c, dg| *i == Some(instance()) && *c == column && dg == d)
            .times(1)
            .returning(move |_, _, _| Ok(user.clone()));
    }

    /// `hasher.verify(password, STORED_HASH)` answers `v`, once.
    fn verify_answers(&mut self, password: &'static str, v: Verified) {
        self.hasher
            .expect_verify()
            .withf(move |p, h| p.expose_secret() == password && h == STORED_HASH)
            .times(1)
            .returning(move |_, _| Ok(v));
    }

    /// `hasher.hash(password)` answers [`NEW_HASH`], once.
    fn hash_answers(&mut self, password: &'static str) {
        self.hasher.expect_hash().withf(move |p| p.expose_secret() == password).times(1).returning(|_| Ok(NEW_HASH.to_owned()));
    }

    /// Every `update_user` call is recorded and succeeds; exactly `n` are expected.
    fn record_updates(&mut self, n: usize) -> Recorder<(User, Guard, Effects)> {
        let rec = Recorder::new();
        let r = rec.clone();
        self.users.expect_update_user().times(n).returning(move |u, g, e| {
            r.push((u.clone(), g.clone(), e.clone()));
            Ok(())
        });
        rec
    }

    /// Every `record_login` call is recorded and succeeds; exactly `n` are expected.
    fn record_logins(&mut self, n: usize) -> Recorder<(User, Guard, Effects)> {
        let rec = Recorder::new();
        let r = rec.clone();
        self.users.expect_record_login().times(n).returning(move |u, e| {
            r.push((u.clone(), Guard::None, e.clone()));
            Ok(())
        });
        rec
    }

    /// Every mail is recorded and answered by `ok`; exactly one is expected.
    fn record_mail(&mut self, ok: bool) -> Recorder<Mail> {
        let rec = Recorder::new();
        let r = rec.clone();
        self.mailer.expect_send().times(1).returning(move |m| {
            r.push(m.clone());
            if ok {
                Ok(())
            } else {
                Err(MailError("connection refused".into()))
            }
        });
        rec
    }

    fn no_writes(&mut self) {
        self.users.expect_insert_user().never();
        self.users.expect_update_user().never();
        self.users.expect_delete_user().never();
        self.mailer.expect_send().never();
    }
}

/// Arguments the mocks received, for assertions after the call.
#[derive(Clone)]
struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Recorder<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Vec::new())))
    }

    fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }

    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    fn one(&self) -> T {
        let all = self.all();
        assert_eq!(all.len(), 1, "expected exactly one recorded call");
        all.into_iter().next().unwrap()
    }
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("a JSON object")
}

/// An account as the store returns it: unconfirmed, with a password, created 10 days ago.
fn stored_user() -> User {
    let mut u = User::new(
        instance(),
        AUD,
        EMAIL,
        STORED_HASH.to_owned(),
        Some(obj(json!({"full_name": "Ann", "a": 1}))),
        now() - Duration::days(10),
    );
    u.role = GROUP.to_owned();
    u
}

fn confirmed_user() -> User {
    let mut u = stored_user();
    u.confirmed_at = Some(now() - Duration::days(9));
    u
}

/// The token in a mail link `SITE/#<key>=<token>`, checked to be 22 base64url characters.
fn token_in_link(url: &str, key: &str) -> String {
    let prefix = format!("{SITE}/#{key}=");
    let token = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("link {url:?} does not start with {prefix:?}"));
    assert_eq!(token.len(), 22, "token {token:?}");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    token.to_owned()
}

fn actions(entries: &[AuditEntry]) -> Vec<String> {
    entries.iter().map(|e| e.payload["action"].as_str().unwrap_or_default().to_owned()).collect()
}

fn verified(matches: bool, needs_rehash: bool) -> Verified {
    Verified { matches, needs_rehash }
}

/// The refresh-token row handed out as the grant matches the secret in the response.
fn assert_grant(row: &NewRefreshToken, user: &User, resp: &TokenResponse) {
    assert_eq!(row.user_id, user.id);
    assert_eq!(row.instance_id, user.instance_id);
    assert_eq!(row.created_at, now());
    assert_eq!(row.token, digest(&resp.refresh_token));
    assert_eq!(resp.refresh_token.len(), 22);
    assert_eq!(resp.token_type, "bearer");
    assert_eq!(resp.expires_in, 3600);
    let claims = access_claims(&resp.access_token);
    assert_eq!(claims["sub"], json!(user.id.to_string()));
    assert_eq!(claims["aud"], json!(user.aud));
    assert_eq!(claims["email"], json!(user.email));
    assert_eq!(claims["exp"], json!(now().timestamp() + 3600));
}

/// The claims of an access token signed with [`SECRET`]. `exp` is not validated:
/// `jsonwebtoken` would compare it with the wall clock, not with [`now`].
fn access_claims(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).expect("access token signed with the instance secret");
    assert_eq!(data.header.kid.as_deref(), Some(jwt::KID));
    data.claims
}

// ---------------------------------------------------------------------------------------
// POST /signup (API.md 4.3)
// ---------------------------------------------------------------------------------------

fn signup_params(email: &str, password: &str, data: Option<Value>) -> SignupParams {
    SignupParams { email: email.to_owned(), password: secret(password), data: data.map(obj) }
}

#[tokio::test]
async fn signup_new_user_is_stored_unconfirmed_and_mailed_a_confirmation_link() {
    let mut m = Mocks::new();
    m.user_by_email("ann@example.com", None);
    m.hash_answers(PASSWORD);
    let inserted = Recorder::new();
    let r = inserted.clone();
    m.users.expect_insert_user().times(1).returning(move |u, e| {
        r.push((u.clone(), e.clone()));
        Ok(())
    });
    let mails = m.record_mail(true);
    m.users.expect_delete_user().never();
    let svc = m.service();

    let user = svc.signup(&ctx(), signup_params("Ann@Example.com", PASSWORD, Some(json!({"full_name": "Ann"})))).await.unwrap();

    let (stored, effects) = inserted.one();
    assert_eq!(user, stored);
    assert_eq!(stored.instance_id, instance());
    assert_eq!(stored.aud, AUD);
    assert_eq!(stored.email, "Ann@Example.com", "the address keeps its case");
    assert_eq!(stored.encrypted_password, NEW_HASH);
    assert_eq!(stored.role, GROUP);
    assert_eq!(stored.app_metadata, Some(obj(json!({"provider": "email"}))));
    assert_eq!(stored.user_metadata, Some(obj(json!({"full_name": "Ann"}))));
    assert_eq!(stored.confirmed_at, None);
    assert_eq!(stored.confirmation_sent_at, Some(now()));
    assert_eq!(stored.created_at, now());
    assert_eq!(effects, Effects::default(), "no audit entry before confirmation");

    let mail = mails.one();
    assert_eq!(mail.kind, MailKind::Confirmation);
    assert_eq!(mail.to, "Ann@Example.com");
    assert_eq!(mail.site_url, SITE);
    let token = token_in_link(&mail.confirmation_url, "confirmation_token");
    assert_eq!(mail.token, token);
    assert_eq!(stored.confirmation_token, digest(&token));
}

#[tokio::test]
async fn signup_mail_failure_deletes_the_new_user_guarded_by_its_token() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, None);
    m.hash_answers(PASSWORD);
    let inserted = Recorder::new();
    let r = inserted.clone();
    m.users.expect_insert_user().times(1).returning(move |u, _| {
        r.push(u.clone());
        Ok(())
    });
    let mails = m.record_mail(false);
    let deleted = Recorder::new();
    let d = deleted.clone();
    m.users.expect_delete_user().times(1).returning(move |u, g, e| {
        d.push((u.clone(), g.clone(), e.clone()));
        Ok(())
    });
    let svc = m.service();

    let err = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap_err();

    assert!(matches!(err, AuthError::Internal { msg: "Error sending confirmation mail", .. }), "{err:?}");
    let token = token_in_link(&mails.one().confirmation_url, "confirmation_token");
    let (user, guard, effects) = deleted.one();
    assert_eq!(user.id, inserted.one().id);
    assert_eq!(guard, Guard::Token(TokenColumn::Confirmation, digest(&token)));
    assert_eq!(effects, Effects::default());
}

#[tokio::test]
async fn signup_with_autoconfirm_confirms_audits_and_sends_no_mail() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, None);
    m.hash_answers(PASSWORD);
    let inserted = Recorder::new();
    let r = inserted.clone();
    m.users.expect_insert_user().times(1).returning(move |u, e| {
        r.push((u.clone(), e.clone()));
        Ok(())
    });
    m.mailer.expect_send().never();
    let svc = m.service();

    let user = svc.signup(&ctx_with(&[("GOTRUE_MAILER_AUTOCONFIRM", "true")]), signup_params(EMAIL, PASSWORD, None)).await.unwrap();

    let (stored, effects) = inserted.one();
    assert_eq!(user, stored);
    assert_eq!(stored.confirmed_at, Some(now()));
    assert_eq!(stored.confirmation_token, "");
    assert_eq!(stored.confirmation_sent_at, None);
    assert_eq!(actions(&effects.audit), ["user_signedup"]);
    let entry = &effects.audit[0];
    assert_eq!(entry.instance_id, instance());
    assert_eq!(entry.created_at, now());
    assert_eq!(entry.payload["actor_id"], json!(stored.id.to_string()));
    assert_eq!(entry.payload["log_type"], json!("team"));
    assert_eq!(effects.grant, None);
}

#[tokio::test]
async fn signup_of_a_confirmed_address_is_refused_after_a_dummy_verification() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(confirmed_user()));
    m.hasher.expect_verify_dummy().withf(|p| p.expose_secret() == PASSWORD).times(1).returning(|_| ());
    m.hasher.expect_verify().never();
    m.hasher.expect_hash().never();
    m.no_writes();
    let svc = m.service();

    let err = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap_err();

    assert!(matches!(err, AuthError::AlreadyRegistered), "{err:?}");
}

#[tokio::test]
async fn signup_again_within_max_frequency_sends_nothing_and_keeps_the_token() {
    let mut existing = stored_user();
    existing.confirmation_token = digest("old-token");
    existing.confirmation_sent_at = Some(now() - Duration::minutes(5));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(existing.clone()));
    m.verify_answers(PASSWORD, verified(true, false));
    m.hasher.expect_verify_dummy().never();
    m.no_writes();
    let svc = m.service();

    let user = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap();

    assert_eq!(user.confirmation_token, digest("old-token"));
    assert_eq!(user.confirmation_sent_at, existing.confirmation_sent_at);
    assert_eq!(user, existing);
}

#[tokio::test]
async fn signup_again_after_max_frequency_stores_a_new_token_and_mails_it() {
    let mut existing = stored_user();
    existing.confirmation_token = digest("old-token");
    existing.confirmation_sent_at = Some(now() - Duration::minutes(20));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(existing.clone()));
    m.verify_answers(PASSWORD, verified(true, false));
    m.hasher.expect_verify_dummy().never();
    let updates = m.record_updates(1);
    let mails = m.record_mail(true);
    let svc = m.service();

    let user = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(user, stored);
    assert_eq!(guard, Guard::None);
    assert_eq!(effects, Effects::default());
    assert_eq!(stored.confirmation_sent_at, Some(now()));
    assert_eq!(stored.user_metadata, existing.user_metadata);
    let mail = mails.one();
    assert_eq!(mail.kind, MailKind::Confirmation);
    assert_eq!(mail.to, EMAIL);
    let token = token_in_link(&mail.confirmation_url, "confirmation_token");
    assert_eq!(stored.confirmation_token, digest(&token));
    assert_ne!(stored.confirmation_token, digest("old-token"));
}

#[tokio::test]
async fn signup_again_with_a_wrong_password_does_not_merge_data() {
    let mut existing = stored_user();
    existing.confirmation_sent_at = Some(now() - Duration::hours(2));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(existing.clone()));
    m.verify_answers("attacker", verified(false, false));
    // How much dummy work follows a failed verification is pinned by
    // `signup_again_with_a_wrong_password_verifies_only_once`.
    m.hasher.expect_verify_dummy().times(0..=1).returning(|_| ());
    let updates = m.record_updates(1);
    let _mails = m.record_mail(true);
    let svc = m.service();

    let user = svc.signup(&ctx(), signup_params(EMAIL, "attacker", Some(json!({"full_name": "Mallory"})))).await.unwrap();

    let (stored, _, _) = updates.one();
    assert_eq!(stored.user_metadata, existing.user_metadata);
    assert_eq!(user.user_metadata, existing.user_metadata);
    assert_eq!(stored.encrypted_password, STORED_HASH);
}

/// One hash verification per re-signup whatever the password, like every other signup
/// path: `signup_again` runs `verify_dummy` after a failed `verify`, so an unconfirmed
/// account answers a stranger in twice the time a new address takes.
#[tokio::test]
async fn signup_again_with_a_wrong_password_verifies_only_once() {
    let mut existing = stored_user();
    existing.confirmation_sent_at = Some(now() - Duration::minutes(5));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(existing));
    m.verify_answers("attacker", verified(false, false));
    m.hasher.expect_verify_dummy().never();
    m.hasher.expect_hash().never();
    m.no_writes();
    let svc = m.service();

    svc.signup(&ctx(), signup_params(EMAIL, "attacker", None)).await.unwrap();
}

#[tokio::test]
async fn signup_again_with_the_right_password_merges_data() {
    let mut existing = stored_user();
    existing.confirmation_sent_at = Some(now() - Duration::minutes(5));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(existing.clone()));
    m.verify_answers(PASSWORD, verified(true, false));
    m.hasher.expect_verify_dummy().never();
    let updates = m.record_updates(1);
    m.mailer.expect_send().never();
    let svc = m.service();

    let user = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, Some(json!({"a": null, "b": 2})))).await.unwrap();

    let (stored, guard, _) = updates.one();
    assert_eq!(guard, Guard::None);
    assert_eq!(stored.user_metadata, Some(obj(json!({"full_name": "Ann", "b": 2}))));
    assert_eq!(stored.updated_at, now());
    assert_eq!(stored.confirmation_token, existing.confirmation_token);
    assert_eq!(user, stored);
}

/// Runs a signup that must be refused before any lookup, hashing or write.
async fn refused_signup(ctx: &Ctx, params: SignupParams) -> AuthError {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_email().never();
    m.hasher.expect_hash().never();
    m.hasher.expect_verify_dummy().never();
    m.no_writes();
    m.service().signup(ctx, params).await.unwrap_err()
}

#[tokio::test]
async fn signup_with_an_empty_password_is_refused() {
    let err = refused_signup(&ctx(), signup_params(EMAIL, "", None)).await;
    assert!(matches!(err, AuthError::PasswordRequired), "{err:?}");
}

#[tokio::test]
async fn signup_with_an_invalid_email_is_refused() {
    let err = refused_signup(&ctx(), signup_params("not-an-address", PASSWORD, None)).await;
    assert!(matches!(err, AuthError::Email(_)), "{err:?}");
}

#[tokio::test]
async fn signup_when_signups_are_disabled_is_refused() {
    let err = refused_signup(&ctx_with(&[("GOTRUE_DISABLE_SIGNUP", "true")]), signup_params(EMAIL, PASSWORD, None)).await;
    assert!(matches!(err, AuthError::SignupDisabled), "{err:?}");
}

#[tokio::test]
async fn signup_when_the_email_provider_is_disabled_is_refused() {
    let err = refused_signup(&ctx_with(&[("GOTRUE_EXTERNAL_EMAIL_DISABLED", "true")]), signup_params(EMAIL, PASSWORD, None)).await;
    assert!(matches!(err, AuthError::EmailProviderDisabled), "{err:?}");
}

#[tokio::test]
async fn signup_losing_the_insert_race_is_already_registered() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, None);
    m.hash_answers(PASSWORD);
    m.users.expect_insert_user().times(1).returning(|_, _| Err(StoreError::EmailTaken));
    m.mailer.expect_send().never();
    m.users.expect_delete_user().never();
    let svc = m.service();

    let err = svc.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap_err();

    assert!(matches!(err, AuthError::AlreadyRegistered), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// POST /token, password grant (API.md 4.4.1)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn password_grant_unknown_user_is_bad_credentials_after_a_dummy_verification() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, None);
    m.hasher.expect_verify_dummy().withf(|p| p.expose_secret() == PASSWORD).times(1).returning(|_| ());
    m.hasher.expect_verify().never();
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.password_grant(&ctx(), " A@Example.com", secret(PASSWORD)).await.unwrap_err();

    assert!(matches!(err, AuthError::BadCredentials), "{err:?}");
}

#[tokio::test]
async fn password_grant_checks_the_password_before_confirmation() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(stored_user()));
    m.verify_answers("wrong", verified(false, false));
    m.hasher.expect_verify_dummy().never();
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.password_grant(&ctx(), EMAIL, secret("wrong")).await.unwrap_err();

    assert!(matches!(err, AuthError::BadCredentials), "{err:?}");
}

#[tokio::test]
async fn password_grant_right_password_of_unconfirmed_user_is_email_not_confirmed() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(stored_user()));
    m.verify_answers(PASSWORD, verified(true, true));
    m.hasher.expect_hash().never();
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.password_grant(&ctx(), EMAIL, secret(PASSWORD)).await.unwrap_err();

    assert!(matches!(err, AuthError::EmailNotConfirmed), "{err:?}");
}

#[tokio::test]
async fn password_grant_success_records_login_and_grants_a_refresh_token() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(user.clone()));
    m.verify_answers(PASSWORD, verified(true, false));
    m.hasher.expect_hash().never();
    let updates = m.record_logins(1);
    m.users.expect_update_user().never();
    let svc = m.service();

    let resp = svc.password_grant(&ctx(), EMAIL, secret(PASSWORD)).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::None);
    assert_eq!(stored.id, user.id);
    assert_eq!(stored.last_sign_in_at, Some(now()));
    assert_eq!(stored.encrypted_password, STORED_HASH);
    assert_eq!(actions(&effects.audit), ["login"]);
    assert_eq!(effects.audit[0].instance_id, instance());
    assert_eq!(effects.audit[0].payload["actor_id"], json!(user.id.to_string()));
    assert!(!effects.revoke_sessions);
    let grant = effects.grant.expect("a refresh token is granted");
    assert_grant(&grant, &user, &resp);
}

#[tokio::test]
async fn password_grant_ends_a_pending_recovery() {
    let mut user = confirmed_user();
    user.recovery_token = "h1:pending".into();
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(user));
    m.verify_answers(PASSWORD, verified(true, false));
    let updates = m.record_logins(1);
    m.users.expect_update_user().never();
    let svc = m.service();

    svc.password_grant(&ctx(), EMAIL, secret(PASSWORD)).await.unwrap();

    let (stored, _, _) = updates.one();
    assert_eq!(stored.recovery_token, "");
}

#[tokio::test]
async fn password_grant_rehashes_an_outdated_hash() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(confirmed_user()));
    m.verify_answers(PASSWORD, verified(true, true));
    m.hash_answers(PASSWORD);
    let updates = m.record_logins(1);
    m.users.expect_update_user().never();
    let svc = m.service();

    svc.password_grant(&ctx(), EMAIL, secret(PASSWORD)).await.unwrap();

    let (stored, _, _) = updates.one();
    assert_eq!(stored.encrypted_password, NEW_HASH);
}

#[tokio::test]
async fn password_grant_user_without_a_stored_hash_never_logs_in() {
    let mut user = confirmed_user();
    user.encrypted_password = String::new();
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(user));
    m.hasher.expect_verify().never();
    m.hasher.expect_verify_dummy().times(1).returning(|_| ());
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.password_grant(&ctx(), EMAIL, secret(PASSWORD)).await.unwrap_err();

    assert!(matches!(err, AuthError::BadCredentials), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// POST /token, refresh-token grant (API.md 4.4.2)
// ---------------------------------------------------------------------------------------

const RT: &str = "presented-refresh-token";

/// A token row as upstream wrote it: no session.
fn refresh_row(user: &User, age: Duration, revoked: bool) -> RefreshToken {
    RefreshToken {
        instance_id: user.instance_id,
        id: 7,
        token: digest(RT),
        user_id: user.id,
        revoked,
        created_at: now() - age,
        updated_at: Some(now() - age),
        session_id: None,
        session_started_at: None,
        sealed: None,
    }
}

/// The session of the rows [`session_row`] builds.
fn session() -> Uuid {
    Uuid::from_u128(0x5e55_1011)
}

/// A token of [`session`], which started a day ago; issued `age` ago and, when `rotated`,
/// rotated out `rotated` ago.
fn session_row(user: &User, age: Duration, rotated: Option<Duration>) -> RefreshToken {
    RefreshToken {
        revoked: rotated.is_some(),
        updated_at: Some(now() - rotated.unwrap_or(age)),
        session_id: Some(session()),
        session_started_at: Some(now() - Duration::days(1)),
        ..refresh_row(user, age, false)
    }
}

/// The session's current token, whose secret is `secret`, sealed with [`SECRET`].
fn current_row(user: &User, secret: &str) -> RefreshToken {
    RefreshToken {
        id: 8,
        token: digest(secret),
        sealed: crate::domain::session::seal(SECRET.as_bytes(), session(), secret),
        ..session_row(user, Duration::seconds(3), None)
    }
}

impl Mocks {
    /// `find_refresh_session(digest(RT))` answers `row` with `user`, once.
    fn refresh_session(&mut self, row: Option<RefreshToken>, user: Option<User>) {
        self.tokens
            .expect_find_refresh_session()
            .withf(|d| d == digest(RT))
            .times(1)
            .returning(move |_| Ok(row.clone().map(|r| (r, user.clone()))));
    }
}

#[tokio::test]
async fn refresh_grant_blank_token_is_required() {
    let mut m = Mocks::new();
    m.tokens.expect_find_refresh_session().never();
    let svc = m.service();
    for blank in ["", "   "] {
        let err = svc.refresh_grant(&ctx(), blank).await.unwrap_err();
        assert!(matches!(err, AuthError::RefreshTokenRequired), "{err:?}");
    }
}

#[tokio::test]
async fn refresh_grant_unknown_token_is_invalid() {
    let mut m = Mocks::new();
    m.refresh_session(None, None);
    m.users.expect_find_user_by_id().never();
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: false }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_token_of_another_instance_is_invalid() {
    let mut foreign = confirmed_user();
    foreign.instance_id = other_instance();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&foreign, Duration::hours(1), false)), Some(foreign.clone()));
    m.users.expect_find_user_by_id().never();
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: false }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_of_a_user_unconfirmed_since_the_login_is_invalid() {
    let mut user = confirmed_user();
    user.confirmed_at = None;
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::hours(1), false)), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: false }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_naming_another_audience_is_invalid() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::hours(1), false)), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();
    let mut other = ctx();
    other.aud_header = Some(format!("{}-other", user.aud));

    let err = svc.refresh_grant(&other, RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: false }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_revoked_upstream_token_is_invalid_and_clears_the_cookie() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::hours(1), true)), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_token_older_than_the_default_lifetime_is_expired() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::days(31), false)), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::RefreshTokenExpired), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_losing_a_concurrent_rotation_is_invalid() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::hours(1), false)), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().times(1).returning(|_, _, _| Err(StoreError::Conflict));
    m.tokens.expect_find_refresh_token().times(1).returning(|_| Ok(None));
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { .. }), "{err:?}");
}

/// The claims of the access token in `resp`, checking the refresh token is `expected`.
fn assert_current_token(resp: &TokenResponse, user: &User, expected: &str) {
    assert_eq!(resp.refresh_token, expected);
    let claims = access_claims(&resp.access_token);
    assert_eq!(claims["sub"], json!(user.id.to_string()));
    assert_eq!(claims["session_id"], json!(session().to_string()));
    assert_eq!(claims["exp"], json!(now().timestamp() + 3600));
}

#[tokio::test]
async fn refresh_grant_rotated_token_within_the_window_gets_the_current_token_without_a_write() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(session_row(&user, Duration::minutes(5), Some(Duration::seconds(10)))), Some(user.clone()));
    let current = current_row(&user, "the-winners-token");
    m.tokens.expect_current_session_token().withf(|s| *s == session()).times(1).returning(move |_| Ok(Some(current.clone())));
    m.tokens.expect_rotate_refresh_token().never();
    m.tokens.expect_revoke_session().never();
    let svc = m.service();

    let resp = svc.refresh_grant(&ctx(), RT).await.unwrap();

    assert_current_token(&resp, &user, "the-winners-token");
}

#[tokio::test]
async fn refresh_grant_rotated_token_after_the_window_revokes_the_session() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(session_row(&user, Duration::minutes(5), Some(Duration::seconds(11)))), Some(user.clone()));
    m.tokens.expect_current_session_token().never();
    m.tokens.expect_rotate_refresh_token().never();
    let revoked = Recorder::new();
    let r = revoked.clone();
    m.tokens.expect_revoke_session().times(1).returning(move |s, a| {
        r.push((s, a.to_vec()));
        Ok(())
    });
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{err:?}");
    let (sid, audit) = revoked.one();
    assert_eq!(sid, session());
    assert_eq!(actions(&audit), ["token_revoked"]);
    assert_eq!(audit[0].payload["traits"]["reason"], json!("refresh_token_reused"));
    assert_eq!(audit[0].payload["traits"]["session_id"], json!(session().to_string()));
}

#[tokio::test]
async fn refresh_grant_with_interval_zero_revokes_the_session_at_once() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(session_row(&user, Duration::minutes(5), Some(Duration::zero()))), Some(user.clone()));
    m.tokens.expect_current_session_token().never();
    m.tokens.expect_revoke_session().withf(|s, _| *s == session()).times(1).returning(|_, _| Ok(()));
    let svc = m.service();

    let err = svc.refresh_grant(&ctx_with(&[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_sealed_token_that_does_not_open_is_as_outside_the_window() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(session_row(&user, Duration::minutes(5), Some(Duration::seconds(1)))), Some(user.clone()));
    let mut current = current_row(&user, "x");
    current.sealed = crate::domain::session::seal(b"an older JWT secret", session(), "x");
    m.tokens.expect_current_session_token().times(1).returning(move |_| Ok(Some(current.clone())));
    m.tokens.expect_revoke_session().withf(|s, _| *s == session()).times(1).returning(|_, _| Ok(()));
    let svc = m.service();

    let err = svc.refresh_grant(&ctx(), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_losing_a_race_within_the_window_gets_the_winners_token() {
    let user = confirmed_user();
    let row = session_row(&user, Duration::minutes(5), None);
    let mut m = Mocks::new();
    m.refresh_session(Some(row.clone()), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().times(1).returning(|_, _, _| Err(StoreError::Conflict));
    let reread = RefreshToken { revoked: true, updated_at: Some(now()), ..row };
    m.tokens.expect_find_refresh_token().withf(|d| d == digest(RT)).times(1).returning(move |_| Ok(Some(reread.clone())));
    let current = current_row(&user, "the-winners-token");
    m.tokens.expect_current_session_token().times(1).returning(move |_| Ok(Some(current.clone())));
    m.tokens.expect_revoke_session().never();
    let svc = m.service();

    let resp = svc.refresh_grant(&ctx(), RT).await.unwrap();

    assert_current_token(&resp, &user, "the-winners-token");
}

#[tokio::test]
async fn refresh_grant_losing_a_race_with_interval_zero_is_refused_without_revoking() {
    let user = confirmed_user();
    let row = session_row(&user, Duration::minutes(5), None);
    let mut m = Mocks::new();
    m.refresh_session(Some(row.clone()), Some(user.clone()));
    m.tokens.expect_rotate_refresh_token().times(1).returning(|_, _, _| Err(StoreError::Conflict));
    let reread = RefreshToken { revoked: true, updated_at: Some(now()), ..row };
    m.tokens.expect_find_refresh_token().times(1).returning(move |_| Ok(Some(reread.clone())));
    m.tokens.expect_revoke_session().never();
    let svc = m.service();

    let err = svc.refresh_grant(&ctx_with(&[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]), RT).await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{err:?}");
}

#[tokio::test]
async fn refresh_grant_past_the_timebox_or_idle_timeout_revokes_the_session() {
    let user = confirmed_user();
    // The session started a day ago; the token was issued 2 hours ago.
    for (var, value, expired) in [
        ("GOTRUE_SESSIONS_TIMEBOX", "23h", true),
        ("GOTRUE_SESSIONS_TIMEBOX", "25h", false),
        ("GOTRUE_SESSIONS_INACTIVITY_TIMEOUT", "1h", true),
        ("GOTRUE_SESSIONS_INACTIVITY_TIMEOUT", "3h", false),
    ] {
        let mut m = Mocks::new();
        m.refresh_session(Some(session_row(&user, Duration::hours(2), None)), Some(user.clone()));
        if expired {
            m.tokens.expect_rotate_refresh_token().never();
            let revoked = Recorder::new();
            let r = revoked.clone();
            m.tokens.expect_revoke_session().times(1).returning(move |s, a| {
                r.push((s, a.to_vec()));
                Ok(())
            });
            let err = m.service().refresh_grant(&ctx_with(&[(var, value)]), RT).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidRefreshToken { clear_cookie: true }), "{var}={value}: {err:?}");
            let (sid, audit) = revoked.one();
            assert_eq!(sid, session());
            assert_eq!(audit[0].payload["traits"]["reason"], json!("session_expired"));
        } else {
            m.tokens.expect_rotate_refresh_token().times(1).returning(|_, _, _| Ok(()));
            m.tokens.expect_revoke_session().never();
            m.service().refresh_grant(&ctx_with(&[(var, value)]), RT).await.unwrap();
        }
    }
}

#[tokio::test]
async fn refresh_grant_keeps_the_session_and_seals_the_new_token() {
    let user = confirmed_user();
    let row = session_row(&user, Duration::minutes(5), None);
    let mut m = Mocks::new();
    m.refresh_session(Some(row.clone()), Some(user.clone()));
    let rotations = Recorder::new();
    let r = rotations.clone();
    m.tokens.expect_rotate_refresh_token().times(1).returning(move |_, new, _| {
        r.push(new.clone());
        Ok(())
    });
    let svc = m.service();

    let resp = svc.refresh_grant(&ctx(), RT).await.unwrap();

    let new = rotations.one();
    assert_eq!(new.session_id, session());
    assert_eq!(Some(new.session_started_at), row.session_started_at);
    let sealed = new.sealed.expect("the new current token is sealed");
    assert!(!sealed.contains(&resp.refresh_token));
    assert_eq!(crate::domain::session::open(SECRET.as_bytes(), session(), &sealed), Some(resp.refresh_token.clone()));
    assert_current_token(&resp, &user, &resp.refresh_token);
}

#[tokio::test]
async fn refresh_grant_of_an_upstream_token_starts_a_session() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.refresh_session(Some(refresh_row(&user, Duration::days(3), false)), Some(user.clone()));
    let rotations = Recorder::new();
    let r = rotations.clone();
    m.tokens.expect_rotate_refresh_token().times(1).returning(move |_, new, _| {
        r.push(new.clone());
        Ok(())
    });
    let svc = m.service();

    let resp = svc.refresh_grant(&ctx_with(&[("GOTRUE_SESSIONS_TIMEBOX", "1h")]), RT).await.unwrap();

    let new = rotations.one();
    assert_eq!(new.session_started_at, now(), "the session starts at its first refresh");
    assert_eq!(access_claims(&resp.access_token)["session_id"], json!(new.session_id.to_string()));
}

#[tokio::test]
async fn refresh_grant_rotates_the_token_with_refreshed_and_revoked_audit_entries() {
    let user = confirmed_user();
    let row = refresh_row(&user, Duration::days(29), false);
    let mut m = Mocks::new();
    m.refresh_session(Some(row.clone()), Some(user.clone()));
    let rotations = Recorder::new();
    let r = rotations.clone();
    m.tokens.expect_rotate_refresh_token().times(1).returning(move |old, new, audit| {
        r.push((old.clone(), new.clone(), audit.to_vec()));
        Ok(())
    });
    let svc = m.service();

    let resp = svc.refresh_grant(&ctx(), RT).await.unwrap();

    let (old, new, audit) = rotations.one();
    assert_eq!(old, row);
    assert_grant(&new, &user, &resp);
    assert_ne!(new.token, row.token);
    assert_eq!(actions(&audit), ["token_refreshed", "token_revoked"]);
    for e in &audit {
        assert_eq!(e.instance_id, instance());
        assert_eq!(e.payload["actor_id"], json!(user.id.to_string()));
        assert_eq!(e.payload["log_type"], json!("token"));
    }
}

// ---------------------------------------------------------------------------------------
// POST /verify (API.md 4.5)
// ---------------------------------------------------------------------------------------

const VT: &str = "mailed-token";

fn verify_params(kind: &str, token: &str, password: &str) -> VerifyParams {
    VerifyParams { kind: kind.to_owned(), token: token.to_owned(), password: secret(password) }
}

/// An unconfirmed user holding the confirmation token [`VT`], mailed `age` ago.
fn awaiting_confirmation(age: Duration) -> User {
    let mut u = stored_user();
    u.confirmation_token = digest(VT);
    u.confirmation_sent_at = Some(now() - age);
    u
}

/// An invited user: no password, `invited_at` set `age` ago, no `confirmation_sent_at`.
fn invited(age: Duration) -> User {
    let mut u = stored_user();
    u.encrypted_password = String::new();
    u.invited_at = Some(now() - age);
    u.confirmation_token = digest(VT);
    u.confirmation_sent_at = None;
    u
}

fn awaiting_recovery(mut u: User, age: Duration) -> User {
    u.recovery_token = digest(VT);
    u.recovery_sent_at = Some(now() - age);
    u
}

#[tokio::test]
async fn verify_blank_token_is_required_before_the_type_is_looked_at() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_token().never();
    m.users.expect_update_user().never();
    let svc = m.service();
    for blank in ["", " ", "\t", " \t\n "] {
        for kind in ["signup", "bogus", ""] {
            let err = svc.verify(&ctx(), verify_params(kind, blank, "")).await.unwrap_err();
            assert!(matches!(err, AuthError::VerifyTokenRequired), "{err:?}");
        }
    }
}

#[tokio::test]
async fn verify_unknown_type_is_refused() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_token().never();
    let svc = m.service();
    for kind in ["invite", "", "SIGNUP"] {
        let err = svc.verify(&ctx(), verify_params(kind, VT, "")).await.unwrap_err();
        assert!(matches!(err, AuthError::VerifyTypeRequired), "{err:?}");
    }
}

#[tokio::test]
async fn verify_signup_token_mailed_48h_ago_is_expired() {
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(awaiting_confirmation(Duration::hours(48))));
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.verify(&ctx(), verify_params("signup", VT, "")).await.unwrap_err();

    assert!(matches!(err, AuthError::ConfirmationTokenExpired), "{err:?}");
}

#[tokio::test]
async fn verify_signup_confirms_and_logs_in() {
    let user = awaiting_confirmation(Duration::hours(1));
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(user.clone()));
    m.hasher.expect_hash().never();
    let updates = m.record_updates(1);
    let svc = m.service();

    let resp = svc.verify(&ctx(), verify_params("signup", VT, "")).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::Token(TokenColumn::Confirmation, digest(VT)));
    assert_eq!(stored.confirmed_at, Some(now()));
    assert_eq!(stored.confirmation_token, "");
    assert_eq!(stored.last_sign_in_at, Some(now()));
    assert_eq!(stored.encrypted_password, STORED_HASH);
    assert_eq!(actions(&effects.audit), ["user_signedup"]);
    assert!(!effects.revoke_sessions, "a confirmation ends no session");
    assert_grant(&effects.grant.expect("a grant"), &user, &resp);
}

#[tokio::test]
async fn verify_invite_without_a_password_is_refused() {
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(invited(Duration::days(1))));
    m.hasher.expect_hash().never();
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.verify(&ctx(), verify_params("signup", VT, "")).await.unwrap_err();

    assert!(matches!(err, AuthError::InvitePasswordRequired), "{err:?}");
}

#[tokio::test]
async fn verify_invite_with_a_password_stores_its_hash_and_confirms() {
    let user = invited(Duration::days(1));
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(user.clone()));
    m.hash_answers(PASSWORD);
    let updates = m.record_updates(1);
    let svc = m.service();

    let resp = svc.verify(&ctx(), verify_params("signup", VT, PASSWORD)).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::Token(TokenColumn::Confirmation, digest(VT)));
    assert_eq!(stored.encrypted_password, NEW_HASH);
    assert_eq!(stored.confirmed_at, Some(now()));
    assert_eq!(stored.confirmation_token, "");
    assert_eq!(actions(&effects.audit), ["user_signedup"]);
    assert_grant(&effects.grant.expect("a grant"), &user, &resp);
}

#[tokio::test]
async fn verify_invite_older_than_invite_max_age_is_expired() {
    // Upstream never expired invites (WEAKNESSES.md 13); we do, after 7 days by default.
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(invited(Duration::days(8))));
    m.hasher.expect_hash().never();
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.verify(&ctx(), verify_params("signup", VT, PASSWORD)).await.unwrap_err();

    assert!(matches!(err, AuthError::ConfirmationTokenExpired), "{err:?}");
}

#[tokio::test]
async fn verify_recovery_token_older_than_recovery_max_age_is_expired() {
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Recovery, VT, Some(awaiting_recovery(confirmed_user(), Duration::hours(25))));
    m.users.expect_update_user().never();
    let svc = m.service();

    let err = svc.verify(&ctx(), verify_params("recovery", VT, "")).await.unwrap_err();

    assert!(matches!(err, AuthError::RecoveryTokenExpired), "{err:?}");
}

#[tokio::test]
async fn verify_recovery_of_an_unconfirmed_user_confirms_them_without_touching_the_password() {
    let user = awaiting_recovery(stored_user(), Duration::hours(1));
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Recovery, VT, Some(user.clone()));
    m.hasher.expect_hash().never();
    let updates = m.record_updates(1);
    let svc = m.service();

    let resp = svc.verify(&ctx(), verify_params("recovery", VT, "ignored password")).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::Token(TokenColumn::Recovery, digest(VT)));
    assert_eq!(stored.recovery_token, "");
    assert_eq!(stored.confirmed_at, Some(now()));
    assert_eq!(stored.encrypted_password, STORED_HASH);
    assert_eq!(actions(&effects.audit), ["user_signedup"]);
    assert_grant(&effects.grant.expect("a grant"), &user, &resp);
}

#[tokio::test]
async fn verify_recovery_of_a_confirmed_user_writes_no_audit_entry() {
    let user = awaiting_recovery(confirmed_user(), Duration::hours(1));
    let confirmed_at = user.confirmed_at;
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Recovery, VT, Some(user));
    let updates = m.record_updates(1);
    let svc = m.service();

    svc.verify(&ctx(), verify_params("recovery", VT, "")).await.unwrap();

    let (stored, _, effects) = updates.one();
    assert_eq!(stored.confirmed_at, confirmed_at);
    assert_eq!(stored.recovery_token, "");
    assert!(effects.audit.is_empty());
    assert!(effects.grant.is_some());
    assert!(effects.revoke_sessions, "recovery ends every existing session");
    assert_eq!(effects.keep_session, None);
}

#[tokio::test]
async fn verify_token_consumed_concurrently_is_user_not_found() {
    let mut m = Mocks::new();
    m.user_by_token(TokenColumn::Confirmation, VT, Some(awaiting_confirmation(Duration::hours(1))));
    m.users
        .expect_update_user()
        .withf(|_, g, _| *g == Guard::Token(TokenColumn::Confirmation, digest(VT)))
        .times(1)
        .returning(|_, _, _| Err(StoreError::Conflict));
    let svc = m.service();

    let err = svc.verify(&ctx(), verify_params("signup", VT, "")).await.unwrap_err();

    assert!(matches!(err, AuthError::UserNotFound), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// POST /recover (API.md 4.6)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn recover_without_an_email_is_refused() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_email().never();
    let svc = m.service();

    let err = svc.recover(&ctx(), "").await.unwrap_err();

    assert!(matches!(err, AuthError::RecoverEmailRequired), "{err:?}");
}

#[tokio::test]
async fn recover_unknown_address_succeeds_silently() {
    let mut m = Mocks::new();
    m.user_by_email("nobody@example.com", None);
    m.no_writes();
    let svc = m.service();

    svc.recover(&ctx(), "Nobody@Example.com").await.unwrap();
}

#[tokio::test]
async fn recover_within_max_frequency_is_rate_limited() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(awaiting_recovery(confirmed_user(), Duration::minutes(5))));
    m.no_writes();
    let svc = m.service();

    let err = svc.recover(&ctx(), EMAIL).await.unwrap_err();

    assert!(matches!(err, AuthError::RecoverRateLimited), "{err:?}");
}

/// API.md 4.6 step 5: 429 while `recovery_sent_at + SMTP_MAX_FREQUENCY` is not before now,
/// i.e. also at the exact boundary (upstream: `!sentAt.Add(freq).Before(now)`).
#[tokio::test]
async fn recover_exactly_max_frequency_after_the_last_mail_is_still_rate_limited() {
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(awaiting_recovery(confirmed_user(), Duration::minutes(15))));
    m.no_writes();
    let svc = m.service();

    let err = svc.recover(&ctx(), EMAIL).await.unwrap_err();

    assert!(matches!(err, AuthError::RecoverRateLimited), "{err:?}");
}

#[tokio::test]
async fn recover_stores_the_digest_of_the_mailed_token_and_audits() {
    let user = awaiting_recovery(confirmed_user(), Duration::days(1));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(user.clone()));
    let updates = m.record_updates(1);
    let mails = m.record_mail(true);
    let svc = m.service();

    svc.recover(&ctx(), EMAIL).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::None);
    assert_eq!(stored.id, user.id);
    assert_eq!(stored.recovery_sent_at, Some(now()));
    assert_eq!(actions(&effects.audit), ["user_recovery_requested"]);
    assert_eq!(effects.grant, None);
    let mail = mails.one();
    assert_eq!(mail.kind, MailKind::Recovery);
    assert_eq!(mail.to, EMAIL);
    let token = token_in_link(&mail.confirmation_url, "recovery_token");
    assert_eq!(stored.recovery_token, digest(&token));
    assert_ne!(stored.recovery_token, user.recovery_token);
}

#[tokio::test]
async fn recover_mail_failure_restores_the_previous_token_guarded_by_the_new_one() {
    let user = awaiting_recovery(confirmed_user(), Duration::days(1));
    let mut m = Mocks::new();
    m.user_by_email(EMAIL, Some(user.clone()));
    let updates = m.record_updates(2);
    let mails = m.record_mail(false);
    let svc = m.service();

    let err = svc.recover(&ctx(), EMAIL).await.unwrap_err();

    assert!(matches!(err, AuthError::Internal { msg: "Error recovering user", .. }), "{err:?}");
    let token = token_in_link(&mails.one().confirmation_url, "recovery_token");
    let calls = updates.all();
    let (first, first_guard, _) = &calls[0];
    assert_eq!(*first_guard, Guard::None);
    assert_eq!(first.recovery_token, digest(&token));
    let (restored, guard, effects) = &calls[1];
    assert_eq!(*guard, Guard::Token(TokenColumn::Recovery, digest(&token)));
    assert_eq!(restored.recovery_token, user.recovery_token);
    assert_eq!(restored.recovery_sent_at, user.recovery_sent_at);
    assert_eq!(*effects, Effects::default());
}

// ---------------------------------------------------------------------------------------
// PUT /user (API.md 4.10)
// ---------------------------------------------------------------------------------------

const NEW_EMAIL: &str = "new@example.com";
const CT: &str = "email-change-token";

fn caller_for(u: &User) -> Caller {
    Caller { sub: u.id.to_string(), aud: AUD.to_owned(), session_id: None }
}

/// A confirmed user with a pending change to [`NEW_EMAIL`], mailed `age` ago.
fn changing_email(age: Duration) -> User {
    let mut u = confirmed_user();
    u.email_change = NEW_EMAIL.to_owned();
    u.email_change_token = digest(CT);
    u.email_change_sent_at = Some(now() - age);
    u
}

#[tokio::test]
async fn update_user_app_metadata_needs_an_admin() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.no_writes();
    let svc = m.service();

    let err = svc
        .update_user(
            &ctx(),
            &caller_for(&user),
            UserUpdateParams { app_metadata: Some(obj(json!({"roles": ["editor"]}))), ..UserUpdateParams::default() },
        )
        .await
        .unwrap_err();

    assert!(matches!(err, AuthError::AppMetadataRequiresAdmin), "{err:?}");
}

#[tokio::test]
async fn update_user_app_metadata_by_an_admin_is_merged() {
    let mut user = confirmed_user();
    user.role = "admin".to_owned();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    let updates = m.record_updates(1);
    let svc = m.service();

    svc.update_user(
        &ctx(),
        &caller_for(&user),
        UserUpdateParams { app_metadata: Some(obj(json!({"roles": ["editor"]}))), ..UserUpdateParams::default() },
    )
    .await
    .unwrap();

    let (stored, _, effects) = updates.one();
    assert_eq!(stored.app_metadata, Some(obj(json!({"provider": "email", "roles": ["editor"]}))));
    assert_eq!(actions(&effects.audit), ["user_modified"]);
    assert!(!effects.revoke_sessions, "only a new password ends sessions");
}

#[tokio::test]
async fn update_user_email_change_mails_the_new_address_and_keeps_the_old_one() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.user_by_email(NEW_EMAIL, None);
    let updates = m.record_updates(1);
    let mails = m.record_mail(true);
    let svc = m.service();

    let updated = svc
        .update_user(&ctx(), &caller_for(&user), UserUpdateParams { email: NEW_EMAIL.to_owned(), ..UserUpdateParams::default() })
        .await
        .unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(updated, stored);
    assert_eq!(guard, Guard::None);
    assert_eq!(stored.email, EMAIL, "unchanged until confirmed");
    assert_eq!(stored.email_change, NEW_EMAIL);
    assert_eq!(stored.email_change_sent_at, Some(now()));
    assert_eq!(actions(&effects.audit), ["user_modified"]);
    let mail = mails.one();
    assert_eq!(mail.kind, MailKind::EmailChange);
    assert_eq!(mail.to, NEW_EMAIL);
    assert_eq!(mail.email, EMAIL);
    assert_eq!(mail.new_email, NEW_EMAIL);
    let token = token_in_link(&mail.confirmation_url, "email_change_token");
    assert_eq!(stored.email_change_token, digest(&token));
}

#[tokio::test]
async fn update_user_right_email_change_token_swaps_the_email() {
    let user = changing_email(Duration::hours(1));
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.users.expect_find_user_by_email().never();
    let updates = m.record_updates(1);
    m.mailer.expect_send().never();
    let svc = m.service();

    let updated = svc
        .update_user(&ctx(), &caller_for(&user), UserUpdateParams { email_change_token: CT.to_owned(), ..UserUpdateParams::default() })
        .await
        .unwrap();

    let (stored, _, effects) = updates.one();
    assert_eq!(updated, stored);
    assert_eq!(stored.email, NEW_EMAIL);
    assert_eq!(stored.email_change, "");
    assert_eq!(stored.email_change_token, "");
    assert_eq!(actions(&effects.audit), ["user_modified"]);
}

#[tokio::test]
async fn update_user_wrong_email_change_token_is_a_mismatch() {
    let user = changing_email(Duration::hours(1));
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.no_writes();
    let svc = m.service();

    let err = svc
        .update_user(
            &ctx(),
            &caller_for(&user),
            UserUpdateParams { email_change_token: "not-the-token".to_owned(), ..UserUpdateParams::default() },
        )
        .await
        .unwrap_err();

    assert!(matches!(err, AuthError::EmailChangeTokenMismatch), "{err:?}");
}

#[tokio::test]
async fn update_user_email_change_token_past_confirmation_max_age_is_expired() {
    let user = changing_email(Duration::hours(25));
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.no_writes();
    let svc = m.service();

    let err = svc
        .update_user(&ctx(), &caller_for(&user), UserUpdateParams { email_change_token: CT.to_owned(), ..UserUpdateParams::default() })
        .await
        .unwrap_err();

    assert!(matches!(err, AuthError::EmailChangeTokenExpired), "{err:?}");
}

#[tokio::test]
async fn update_user_email_change_to_an_address_of_another_user_is_taken() {
    let user = confirmed_user();
    let mut other = confirmed_user();
    other.id = Uuid::new_v4();
    other.email = NEW_EMAIL.to_owned();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.user_by_email(NEW_EMAIL, Some(other));
    m.no_writes();
    let svc = m.service();

    let err = svc
        .update_user(&ctx(), &caller_for(&user), UserUpdateParams { email: "New@Example.com".to_owned(), ..UserUpdateParams::default() })
        .await
        .unwrap_err();

    assert!(matches!(err, AuthError::EmailTaken), "{err:?}");
}

#[tokio::test]
async fn update_user_password_change_stores_the_new_hash() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    m.hash_answers("a new password");
    let updates = m.record_updates(1);
    m.mailer.expect_send().never();
    let svc = m.service();

    let caller = Caller { session_id: Some(session()), ..caller_for(&user) };
    svc.update_user(&ctx(), &caller, UserUpdateParams { password: secret("a new password"), ..UserUpdateParams::default() }).await.unwrap();

    let (stored, guard, effects) = updates.one();
    assert_eq!(guard, Guard::None);
    assert_eq!(stored.encrypted_password, NEW_HASH);
    assert_eq!(stored.email, EMAIL);
    assert_eq!(stored.updated_at, now());
    assert_eq!(actions(&effects.audit), ["user_modified"]);
    assert!(effects.revoke_sessions, "a new password ends the other sessions");
    assert_eq!(effects.keep_session, Some(session()), "the caller's own session goes on");
}

// ---------------------------------------------------------------------------------------
// GET /user (API.md 4.9)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn get_user_sub_that_is_not_a_uuid_is_a_bad_claim() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_id().never();
    let svc = m.service();
    for sub in ["0", "not-a-uuid", ""] {
        let caller = Caller { sub: sub.to_owned(), aud: AUD.to_owned(), session_id: None };
        let err = svc.get_user(&ctx(), &caller).await.unwrap_err();
        assert!(matches!(err, AuthError::BadUserIdClaim), "{sub:?}: {err:?}");
    }
}

/// API.md 4.9: only a `sub` that is not a UUID is a bad claim; the nil UUID (system user)
/// is a UUID, has no row, and is answered 404 `User not found`.
#[tokio::test]
async fn get_user_nil_uuid_sub_is_user_not_found() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_id().times(0..=1).returning(|_, _| Ok(None));
    let svc = m.service();
    let caller = Caller { sub: Uuid::nil().to_string(), aud: AUD.to_owned(), session_id: None };

    let err = svc.get_user(&ctx(), &caller).await.unwrap_err();

    assert!(matches!(err, AuthError::UserNotFound), "{err:?}");
}

#[tokio::test]
async fn get_user_audience_header_disagreeing_with_the_token_is_refused() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.users.expect_find_user_by_id().never();
    let svc = m.service();
    let mut ctx = ctx();
    ctx.aud_header = Some("other.audience".to_owned());

    let err = svc.get_user(&ctx, &caller_for(&user)).await.unwrap_err();

    assert!(matches!(err, AuthError::AudienceMismatch), "{err:?}");
}

#[tokio::test]
async fn get_user_returns_the_callers_account() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    let svc = m.service();
    let mut ctx = ctx();
    ctx.aud_header = Some(AUD.to_owned());

    let found = svc.get_user(&ctx, &caller_for(&user)).await.unwrap();

    assert_eq!(found, user);
}

#[tokio::test]
async fn get_user_unknown_id_is_user_not_found() {
    let id = Uuid::new_v4();
    let mut m = Mocks::new();
    m.user_by_id(id, None);
    let svc = m.service();
    let caller = Caller { sub: id.to_string(), aud: AUD.to_owned(), session_id: None };

    let err = svc.get_user(&ctx(), &caller).await.unwrap_err();

    assert!(matches!(err, AuthError::UserNotFound), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// POST /logout (API.md 4.8)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_of_the_system_user_needs_no_lookup() {
    let mut m = Mocks::new();
    m.users.expect_find_user_by_id().never();
    let revoked = Recorder::new();
    let r = revoked.clone();
    m.tokens.expect_revoke_user_tokens().times(1).returning(move |i, u, a| {
        r.push((i, u, a.to_vec()));
        Ok(())
    });
    let svc = m.service();

    svc.logout(&ctx(), "0", "operator@example.com").await.unwrap();

    let (inst, user_id, audit) = revoked.one();
    assert_eq!(inst, instance());
    assert_eq!(user_id, Uuid::nil());
    assert_eq!(actions(&audit), ["logout"]);
    assert_eq!(audit[0].payload["actor_email"], json!("operator@example.com"));
    assert_eq!(audit[0].created_at, now());
}

#[tokio::test]
async fn logout_revokes_the_users_refresh_tokens() {
    let user = confirmed_user();
    let mut m = Mocks::new();
    m.user_by_id(user.id, Some(user.clone()));
    let id = user.id;
    m.tokens
        .expect_revoke_user_tokens()
        .withf(move |i, u, a| *i == instance() && *u == id && actions(a) == ["logout"])
        .times(1)
        .returning(|_, _, _| Ok(()));
    let svc = m.service();

    svc.logout(&ctx(), &user.id.to_string(), EMAIL).await.unwrap();
}

#[tokio::test]
async fn logout_of_an_unknown_user_is_invalid_user() {
    let id = Uuid::new_v4();
    let mut m = Mocks::new();
    m.user_by_id(id, None);
    m.tokens.expect_revoke_user_tokens().never();
    let svc = m.service();

    let err = svc.logout(&ctx(), &id.to_string(), "").await.unwrap_err();

    assert!(matches!(err, AuthError::InvalidUser), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// Breached-password check
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn breached_password_is_refused_before_any_lookup() {
    let mut corpus = crate::ports::breached::MockBreachedPasswords::new();
    corpus.expect_times_seen().withf(|p| p.expose_secret() == PASSWORD).times(1).returning(|_| Ok(3));
    // No store expectation: the refusal comes before the user lookup.
    let s = Mocks::new().service().with_breached_passwords(Some(Arc::new(corpus)));
    let err = s.signup(&ctx(), signup_params(EMAIL, PASSWORD, None)).await.unwrap_err();
    assert!(matches!(err, AuthError::BreachedPassword), "{err:?}");
}

#[tokio::test]
async fn unavailable_corpus_fails_open_and_policy_failures_never_ask_it() {
    use crate::ports::breached::{BreachCheckError, MockBreachedPasswords};
    let mut corpus = MockBreachedPasswords::new();
    corpus.expect_times_seen().times(1).returning(|_| Err(BreachCheckError::Unavailable("connection refused".into())));
    let s = Mocks::new().service().with_breached_passwords(Some(Arc::new(corpus)));
    assert!(s.check_password(&ctx(), &SecretString::from(PASSWORD)).await.is_ok());

    let mut corpus = MockBreachedPasswords::new();
    corpus.expect_times_seen().never();
    let s = Mocks::new().service().with_breached_passwords(Some(Arc::new(corpus)));
    let err = s.check_password(&ctx_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "20")]), &SecretString::from(PASSWORD)).await.unwrap_err();
    assert!(matches!(err, AuthError::WeakPassword(_)), "{err:?}");
}
