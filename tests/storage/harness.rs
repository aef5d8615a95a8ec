//! Fresh, migrated databases for the contract tests, and the few raw queries the tests
//! use to look past the ports (audit rows, stored JSON, bookkeeping).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gotrue::adapters::db::migrate::{self, Status};
use gotrue::adapters::db::{MySqlStore, SqliteStore, Tables};
use gotrue::ports::audit::AuditStore;
use gotrue::ports::tokens::TokenStore;
use gotrue::ports::users::UserStore;
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

use crate::scratch_mysql::{self, ScratchDb};

/// Connections per pool (SQLite: readers; the writer is always one).
const POOL_SIZE: u32 = 4;

/// Where a test's database lives; removed when the last store using it is dropped.
#[derive(Debug)]
enum Place {
    Sqlite { path: PathBuf, _dir: tempfile::TempDir },
    MySql(ScratchDb),
}

/// The concrete adapter behind a [`Store`].
#[derive(Clone, Debug)]
pub enum Engine {
    /// Embedded.
    Sqlite(SqliteStore),
    /// MySQL/MariaDB.
    MySql(MySqlStore),
}

/// Runs `$body` with `$pool` bound to the engine's pool (the body is compiled per engine).
macro_rules! with_pool {
    ($engine:expr, $pool:ident => $body:expr) => {
        match $engine {
            Engine::Sqlite(s) => {
                let $pool = s.pool();
                $body
            }
            Engine::MySql(s) => {
                let $pool = s.pool();
                $body
            }
        }
    };
}

/// A migrated store on a database of its own, seen through the ports.
pub struct Store {
    /// The user port.
    pub users: Arc<dyn UserStore>,
    /// The refresh-token port.
    pub tokens: Arc<dyn TokenStore>,
    /// The audit-log port.
    pub audit: Arc<dyn AuditStore>,
    /// The adapter, for `migrate()`, `pool()` and `tables()`.
    pub engine: Engine,
    // Declared last: the database goes away after the pools above are dropped.
    place: Arc<Place>,
}

/// One audit row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// `id`.
    pub id: Uuid,
    /// `instance_id`.
    pub instance_id: Uuid,
    /// `payload`, parsed.
    pub payload: Value,
}

impl Store {
    /// A store on a new SQLite file.
    pub async fn sqlite() -> Self {
        Self::sqlite_with_pool(POOL_SIZE).await
    }

    /// A store on a new MySQL database, when `GOTRUE_TEST_MYSQL_URL` is set.
    pub async fn mysql() -> Option<Self> {
        Self::mysql_with_pool(POOL_SIZE).await
    }

    /// [`Store::sqlite`] with `readers` reader connections.
    pub async fn sqlite_with_pool(readers: u32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gotrue-test.db");
        Self::open_in(Arc::new(Place::Sqlite { path, _dir: dir }), "", readers).await
    }

    /// [`Store::mysql`] with a pool of `size` connections.
    pub async fn mysql_with_pool(size: u32) -> Option<Self> {
        let server = scratch_mysql::server_url()?;
        let db = ScratchDb::create(&server, "gt_").await;
        Some(Self::open_in(Arc::new(Place::MySql(db)), "", size).await)
    }

    /// Another store on the same database, with its own namespace.
    pub async fn open(&self, namespace: &str) -> Self {
        Self::open_in(Arc::clone(&self.place), namespace, POOL_SIZE).await
    }

    /// Another store on the same database and namespace, with a pool of `pool` connections
    /// (SQLite: readers) that waits at most `acquire_timeout` for one.
    pub async fn reopen_with(&self, pool: u32, acquire_timeout: Duration) -> Self {
        Self::open_with(Arc::clone(&self.place), "", pool, Some(acquire_timeout)).await
    }

    /// Takes the connection writes use (SQLite's one writer; with a MySQL pool of one, the
    /// only connection) and keeps it until the returned value is dropped.
    pub async fn hold_write_connection(&self) -> Box<dyn std::any::Any + Send> {
        match &self.engine {
            Engine::Sqlite(s) => Box::new(s.pool().acquire().await.expect("acquire")),
            Engine::MySql(s) => Box::new(s.pool().acquire().await.expect("acquire")),
        }
    }

