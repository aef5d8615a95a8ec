//! Scale-out (issue 9): two `gotrue` processes on one MariaDB database and one Redis behave
//! as one server. Needs `GOTRUE_TEST_MYSQL_URL` (skipped with a message otherwise); the
//! shared rate limit also needs `GOTRUE_TEST_REDIS_URL` (that part is skipped without it).
//!
//! `cargo test --test scaleout -- --nocapture` prints what was tried and what held.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "storage/scratch_mysql.rs"]
mod scratch_mysql;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");
const SECRET: &str = "scale-out-test-secret-0123456789abcdef";
const OPERATOR: &str = "scale-out-operator-token";
const PASSWORD: &str = "scale out password";

/// One `gotrue serve` process, killed when dropped.
struct Instance {
    name: &'static str,
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    json: Value,
    text: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Instance {
    fn spawn(name: &'static str, db_url: &str, redis: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("GOTRUE_") || k == "DATABASE_URL" || k == "PORT" {
                cmd.env_remove(k);
            }
        }
        cmd.arg("serve")
            .env("PORT", port.to_string())
            .env("GOTRUE_API_HOST", "127.0.0.1")
            .env("DATABASE_URL", db_url)
            .env("GOTRUE_DB_DRIVER", "mysql")
            .env("GOTRUE_DB_AUTOMIGRATE", "true")
            .env("GOTRUE_JWT_SECRET", SECRET)
            .env("GOTRUE_OPERATOR_TOKEN", OPERATOR)
            .env("GOTRUE_SITE_URL", "http://127.0.0.1:9")
            .env("GOTRUE_MAILER_AUTOCONFIRM", "true")
            .env("GOTRUE_PASSWORD_MIN_LENGTH", "1")
            .env("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64")
            .env("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1")
            // A rotated token is refused at once (no grace window for concurrent tabs).
            .env("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")
            .env("GOTRUE_RATE_LIMIT_RECOVER", "4")
            .env("GOTRUE_LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((url, prefix)) = redis {
            cmd.env("GOTRUE_RATE_LIMIT_REDIS_URL", url).env("GOTRUE_RATE_LIMIT_REDIS_PREFIX", prefix);
        }
        let child = cmd.spawn().expect("start gotrue");
        Self { name, child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("gotrue {} exited with {status}", self.name);
            }
            if let Ok(r) = self.http.get(format!("{}/health", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gotrue {} did not answer /health", self.name);
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.timeout(Duration::from_secs(20)).send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, json, text }
    }

    async fn signup(&self, email: &str) -> Reply {
        self.send(self.http.post(format!("{}/signup", self.base)).json(&json!({"email": email, "password": PASSWORD}))).await
    }

    async fn grant(&self, form: &[(&str, &str)]) -> Reply {
        self.send(self.http.post(format!("{}/token", self.base)).form(form)).await
    }

    async fn login(&self, email: &str) -> Reply {
        self.grant(&[("grant_type", "password"), ("username", email), ("password", PASSWORD)]).await
    }

    async fn refresh(&self, token: &str) -> Reply {
        self.grant(&[("grant_type", "refresh_token"), ("refresh_token", token)]).await
    }

    async fn user(&self, access: &str) -> Reply {
        self.send(self.http.get(format!("{}/user", self.base)).bearer_auth(access)).await
    }

    async fn recover(&self, email: &str) -> Reply {
        self.send(self.http.post(format!("{}/recover", self.base)).json(&json!({"email": email}))).await
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(OPERATOR)
    }
}

fn field(r: &Reply, name: &str) -> String {
    r.json[name].as_str().unwrap_or_else(|| panic!("no {name} in {}", r.text)).to_owned()
}

