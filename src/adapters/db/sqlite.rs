//! SQLite: the embedded default. One writer connection (SQLite allows one writer at a
//! time; queuing in the pool is cheaper than lock retries) and a pool of readers, WAL
//! journal, `synchronous=NORMAL` (durable at checkpoints, never corrupt).

use std::str::FromStr as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{Connection as _, Row as _};

use super::external::external_store;
use super::instances::instance_store;
use super::migrate::{self, Condition, Status};
use super::store::{sql_store, Dialect, Sql};
use super::Tables;

/// How long a request waits for a connection by default: queueing for the one writer
/// connection is normal under load (`GOTRUE_DB_ACQUIRE_TIMEOUT`).
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Users, tokens and audit entries in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    sql: Sql,
    tables: Tables,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("tables", &self.tables).finish_non_exhaustive()
    }
}

/// The file a SQLite URL or path names.
#[must_use]
pub fn file_path(url: &SecretString) -> std::path::PathBuf {
    let u = url.expose_secret();
    let p = u.strip_prefix("sqlite://").or_else(|| u.strip_prefix("sqlite:")).unwrap_or(u);
    std::path::PathBuf::from(p.split('?').next().unwrap_or(p))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file.
    ///
    /// # Errors
    /// A message naming the failure.
    pub async fn connect(url: &SecretString, namespace: &str, readers: u32) -> Result<Self, String> {
        Self::connect_with(url, namespace, readers, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`SqliteStore::connect`] with the time a request waits for a pooled connection
    /// before its query fails with [`StoreError::Unavailable`].
    ///
    /// # Errors
    /// A message naming the failure.
    pub async fn connect_with(url: &SecretString, namespace: &str, readers: u32, acquire_timeout: Duration) -> Result<Self, String> {
        super::validate_namespace(namespace)?;
        let path = file_path(url);
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .map_err(|e| e.to_string())?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-16000")
            .pragma("temp_store", "memory");
        let write = super::pool_options::<sqlx::Sqlite>(1, acquire_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(|e| format!("could not open SQLite database {}: {e}", path.display()))?;
        let read = super::pool_options::<sqlx::Sqlite>(readers.max(1), acquire_timeout)
            .connect_with(opts.read_only(true))
            .await
            .map_err(|e| format!("could not open SQLite database {}: {e}", path.display()))?;
        let tables = Tables::new(namespace);
        Ok(Self { read, write, sql: Sql::new(&tables, Dialect::Sqlite), tables })
    }

    /// The writer pool (tests, benchmarks).
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.write
    }

    /// Table names.
    #[must_use]
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    async fn applied_versions(&self) -> Result<Vec<String>, sqlx::Error> {
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(&self.tables.migrations)
            .fetch_one(&self.write)
            .await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        sqlx::query_scalar::<_, String>(&format!("SELECT version FROM {}", self.tables.migrations)).fetch_all(&self.write).await
    }

    /// Migration status.
    ///
    /// # Errors
    /// Database errors.
    pub async fn status(&self) -> Result<Vec<Status>, sqlx::Error> {
        let applied = self.applied_versions().await?;
        Ok(migrate::SQLITE
            .iter()
            .map(|m| Status { version: m.version.into(), name: m.name.into(), applied: applied.contains(&m.version.to_owned()) })
            .collect())
    }

    /// Applies pending migrations, each in one transaction with its bookkeeping row.
    ///
    /// # Errors
    /// Database errors, with the failing migration's version.
    pub async fn migrate(&self) -> Result<Vec<Status>, String> {
        sqlx::query(&format!("CREATE TABLE IF NOT EXISTS {} (version TEXT NOT NULL UNIQUE)", self.tables.migrations))
            .execute(&self.write)
            .await
            .map_err(|e| e.to_string())?;
        let applied = self.applied_versions().await.map_err(|e| e.to_string())?;
        for m in migrate::SQLITE.iter().filter(|m| !applied.contains(&m.version.to_owned())) {
            let mut tx = self.write.begin().await.map_err(|e| e.to_string())?;
            for step in migrate::steps(m, &self.tables.prefix) {
                if let Some(c) = &step.condition {
                    if !holds(&mut tx, c).await.map_err(|e| e.to_string())? {
                        continue;
                    }
                }
                sqlx::raw_sql(&step.sql).execute(&mut *tx).await.map_err(|e| format!("migration {} ({}): {e}", m.version, m.name))?;
            }
            sqlx::query(&format!("INSERT INTO {} (version) VALUES (?)", self.tables.migrations))
                .bind(m.version)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
        }
        self.status().await.map_err(|e| e.to_string())
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        match self.read.acquire().await {
            Ok(mut c) => c.ping().await.is_ok(),
            Err(_) => false,
        }
    }
}

async fn holds(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, c: &Condition) -> Result<bool, sqlx::Error> {
    let (table, name, want_present, is_index) = match c {
        Condition::ColumnMissing(t, col) => (t, col, false, false),
        Condition::ColumnExists(t, col) => (t, col, true, false),
        Condition::IndexMissing(t, idx) => (t, idx, false, true),
    };
    let present = if is_index {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?")
            .bind(name)
            .fetch_one(&mut **tx)
            .await?;
        n > 0
    } else {
        let rows = sqlx::query(&format!("PRAGMA table_info({table})")).fetch_all(&mut **tx).await?;
        rows.iter().any(|r| r.try_get::<String, _>("name").is_ok_and(|n| &n == name))
    };
    Ok(present == want_present)
}

sql_store!(SqliteStore, sqlx::Sqlite);
external_store!(SqliteStore);
instance_store!(SqliteStore);

impl SqliteStore {
    /// Rotation in ONE round trip to the writer thread: a script whose inserts only happen
    /// when the revoke changed a row (`changes() = 1`), so a token already rotated changes
    /// nothing; the new token's insert returns its id when it happened. sqlx runs a
    /// multi-statement query in one call, binding the `?` in order.
    async fn rotate(&self, old: &RefreshToken, new: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError> {
        let t = &self.tables;
        let mut sql = format!(
            "BEGIN; {out} WHERE id = ? AND revoked = 0; \
             INSERT INTO {rt} (instance_id, token, user_id, revoked, created_at, updated_at, session_id, session_started_at, sealed_token) \
             SELECT ?, ?, ?, 0, ?, ?, ?, ?, ? WHERE changes() = 1 RETURNING id;",
            out = super::store::rotate_out(&t.refresh_tokens),
            rt = t.refresh_tokens
        );
        if !audit.is_empty() {
            let rows = vec!["(?, ?, ?, ?)"; audit.len()].join(", ");
            sql.push_str(&format!(
                " INSERT INTO {a} (instance_id, id, payload, created_at) SELECT * FROM (VALUES {rows}) WHERE changes() = 1;",
                a = t.audit
            ));
        }
        sql.push_str(" COMMIT;");
        let mut q = sqlx::query(&sql)
            .bind(new.created_at)
            .bind(new.session_id.to_string())
            .bind(old.id)
            .bind(new.instance_id.to_string())
            .bind(&new.token)
            .bind(new.user_id.to_string())
            .bind(new.created_at)
            .bind(new.created_at)
            .bind(new.session_id.to_string())
            .bind(new.session_started_at)
            .bind(new.sealed.as_deref());
        for e in audit {
            q = q
                .bind(e.instance_id.to_string())
                .bind(e.id.to_string())
                .bind(serde_json::Value::Object(e.payload.clone()).to_string())
                .bind(e.created_at);
        }
        let mut conn = self.write.acquire().await.map_err(backend)?;
        // Only the conditional insert returns a row; `rows_affected` cannot tell, since
        // SQLite reports the previous statement's count for BEGIN and COMMIT.
        match q.fetch_all(&mut *conn).await {
            Ok(rows) if rows.is_empty() => Err(StoreError::Conflict),
            Ok(_) => Ok(()),
            Err(e) => {
                // The script stopped inside its transaction: end it, or drop the connection.
                if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                    let _ = conn.detach();
                }
                Err(backend(e))
            }
        }
    }
}
