//! MySQL/MariaDB: upstream's schema, so an existing GoTrue database is used in place.

use std::str::FromStr as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::{Connection as _, Row as _};

use super::external::external_store;
use super::instances::instance_store;
use super::migrate::{self, Condition, Status};
use super::store::{sql_store, Dialect, Sql};
use super::Tables;

/// How long a request waits for a connection by default (`GOTRUE_DB_ACQUIRE_TIMEOUT`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Users, tokens and audit entries in MySQL/MariaDB.
#[derive(Clone)]
pub struct MySqlStore {
    read: MySqlPool,
    write: MySqlPool,
    sql: Sql,
    tables: Tables,
}

impl std::fmt::Debug for MySqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlStore").field("tables", &self.tables).finish_non_exhaustive()
    }
}

/// Parses `mysql://user:pass@host:port/db`, or upstream's Go-driver DSN
/// `user:pass@tcp(host:port)/db?parseTime=true` (with or without `mysql://`).
///
/// # Errors
/// A message describing what is malformed (never the password).
pub fn connect_options(url: &SecretString) -> Result<MySqlConnectOptions, String> {
    let raw = url.expose_secret();
    let rest = raw.strip_prefix("mysql://").unwrap_or(raw);
    let go_dsn = ["@tcp(", "@unix(", "@cloudsql("].iter().any(|p| rest.contains(p))
        || ["tcp(", "unix(", "/"].iter().any(|p| rest.starts_with(p))
        || !raw.starts_with("mysql://") && !rest.contains("://") && rest.contains('@') && rest.contains('(');
    let opts = if go_dsn {
        parse_go_dsn(rest)?
    } else {
        let with_scheme = if raw.starts_with("mysql://") { raw.to_owned() } else { format!("mysql://{raw}") };
        MySqlConnectOptions::from_str(&with_scheme).map_err(|_| "DATABASE_URL is not a valid MySQL URL or DSN".to_owned())?
    };
    // Upstream's driver never sets the session time zone: timestamps are written and read
    // as UTC wall-clock literals under the server's own zone (SCHEMA.md 4).
    Ok(opts.timezone(None))
}

fn parse_go_dsn(dsn: &str) -> Result<MySqlConnectOptions, String> {
    let slash = dsn.rfind('/').ok_or("DSN has no '/dbname'")?;
    let (before, after) = (&dsn[..slash], &dsn[slash + 1..]);
    let (db, params) = after.split_once('?').unwrap_or((after, ""));
    let (userinfo, netaddr) = match before.rfind('@') {
        Some(at) => (&before[..at], &before[at + 1..]),
        None => ("", before),
    };
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut opts = MySqlConnectOptions::new();
    if !user.is_empty() {
        opts = opts.username(user);
    }
    if !pass.is_empty() {
        opts = opts.password(pass);
    }
    if !db.is_empty() {
        opts = opts.database(db);
    }
    let (proto, addr) = match netaddr.split_once('(') {
        Some((p, a)) => (p, a.strip_suffix(')').ok_or("DSN address is missing ')'")?),
        None => (netaddr, ""),
    };
    match proto {
        "" | "tcp" => {
            let addr = if addr.is_empty() { "127.0.0.1:3306" } else { addr };
            let (host, port) = match addr.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p.parse::<u16>().map_err(|_| "DSN port is not a number")?),
                _ => (addr, 3306),
            };
            opts = opts.host(host.trim_start_matches('[').trim_end_matches(']')).port(port);
        }
        "unix" => opts = opts.socket(if addr.is_empty() { "/tmp/mysql.sock" } else { addr }),
        other => return Err(format!("DSN protocol {other:?} is not supported (use tcp or unix)")),
    }
    for kv in params.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match (k, v) {
            ("tls", "true" | "skip-verify" | "preferred") => {
                opts = opts.ssl_mode(if v == "true" {
                    sqlx::mysql::MySqlSslMode::VerifyIdentity
                } else {
                    sqlx::mysql::MySqlSslMode::Required
                });
            }
            ("charset", c) => opts = opts.charset(c.split(',').next().unwrap_or("utf8mb4")),
            // parseTime, multiStatements, loc, sql_mode...: our driver needs none of them.
            _ => {}
        }
    }
    Ok(opts)
}

