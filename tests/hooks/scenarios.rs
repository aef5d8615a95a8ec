//! The upstream hook scenarios (SCENARIOS.md 11 and 17.3-17.4), function hooks excepted:
//! those belong to multi-instance mode. Section 11 calls the hook trigger directly, as
//! upstream's `hook_test.go` does, through a [`Service`] built on the real adapters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gotrue::adapters::clock::SystemClock;
use gotrue::adapters::crypto::PooledHasher;
use gotrue::adapters::db::SqliteStore;
use gotrue::adapters::hooks::ReqwestHookSender;
use gotrue::adapters::mail::MemoryOutbox;
use gotrue::app::config::{Config, Env};
use gotrue::app::service::{Ctx, Ports, Service};
use gotrue::app::AuthError;
use gotrue::domain::user::User;
use gotrue::ports::hooks::{HookError, HookEvent};
use gotrue::ports::users::{Effects, UserStore as _};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::{Answer, Receiver, TestApp, AUD, HOOK_SECRET, NIL};

/// A service on the real adapters, and a request context for `instance_id`.
struct Direct {
    service: Service,
    ctx: Ctx,
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

async fn direct(instance_id: Uuid, vars: &[(&str, &str)]) -> Direct {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("direct.db").to_str().unwrap().to_owned();
    let mut pairs = vec![
        ("GOTRUE_JWT_SECRET".to_owned(), "testsecret".to_owned()),
        ("GOTRUE_SITE_URL".to_owned(), "https://example.netlify.com".to_owned()),
        ("GOTRUE_DB_DRIVER".to_owned(), "sqlite".to_owned()),
        ("DATABASE_URL".to_owned(), db.clone()),
        ("GOTRUE_WEBHOOK_ALLOW_PRIVATE".to_owned(), "true".to_owned()),
    ];
    for (k, v) in vars {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push(((*k).to_owned(), (*v).to_owned()));
    }
    let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
    let store = SqliteStore::connect(&SecretString::from(db), "", 2).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(SystemClock);
    let hooks = ReqwestHookSender::new(config.instance.webhook.allow_private, clock.clone()).unwrap();
    let service = Service::new(Ports {
        users: Arc::new(store.clone()),
        tokens: Arc::new(store.clone()),
        audit: Arc::new(store.clone()),
        mailer: Arc::new(MemoryOutbox::default()),
        hasher: Arc::new(PooledHasher::new(&config.instance.password).unwrap()),
        clock,
        hooks: Arc::new(hooks),
        providers: Arc::new(gotrue::adapters::oauth::OAuthRegistry::new(
            gotrue::adapters::oauth::HttpClient::new(gotrue::adapters::oauth::PROVIDER_TIMEOUT).unwrap(),
        )),
        identities: Arc::new(store.clone()),
        flows: Arc::new(store.clone()),
    });
    let ctx = Ctx::new(instance_id, Arc::new(config.instance));
    Direct { service, ctx, store, _dir: dir }
}

fn a_user(instance_id: Uuid) -> User {
    User::new(instance_id, AUD, "hooked@example.com", String::new(), None, chrono::Utc::now())
}

#[track_caller]
fn assert_payload(call: &crate::Call, event: &str, instance_id: Uuid) {
    let body = call.json();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    assert_eq!(body["event"], event);
    assert_eq!(body["instance_id"], instance_id.to_string());
    assert_eq!(body["user"]["email"], "hooked@example.com");
    assert_eq!(call.event(), format!("identity_{event}"));
}

/// 11.1 `TestSignupHookSendInstanceID`.
#[tokio::test]
async fn signup_hook_sends_the_instance_id() {
    let rx = Receiver::start().await;
    let id = Uuid::new_v4();
    let d = direct(id, &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "signup")]).await;
    d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(id)).await.unwrap();
    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    assert_payload(&calls[0], "signup", id);
    assert!(calls[0].header("x-webhook-signature").is_none(), "no secret, no signature");
}

/// 11.1, with the nil instance of single-instance mode: `instance_id` is still present.
#[tokio::test]
async fn the_nil_instance_id_is_sent_too() {
    let rx = Receiver::start().await;
    let d = direct(Uuid::nil(), &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "signup")]).await;
    d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(Uuid::nil())).await.unwrap();
    assert_eq!(rx.calls()[0].json()["instance_id"], NIL);
}

