//! `gotrue admin createuser | deleteuser | listusers` (CONFIG.md 8), run as the built
//! binary against SQLite and, when `GOTRUE_TEST_MYSQL_URL` is set, a fresh MariaDB/MySQL
//! database.

use std::process::{Command, Output};

use serde_json::Value;

use crate::scratch_mysql::ScratchDb;
use crate::{engines, Engine, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");

/// A database the CLI and a server can share.
struct Db {
    dir: tempfile::TempDir,
    driver: &'static str,
    url: String,
    scratch: Option<ScratchDb>,
}

impl Db {
    async fn new(engine: Engine) -> Self {
        let dir = tempfile::tempdir().unwrap();
        match engine {
            Engine::Sqlite => {
                let url = dir.path().join("cli.db").to_str().unwrap().to_owned();
                Self { dir, driver: "sqlite", url, scratch: None }
            }
            Engine::MySql => {
                let server = crate::scratch_mysql::server_url().unwrap();
                let scratch = ScratchDb::create(&server, "gt_").await;
                let url = scratch.url().to_string();
                let db = Self { dir, driver: "mysql", url, scratch: Some(scratch) };
                // MySQL is not migrated automatically: the operator runs `gotrue migrate`.
                let out = db.run(&["migrate"]);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                db
            }
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("GOTRUE_") || k == "DATABASE_URL" || k == "PORT" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(self.dir.path())
            .env("GOTRUE_DB_DRIVER", self.driver)
            .env("DATABASE_URL", &self.url)
            .env("GOTRUE_JWT_AUD", "api.netlify.com")
            .env("GOTRUE_JWT_DEFAULT_GROUP_NAME", "member")
            .env("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64")
            .env("GOTRUE_PASSWORD_MIN_LENGTH", "1")
            .env("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1")
            .env("GOTRUE_LOG_LEVEL", "error")
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stderr).unwrap()
    }

    fn users(&self, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["admin", "listusers", "--json"];
        args.extend(extra);
        self.ok(&args).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// A server on this database (the CLI's users log in through it).
    async fn serve(self) -> TestApp {
        TestApp::spawn_db(self.dir, self.driver, &self.url, self.scratch, &[("GOTRUE_JWT_DEFAULT_GROUP_NAME", "member")]).await
    }
}

#[tokio::test]
async fn createuser_sets_role_provider_and_flags_and_refuses_duplicates() {
    for engine in engines() {
        let db = Db::new(engine).await;
        let out = db.ok(&["admin", "createuser", "plain@example.com", "pw1"]);
        assert!(out.starts_with("Created user: plain@example.com"), "{out}");
        let err = db.fails(&["admin", "createuser", "Plain@Example.com", "other"]);
        assert!(err.contains("user already exists"), "{engine:?}: {err}");
        db.ok(&["admin", "createuser", "boss@example.com", "pw2", "--admin", "--confirm"]);
        db.ok(&["admin", "createuser", "ed@example.com", "pw3", "editor", "--admin", "--confirm"]);
        db.ok(&["admin", "createuser", "root@example.com", "pw4", "--superadmin", "--confirm", "-a", "ops"]);
        db.ok(&["admin", "createuser", "plain@example.com", "pw5", "--aud", "ops", "-i", "00000000-0000-0000-0000-000000000000"]);
        let err = db.fails(&["admin", "createuser", "x@example.com", "pw", "-i", "not-a-uuid"]);
        assert!(err.contains("invalid instance id"), "{err}");
        let err = db.fails(&["admin", "createuser", "not an email", "pw"]);
        assert!(err.contains("Unable to validate email address"), "{err}");
        let users = db.users(&[]);
        let find = |email: &str, aud: &str| users.iter().find(|u| u["email"] == email && u["aud"] == aud).cloned().unwrap();
        assert_eq!(users.len(), 5, "{users:?}");
        assert_eq!(find("plain@example.com", "api.netlify.com")["role"], "member", "the default role (upstream set none)");
        assert_eq!(find("plain@example.com", "api.netlify.com")["confirmed"], false);
        assert_eq!(find("boss@example.com", "api.netlify.com")["role"], "admin");
        assert_eq!(find("ed@example.com", "api.netlify.com")["role"], "editor", "[role] wins over --admin");
        assert_eq!(find("root@example.com", "ops")["confirmed"], true);
        assert_eq!(db.users(&["-a", "ops"]).len(), 2);
        let app = db.serve().await;
        let login = app.login("boss@example.com", "pw2").await;
        assert_eq!(login.status, 200, "{engine:?}: {}", login.text);
        let claims = crate::jwt_part(login.json["access_token"].as_str().unwrap(), 1);
        assert_eq!(claims["app_metadata"], serde_json::json!({"provider": "email"}), "createuser sets the provider");
        // The CLI's admin is an admin of the API.
        let r = app.send(app.get("/admin/users").bearer_auth(login.json["access_token"].as_str().unwrap())).await;
        assert_eq!(r.header("x-total-count"), Some("3"));
        app.login("plain@example.com", "pw1").await.assert_oauth("invalid_grant", Some("Email not confirmed"));
    }
}

#[tokio::test]
async fn deleteuser_by_email_or_id_with_a_clear_error_otherwise() {
    for engine in engines() {
        let db = Db::new(engine).await;
        db.ok(&["admin", "createuser", "a@example.com", "pw"]);
        db.ok(&["admin", "createuser", "b@example.com", "pw", "-a", "other"]);
        let out = db.ok(&["admin", "deleteuser", "A@example.com"]);
        assert!(out.starts_with("Removed user: A@example.com"), "{out}");
        let err = db.fails(&["admin", "deleteuser", "a@example.com"]);
        assert!(err.contains("user not found"), "{engine:?}: {err}");
        let err = db.fails(&["admin", "deleteuser", "b@example.com"]);
        assert!(err.contains("user not found"), "another audience: {err}");
        let id = db.users(&[])[0]["id"].as_str().unwrap().to_owned();
        db.ok(&["admin", "deleteuser", &id]);
        assert!(db.users(&[]).is_empty());
        let err = db.fails(&["admin", "deleteuser", "neither-an-email-nor-an-id"]);
        assert!(err.contains("user not found"), "{err}");
        let err = db.fails(&["admin", "deleteuser", &uuid::Uuid::new_v4().to_string()]);
        assert!(err.contains("user not found"), "{err}");
    }
}

/// ASVS 7.4: deleting a user from the shell ends their sessions (their refresh tokens go).
#[tokio::test]
async fn deleteuser_deletes_the_users_sessions() {
    for engine in engines() {
        let db = Db::new(engine).await;
        db.ok(&["admin", "createuser", "gone@example.com", "pw", "--confirm"]);
        // A server on the same database; the CLI keeps its own handle on it.
        let app = TestApp::spawn_db(tempfile::tempdir().unwrap(), db.driver, &db.url, None, &[]).await;
        let login = app.login("gone@example.com", "pw").await;
        assert_eq!(login.status, 200, "{engine:?}: {}", login.text);
        assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 1);
        db.ok(&["admin", "deleteuser", "gone@example.com"]);
        assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 0, "{engine:?}");
    }
}

