//! External login over real HTTP: the server on 127.0.0.1:0, a fake of every provider on
//! loopback, and a cookie-keeping client that follows the redirect dance by hand
//! (`/authorize` -> provider -> `/callback` -> site). SQLite always; the flows that matter
//! for several servers sharing one database also run on MySQL/MariaDB when
//! `GOTRUE_TEST_MYSQL_URL` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod fake;
mod flows;
mod pkce;
#[path = "../storage/scratch_mysql.rs"]
mod scratch_mysql;
mod security;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use gotrue::adapters::mail::MemoryOutbox;
use gotrue::app::config::{Config, Env};
use gotrue::app::wiring::{self, Overrides, Store};
use gotrue::domain::identity::Identity;
use gotrue::domain::user::User;
use gotrue::ports::identities::IdentityStore as _;
use gotrue::ports::users::{Effects, UserStore as _};
use reqwest::cookie::Jar;
use reqwest::header::HeaderMap;
use serde_json::Value;
use uuid::Uuid;

use fake::FakeProvider;
use scratch_mysql::ScratchDb;

pub const SECRET: &str = "testsecret";
pub const OPERATOR_TOKEN: &str = "foobar";
pub const AUD: &str = "api.netlify.com";
pub const SITE: &str = "https://example.netlify.com";
pub const PROVIDERS: [&str; 5] = ["bitbucket", "github", "gitlab", "google", "facebook"];

/// Which database a server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    MySql,
}

/// SQLite, and MySQL when the test server is configured.
pub fn engines() -> Vec<Engine> {
    let mut v = vec![Engine::Sqlite];
    if scratch_mysql::server_url().is_some() {
        v.push(Engine::MySql);
    }
    v
}

/// A response: status, headers and the body.
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

    pub fn location(&self) -> String {
        assert_eq!(self.status, 302, "expected a redirect, got {}: {}", self.status, self.text);
        self.header("location").unwrap().to_owned()
    }

    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["code"], status, "body: {}", self.text);
        assert_eq!(self.json["msg"], msg, "body: {}", self.text);
    }
}

/// A browser: keeps cookies, follows no redirect.
#[derive(Clone)]
pub struct Browser {
    client: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Default for Browser {
    fn default() -> Self {
        let jar = Arc::new(Jar::default());
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_provider(Arc::clone(&jar)).build().unwrap();
        Self { client, jar }
    }
}

impl Browser {
    pub async fn get(&self, url: &str) -> Reply {
        self.send(self.client.get(url)).await
    }

    pub async fn get_from(&self, url: &str, referer: &str) -> Reply {
        self.send(self.client.get(url).header("referer", referer)).await
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }
}

/// The three hops of one login.
pub struct Dance {
    /// `/authorize`'s answer.
    pub authorize: Reply,
    /// Where the provider sent the browser back (our `/callback` with code and state).
    pub callback_url: String,
    /// `/callback`'s answer.
    pub callback: Reply,
}

impl Dance {
    /// The final redirect target.
    pub fn location(&self) -> String {
        self.callback.location()
    }

    /// The final redirect's fragment, decoded.
    pub fn fragment(&self) -> HashMap<String, String> {
        fragment(&self.location())
    }

    /// Asserts upstream's "success": tokens in the fragment, back on `/admin`.
    #[track_caller]
    pub fn assert_tokens(&self) -> HashMap<String, String> {
        let loc = self.location();
        let f = fragment(&loc);
        assert!(!f.get("access_token").is_none_or(String::is_empty), "no access token in {loc}");
        assert!(!f.get("refresh_token").is_none_or(String::is_empty), "no refresh token in {loc}");
        assert_eq!(f.get("token_type").map(String::as_str), Some("bearer"), "{loc}");
        assert_eq!(f.get("expires_in").map(String::as_str), Some("3600"), "{loc}");
        assert!(!f.contains_key("error") && !f.contains_key("error_description"), "{loc}");
        assert_eq!(url::Url::parse(&loc).unwrap().path(), "/admin", "{loc}");
        f
    }

