//! Operations (issue 10), against the built binary: JSON logs (level, file, request id, no
//! secrets), `/ready`, span export over OTLP/HTTP to a receiver started here, and the
//! Prometheus listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod logs;
mod metrics;
mod ready;
mod tracing;

#[path = "../storage/scratch_mysql.rs"]
mod scratch_mysql;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `gotrue serve` (killed when dropped).
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts the binary on a free port with a SQLite database in a fresh directory,
    /// cheap hashing, auto-confirmed sign-ups and `env` on top; waits for `/health`.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("GOTRUE_") || matches!(k.as_str(), "DATABASE_URL" | "PORT" | "LOG_LEVEL" | "REQUEST_ID_HEADER") {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir.path())
            .env("PORT", port.to_string())
            .env("GOTRUE_API_HOST", "127.0.0.1")
            .env("GOTRUE_SITE_URL", "http://localhost:8080")
            .env("GOTRUE_JWT_AUD", "api.netlify.com")
            .env("GOTRUE_MAILER_AUTOCONFIRM", "true")
            .env("GOTRUE_PASSWORD_MIN_LENGTH", "1")
            .env("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64")
            .env("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        let server = Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if server.http.get(format!("{}/health", server.base)).send().await.is_ok() {
                return server;
            }
            assert!(Instant::now() < deadline, "the server did not come up: {}", server.stderr());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then waits (bounded) for the process to exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not stop on SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url("/token")).form(form).send().await.unwrap()
    }

    /// Sign-up, password login, refresh: returns (access token, refresh token of the login,
    /// refresh token of the refresh).
    pub async fn signup_login_refresh(&self, email: &str, password: &str) -> (String, String, String) {
        let r = self.post_json("/signup", &json!({"email": email, "password": password})).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let login: Value =
            self.token(&[("grant_type", "password"), ("username", email), ("password", password)]).await.json().await.unwrap();
        let refresh = login["refresh_token"].as_str().expect("refresh token").to_owned();
        let r = self.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
        assert_eq!(r.status(), 200);
        let refreshed: Value = r.json().await.unwrap();
        (refreshed["access_token"].as_str().unwrap().to_owned(), refresh, refreshed["refresh_token"].as_str().unwrap().to_owned())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The JSON lines of a log file (every line must be JSON).
pub fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
