//! Multi-instance mode (`gotrue multi`, issue 10): the real router in multi-instance mode on
//! 127.0.0.1:0, on SQLite and (when `GOTRUE_TEST_MYSQL_URL` is set) MariaDB/MySQL; the
//! operator endpoints, the `x-nf-sign` header, per-instance JWT secrets, SMTP servers,
//! providers and function hooks, and the upstream instance scenarios (SCENARIOS.md 11-12, 14).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod cli;
mod hooks;
mod isolation;
mod operator;
mod signature;

#[path = "../storage/scratch_mysql.rs"]
mod scratch_mysql;

#[path = "../mail/smtp_server.rs"]
#[allow(dead_code)]
mod smtp_server;

#[path = "../external/fake.rs"]
#[allow(dead_code)]
mod fake;

use std::sync::Arc;

use gotrue::adapters::mail::MemoryOutbox;
use gotrue::app::config::{Config, Env};
use gotrue::app::wiring::{self, Overrides, Store};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use uuid::Uuid;

pub const OPERATOR: &str = "operatorToken";
pub const AUD: &str = "api.netlify.com";
pub const ENDPOINT: &str = "https://identity.example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
}

/// SQLite always, MySQL/MariaDB when `GOTRUE_TEST_MYSQL_URL` is set.
pub fn engines() -> Vec<Engine> {
    let mut e = vec![Engine::Sqlite];
    if scratch_mysql::server_url().is_some() {
        e.push(Engine::MySql);
    }
    e
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["code"], status, "body: {}", self.text);
        assert_eq!(self.json["msg"], msg, "body: {}", self.text);
    }

    pub fn location(&self) -> String {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
}

/// A server in multi-instance mode.
pub struct Multi {
    pub url: String,
    pub outbox: MemoryOutbox,
    pub store: Store,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    _scratch: Option<scratch_mysql::ScratchDb>,
}

impl Multi {
    pub async fn spawn() -> Self {
        Self::spawn_on(Engine::Sqlite, &[]).await
    }

    pub async fn spawn_on(engine: Engine, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db, driver, scratch) = match engine {
            Engine::Sqlite => (dir.path().join("multi.db").to_str().unwrap().to_owned(), "sqlite", None),
            Engine::MySql => {
                let server = scratch_mysql::server_url().unwrap();
                let scratch = scratch_mysql::ScratchDb::create(&server, "gt_multi_").await;
                (scratch.url().to_string(), "mysql", Some(scratch))
            }
        };
        let mut pairs: Vec<(String, String)> = [
            ("GOTRUE_OPERATOR_TOKEN", OPERATOR),
            ("GOTRUE_MULTIINSTANCEMODE", "true"),
            ("GOTRUE_API_ENDPOINT", ENDPOINT),
            ("GOTRUE_DB_DRIVER", driver),
            ("GOTRUE_DB_AUTOMIGRATE", "true"),
            ("GOTRUE_DB_MAX_CONNECTIONS", "4"),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
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
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { url: format!("http://{addr}"), outbox, store, client, _dir: dir, _scratch: scratch }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }

    pub fn at(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// An operator request (bearer = operator token).
    pub fn op(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.at(method, path).bearer_auth(OPERATOR)
    }

    /// A request for instance `id`, signed as the operator's proxy does.
    pub fn site(&self, method: reqwest::Method, path: &str, id: Uuid) -> reqwest::RequestBuilder {
        self.at(method, path).header("x-nf-sign", nf_sign(&json!({"id": id.to_string()})))
    }

    /// Creates an instance with `config`; returns its id.
    pub async fn create(&self, config: Value) -> Uuid {
        let r = self.send(self.op(reqwest::Method::POST, "/instances").json(&json!({"uuid": Uuid::new_v4(), "config": config}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        Uuid::parse_str(r.json["id"].as_str().unwrap()).unwrap()
    }

    /// The stored `raw_base_config` of an instance.
    pub async fn stored_config(&self, id: Uuid) -> Value {
        let store: Arc<dyn gotrue::ports::instances::InstanceStore> = self.store.instances();
        let row = store.find_instance(id).await.unwrap().unwrap();
        serde_json::from_str(row.raw_base_config.as_deref().unwrap()).unwrap()
    }

    pub async fn signup(&self, id: Uuid, email: &str, password: &str) -> Reply {
        self.send(self.site(reqwest::Method::POST, "/signup", id).json(&json!({"email": email, "password": password}))).await
    }

    pub async fn login(&self, id: Uuid, email: &str, password: &str) -> Reply {
        self.send(self.site(reqwest::Method::POST, "/token", id).form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ]))
        .await
    }
}

/// Signs `claims` with the operator token (the `x-nf-sign` header).
pub fn nf_sign(claims: &Value) -> String {
    sign_with(claims, OPERATOR)
}

pub fn sign_with(claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Verifies an HS256 JWT under `key` and returns its claims.
pub fn decode_hs256(token: &str, key: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    v.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()), &v).unwrap().claims
}

/// A site configuration with its own JWT secret and autoconfirm.
pub fn site_config(secret: &str, site_url: &str) -> Value {
    json!({"site_url": site_url, "jwt": {"secret": secret, "aud": AUD}, "mailer": {"autoconfirm": true}})
}
