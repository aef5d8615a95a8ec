//! Function hooks (HOOKS_AND_MAIL.md 1.2; SCENARIOS.md 11): the URLs of the signature's
//! `function_hooks` claim, signed with the instance's JWT secret, relative ones on the
//! site URL; the instance's `webhook.url` wins over them.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap as AxumHeaders;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;

#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub event: String,
    pub signature: String,
    pub body: Value,
}

/// A hook receiver on loopback answering 200 (or `status`).
pub struct Receiver {
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let seen = Arc::clone(&calls);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: AxumHeaders, body: axum::body::Bytes| {
            let seen = Arc::clone(&seen);
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                seen.lock().unwrap().push(Call {
                    path: uri.path().to_owned(),
                    event: h("x-netlify-event"),
                    signature: h("x-webhook-signature"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, calls }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

async fn app() -> Multi {
    Multi::spawn_on(Engine::Sqlite, &[("GOTRUE_WEBHOOK_ALLOW_PRIVATE", "true")]).await
}

#[tokio::test]
async fn signup_hook_from_claims_is_signed_with_the_instance_secret() {
    let hook = Receiver::start(200).await;
    let app = app().await;
    let id = app.create(site_config("instance-secret", "https://a.example.com")).await;
    for hooks in [json!({"signup": [format!("{}/signup", hook.url)]}), json!({"signup": format!("{}/signup", hook.url)})] {
        let before = hook.calls().len();
        let sign = nf_sign(&json!({"id": id, "function_hooks": hooks}));
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let r = app.send(app.at(Method::POST, "/signup").header("x-nf-sign", sign).json(&json!({"email": email, "password": "pw"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let calls = hook.calls();
        assert_eq!(calls.len(), before + 1, "{calls:?}");
        let c = &calls[before];
        assert_eq!(c.event, "identity_signup");
        assert_eq!(c.body.as_object().unwrap().len(), 3, "{}", c.body);
        assert_eq!(c.body["event"], "signup");
        assert_eq!(c.body["instance_id"], id.to_string());
        assert_eq!(c.body["user"]["email"], email.as_str());
        let claims = decode_hs256(&c.signature, "instance-secret");
        assert_eq!(claims["sub"], id.to_string());
        assert_eq!(claims["iss"], "gotrue");
    }
    // Without the claim: no hook.
    let before = hook.calls().len();
    assert_eq!(app.signup(id, "quiet@example.com", "pw").await.status, 200);
    assert_eq!(hook.calls().len(), before);
}

#[tokio::test]
async fn relative_hook_urls_resolve_on_the_site_url_and_the_config_is_not_changed() {
    // TestTriggerHookDoesNotMutateConfig.
    let hook = Receiver::start(200).await;
    let app = app().await;
    let id = app.create(site_config("s", &hook.url)).await;
    let hooks = json!({"validate": ["/.netlify/functions/identity-validate"], "signup": ["/.netlify/functions/identity-signup"]});
    let sign = nf_sign(&json!({"id": id, "function_hooks": hooks}));
    let r = app
        .send(app.at(Method::POST, "/signup").header("x-nf-sign", sign).json(&json!({"email": "rel@example.com", "password": "pw"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = hook.calls();
    let seen: Vec<(&str, &str)> = calls.iter().map(|c| (c.path.as_str(), c.event.as_str())).collect();
    assert_eq!(
        seen,
        [("/.netlify/functions/identity-validate", "identity_validate"), ("/.netlify/functions/identity-signup", "identity_signup")]
    );
    assert_eq!(app.stored_config(id).await["webhook"]["url"], "", "webhook.url stays empty");
}

#[tokio::test]
async fn the_instance_webhook_wins_over_function_hooks() {
    let webhook = Receiver::start(200).await;
    let function = Receiver::start(200).await;
    let app = app().await;
    let mut config = site_config("s", "https://a.example.com");
    config["webhook"] = json!({"url": webhook.url, "events": ["signup"], "secret": "hook-secret"});
    let id = app.create(config).await;
    let sign = nf_sign(&json!({"id": id, "function_hooks": {"signup": [function.url]}}));
    let r = app
        .send(app.at(Method::POST, "/signup").header("x-nf-sign", sign).json(&json!({"email": "w@example.com", "password": "pw"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(function.calls().is_empty());
    let calls = webhook.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(decode_hs256(&calls[0].signature, "hook-secret")["sub"], id.to_string());
}

#[tokio::test]
async fn user_modified_and_deleted_hooks_from_claims() {
    let hook = Receiver::start(200).await;
    let app = app().await;
    let id = app.create(site_config("s", "https://a.example.com")).await;
    let r = app.signup(id, "m@example.com", "pw").await;
    let user = r.json["id"].as_str().unwrap().to_owned();
    let hooks = json!({"usermodified": [format!("{}/m", hook.url)], "userdeleted": [format!("{}/d", hook.url)]});
    let sign = nf_sign(&json!({"id": id, "function_hooks": hooks}));
    let r = app
        .send(
            app.at(Method::PUT, &format!("/admin/users/{user}"))
                .header("x-nf-sign", &sign)
                .bearer_auth(OPERATOR)
                .json(&json!({"user_metadata": {"a": 1}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.send(app.at(Method::DELETE, &format!("/admin/users/{user}")).header("x-nf-sign", &sign).bearer_auth(OPERATOR)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let calls = hook.calls();
    let seen: Vec<(&str, &str)> = calls.iter().map(|c| (c.path.as_str(), c.event.as_str())).collect();
    assert_eq!(seen, [("/m", "identity_usermodified"), ("/d", "identity_userdeleted")]);
    for c in &calls {
        assert_eq!(c.body.as_object().unwrap().len(), 3);
        assert_eq!(c.body["instance_id"], id.to_string());
    }
}

#[tokio::test]
async fn a_failing_function_hook_aborts_the_signup() {
    let hook = Receiver::start(500).await;
    let app = app().await;
    let id = app.create(json!({"site_url": "https://a.example.com", "jwt": {"secret": "s"}, "webhook": {"retries": 2}})).await;
    let sign = nf_sign(&json!({"id": id, "function_hooks": {"validate": [hook.url]}}));
    let r = app
        .send(app.at(Method::POST, "/signup").header("x-nf-sign", sign).json(&json!({"email": "x@example.com", "password": "pw"})))
        .await;
    r.assert_error(422, "Failed to handle signup webhook");
    assert_eq!(hook.calls().len(), 2, "the instance's retries apply to function hooks");
    assert!(app.store.users().find_user_by_email(id, AUD, "x@example.com").await.unwrap().is_none());
}
