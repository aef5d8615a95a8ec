//! The real binary: the embedded default starts, serves, and refuses bad configuration.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("GOTRUE_") || k == "DATABASE_URL" || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd
}

async fn wait_health(port: u16) -> Duration {
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{port}/health");
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status() == 200 {
                return start.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server did not answer /health");
}

#[tokio::test]
async fn embedded_default_creates_its_database_and_secret_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    clean_env(&mut cmd)
        .current_dir(dir.path())
        .env("PORT", port.to_string())
        .env("GOTRUE_API_HOST", "127.0.0.1")
        .env("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64")
        .env("GOTRUE_PASSWORD_MIN_LENGTH", "1")
        .env("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let server = Server(cmd.spawn().unwrap());
    wait_health(port).await;
    assert!(dir.path().join("gotrue.db").exists());
    let secret = dir.path().join("gotrue.db.jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let first_secret = std::fs::read_to_string(&secret).unwrap();
    assert_eq!(first_secret.trim().len(), 64);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://127.0.0.1:{port}/signup"))
        .json(&serde_json::json!({"email": "a@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
    // Restarting keeps the same secret and data.
    let server = Server(cmd.spawn().unwrap());
    wait_health(port).await;
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), first_secret);
    let r = client
        .post(format!("http://127.0.0.1:{port}/signup"))
        .json(&serde_json::json!({"email": "a@example.com", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "unconfirmed re-signup of the stored user");
    drop(server);
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_env(&mut Command::new(BIN)).current_dir(dir.path()).env("GOTRUE_MAILER_AUTOCONFIRM", "maybe").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GOTRUE_MAILER_AUTOCONFIRM"));
    let out = clean_env(&mut Command::new(BIN))
        .current_dir(dir.path())
        .env("GOTRUE_DB_DRIVER", "mysql")
        .env("DATABASE_URL", "root@tcp(127.0.0.1:1)/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GOTRUE_JWT_SECRET is required"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = clean_env(&mut Command::new(BIN)).current_dir(dir.path()).args(["-c", "missing.env"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.env"));
}

#[test]
fn cli_has_help_version_and_migrate() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "migrate", "version", "--config"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = Command::new(BIN).arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), gotrue::VERSION);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custom.env"), "GOTRUE_DB_DATABASE_URL=from-file.db\n").unwrap();
    for _ in 0..2 {
        let out = clean_env(&mut Command::new(BIN)).current_dir(dir.path()).args(["migrate", "-c", "custom.env"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Applied"));
    }
    assert!(dir.path().join("from-file.db").exists());
}