    /// Closes the adapter's pools.
    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(s) => s.close().await,
            Engine::MySql(s) => s.close().await,
        }
    }

    async fn open_in(place: Arc<Place>, namespace: &str, pool: u32) -> Self {
        Self::open_with(place, namespace, pool, None).await
    }

    async fn open_with(place: Arc<Place>, namespace: &str, pool: u32, acquire_timeout: Option<Duration>) -> Self {
        let engine = match &*place {
            Place::Sqlite { path, .. } => {
                let url = SecretString::from(path.display().to_string());
                let t = acquire_timeout.unwrap_or(gotrue::adapters::db::sqlite::DEFAULT_ACQUIRE_TIMEOUT);
                Engine::Sqlite(SqliteStore::connect_with(&url, namespace, pool, t).await.expect("open SQLite"))
            }
            Place::MySql(db) => {
                let url = SecretString::from(db.url().to_string());
                let t = acquire_timeout.unwrap_or(gotrue::adapters::db::mysql::DEFAULT_ACQUIRE_TIMEOUT);
                Engine::MySql(MySqlStore::connect_with(&url, namespace, pool, t).await.expect("connect MySQL"))
            }
        };
        let (users, tokens, audit): (Arc<dyn UserStore>, Arc<dyn TokenStore>, Arc<dyn AuditStore>) = match &engine {
            Engine::Sqlite(s) => (Arc::new(s.clone()), Arc::new(s.clone()), Arc::new(s.clone())),
            Engine::MySql(s) => (Arc::new(s.clone()), Arc::new(s.clone()), Arc::new(s.clone())),
        };
        let store = Self { users, tokens, audit, engine, place };
        store.migrate_twice().await;
        store
    }

    /// Migrates, checks every migration is applied and recorded, then checks a second run
    /// changes nothing.
    async fn migrate_twice(&self) {
        let expected: Vec<&str> = self.migrations().iter().map(|m| m.version).collect();
        let first = self.migrate().await;
        assert_eq!(
            first.iter().map(|s| s.version.as_str()).collect::<Vec<_>>(),
            expected,
            "{}: migrate() must report every migration in order",
            self.kind()
        );
        assert!(first.iter().all(|s| s.applied), "{}: after migrate() every migration is Applied: {first:?}", self.kind());
        let recorded = self.count(&self.tables().migrations, "1 = 1", &[]).await;
        assert_eq!(
            recorded,
            i64::try_from(expected.len()).unwrap(),
            "{}: one bookkeeping row per migration in {}",
            self.kind(),
            self.tables().migrations
        );
        let second = self.migrate().await;
        assert_eq!(second, first, "{}: a second migrate() reports the same, all Applied", self.kind());
        assert_eq!(
            self.count(&self.tables().migrations, "1 = 1", &[]).await,
            recorded,
            "{}: a second migrate() records nothing new",
            self.kind()
        );
    }

    /// `"sqlite"` or `"mysql"`, for messages.
    pub fn kind(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::MySql(_) => "mysql",
        }
    }

    /// The engine's migration list.
    pub fn migrations(&self) -> &'static [migrate::Migration] {
        match self.engine {
            Engine::Sqlite(_) => migrate::SQLITE,
            Engine::MySql(_) => migrate::MYSQL,
        }
    }

    /// Runs the adapter's `migrate()`.
    pub async fn migrate(&self) -> Vec<Status> {
        match &self.engine {
            Engine::Sqlite(s) => s.migrate().await,
            Engine::MySql(s) => s.migrate().await,
        }
        .expect("migrate")
    }

    /// This store's table names.
    pub fn tables(&self) -> &Tables {
        match &self.engine {
            Engine::Sqlite(s) => s.tables(),
            Engine::MySql(s) => s.tables(),
        }
    }

    /// `SELECT COUNT(*) FROM <table> WHERE <filter>` with string binds.
    pub async fn count(&self, table: &str, filter: &str, binds: &[&str]) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {filter}");
        with_pool!(&self.engine, pool => {
            let mut q = sqlx::query_scalar::<_, i64>(&sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(pool).await.expect("count")
        })
    }

    /// Whether a table exists in this database.
    pub async fn table_exists(&self, table: &str) -> bool {
        let n: i64 = match &self.engine {
            Engine::Sqlite(s) => sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_one(s.pool())
                .await
                .expect("sqlite_master"),
            Engine::MySql(s) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?")
                    .bind(table)
                    .fetch_one(s.pool())
                    .await
                    .expect("information_schema")
            }
        };
        n > 0
    }

    /// Every audit row of this namespace.
    pub async fn audit_rows(&self) -> Vec<AuditRow> {
        let sql = format!("SELECT id, instance_id, CAST(payload AS CHAR) AS payload FROM {}", self.tables().audit);
        let rows: Vec<(String, Option<String>, Option<String>)> = with_pool!(&self.engine, pool => {
            sqlx::query_as(&sql).fetch_all(pool).await.expect("audit rows")
        });
        rows.into_iter()
            .map(|(id, instance, payload)| AuditRow {
                id: Uuid::parse_str(&id).expect("audit id"),
                instance_id: Uuid::parse_str(&instance.unwrap_or_default()).expect("audit instance_id"),
                payload: serde_json::from_str(&payload.expect("payload is not NULL")).expect("payload is JSON"),
            })
            .collect()
    }

    /// The stored text of both metadata columns of a user.
    pub async fn raw_metadata(&self, user_id: Uuid) -> (Option<String>, Option<String>) {
        let sql =
            format!("SELECT CAST(raw_app_meta_data AS CHAR), CAST(raw_user_meta_data AS CHAR) FROM {} WHERE id = ?", self.tables().users);
        with_pool!(&self.engine, pool => {
            sqlx::query_as(&sql)
                .bind(user_id.to_string())
                .fetch_one(pool)
                .await
                .expect("metadata")
        })
    }

    /// One column of one row, as text (`CAST(<column> AS CHAR)`).
    pub async fn raw_text(&self, table: &str, column: &str, id: &str) -> Option<String> {
        let sql = format!("SELECT CAST({column} AS CHAR) FROM {table} WHERE id = ?");
        with_pool!(&self.engine, pool => {
            sqlx::query_scalar::<_, Option<String>>(&sql)
                .bind(id)
                .fetch_one(pool)
                .await
                .expect("raw_text")
        })
    }

    /// Runs a statement with nullable string binds (rows "another tool" wrote).
    pub async fn exec(&self, sql: &str, binds: &[Option<&str>]) {
        with_pool!(&self.engine, pool => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(pool).await.expect("exec");
        });
    }
}