#[tokio::test]
async fn listusers_prints_a_table_or_json_lines() {
    let db = Db::new(Engine::Sqlite).await;
    assert_eq!(db.ok(&["admin", "listusers"]), "ID  EMAIL  AUD  ROLE  CONFIRMED\n");
    assert_eq!(db.ok(&["admin", "listusers", "--json"]), "");
    db.ok(&["admin", "createuser", "first@example.com", "pw", "--confirm"]);
    db.ok(&["admin", "createuser", "second@example.com", "pw", "owner", "-a", "x"]);
    let table = db.ok(&["admin", "listusers"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with(&format!("{:<36}  {:<18}  AUD", "ID", "EMAIL")), "{table}");
    assert!(lines[1].contains("first@example.com") && lines[1].contains("api.netlify.com") && lines[1].ends_with("yes"), "{table}");
    assert!(lines[2].contains("second@example.com") && lines[2].contains("owner") && lines[2].ends_with("no"), "{table}");
    let json = db.users(&[]);
    let first = db.ok(&["admin", "listusers", "--json"]).lines().next().unwrap().to_owned();
    assert!(first.starts_with(&format!(r#"{{"id":"{}","email":"first@example.com","aud":"#, json[0]["id"].as_str().unwrap())), "{first}");
    assert_eq!(json[1]["email"], "second@example.com", "oldest first");
    let help = String::from_utf8(Command::new(BIN).args(["admin", "--help"]).output().unwrap().stdout).unwrap();
    for cmd in ["createuser", "deleteuser", "listusers"] {
        assert!(help.contains(cmd), "{help}");
    }
}