impl MySqlStore {
    /// Connects (several attempts over about two seconds, for a database still starting).
    ///
    /// # Errors
    /// A message naming the failure.
    pub async fn connect(url: &SecretString, namespace: &str, max_connections: u32) -> Result<Self, String> {
        Self::connect_with(url, namespace, max_connections, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`MySqlStore::connect`] with the time a request waits for a pooled connection
    /// (reconnecting included) before its query fails with [`StoreError::Unavailable`].
    ///
    /// # Errors
    /// A message naming the failure.
    pub async fn connect_with(
        url: &SecretString,
        namespace: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, String> {
        super::validate_namespace(namespace)?;
        let opts = connect_options(url)?;
        let mut last = String::new();
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt) * u64::from(attempt))).await;
            }
            match super::pool_options::<sqlx::MySql>(max_connections, acquire_timeout).connect_with(opts.clone()).await {
                Ok(pool) => {
                    let tables = Tables::new(namespace);
                    return Ok(Self { read: pool.clone(), write: pool, sql: Sql::new(&tables, Dialect::MySql), tables });
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("could not connect to MySQL: {last}"))
    }

    /// The pool (tests, benchmarks).
    #[must_use]
    pub fn pool(&self) -> &MySqlPool {
        &self.write
    }

    /// Table names.
    #[must_use]
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Migration status.
    ///
    /// # Errors
    /// Database errors.
    pub async fn status(&self) -> Result<Vec<Status>, sqlx::Error> {
        let mut conn = self.write.acquire().await?;
        let applied = self.applied_versions(&mut conn).await?;
        Ok(migrate::MYSQL
            .iter()
            .map(|m| Status { version: m.version.into(), name: m.name.into(), applied: applied.contains(&m.version.to_owned()) })
            .collect())
    }

    async fn applied_versions(&self, conn: &mut sqlx::MySqlConnection) -> Result<Vec<String>, sqlx::Error> {
        let exists: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?")
                .bind(&self.tables.migrations)
                .fetch_one(&mut *conn)
                .await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar::<_, String>(&format!("SELECT CAST(version AS CHAR) FROM {}", self.tables.migrations))
            .fetch_all(&mut *conn)
            .await
    }

    /// Applies pending migrations under a named lock (so instances starting together do
    /// not race), then the data fix-ups. Returns the final status.
    ///
    /// # Errors
    /// Database errors, with the failing migration's version.
    pub async fn migrate(&self) -> Result<Vec<Status>, String> {
        let mut conn = self.write.acquire().await.map_err(|e| e.to_string())?;
        let lock = format!("gotrue_migrate_{}", self.tables.prefix);
        let got: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(?, 60)").bind(&lock).fetch_one(&mut *conn).await.map_err(|e| e.to_string())?;
        if got != Some(1) {
            return Err("another process holds the migration lock".into());
        }
        let result = self.migrate_locked(&mut conn).await;
        let _ = sqlx::query("SELECT RELEASE_LOCK(?)").bind(&lock).execute(&mut *conn).await;
        drop(conn);
        result?;
        self.fixups().await.map_err(|e| format!("data fix-up failed: {e}"))?;
        self.status().await.map_err(|e| e.to_string())
    }

    async fn migrate_locked(&self, conn: &mut sqlx::MySqlConnection) -> Result<(), String> {
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version VARCHAR(14) NOT NULL, UNIQUE KEY schema_migration_version_idx (version)) ENGINE=InnoDB",
            self.tables.migrations
        ))
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
        let applied = self.applied_versions(&mut *conn).await.map_err(|e| e.to_string())?;
        for m in migrate::MYSQL.iter().filter(|m| !applied.contains(&m.version.to_owned())) {
            for step in migrate::steps(m, &self.tables.prefix) {
                if let Some(c) = &step.condition {
                    if !self.holds(&mut *conn, c).await.map_err(|e| e.to_string())? {
                        continue;
                    }
                }
                sqlx::raw_sql(&step.sql).execute(&mut *conn).await.map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
            }
            sqlx::query(&format!("INSERT INTO {} (version) VALUES (?)", self.tables.migrations))
                .bind(m.version)
                .execute(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
        }
        Ok(())
    }

    async fn holds(&self, conn: &mut sqlx::MySqlConnection, c: &Condition) -> Result<bool, sqlx::Error> {
        let (sql, table, name, want_present) = match c {
            Condition::ColumnMissing(t, col) => (
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                t,
                col,
                false,
            ),
            Condition::ColumnExists(t, col) => (
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                t,
                col,
                true,
            ),
            Condition::IndexMissing(t, idx) => (
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?",
                t,
                idx,
                false,
            ),
        };
        let n: i64 = sqlx::query_scalar(sql).bind(table).bind(name).fetch_one(&mut *conn).await?;
        Ok((n > 0) == want_present)
    }

    /// Fills `email_key` and `name_key` for rows another program wrote and replaces upstream's plaintext
    /// tokens by their digests (one-way: the Go server cannot read them afterwards).
    ///
    /// # Errors
    /// Database errors.
    pub async fn fixups(&self) -> Result<(), sqlx::Error> {
        let t = &self.tables;
        for col in ["confirmation_token", "recovery_token", "email_change_token"] {
            sqlx::query(&format!(
                "UPDATE {u} SET {col} = CONCAT('h1:', SHA2({col}, 256)) WHERE {col} <> '' AND {col} NOT LIKE 'h1:%'",
                u = t.users
            ))
            .execute(&self.write)
            .await?;
        }
        sqlx::query(&format!(
            "UPDATE {} SET token = CONCAT('h1:', SHA2(token, 256)) WHERE token <> '' AND token NOT LIKE 'h1:%'",
            t.refresh_tokens
        ))
        .execute(&self.write)
        .await?;
        sqlx::query(&format!(
            "UPDATE {} SET name_key = COALESCE(LEFT(LOWER(JSON_UNQUOTE(JSON_EXTRACT(raw_user_meta_data, '$.full_name'))), 255), '') \
             WHERE name_key IS NULL",
            t.users
        ))
        .execute(&self.write)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT id, email FROM {} WHERE email_key IS NULL AND email IS NOT NULL \
             ORDER BY CHAR_LENGTH(email) <> CHAR_LENGTH(TRIM(email)), created_at IS NULL, created_at, id",
            t.users
        ))
        .fetch_all(&self.write)
        .await?;
        for r in rows {
            let id: String = r.try_get("id")?;
            let email: String = r.try_get("email")?;
            let res = sqlx::query(&format!("UPDATE {} SET email_key = ? WHERE id = ?", t.users))
                .bind(super::store::email_key(&email))
                .bind(&id)
                .execute(&self.write)
                .await;
            if let Err(sqlx::Error::Database(d)) = &res {
                if d.is_unique_violation() {
                    tracing::warn!(user_id = %id, "another user of this audience has the same address; this duplicate cannot log in by email");
                    continue;
                }
            }
            res?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.write.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self.write.acquire().await {
            Ok(mut c) => c.ping().await.is_ok(),
            Err(_) => false,
        }
    }
}