/// 11.3 `TestHookRetry`: 400, 400, 200 with 3 attempts succeeds after 3 calls.
#[tokio::test]
async fn hook_retry() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(400), Answer::status(400), Answer::ok()]);
    let d =
        direct(Uuid::nil(), &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "signup"), ("GOTRUE_WEBHOOK_RETRIES", "3")]).await;
    d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(Uuid::nil())).await.unwrap();
    assert_eq!(rx.calls().len(), 3);
}

/// 11.4 `TestHookTimeout`: a receiver slower than the 1 s limit, 3 attempts: 504, 3 calls.
#[tokio::test]
async fn hook_timeout() {
    let rx = Receiver::start().await;
    rx.always(Answer::ok().after(Duration::from_secs(2)));
    let d = direct(
        Uuid::nil(),
        &[
            ("GOTRUE_WEBHOOK_URL", &rx.url),
            ("GOTRUE_WEBHOOK_EVENTS", "signup"),
            ("GOTRUE_WEBHOOK_RETRIES", "3"),
            ("GOTRUE_WEBHOOK_TIMEOUTSEC", "1"),
        ],
    )
    .await;
    let start = Instant::now();
    let err = d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(Uuid::nil())).await.unwrap_err();
    assert!(matches!(err, AuthError::Hook(HookError::Timeout { seconds: 1 })), "{err:?}");
    assert_eq!(err.to_string(), "Failed to perform webhook in time frame (1 seconds)");
    assert_eq!(rx.calls().len(), 3);
    assert!(start.elapsed() < Duration::from_secs(5), "each attempt is cut at 1 s");
}

/// 11.5 `TestHookNoServer`: an unresolvable host, 1 attempt of 1 s: 502. (Upstream used
/// `somewhere.something.com`; `.invalid` is guaranteed never to resolve, RFC 6761.)
#[tokio::test]
async fn hook_no_server() {
    let d = direct(
        Uuid::nil(),
        &[
            ("GOTRUE_WEBHOOK_URL", "http://somewhere.something.invalid"),
            ("GOTRUE_WEBHOOK_EVENTS", "signup"),
            ("GOTRUE_WEBHOOK_RETRIES", "1"),
            ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "1"),
        ],
    )
    .await;
    let err = d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(Uuid::nil())).await.unwrap_err();
    assert!(matches!(err, AuthError::Hook(HookError::Unreachable { .. })), "{err:?}");
    assert_eq!(err.to_string(), "Failed to connect to http://somewhere.something.invalid/");
}

/// 11.6 `TestTriggerHookDoesNotMutateConfig`, for `WEBHOOK_URL` (the function-hook half
/// belongs to multi-instance mode): a relative URL resolves against `SITE_URL`, and the
/// configuration keeps the relative URL.
#[tokio::test]
async fn relative_hook_url_resolves_against_the_site_and_leaves_the_config_alone() {
    let rx = Receiver::start().await;
    let d = direct(
        Uuid::nil(),
        &[
            ("GOTRUE_SITE_URL", &rx.url),
            ("GOTRUE_WEBHOOK_URL", "/.netlify/functions/identity-hook"),
            ("GOTRUE_WEBHOOK_EVENTS", "validate,signup"),
        ],
    )
    .await;
    d.service.run_hooks(&d.ctx, HookEvent::Validate, &mut a_user(Uuid::nil())).await.unwrap();
    assert_eq!(d.ctx.config.webhook.url, "/.netlify/functions/identity-hook");
    d.service.run_hooks(&d.ctx, HookEvent::Signup, &mut a_user(Uuid::nil())).await.unwrap();
    let calls = rx.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].path, "/.netlify/functions/identity-hook");
    assert_eq!(calls[0].event(), "identity_validate");
    assert_eq!(calls[1].event(), "identity_signup");
}

/// 11.7 `TestUserDeletedHookSendInstanceID`.
#[tokio::test]
async fn user_deleted_hook_sends_the_instance_id() {
    let rx = Receiver::start().await;
    rx.always(Answer::body("this is not JSON, and it does not matter"));
    let id = Uuid::new_v4();
    let d = direct(id, &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "userdeleted")]).await;
    d.service.notify_user_deleted(&d.ctx, &a_user(id)).await;
    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    assert_payload(&calls[0], "userdeleted", id);
}