    /// Asserts upstream's "failure": the error in the fragment, no tokens.
    #[track_caller]
    pub fn assert_failure(&self, code: &str, description: &str) {
        let loc = self.location();
        let f = fragment(&loc);
        assert_eq!(f.get("error").map(String::as_str), Some(code), "{loc}");
        assert_eq!(f.get("error_description").map(String::as_str), Some(description), "{loc}");
        assert!(!f.contains_key("access_token") && !f.contains_key("refresh_token"), "{loc}");
    }
}

/// The decoded `#...` of a URL (after the last `#`).
pub fn fragment(url: &str) -> HashMap<String, String> {
    let f = url.rsplit_once('#').map(|(_, f)| f).unwrap_or_default();
    url::form_urlencoded::parse(f.as_bytes()).into_owned().collect()
}

/// The decoded query of a URL.
pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A running server, its database, its outbox and its fake providers.
pub struct TestApp {
    pub url: String,
    pub outbox: MemoryOutbox,
    pub store: Store,
    pub fake: FakeProvider,
    pub env: Vec<(String, String)>,
    _dir: Arc<tempfile::TempDir>,
    _mysql: Option<Arc<ScratchDb>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> Self {
        Self::spawn_on(Engine::Sqlite, extra).await
    }

    /// A server on `engine` with every provider enabled against one fake.
    pub async fn spawn_on(engine: Engine, extra: &[(&str, &str)]) -> Self {
        let fake = FakeProvider::start().await;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let (db_env, mysql) = match engine {
            Engine::Sqlite => {
                let path = dir.path().join("test.db").to_str().unwrap().to_owned();
                (vec![("GOTRUE_DB_DRIVER".to_owned(), "sqlite".to_owned()), ("DATABASE_URL".to_owned(), path)], None)
            }
            Engine::MySql => {
                let db = ScratchDb::create(&scratch_mysql::server_url().unwrap(), "gotrue_ext_").await;
                let env = vec![
                    ("GOTRUE_DB_DRIVER".to_owned(), "mysql".to_owned()),
                    ("DATABASE_URL".to_owned(), db.url().to_string()),
                    ("GOTRUE_DB_AUTOMIGRATE".to_owned(), "true".to_owned()),
                    ("GOTRUE_DB_MAX_CONNECTIONS".to_owned(), "4".to_owned()),
                ];
                (env, Some(Arc::new(db)))
            }
        };
        let mut env: Vec<(String, String)> = db_env;
        for p in PROVIDERS {
            let up = p.to_ascii_uppercase();
            env.push((format!("GOTRUE_EXTERNAL_{up}_ENABLED"), "true".into()));
            env.push((format!("GOTRUE_EXTERNAL_{up}_CLIENT_ID"), fake::CLIENT_ID.into()));
            env.push((format!("GOTRUE_EXTERNAL_{up}_SECRET"), fake::CLIENT_SECRET.into()));
            env.push((format!("GOTRUE_EXTERNAL_{up}_URL"), fake.url.clone()));
        }
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        Self::start(fake, env, dir, mysql).await
    }

    /// Another server with the same configuration, database and fakes (several instances
    /// behind one load balancer: the providers' redirect URI names the first one).
    pub async fn sibling(&self) -> Self {
        Self::start(self.fake.clone(), self.env.clone(), Arc::clone(&self._dir), self._mysql.clone()).await
    }