sql_store!(MySqlStore, sqlx::MySql);
external_store!(MySqlStore);
instance_store!(MySqlStore);

impl MySqlStore {
    async fn rotate(&self, old: &RefreshToken, new: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError> {
        self.rotate_in_tx(old, new, audit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<MySqlConnectOptions, String> {
        connect_options(&SecretString::from(s.to_owned()))
    }

    #[test]
    fn go_dsn_and_urls_parse() {
        let o = opts("root@tcp(127.0.0.1:3306)/gotrue_test?parseTime=true&multiStatements=true").unwrap();
        assert_eq!(o.get_host(), "127.0.0.1");
        assert_eq!(o.get_port(), 3306);
        assert_eq!(o.get_username(), "root");
        assert_eq!(o.get_database(), Some("gotrue_test"));
        let o = opts("mysql://u:p@ss@tcp(db:3307)/x").unwrap();
        assert_eq!((o.get_host(), o.get_port(), o.get_username()), ("db", 3307, "u"));
        let o = opts("mysql://user:pw@localhost:3308/app").unwrap();
        assert_eq!((o.get_host(), o.get_port(), o.get_database()), ("localhost", 3308, Some("app")));
        let o = opts("u@unix(/run/mysqld/mysqld.sock)/db").unwrap();
        assert_eq!(o.get_socket().map(|p| p.display().to_string()), Some("/run/mysqld/mysqld.sock".into()));
        assert!(opts("u@cloudsql(p:r:i)/db").is_err());
        assert!(opts("u@tcp(h:notaport)/db").is_err());
    }
}