#[tokio::test]
async fn two_processes_on_one_database_and_one_redis_behave_as_one_server() {
    let Some(server) = scratch_mysql::server_url() else {
        eprintln!("note: {} is not set; skipping the two-process scale-out test", scratch_mysql::MYSQL_URL_VAR);
        return;
    };
    let db = scratch_mysql::ScratchDb::create(&server, "gt_scale_").await;
    let redis = std::env::var("GOTRUE_TEST_REDIS_URL").ok().filter(|u| !u.trim().is_empty());
    let prefix = format!("gotrue-scaleout:{}:", uuid::Uuid::new_v4().simple());
    let shared = redis.as_deref().map(|u| (u, prefix.as_str()));
    // Both start at once: the migration lock lets exactly one migrate.
    let mut a = Instance::spawn("A", db.url().as_str(), shared);
    let mut b = Instance::spawn("B", db.url().as_str(), shared);
    a.wait_ready().await;
    b.wait_ready().await;
    eprintln!("scale-out: A at {}, B at {}, one MariaDB database {}", a.base, b.base, db.name);

    // A user signed up on A logs in on B.
    let r = a.signup("scale@example.com").await;
    assert_eq!(r.status, 200, "signup on A: {}", r.text);
    let user_id = field(&r, "id");
    let login = b.login("scale@example.com").await;
    assert_eq!(login.status, 200, "login on B of a user signed up on A: {}", login.text);
    eprintln!("  ok: signed up on A, logged in on B");

    // An access token issued by one is accepted by the other.
    let from_a = a.login("scale@example.com").await;
    assert_eq!(from_a.status, 200, "{}", from_a.text);
    let r = b.user(&field(&from_a, "access_token")).await;
    assert_eq!((r.status, field(&r, "id")), (200, user_id.clone()), "A's access token on B: {}", r.text);
    let r = a.user(&field(&login, "access_token")).await;
    assert_eq!(r.status, 200, "B's access token on A: {}", r.text);
    eprintln!("  ok: access tokens from A work on B and from B on A");

    // A refresh token issued by A refreshes on B, and B's on A.
    let r1 = field(&from_a, "refresh_token");
    let on_b = b.refresh(&r1).await;
    assert_eq!(on_b.status, 200, "A's refresh token on B: {}", on_b.text);
    let r2 = field(&on_b, "refresh_token");
    assert_ne!(r1, r2, "the token rotates");
    let on_a = a.refresh(&r2).await;
    assert_eq!(on_a.status, 200, "B's refresh token on A: {}", on_a.text);
    eprintln!("  ok: A's refresh token refreshed on B, and the token B issued refreshed on A");

    // The rotated tokens are refused by both.
    for (who, inst) in [("A", &a), ("B", &b)] {
        for (name, t) in [("r1", &r1), ("r2", &r2)] {
            let r = inst.refresh(t).await;
            assert_eq!(r.status, 400, "rotated {name} on {who}: {}", r.text);
            assert_eq!(r.json["error"], "invalid_grant", "{}", r.text);
        }
    }
    eprintln!("  ok: both rotated tokens are refused by A and by B");

    // Rate limits are one budget: 4 recoveries per client, two on each, then 429 on both.
    if redis.is_some() {
        for (i, inst) in [&a, &b, &a, &b].into_iter().enumerate() {
            let r = inst.recover(&format!("nobody{i}@example.com")).await;
            assert_eq!(r.status, 200, "recover {i} on {}: {}", inst.name, r.text);
        }
        for inst in [&a, &b] {
            let r = inst.recover("one-more@example.com").await;
            assert_eq!(r.status, 429, "the shared budget is spent, {} must refuse: {}", inst.name, r.text);
        }
        eprintln!("  ok: a limit of 4 spent 2 on A and 2 on B answers 429 on both");
    } else {
        eprintln!("  note: GOTRUE_TEST_REDIS_URL is not set; the shared rate-limit part is skipped");
    }

    // Admin changes on A are seen by B.
    let r = a
        .send(a.admin(reqwest::Method::PUT, &format!("/admin/users/{user_id}")).json(&json!({
            "app_metadata": {"roles": ["editor"]},
            "user_metadata": {"full_name": "Changed On A"}
        })))
        .await;
    assert_eq!(r.status, 200, "admin update on A: {}", r.text);
    let fresh = b.login("scale@example.com").await;
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    let seen = b.user(&field(&fresh, "access_token")).await;
    assert_eq!(seen.json["app_metadata"]["roles"], json!(["editor"]), "B sees A's admin change: {}", seen.text);
    assert_eq!(seen.json["user_metadata"]["full_name"], "Changed On A", "{}", seen.text);
    let listed = b.send(b.admin(reqwest::Method::GET, &format!("/admin/users/{user_id}"))).await;
    assert_eq!(listed.json["user_metadata"]["full_name"], "Changed On A", "B's admin API sees it: {}", listed.text);
    let r = a.send(a.admin(reqwest::Method::DELETE, &format!("/admin/users/{user_id}"))).await;
    assert_eq!(r.status, 200, "admin delete on A: {}", r.text);
    let r = b.login("scale@example.com").await;
    assert_eq!(r.status, 400, "a user deleted on A cannot log in on B: {}", r.text);
    let r = b.refresh(&field(&fresh, "refresh_token")).await;
    assert_eq!(r.status, 400, "nor refresh on B: {}", r.text);
    eprintln!("  ok: an admin update on A is seen by B (user and admin API); a delete on A ends login and refresh on B");
}
