//! Use-case rules of the external login against mockall mocks of the ports, with a
//! stopped clock.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone as _, Utc};
use secrecy::SecretString;
use serde_json::Map;
use uuid::Uuid;

use super::state::{self, StateClaims};
use super::{AuthorizeParams, CallbackError, CallbackOutcome, CallbackParams};
use crate::app::config::{Config, Env};
use crate::app::error::AuthError;
use crate::app::service::{Ctx, Ports, Service};
use crate::domain::audit::AuditAction;
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::domain::user::User;
use crate::ports::clock::MockClock;
use crate::ports::external::{MockExternalProvider, MockProviderRegistry};
use crate::ports::flows::MockFlowStore;
use crate::ports::hasher::MockPasswordHasher;
use crate::ports::hooks::MockHookSender;
use crate::ports::identities::MockIdentityStore;
use crate::ports::mail::MockMailer;
use crate::ports::tokens::MockTokenStore;
use crate::ports::users::{Guard, MockUserStore};

const SECRET: &str = "testsecret";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
}

fn ctx(extra: &[(&str, &str)]) -> Ctx {
    let mut pairs = vec![
        ("GOTRUE_JWT_SECRET", SECRET),
        ("GOTRUE_JWT_AUD", "api.netlify.com"),
        ("GOTRUE_SITE_URL", "https://example.netlify.com"),
        ("GOTRUE_EXTERNAL_GITHUB_ENABLED", "true"),
        ("GOTRUE_EXTERNAL_GITHUB_CLIENT_ID", "id"),
        ("GOTRUE_EXTERNAL_GITHUB_SECRET", "secret"),
        ("GOTRUE_EXTERNAL_GITHUB_REDIRECT_URI", "https://id.example.com/callback"),
    ];
    pairs.extend_from_slice(extra);
    let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
    Ctx::new(Uuid::nil(), Arc::new(config.instance))
}

struct Mocks {
    users: MockUserStore,
    identities: MockIdentityStore,
    flows: MockFlowStore,
    providers: MockProviderRegistry,
}

impl Mocks {
    fn new() -> Self {
        Self {
            users: MockUserStore::new(),
            identities: MockIdentityStore::new(),
            flows: MockFlowStore::new(),
            providers: MockProviderRegistry::new(),
        }
    }

    /// The provider reports `pu` for any code.
    fn provider_reports(&mut self, pu: ProviderUser) {
        self.providers.expect_knows().returning(|n| n == "github");
        self.providers.expect_build().returning(move |_, _| {
            let mut p = MockExternalProvider::new();
            let pu = pu.clone();
            p.expect_user().returning(move |_| Ok(pu.clone()));
            Ok(Arc::new(p))
        });
    }

    fn service(self) -> Service {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        Service::new(Ports {
            users: Arc::new(self.users),
            tokens: Arc::new(MockTokenStore::new()),
            audit: Arc::new(crate::ports::audit::MockAuditStore::new()),
            mailer: Arc::new(MockMailer::new()),
            hasher: Arc::new(MockPasswordHasher::new()),
            clock: Arc::new(clock),
            hooks: Arc::new(MockHookSender::new()),
            providers: Arc::new(self.providers),
            identities: Arc::new(self.identities),
            flows: Arc::new(self.flows),
        })
    }
}

fn provider_user(emails: &[(&str, bool, bool)]) -> ProviderUser {
    ProviderUser {
        id: "42".into(),
        emails: emails.iter().map(|(a, v, p)| ProviderEmail { address: (*a).into(), verified: *v, primary: *p }).collect(),
        metadata: Map::new(),
        profile: Map::new(),
    }
}

/// A callback with a valid state for this browser.
fn callback() -> CallbackParams {
    let claims = StateClaims {
        exp: now().timestamp() + 60,
        site_url: "https://example.netlify.com".into(),
        id: Uuid::nil().to_string(),
        provider: "github".into(),
        jti: "state-1".into(),
        bnd: state::binding_hash("browser"),
        ..StateClaims::default()
    };
    CallbackParams {
        state: state::sign(&claims, SECRET.as_bytes()).unwrap(),
        code: "code".into(),
        binding: Some("browser".into()),
        ..CallbackParams::default()
    }
}

