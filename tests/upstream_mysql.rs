//! Drop-in upgrade of a database the Go GoTrue left behind (spec/SCHEMA.md 2-5).
//!
//! Builds the schema exactly as upstream's seven migrations leave it (JSON metadata,
//! `utf8mb4_unicode_ci` users, `instances` without `deleted_at`, `refresh_tokens` with
//! `updated_at`, the shared `schema_migration` with the seven versions), fills it with rows
//! as upstream writes them (bcrypt cost 10, plaintext 22-character tokens, naive UTC
//! timestamps), then runs the real binary: `gotrue migrate` twice, then `gotrue serve`,
//! and logs in, refreshes and verifies with the upstream secrets.
//!
//! Runs only when `GOTRUE_TEST_MYSQL_URL` is set (`mysql://root@127.0.0.1:3306/test`);
//! each test works in a `gt_up_<hex>` database of its own, dropped at the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "storage/scratch_mysql.rs"]
mod scratch_mysql;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::NaiveDateTime;
use gotrue::adapters::clock::SystemClock;
use gotrue::adapters::db::MySqlStore;
use gotrue::domain::token::{digest, NewToken};
use gotrue::ports::clock::Clock as _;
use gotrue::ports::users::UserStore as _;
use secrecy::SecretString;
use serde_json::{json, Value};
use sqlx::{ConnectOptions as _, Connection as _, MySqlConnection, Row as _};
use uuid::Uuid;

use scratch_mysql::ScratchDb;

const AUD: &str = "api.netlify.com";
const PASSWORD: &str = "upstream-pass";
const JWT_SECRET: &str = "upstream-compat-test-secret-0123456789abcdef";

/// Upstream's seven migration versions (SCHEMA.md 3).
const UPSTREAM_VERSIONS: [&str; 7] =
    ["20171026211738", "20171026211808", "20171026211834", "20180103212743", "20180108183307", "20180119214651", "20180125194653"];

#[tokio::test]
async fn upstream_database_upgrades_in_place() {
    scenario("").await;
}

#[tokio::test]
async fn upstream_database_with_namespace_upgrades_in_place() {
    scenario("test").await;
}

/// The secrets and ids the fixture hands to upstream's "users".
struct Seeded {
    confirmed_id: Uuid,
    confirmed_email: &'static str,
    pending_id: Uuid,
    pending_email: &'static str,
    signup_id: Uuid,
    pending_confirmation: String,
    pending_recovery: String,
    signup_confirmation: String,
    refresh: String,
    revoked_refresh: String,
}

async fn scenario(namespace: &str) {
    let Some(server) = scratch_mysql::server_url() else {
        eprintln!("note: {} is not set; skipping the upstream MySQL upgrade test", scratch_mysql::MYSQL_URL_VAR);
        return;
    };
    let db = ScratchDb::create(&server, "gt_up_").await;
    let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}_") };
    let t = Names::new(&prefix);
    let mut conn = db.options().connect().await.expect("connect fixture");

    create_upstream_schema(&mut conn, &prefix).await;
    let seeded = seed(&mut conn, &t).await;
    let before = snapshot(&mut conn, &t).await;

    // `gotrue migrate`, twice: both succeed, the second has nothing to do.
    let work = tempfile::tempdir().expect("tempdir");
    let env = Env::new(&server, &db.name, namespace);
    let first = run_migrate(&env, work.path()).await;
    // `migrate` prints the status before and after migrating.
    let before_status = |v: &str| first.lines().find(|l| l.starts_with(v)).unwrap_or_default().to_owned();
    let ours: Vec<&str> =
        gotrue::adapters::db::migrate::MYSQL.iter().map(|m| m.version).filter(|v| !UPSTREAM_VERSIONS.contains(v)).collect();
    for v in UPSTREAM_VERSIONS {
        if namespace.is_empty() {
            // The upstream versions are recognised as applied.
            assert!(before_status(v).contains("Applied"), "{v} is Applied before migrating:\n{first}");
        } else {
            // A namespace keeps its own bookkeeping (upstream's was shared): every step
            // runs again, each one idempotent on the tables upstream left.
            assert!(before_status(v).contains("Pending"), "{v} is Pending for a namespace:\n{first}");
        }
    }
    for v in &ours {
        assert!(before_status(v).contains("Pending"), "{v} is Pending before migrating:\n{first}");
        assert!(status_line(&first, v).is_some_and(|l| l.contains("Applied")), "{v} is Applied after migrating:\n{first}");
    }
    let second = run_migrate(&env, work.path()).await;
    assert!(!second.contains("Pending"), "the second migrate finds nothing pending:\n{second}");
    for v in UPSTREAM_VERSIONS {
        assert!(status_line(&second, v).is_some_and(|l| l.contains("Applied")));
    }

    // Nothing lost: same rows, same values (tokens aside, which are now digests).
    let after = snapshot(&mut conn, &t).await;
    assert_eq!(after, before, "rows are unchanged by migrate");
    assert_upgraded(&mut conn, &t, &seeded).await;
    check_bookkeeping(&mut conn, namespace, &t).await;

    // The server works with the upstream data.
    let server_proc = Server::start(&env, work.path()).await;
    exercise_api(&server_proc, &mut conn, &t, &seeded).await;
    drop(server_proc);
    let _ = conn.close().await;
}