    async fn start(fake: FakeProvider, mut env: Vec<(String, String)>, dir: Arc<tempfile::TempDir>, mysql: Option<Arc<ScratchDb>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let base: Vec<(String, String)> = [
            ("GOTRUE_JWT_SECRET", SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_SITE_URL", SITE),
            ("GOTRUE_OPERATOR_TOKEN", OPERATOR_TOKEN),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            // Upstream accepts any non-empty password; these scenarios use short ones.
            ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
            ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in base {
            if !env.iter().any(|(ek, _)| *ek == k) {
                env.push((k, v));
            }
        }
        for p in PROVIDERS {
            let key = format!("GOTRUE_EXTERNAL_{}_REDIRECT_URI", p.to_ascii_uppercase());
            if !env.iter().any(|(k, _)| *k == key) {
                env.push((key, format!("{url}/callback")));
            }
        }
        let config = Config::from_env(&Env::from_pairs(env.clone())).unwrap();
        let outbox = MemoryOutbox::default();
        let built = wiring::build(config, Overrides { mailer: Some(Arc::new(outbox.clone())), clock: None }).await.unwrap();
        let store = built.store.clone();
        tokio::spawn(async move {
            axum::serve(listener, built.router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        Self { url, outbox, store, fake, env, _dir: dir, _mysql: mysql }
    }

    /// `/authorize?<query>` from a page of the site, as upstream's tests do.
    pub async fn authorize(&self, browser: &Browser, query: &str) -> Reply {
        browser.get_from(&format!("{}/authorize?{query}", self.url), &format!("{SITE}/admin")).await
    }

    /// The whole dance for `/authorize?<query>`.
    pub async fn dance_with(&self, browser: &Browser, query: &str) -> Dance {
        let authorize = self.authorize(browser, query).await;
        let at_provider = browser.get(&authorize.location()).await;
        let callback_url = at_provider.location();
        assert!(callback_url.starts_with(&format!("{}/callback?", self.url)), "{callback_url}");
        let callback = browser.get(&callback_url).await;
        Dance { authorize, callback_url, callback }
    }

    /// The whole dance for a provider, in a fresh browser.
    pub async fn dance(&self, provider: &str) -> Dance {
        self.dance_with(&Browser::default(), &format!("provider={provider}")).await
    }

    pub async fn user(&self, email: &str) -> Option<User> {
        let key = gotrue::domain::email::normalise(email);
        match &self.store {
            Store::Sqlite(s) => s.find_user_by_email(Uuid::nil(), AUD, &key).await.unwrap(),
            Store::MySql(s) => s.find_user_by_email(Uuid::nil(), AUD, &key).await.unwrap(),
        }
    }

    pub async fn identities(&self, user_id: Uuid) -> Vec<Identity> {
        match &self.store {
            Store::Sqlite(s) => s.user_identities(Uuid::nil(), user_id).await.unwrap(),
            Store::MySql(s) => s.user_identities(Uuid::nil(), user_id).await.unwrap(),
        }
    }

    pub async fn insert_user(&self, user: &User) {
        match &self.store {
            Store::Sqlite(s) => s.insert_user(user, &Effects::default()).await.unwrap(),
            Store::MySql(s) => s.insert_user(user, &Effects::default()).await.unwrap(),
        }
    }

    /// An existing account, unconfirmed, with a password.
    pub async fn existing_user(&self, email: &str, confirmed: bool) -> User {
        let now = chrono::Utc::now();
        let mut u = User::new(Uuid::nil(), AUD, email, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(), None, now);
        if confirmed {
            u.confirm(now);
        }
        self.insert_user(&u).await;
        u
    }

    /// An invited user whose invite token is `token`, invited `age` seconds ago.
    pub async fn invited_user(&self, email: &str, token: &str, age: i64) -> User {
        let at = chrono::Utc::now() - chrono::Duration::seconds(age);
        let mut u = User::new(Uuid::nil(), AUD, email, String::new(), None, at);
        u.invited_at = Some(at);
        u.confirmation_token = gotrue::domain::token::digest(token);
        self.insert_user(&u).await;
        u
    }

    /// The `action` of every audit entry, sorted by name (entries written within one
    /// second have no reliable order on MySQL).
    pub async fn audit_actions(&self) -> Vec<String> {
        let sql = "SELECT CAST(payload AS CHAR) FROM audit_log_entries ORDER BY created_at, id";
        let rows: Vec<String> = match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar(sql).fetch_all(s.pool()).await.unwrap(),
        };
        let mut actions: Vec<String> =
            rows.iter().map(|p| serde_json::from_str::<Value>(p).unwrap()["action"].as_str().unwrap().to_owned()).collect();
        actions.sort();
        actions
    }

    /// Rows in a table.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar(&sql).fetch_one(s.pool()).await.unwrap(),
        }
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        Browser::default().send(reqwest::Client::new().post(format!("{}{path}", self.url)).form(form)).await
    }

    pub async fn get_user(&self, access_token: &str) -> Reply {
        Browser::default().send(reqwest::Client::new().get(format!("{}/user", self.url)).bearer_auth(access_token)).await
    }
}

/// Decodes a JWT's claims, verifying it with `key` (HS256).
pub fn decode_hs256(token: &str, key: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_secret(key.as_bytes()), &v).unwrap().claims
}

/// Signs claims (HS256).
pub fn sign_hs256(claims: &Value, key: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Sets the account every provider reports.
pub fn account(app: &TestApp, id: &str, name: &str, emails: &[(&str, bool, bool)]) {
    app.fake.script(|s| {
        s.account = fake::Account {
            id: id.into(),
            name: name.into(),
            avatar: "http://example.com/avatar".into(),
            emails: emails.iter().map(|(e, v, p)| ((*e).to_owned(), *v, *p)).collect(),
        };
    });
}