#[tokio::test]
async fn unverified_addresses_are_never_used_to_find_an_account() {
    let mut m = Mocks::new();
    m.provider_reports(provider_user(&[("victim@example.com", false, true), ("other@example.com", false, false)]));
    m.flows.expect_use_state().times(1).returning(|_, id, _, _| Ok(id == "state-1"));
    m.identities.expect_find_identity().returning(|_, _, _| Ok(None));
    m.users.expect_find_user_by_email().never();
    let s = m.service();
    let err = s.external_callback(&ctx(&[("GOTRUE_DISABLE_SIGNUP", "true"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]), callback()).await;
    match err {
        Err(CallbackError::Redirect { target, error: AuthError::SignupDisabled }) => assert_eq!(target, "https://example.netlify.com"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_verified_address_confirms_a_waiting_account_and_drops_its_password() {
    let mut m = Mocks::new();
    m.provider_reports(provider_user(&[("Ann@Example.com", true, true)]));
    m.flows.expect_use_state().returning(|_, _, _, _| Ok(true));
    m.identities.expect_find_identity().returning(|_, _, _| Ok(None));
    let waiting = User::new(Uuid::nil(), "api.netlify.com", "ann@example.com", "$argon2id$someone-elses".into(), None, now());
    let id = waiting.id;
    m.users.expect_find_user_by_email().withf(|_, _, key| key == "ann@example.com").returning(move |_, _, _| Ok(Some(waiting.clone())));
    let written: Arc<Mutex<Option<(User, String)>>> = Arc::default();
    let w = Arc::clone(&written);
    m.identities.expect_update_user_with_identity().times(1).returning(move |u, g, i, e| {
        assert_eq!(*g, Guard::None);
        assert!(e.grant.is_some());
        assert_eq!(e.audit[0].payload["action"], AuditAction::UserSignedUp.as_str());
        assert_eq!((i.user_id, i.provider.as_str(), i.provider_id.as_str()), (id, "github", "42"));
        *w.lock().unwrap() = Some((u.clone(), i.email.clone()));
        Ok(())
    });
    let (_, outcome) = m.service().external_callback(&ctx(&[]), callback()).await.unwrap();
    assert!(matches!(outcome, CallbackOutcome::Tokens(_)));
    let (user, linked) = written.lock().unwrap().clone().unwrap();
    assert!(user.is_confirmed());
    assert!(user.encrypted_password.is_empty(), "an unproven password does not survive");
    assert_eq!(linked, "Ann@Example.com");
}

#[tokio::test]
async fn a_used_state_or_another_browser_is_refused_before_the_provider_is_called() {
    let mut m = Mocks::new();
    m.flows.expect_use_state().times(1).returning(|_, _, _, _| Ok(false));
    m.providers.expect_build().never();
    let s = m.service();
    let err = s.external_callback(&ctx(&[]), callback()).await.unwrap_err();
    assert!(matches!(err, CallbackError::State(ref e) if e.to_string() == "OAuth state is invalid: already used"), "{err:?}");
    let mut other = callback();
    other.binding = Some("another browser".into());
    let err = s.external_callback(&ctx(&[]), other).await.unwrap_err();
    assert!(matches!(err, CallbackError::State(ref e) if e.to_string() == "OAuth state is invalid: issued to another browser"), "{err:?}");
}

#[tokio::test]
async fn states_are_signed_with_the_operator_token_when_there_is_one() {
    let mut m = Mocks::new();
    m.providers.expect_knows().returning(|_| true);
    let seen: Arc<Mutex<String>> = Arc::default();
    let s2 = Arc::clone(&seen);
    m.providers.expect_build().returning(move |_, _| {
        let mut p = MockExternalProvider::new();
        let s3 = Arc::clone(&s2);
        p.expect_authorize_url().returning(move |r| {
            *s3.lock().unwrap() = r.state.clone();
            Ok("https://github.example/authorize".into())
        });
        Ok(Arc::new(p))
    });
    let s = m.service().with_operator_token(Some(SecretString::from("operator")));
    let r = s.external_authorize(&ctx(&[]), AuthorizeParams { provider: "GitHub".into(), ..AuthorizeParams::default() }).await.unwrap();
    assert_eq!(r.location, "https://github.example/authorize");
    let claims = state::verify(&seen.lock().unwrap(), b"operator", now().timestamp()).unwrap();
    assert_eq!(claims.provider, "github");
    assert!(state::bound_to(&claims, Some(&r.binding)));
    assert_eq!(claims.exp, now().timestamp() + state::STATE_TTL_SECS);
}

#[tokio::test]
async fn misconfigured_providers_are_unsupported() {
    let mut m = Mocks::new();
    m.providers.expect_knows().returning(|n| n == "github" || n == "gitlab");
    let s = m.service();
    for (extra, msg) in [
        (vec![("GOTRUE_EXTERNAL_GITHUB_ENABLED", "false")], "Unsupported provider: Provider is not enabled"),
        (vec![("GOTRUE_EXTERNAL_GITHUB_CLIENT_ID", "")], "Unsupported provider: Missing Oauth client ID"),
        (vec![("GOTRUE_EXTERNAL_GITHUB_SECRET", "")], "Unsupported provider: Missing Oauth secret"),
        (vec![("GOTRUE_EXTERNAL_GITHUB_REDIRECT_URI", "")], "Unsupported provider: Missing redirect URI"),
    ] {
        let err = s.external_authorize(&ctx(&extra), AuthorizeParams { provider: "github".into(), ..AuthorizeParams::default() }).await;
        assert_eq!(err.unwrap_err().to_string(), msg);
    }
    let err = s.external_authorize(&ctx(&[]), AuthorizeParams { provider: "saml".into(), ..AuthorizeParams::default() }).await;
    assert_eq!(err.unwrap_err().to_string(), "Unsupported provider: Provider saml could not be found");
}