/// 11.8 `TestUserModifiedHookSendInstanceID`, plus the reply's metadata being stored.
#[tokio::test]
async fn user_modified_hook_sends_the_instance_id_and_its_reply_is_stored() {
    let rx = Receiver::start().await;
    rx.always(Answer::body(json!({"app_metadata": {"roles": ["editor"]}}).to_string()));
    let id = Uuid::new_v4();
    let d = direct(id, &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "usermodified")]).await;
    let mut user = a_user(id);
    d.store.insert_user(&user, &Effects::default()).await.unwrap();
    d.service.notify_user_modified(&d.ctx, &mut user).await;
    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    assert_payload(&calls[0], "usermodified", id);
    let expected = json!({"provider": "email", "roles": ["editor"]});
    assert_eq!(serde_json::to_value(&user.app_metadata).unwrap(), expected);
    let stored = d.store.find_user_by_id(Some(id), user.id).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(&stored.app_metadata).unwrap(), expected);
}

/// `usermodified` and `userdeleted` failures are logged, never raised.
#[tokio::test]
async fn informative_hooks_never_fail_the_caller() {
    let rx = Receiver::start().await;
    rx.always(Answer::status(500));
    let d = direct(Uuid::nil(), &[("GOTRUE_WEBHOOK_URL", &rx.url), ("GOTRUE_WEBHOOK_EVENTS", "usermodified,userdeleted")]).await;
    let mut user = a_user(Uuid::nil());
    let before = user.clone();
    d.service.notify_user_modified(&d.ctx, &mut user).await;
    d.service.notify_user_deleted(&d.ctx, &user).await;
    assert_eq!(user, before);
    assert_eq!(rx.calls().len(), 6, "3 attempts each");
}

/// 17.3 `TestWebhookTriggered`.
#[tokio::test]
async fn webhook_triggered() {
    let rx = Receiver::start().await;
    rx.always(Answer::streamed_empty());
    let app = TestApp::with_hook(&rx, "validate", &[("GOTRUE_WEBHOOK_TIMEOUT_SEC", "1")]).await;
    let r = app.post_json("/signup", json!({"email": "test@example.com", "password": "test", "data": {"a": 1}})).await;
    r.assert_ok();
    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.header("content-type"), Some("application/json"));
    let claims = call.verified_claims(HOOK_SECRET);
    assert_eq!(claims.sub, NIL);
    assert_eq!(claims.iss, "gotrue");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 5..=now).contains(&claims.iat), "iat {} within 5 s of {now}", claims.iat);
    assert_eq!(claims.exp, claims.iat + 300, "the signature expires after five minutes");
    let body = call.json();
    assert_eq!(body.as_object().unwrap().len(), 3);
    assert_eq!(body["event"], "validate");
    assert_eq!(body["instance_id"], NIL);
    let user = body["user"].as_object().unwrap();
    assert_eq!(user.len(), 8, "{user:?}");
    for k in ["id", "aud", "role", "email", "app_metadata", "user_metadata", "created_at", "updated_at"] {
        assert!(user.contains_key(k), "{k}");
    }
    assert_eq!(user["aud"], AUD);
    assert_eq!(user["role"], "");
    assert_eq!(user["email"], "test@example.com");
    assert_eq!(user["app_metadata"], json!({"provider": "email"}));
    assert_eq!(user["user_metadata"], json!({"a": 1}));
}

/// 17.4 `TestFailingWebhook`.
#[tokio::test]
async fn failing_webhook() {
    let app = TestApp::spawn_with(&[
        ("GOTRUE_WEBHOOK_URL", "http://notaplace.localhost"),
        ("GOTRUE_WEBHOOK_EVENTS", "validate,signup"),
        ("GOTRUE_WEBHOOK_RETRIES", "1"),
        ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "1"),
    ])
    .await;
    let r = app.post_json("/signup", json!({"email": "test@example.com", "password": "test", "data": {"a": 1}})).await;
    r.assert_error(502, "Failed to connect to http://notaplace.localhost/");
    assert!(r.json["error_id"].is_string(), "5xx carry error_id: {}", r.text);
    assert_eq!(app.users().await, 0);
}
