//! HTTP black-box tests: the real router on 127.0.0.1:0 with its own SQLite database and
//! an in-memory outbox; every endpoint's happy path and documented errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod cors_and_router;
mod recover;
mod signup;
mod smoke;
mod token;
mod user;
mod verify;

use std::sync::Arc;

use gotrue::adapters::mail::MemoryOutbox;
use gotrue::app::config::{Config, Env};
use gotrue::app::wiring::{self, Overrides, Store};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const SECRET: &str = "testsecret";
pub const AUD: &str = "api.netlify.com";
pub const SITE: &str = "https://example.netlify.com";

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
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    /// Asserts shape A: `{"code": status, "msg": msg}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["code"], status, "body: {}", self.text);
        assert_eq!(self.json["msg"], msg, "body: {}", self.text);
    }

    /// Asserts shape B (always 400).
    #[track_caller]
    pub fn assert_oauth(&self, error: &str, description: Option<&str>) {
        assert_eq!(self.status, 400, "body: {}", self.text);
        assert_eq!(self.json["error"], error, "body: {}", self.text);
        match description {
            Some(d) => assert_eq!(self.json["error_description"], d, "body: {}", self.text),
            None => assert!(self.json.get("error_description").is_none(), "body: {}", self.text),
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server with the test environment plus `extra` variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("test.db");
        let db = db.to_str().unwrap().to_owned();
        let mut pairs: Vec<(String, String)> = [
            ("GOTRUE_JWT_SECRET", SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_SITE_URL", SITE),
            ("GOTRUE_DB_DRIVER", "sqlite"),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
            ("GOTRUE_PASSWORD_BCRYPT_COST", "4"),
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
            axum::serve(listener, built.router).await.unwrap();
        });
        Self { url: format!("http://{addr}"), outbox, store, client: reqwest::Client::new(), _dir: dir }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url))
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.put(format!("{}{path}", self.url))
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.post(path).json(&body)).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> Reply {
        self.post_json("/signup", serde_json::json!({"email": email, "password": password})).await
    }

    /// The token in the fragment of the last mail to `to`.
    pub fn mailed_token(&self, to: &str, key: &str) -> String {
        let mail = self.outbox.last_to(to).unwrap_or_else(|| panic!("no mail to {to}"));
        let url = mail.confirmation_url;
        let frag = url.split_once('#').map(|(_, f)| f).unwrap_or_default();
        frag.strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {url}")).to_owned()
    }

    /// Signs up and confirms; returns the token response of the confirmation.
    pub async fn confirmed_user(&self, email: &str, password: &str) -> Value {
        let r = self.signup(email, password).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let token = self.mailed_token(email, "confirmation_token");
        let r = self.post_json("/verify", serde_json::json!({"type": "signup", "token": token})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.send(self.post("/token").form(&[("grant_type", "password"), ("username", email), ("password", password)])).await
    }

    /// Runs one SQL statement against the test database.
    pub async fn sql(&self, sql: &str) {
        match &self.store {
            Store::Sqlite(s) => {
                sqlx::query(sql).execute(s.pool()).await.unwrap();
            }
            Store::MySql(s) => {
                sqlx::query(sql).execute(s.pool()).await.unwrap();
            }
        }
    }

    /// A timestamp `secs` seconds in the past, as the SQLite adapter stores it.
    pub fn ago(secs: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
    }
}

/// Signs a JWT with the test secret.
pub fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Decodes a JWT part without verifying.
pub fn jwt_part(token: &str, i: usize) -> Value {
    use base64::Engine as _;
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}
