//! HTTP black-box tests: the real router on 127.0.0.1:0 with its own SQLite database and
//! an in-memory outbox; every endpoint's happy path and documented errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod admin;
mod audit;
mod breached;
mod cli;
mod cors_and_router;
mod invite;
mod jwt;
mod openapi;
mod password;
mod ratelimit;
mod recover;
mod robustness;
mod sessions;
mod signup;
mod smoke;
mod token;
mod user;
mod verify;

#[path = "../storage/scratch_mysql.rs"]
mod scratch_mysql;

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
    // Declared last: dropped (and the database with it) after the store.
    _scratch: Option<scratch_mysql::ScratchDb>,
}

/// Which database a [`TestApp`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
}

/// The engines to run a scenario on: SQLite always, MySQL/MariaDB when
/// `GOTRUE_TEST_MYSQL_URL` is set.
pub fn engines() -> Vec<Engine> {
    let mut e = vec![Engine::Sqlite];
    if scratch_mysql::server_url().is_some() {
        e.push(Engine::MySql);
    }
    e
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
        Self::spawn_on(Engine::Sqlite, extra).await
    }

    /// Starts a server on `engine` (MySQL: a fresh `gt_<random>` database, dropped after).
    pub async fn spawn_on(engine: Engine, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db, driver, scratch) = match engine {
            Engine::Sqlite => (dir.path().join("test.db").to_str().unwrap().to_owned(), "sqlite", None),
            Engine::MySql => {
                let server = scratch_mysql::server_url().expect("GOTRUE_TEST_MYSQL_URL");
                let scratch = scratch_mysql::ScratchDb::create(&server, "gt_").await;
                (scratch.url().to_string(), "mysql", Some(scratch))
            }
        };
        Self::spawn_db(dir, driver, &db, scratch, extra).await
    }

    /// Starts a server on an existing database (`driver` `sqlite` or `mysql`).
    pub async fn spawn_db(
        dir: tempfile::TempDir,
        driver: &str,
        db: &str,
        scratch: Option<scratch_mysql::ScratchDb>,
        extra: &[(&str, &str)],
    ) -> Self {
        Self::spawn_inner(dir, driver, db, scratch, extra, None).await
    }

    /// [`TestApp::spawn_on`] with the server reading time from `clock`.
    pub async fn spawn_clocked(engine: Engine, extra: &[(&str, &str)], clock: Arc<TestClock>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (db, driver, scratch) = match engine {
            Engine::Sqlite => (dir.path().join("test.db").to_str().unwrap().to_owned(), "sqlite", None),
            Engine::MySql => {
                let server = scratch_mysql::server_url().expect("GOTRUE_TEST_MYSQL_URL");
                let scratch = scratch_mysql::ScratchDb::create(&server, "gt_").await;
                (scratch.url().to_string(), "mysql", Some(scratch))
            }
        };
        Self::spawn_inner(dir, driver, &db, scratch, extra, Some(clock)).await
    }

    async fn spawn_inner(
        dir: tempfile::TempDir,
        driver: &str,
        db: &str,
        scratch: Option<scratch_mysql::ScratchDb>,
        extra: &[(&str, &str)],
        clock: Option<Arc<TestClock>>,
    ) -> Self {
        let db = db.to_owned();
        let mut pairs: Vec<(String, String)> = [
            ("GOTRUE_JWT_SECRET", SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_SITE_URL", SITE),
            ("GOTRUE_DB_DRIVER", driver),
            ("GOTRUE_DB_AUTOMIGRATE", "true"),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            // Upstream accepts any non-empty password; these scenarios use short ones.
            ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
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
        let clock = clock.map(|c| c as Arc<dyn gotrue::ports::clock::Clock>);
        let built = wiring::build(config, Overrides { mailer: Some(Arc::new(outbox.clone())), clock }).await.unwrap();
        let store = built.store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, built.router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        Self { url: format!("http://{addr}"), outbox, store, client: reqwest::Client::new(), _dir: dir, _scratch: scratch }
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

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(format!("{}{path}", self.url))
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

    /// The single number one SQL query answers (a `COUNT(*)`).
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar::<_, i64>(sql).fetch_one(s.pool()).await.unwrap(),
        }
    }

    /// A timestamp `secs` seconds in the past, as the SQLite adapter stores it.
    pub fn ago(secs: i64) -> String {
        (chrono::Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339()
    }
}

/// The wall clock moved forward by a settable offset: time-based rules (reuse window,
/// session lifetimes) without sleeping.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_secs: std::sync::atomic::AtomicI64,
}

impl TestClock {
    /// Moves the clock `secs` seconds forward.
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }
}

impl gotrue::ports::clock::Clock for TestClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::seconds(self.offset_secs.load(std::sync::atomic::Ordering::SeqCst))
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

/// A user to insert straight into the store (no audit entry, as upstream's fixtures).
pub struct Seed<'a> {
    pub email: &'a str,
    pub aud: &'a str,
    pub role: &'a str,
    pub super_admin: bool,
    pub full_name: Option<&'a str>,
    /// Creation time; default now (whole seconds, as MySQL keeps them).
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Password (bcrypt); the user is confirmed.
    pub password: &'a str,
}

impl Default for Seed<'_> {
    fn default() -> Self {
        Self { email: "", aud: AUD, role: "", super_admin: false, full_name: None, created_at: None, password: "password" }
    }
}

/// Now, in whole seconds.
pub fn now_s() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(0)
}

impl TestApp {
    /// Inserts a confirmed user.
    pub async fn seed(&self, s: Seed<'_>) -> gotrue::domain::user::User {
        let at = s.created_at.unwrap_or_else(now_s);
        let data = s.full_name.map(|n| serde_json::json!({"full_name": n}).as_object().cloned().unwrap());
        let hash = bcrypt::hash(s.password, 4).unwrap();
        let mut u = gotrue::domain::user::User::new(uuid::Uuid::nil(), s.aud, s.email, hash, data, at);
        u.role = s.role.to_owned();
        u.is_super_admin = s.super_admin;
        u.confirm(at);
        self.store.users().insert_user(&u, &Default::default()).await.unwrap();
        u
    }

    /// upstream's fixture: super admin `test@example.com` ("Test User"); returns its token.
    pub async fn super_admin(&self) -> String {
        let u = self.seed(Seed { email: "test@example.com", super_admin: true, full_name: Some("Test User"), ..Seed::default() }).await;
        token_for(&u)
    }
}

/// An access token for a stored user.
pub fn token_for(u: &gotrue::domain::user::User) -> String {
    sign(&serde_json::json!({"sub": u.id.to_string(), "aud": u.aud, "email": u.email, "exp": 4_000_000_000i64}))
}