// ---------------------------------------------------------------------------------------
// The upstream database

/// Table names for a prefix (upstream: `<ns>_users`, ...).
struct Names {
    users: String,
    instances: String,
    refresh_tokens: String,
    audit: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            users: format!("{prefix}users"),
            instances: format!("{prefix}instances"),
            refresh_tokens: format!("{prefix}refresh_tokens"),
            audit: format!("{prefix}audit_log_entries"),
        }
    }
}

/// The schema after upstream's seven migrations (SCHEMA.md 2), with its bookkeeping in the
/// unprefixed `schema_migration`, as upstream kept it even for a namespace.
async fn create_upstream_schema(conn: &mut MySqlConnection, p: &str) {
    let ddl = [
        format!(
            "CREATE TABLE {p}users (
              instance_id varchar(255) DEFAULT NULL,
              id varchar(255) NOT NULL,
              aud varchar(255) DEFAULT NULL,
              role varchar(255) DEFAULT NULL,
              email varchar(255) DEFAULT NULL,
              encrypted_password varchar(255) DEFAULT NULL,
              confirmed_at timestamp NULL DEFAULT NULL,
              invited_at timestamp NULL DEFAULT NULL,
              confirmation_token varchar(255) DEFAULT NULL,
              confirmation_sent_at timestamp NULL DEFAULT NULL,
              recovery_token varchar(255) DEFAULT NULL,
              recovery_sent_at timestamp NULL DEFAULT NULL,
              email_change_token varchar(255) DEFAULT NULL,
              email_change varchar(255) DEFAULT NULL,
              email_change_sent_at timestamp NULL DEFAULT NULL,
              last_sign_in_at timestamp NULL DEFAULT NULL,
              raw_app_meta_data JSON NULL DEFAULT NULL,
              raw_user_meta_data JSON NULL DEFAULT NULL,
              is_super_admin tinyint(1) DEFAULT NULL,
              created_at timestamp NULL DEFAULT NULL,
              updated_at timestamp NULL DEFAULT NULL,
              PRIMARY KEY (id),
              KEY users_instance_id_email_idx (instance_id, email),
              KEY users_instance_id_idx (instance_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        ),
        format!(
            "CREATE TABLE {p}instances (
              id varchar(255) NOT NULL,
              uuid varchar(255) DEFAULT NULL,
              raw_base_config longtext,
              created_at timestamp NULL DEFAULT NULL,
              updated_at timestamp NULL DEFAULT NULL,
              PRIMARY KEY (id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8"
        ),
        format!(
            "CREATE TABLE {p}refresh_tokens (
              instance_id varchar(255) DEFAULT NULL,
              id bigint(20) NOT NULL AUTO_INCREMENT,
              token varchar(255) DEFAULT NULL,
              user_id varchar(255) DEFAULT NULL,
              revoked tinyint(1) DEFAULT NULL,
              created_at timestamp NULL DEFAULT NULL,
              updated_at timestamp NULL DEFAULT NULL,
              PRIMARY KEY (id),
              KEY refresh_tokens_instance_id_idx (instance_id),
              KEY refresh_tokens_instance_id_user_id_idx (instance_id, user_id),
              KEY refresh_tokens_token_idx (token)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8"
        ),
        format!(
            "CREATE TABLE {p}audit_log_entries (
              instance_id varchar(255) DEFAULT NULL,
              id varchar(255) NOT NULL,
              payload JSON NULL DEFAULT NULL,
              created_at timestamp NULL DEFAULT NULL,
              PRIMARY KEY (id),
              KEY audit_logs_instance_id_idx (instance_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8"
        ),
        "CREATE TABLE schema_migration (
          version varchar(14) NOT NULL,
          UNIQUE KEY schema_migration_version_idx (version)
        ) ENGINE=InnoDB"
            .to_owned(),
    ];
    for stmt in ddl {
        sqlx::raw_sql(&stmt).execute(&mut *conn).await.unwrap_or_else(|e| panic!("{e}: {stmt}"));
    }
    for v in UPSTREAM_VERSIONS {
        sqlx::query("INSERT INTO schema_migration (version) VALUES (?)").bind(v).execute(&mut *conn).await.unwrap();
    }
}

/// A `$2a$10$` hash, as Go's bcrypt writes it.
fn go_bcrypt(password: &str) -> String {
    bcrypt::hash_with_result(password, 10).unwrap().format_for_version(bcrypt::Version::TwoA)
}

/// Now, as the naive UTC wall-clock literal the Go driver writes, at whole seconds.
fn utc_now() -> NaiveDateTime {
    let now = SystemClock.now();
    chrono::DateTime::from_timestamp(now.timestamp(), 0).unwrap().naive_utc()
}

#[expect(clippy::too_many_arguments, reason = "one user row, column by column")]
async fn insert_user(
    conn: &mut MySqlConnection,
    t: &Names,
    id: Uuid,
    email: &str,
    password_hash: &str,
    confirmed_at: Option<NaiveDateTime>,
    tokens: (&str, &str),
    sent_at: Option<NaiveDateTime>,
    user_meta: &str,
    created_at: NaiveDateTime,
) {
    let (confirmation, recovery) = tokens;
    sqlx::query(&format!(
        "INSERT INTO {} (instance_id, id, aud, role, email, encrypted_password, confirmed_at, invited_at, \
         confirmation_token, confirmation_sent_at, recovery_token, recovery_sent_at, email_change_token, \
         email_change, email_change_sent_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data, \
         is_super_admin, created_at, updated_at) \
         VALUES (?, ?, ?, '', ?, ?, ?, NULL, ?, ?, ?, ?, '', '', NULL, NULL, ?, ?, 0, ?, ?)",
        t.users
    ))
    .bind(Uuid::nil().to_string())
    .bind(id.to_string())
    .bind(AUD)
    .bind(email)
    .bind(password_hash)
    .bind(confirmed_at)
    .bind(confirmation)
    .bind((!confirmation.is_empty()).then_some(sent_at).flatten())
    .bind(recovery)
    .bind((!recovery.is_empty()).then_some(sent_at).flatten())
    .bind(r#"{"provider":"email"}"#)
    .bind(user_meta)
    .bind(created_at)
    .bind(created_at)
    .execute(&mut *conn)
    .await
    .unwrap();
}

async fn seed(conn: &mut MySqlConnection, t: &Names) -> Seeded {
    let now = utc_now();
    let yesterday = now - chrono::Duration::days(1);
    let hash = go_bcrypt(PASSWORD);
    assert!(hash.starts_with("$2a$10$") && hash.len() == 60);
    let secret = || NewToken::generate().secret;
    let s = Seeded {
        confirmed_id: Uuid::new_v4(),
        confirmed_email: "Upstream.User@Example.COM",
        pending_id: Uuid::new_v4(),
        pending_email: "Pending.Recovery@Example.com",
        signup_id: Uuid::new_v4(),
        pending_confirmation: secret(),
        pending_recovery: secret(),
        signup_confirmation: secret(),
        refresh: secret(),
        revoked_refresh: secret(),
    };
    for tok in [&s.pending_confirmation, &s.pending_recovery, &s.signup_confirmation, &s.refresh] {
        assert_eq!(tok.len(), 22);
    }
    insert_user(
        conn,
        t,
        s.confirmed_id,
        s.confirmed_email,
        &hash,
        Some(yesterday),
        ("", ""),
        None,
        r#"{"full_name":"Up Stream"}"#,
        yesterday,
    )
    .await;
    insert_user(
        conn,
        t,
        s.pending_id,
        s.pending_email,
        &hash,
        None,
        (&s.pending_confirmation, &s.pending_recovery),
        Some(now),
        "null",
        now,
    )
    .await;
    insert_user(conn, t, s.signup_id, "Signup.Only@example.com", &hash, None, (&s.signup_confirmation, ""), Some(now), "null", now).await;
    for (token, revoked, at) in [(&s.revoked_refresh, 1, yesterday), (&s.refresh, 0, now)] {
        sqlx::query(&format!(
            "INSERT INTO {} (instance_id, token, user_id, revoked, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            t.refresh_tokens
        ))
        .bind(Uuid::nil().to_string())
        .bind(token)
        .bind(s.confirmed_id.to_string())
        .bind(revoked)
        .bind(at)
        .bind(at)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    sqlx::query(&format!("INSERT INTO {} (instance_id, id, payload, created_at) VALUES (?, ?, ?, ?)", t.audit))
        .bind(Uuid::nil().to_string())
        .bind(Uuid::new_v4().to_string())
        .bind(
            json!({
                "action": "login",
                "actor_email": s.confirmed_email,
                "actor_id": s.confirmed_id.to_string(),
                "actor_name": "Up Stream",
                "log_type": "account",
                "timestamp": "2018-01-25T19:46:53Z",
            })
            .to_string(),
        )
        .bind(yesterday)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(&format!("INSERT INTO {} (id, uuid, raw_base_config, created_at, updated_at) VALUES (?, ?, ?, ?, ?)", t.instances))
        .bind(Uuid::new_v4().to_string())
        .bind(Uuid::nil().to_string())
        .bind(r#"{"site_url":"http://localhost","jwt":{"exp":3600}}"#)
        .bind(yesterday)
        .bind(yesterday)
        .execute(&mut *conn)
        .await
        .unwrap();
    s
}

type Rows = Vec<Vec<Option<String>>>;

/// Every column (as text) of every row, tokens excepted.
async fn snapshot(conn: &mut MySqlConnection, t: &Names) -> Vec<(String, Rows)> {
    let tables = [
        (
            &t.users,
            "id, instance_id, aud, role, email, encrypted_password, confirmed_at, invited_at, \
             confirmation_sent_at, recovery_sent_at, email_change, email_change_sent_at, \
             last_sign_in_at, raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at, updated_at",
        ),
        (&t.refresh_tokens, "id, instance_id, user_id, revoked, created_at, updated_at"),
        (&t.audit, "id, instance_id, payload, created_at"),
        (&t.instances, "id, uuid, raw_base_config, created_at, updated_at"),
    ];
    let mut out = Vec::new();
    for (table, cols) in tables {
        let select: Vec<String> = cols.split(',').map(|c| format!("CAST({} AS CHAR)", c.trim())).collect();
        let rows = sqlx::query(&format!("SELECT {} FROM {table} ORDER BY id", select.join(", "))).fetch_all(&mut *conn).await.unwrap();
        let rows: Rows = rows.iter().map(|r| (0..r.len()).map(|i| r.try_get::<Option<String>, _>(i).unwrap()).collect()).collect();
        assert!(!rows.is_empty(), "{table} has rows");
        out.push((table.clone(), rows));
    }
    out
}

async fn text(conn: &mut MySqlConnection, sql: &str, id: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>(sql).bind(id).fetch_one(&mut *conn).await.unwrap_or_else(|e| panic!("{e}: {sql}"))
}

async fn user_column(conn: &mut MySqlConnection, t: &Names, id: Uuid, col: &str) -> String {
    text(conn, &format!("SELECT CAST({col} AS CHAR) FROM {} WHERE id = ?", t.users), &id.to_string()).await.unwrap_or_default()
}

async fn assert_upgraded(conn: &mut MySqlConnection, t: &Names, s: &Seeded) {
    // email_key filled with the normalised address.
    assert_eq!(user_column(conn, t, s.confirmed_id, "email_key").await, "upstream.user@example.com");
    assert_eq!(user_column(conn, t, s.pending_id, "email_key").await, "pending.recovery@example.com");
    assert_eq!(user_column(conn, t, s.confirmed_id, "email").await, s.confirmed_email, "the address keeps its case");
    // Plaintext tokens replaced by their digests; empty ones stay empty.
    for (id, col, plain) in [
        (s.pending_id, "confirmation_token", &s.pending_confirmation),
        (s.pending_id, "recovery_token", &s.pending_recovery),
        (s.signup_id, "confirmation_token", &s.signup_confirmation),
    ] {
        let stored = user_column(conn, t, id, col).await;
        assert!(stored.starts_with("h1:"), "{col}: {stored}");
        assert_eq!(stored, digest(plain), "{col} is the digest of the old token");
    }
    for col in ["confirmation_token", "recovery_token", "email_change_token"] {
        assert_eq!(user_column(conn, t, s.confirmed_id, col).await, "");
    }
    assert_eq!(user_column(conn, t, s.signup_id, "recovery_token").await, "");
    let tokens: Vec<String> =
        sqlx::query_scalar(&format!("SELECT token FROM {} ORDER BY id", t.refresh_tokens)).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(tokens, [digest(&s.revoked_refresh), digest(&s.refresh)]);
    assert!(tokens.iter().all(|t| t.starts_with("h1:")));
}

async fn count(conn: &mut MySqlConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *conn).await.unwrap_or_else(|e| panic!("{e}: {sql}"))
}

async fn table_exists(conn: &mut MySqlConnection, table: &str) -> bool {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?")
        .bind(table)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        > 0
}

async fn check_bookkeeping(conn: &mut MySqlConnection, namespace: &str, t: &Names) {
    let ours = i64::try_from(gotrue::adapters::db::migrate::MYSQL.len()).unwrap();
    let shared = count(conn, "SELECT COUNT(*) FROM schema_migration").await;
    if namespace.is_empty() {
        // Our migrations are recorded beside upstream's, in the same table.
        assert_eq!(shared, ours);
    } else {
        // The namespace keeps its own bookkeeping; upstream's shared table is untouched
        // and no unprefixed table appeared.
        assert_eq!(shared, 7, "the shared schema_migration is left alone");
        assert_eq!(count(conn, &format!("SELECT COUNT(*) FROM {namespace}_schema_migration")).await, ours);
        assert!(!table_exists(conn, "users").await);
        assert!(table_exists(conn, &t.users).await);
    }
    for v in UPSTREAM_VERSIONS {
        assert_eq!(count(conn, &format!("SELECT COUNT(*) FROM schema_migration WHERE version = '{v}'")).await, 1);
    }
}

// ---------------------------------------------------------------------------------------
// The binary

/// The environment given to `gotrue`, nothing inherited but `PATH`.
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(server: &url::Url, db: &str, namespace: &str) -> Self {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(server.username());
        let userinfo = match server.password() {
            Some(p) => format!("{user}:{}", decode(p)),
            None => user,
        };
        let host = server.host_str().unwrap_or("127.0.0.1");
        let port = server.port().unwrap_or(3306);
        // Upstream's Go-driver DSN, as an existing deployment has it.
        let dsn = format!("{userinfo}@tcp({host}:{port})/{db}?parseTime=true&multiStatements=true");
        let vars = [
            ("GOTRUE_DB_DRIVER", "mysql"),
            ("DATABASE_URL", dsn.as_str()),
            ("GOTRUE_DB_NAMESPACE", namespace),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            // Upstream accepts any non-empty password; these scenarios use short ones.
            ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
            ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
            ("GOTRUE_SITE_URL", "http://localhost"),
        ];
        Self { vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }

    fn command(&self, dir: &Path) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gotrue"));
        c.env_clear().current_dir(dir).envs(self.vars.iter().map(|(k, v)| (k, v)));
        if let Ok(path) = std::env::var("PATH") {
            c.env("PATH", path);
        }
        c
    }
}

/// Runs `gotrue migrate`, asserts it exits 0, returns its standard output.
async fn run_migrate(env: &Env, dir: &Path) -> String {
    let mut cmd = tokio::process::Command::from(env.command(dir));
    cmd.arg("migrate").kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("gotrue migrate finishes within 2 minutes")
        .expect("run gotrue migrate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gotrue migrate exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The status-table line of a version, from the last table printed (after migrating).
fn status_line<'a>(out: &'a str, version: &str) -> Option<&'a str> {
    out.lines().rev().find(|l| l.starts_with(version))
}

/// A running `gotrue serve`; killed when dropped (also when a test fails).
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Server {
    async fn start(env: &Env, dir: &Path) -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = dir.join("serve.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = env
            .command(dir)
            .arg("serve")
            .env("PORT", port.to_string())
            .env("GOTRUE_API_HOST", "127.0.0.1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn gotrue serve");
        let mut server = Self { child, base: format!("http://127.0.0.1:{port}"), log, http: reqwest::Client::new() };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = server.http.get(server.url("/health")).send().await {
                if r.status() == reqwest::StatusCode::OK {
                    break;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("gotrue serve exited early with {status}");
            }
            assert!(tokio::time::Instant::now() < deadline, "GET /health did not answer 200 within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn token(&self, form: &[(&str, &str)]) -> (reqwest::StatusCode, Value) {
        let r = self.http.post(self.url("/token")).form(form).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn verify(&self, kind: &str, token: &str) -> (reqwest::StatusCode, Value) {
        let r = self.http.post(self.url("/verify")).json(&json!({"type": kind, "token": token})).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(&self.log) {
                eprintln!("---- gotrue serve log ----\n{log}");
            }
        }
    }
}

fn access_token(body: &Value) -> &str {
    let t = body["access_token"].as_str().unwrap_or_default();
    assert!(!t.is_empty(), "a token response: {body}");
    t
}

async fn exercise_api(srv: &Server, conn: &mut MySqlConnection, t: &Names, s: &Seeded) {
    let username = s.confirmed_email.to_lowercase();
    let login = [("grant_type", "password"), ("username", username.as_str()), ("password", PASSWORD)];

    // The bcrypt password works, and is rehashed to argon2id on the way.
    let (status, body) = srv.token(&login).await;
    assert_eq!(status, 200, "password login: {body}");
    access_token(&body);
    assert_eq!(body["token_type"], "bearer");
    let hash = user_column(conn, t, s.confirmed_id, "encrypted_password").await;
    assert!(hash.starts_with("$argon2id$"), "rehashed on login: {hash}");
    let (status, body) = srv.token(&login).await;
    assert_eq!(status, 200, "second login, with the argon2id hash: {body}");
    let (status, _) = srv.token(&[("grant_type", "password"), ("username", username.as_str()), ("password", "not-the-password")]).await;
    assert_eq!(status, 400, "a wrong password is still refused");

    // A session issued by the Go server keeps working (its token is now stored hashed).
    let (status, body) = srv.token(&[("grant_type", "refresh_token"), ("refresh_token", &s.refresh)]).await;
    assert_eq!(status, 200, "refresh with the upstream token: {body}");
    access_token(&body);
    let rotated = body["refresh_token"].as_str().unwrap_or_default().to_owned();
    assert!(!rotated.is_empty() && rotated != s.refresh);
    // Presented again at once (a second tab), it gets the same new token: the first refresh
    // made the upstream row a session of its own, within the reuse window.
    let (status, again) = srv.token(&[("grant_type", "refresh_token"), ("refresh_token", &s.refresh)]).await;
    assert_eq!(status, 200, "the rotated upstream token within the reuse window: {again}");
    assert_eq!(again["refresh_token"].as_str(), Some(rotated.as_str()));
    let (status, _) = srv.token(&[("grant_type", "refresh_token"), ("refresh_token", &s.revoked_refresh)]).await;
    assert_eq!(status, 400, "a token upstream had revoked stays refused");
    let (status, body) = srv.token(&[("grant_type", "refresh_token"), ("refresh_token", &rotated)]).await;
    assert_eq!(status, 200, "the new refresh token works: {body}");

    // A recovery link mailed by the Go server still works.
    let (status, body) = srv.verify("recovery", &s.pending_recovery).await;
    assert_eq!(status, 200, "verify recovery with the upstream token: {body}");
    let jwt = access_token(&body).to_owned();
    let me: Value = srv.http.get(srv.url("/user")).bearer_auth(&jwt).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["id"], json!(s.pending_id.to_string()), "{me}");
    assert_eq!(me["email"], json!(s.pending_email));
    assert_eq!(user_column(conn, t, s.pending_id, "recovery_token").await, "");
    let (status, _) = srv.verify("recovery", &s.pending_recovery).await;
    assert!(status.is_client_error(), "a recovery token is single-use");

    // So does a confirmation link.
    let (status, body) = srv.verify("signup", &s.signup_confirmation).await;
    assert_eq!(status, 200, "verify signup with the upstream token: {body}");
    access_token(&body);
    assert_ne!(user_column(conn, t, s.signup_id, "confirmed_at").await, "");
}

// ---------------------------------------------------------------------------------------
// Known problems in src/, kept as ignored tests until fixed (the reason names the bug)

/// Upstream compared emails with `email = ?` under `utf8mb4_unicode_ci`, where a leading
/// space is significant: " ann@example.com" could be registered beside "Ann@Example.com".
/// Both have the same key; the one upstream found for "ann@example.com" must keep it.
#[tokio::test]
async fn upstream_duplicate_with_leading_space_does_not_take_the_address() {
    let Some(server) = scratch_mysql::server_url() else {
        eprintln!("note: {} is not set; skipping", scratch_mysql::MYSQL_URL_VAR);
        return;
    };
    let db = ScratchDb::create(&server, "gt_up_").await;
    let mut conn = db.options().connect().await.expect("connect fixture");
    create_upstream_schema(&mut conn, "").await;
    let t = Names::new("");
    let now = utc_now();
    // Ids chosen so that the stray row comes first in primary-key order.
    let original = Uuid::parse_str("ffffffff-ffff-4fff-bfff-ffffffffffff").unwrap();
    let stray = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    for (id, email, created) in
        [(original, "Ann@Example.com", now - chrono::Duration::days(2)), (stray, " ann@example.com", now - chrono::Duration::days(1))]
    {
        insert_user(
            &mut conn,
            &t,
            id,
            email,
            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            Some(created),
            ("", ""),
            None,
            "null",
            created,
        )
        .await;
    }
    let store = MySqlStore::connect(&SecretString::from(db.url().to_string()), "", 4).await.unwrap();
    store.migrate().await.unwrap();
    let found = store.find_user_by_email(Uuid::nil(), AUD, "ann@example.com").await.unwrap().map(|u| u.id);
    store.close().await;
    let _ = conn.close().await;
    assert_eq!(found, Some(original), "the account upstream logged in keeps its address");
}
