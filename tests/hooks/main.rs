//! Webhook tests: the real server on 127.0.0.1:0 and a real HTTP receiver on loopback that
//! records every request and answers as each test scripts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod admin;
mod delivery;
mod events;
mod guard;
mod scenarios;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gotrue::adapters::mail::MemoryOutbox;
use gotrue::app::config::{Config, Env};
use gotrue::app::wiring::{self, Overrides, Store};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

pub const SECRET: &str = "testsecret";
pub const HOOK_SECRET: &str = "top-secret";
pub const AUD: &str = "api.netlify.com";
pub const SITE: &str = "https://example.netlify.com";
pub const NIL: &str = "00000000-0000-0000-0000-000000000000";

// ---------------------------------------------------------------------------------------
// The receiver

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub struct Answer {
    status: u16,
    body: String,
    delay: Duration,
    streamed_empty: bool,
    location: Option<String>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self { status, body: String::new(), delay: Duration::ZERO, streamed_empty: false, location: None }
    }

    pub fn ok() -> Self {
        Self::status(200)
    }

    /// 200 with this body.
    pub fn body(body: impl Into<String>) -> Self {
        Self { body: body.into(), ..Self::ok() }
    }

    /// 200 with a chunked body of no bytes (unknown length).
    pub fn streamed_empty() -> Self {
        Self { streamed_empty: true, ..Self::ok() }
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self { location: Some(location.to_owned()), ..Self::status(status) }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the receiver got.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Call {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `X-Netlify-Event` header.
    pub fn event(&self) -> String {
        self.header("x-netlify-event").unwrap_or_default().to_owned()
    }

    /// Verifies `x-webhook-signature` with `key` and the body hash; returns the claims.
    #[track_caller]
    pub fn verified_claims(&self, key: &str) -> SignatureClaims {
        let token = self.header("x-webhook-signature").expect("signature header");
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&["gotrue"]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.leeway = 0;
        let data = jsonwebtoken::decode::<SignatureClaims>(token, &DecodingKey::from_secret(key.as_bytes()), &v).unwrap();
        use sha2::Digest as _;
        assert_eq!(data.claims.sha256, hex::encode(sha2::Sha256::digest(&self.body)), "sha256 claim matches the body");
        data.claims
    }
}

/// The claims of `x-webhook-signature`.
#[derive(Debug, Deserialize)]
pub struct SignatureClaims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub sha256: String,
}

#[derive(Default)]
struct ReceiverState {
    calls: Mutex<Vec<Call>>,
    script: Mutex<VecDeque<Answer>>,
    fallback: Mutex<Option<Answer>>,
}

/// A webhook receiver on loopback.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    /// Starts a receiver answering 200 with an empty body unless scripted.
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new().fallback(receive).with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url: format!("http://{addr}"), state }
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) -> &Self {
        self.state.script.lock().unwrap().extend(answers);
        self
    }

    /// The answer once the script is used up.
    pub fn always(&self, answer: Answer) -> &Self {
        *self.state.fallback.lock().unwrap() = Some(answer);
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// The `X-Netlify-Event` of every call so far.
    pub fn events(&self) -> Vec<String> {
        self.calls().iter().map(Call::event).collect()
    }

    pub fn clear(&self) {
        self.state.calls.lock().unwrap().clear();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.calls.lock().unwrap().push(Call { method: method.to_string(), path: uri.path().to_owned(), headers, body });
    let answer = state.script.lock().unwrap().pop_front();
    let answer = answer.or_else(|| state.fallback.lock().unwrap().clone()).unwrap_or_else(Answer::ok);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap();
    let mut r = if answer.streamed_empty {
        // A stream of no chunks: sent chunked, so the client cannot know the length.
        (status, Body::from_stream(Body::empty().into_data_stream())).into_response()
    } else {
        (status, answer.body).into_response()
    };
    if let Some(loc) = answer.location {
        r.headers_mut().insert("location", loc.parse().unwrap());
    }
    r
}

/// A loopback address where nothing listens.
pub async fn closed_port_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------------------
// The server

/// A running server with its database and outbox.
pub struct TestApp {
    pub url: String,
    pub outbox: MemoryOutbox,
    pub store: Store,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A response: status, headers and the body as JSON (Null when not JSON).
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Asserts shape A: `{"code": status, "msg": msg}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["code"], status, "body: {}", self.text);
        assert_eq!(self.json["msg"], msg, "body: {}", self.text);
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "body: {}", self.text);
        &self.json
    }
}

impl TestApp {
    /// Starts a server with the test environment plus `extra` variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.db").to_str().unwrap().to_owned();
        let mut pairs: Vec<(String, String)> = [
            ("GOTRUE_JWT_SECRET", SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_SITE_URL", SITE),
            ("GOTRUE_DB_DRIVER", "sqlite"),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            // Upstream accepts any non-empty password; these scenarios use short ones.
            ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
            ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        pairs.push(("DATABASE_URL".into(), db));
        for (k, v) in extra {
            pairs.retain(|(pk, _)| pk != k);
            pairs.push(((*k).to_owned(), (*v).to_owned()));
        }
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        let outbox = MemoryOutbox::default();
        let built = wiring::build(config, Overrides { mailer: Some(Arc::new(outbox.clone())), clock: None }).await.unwrap();
        let store = built.store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, built.router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        Self { url: format!("http://{addr}"), outbox, store, client: reqwest::Client::new(), _dir: dir }
    }

    /// A server whose webhook goes to `receiver` with `events`, signed, one attempt of 2 s,
    /// private receivers allowed.
    pub async fn with_hook(receiver: &Receiver, events: &str, extra: &[(&str, &str)]) -> Self {
        let mut vars = vec![
            ("GOTRUE_WEBHOOK_URL", receiver.url.as_str()),
            ("GOTRUE_WEBHOOK_EVENTS", events),
            ("GOTRUE_WEBHOOK_SECRET", HOOK_SECRET),
            ("GOTRUE_WEBHOOK_RETRIES", "1"),
            ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "2"),
            ("GOTRUE_WEBHOOK_ALLOW_PRIVATE", "true"),
        ];
        vars.extend_from_slice(extra);
        Self::spawn_with(&vars).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, text, json }
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.post(path).json(&body)).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Reply {
        self.post_json("/signup", serde_json::json!({"email": email, "password": password})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.send(self.post("/token").form(&[("grant_type", "password"), ("username", email), ("password", password)])).await
    }

    /// The token in the fragment of the last mail to `to`.
    pub fn mailed_token(&self, to: &str, key: &str) -> String {
        let mail = self.outbox.last_to(to).unwrap_or_else(|| panic!("no mail to {to}"));
        let url = mail.confirmation_url;
        let frag = url.split_once('#').map(|(_, f)| f).unwrap_or_default();
        frag.strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {url}")).to_owned()
    }

    pub async fn verify(&self, kind: &str, token: &str) -> Reply {
        self.post_json("/verify", serde_json::json!({"type": kind, "token": token})).await
    }

    /// Runs a counting query.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await.unwrap(),
        }
    }

    pub async fn users(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM users").await
    }
}

/// Decodes a JWT part without verifying.
pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}
