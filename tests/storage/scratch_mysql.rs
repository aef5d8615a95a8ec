//! A throw-away MySQL/MariaDB database on the server `GOTRUE_TEST_MYSQL_URL` names:
//! created with a random name, dropped (best effort) when the value is dropped.
//!
//! Shared by the storage contract suite and `tests/upstream_mysql.rs` (through `#[path]`).
#![allow(dead_code, reason = "shared by two test crates, each using part of it")]

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

/// The variable holding the server URL (`mysql://root@127.0.0.1:3306/test`).
pub const MYSQL_URL_VAR: &str = "GOTRUE_TEST_MYSQL_URL";

/// The server URL, when the MySQL tests are enabled.
pub fn server_url() -> Option<url::Url> {
    let raw = std::env::var(MYSQL_URL_VAR).ok()?;
    if raw.trim().is_empty() {
        return None;
    }
    Some(url::Url::parse(raw.trim()).expect("GOTRUE_TEST_MYSQL_URL is not a mysql:// URL"))
}

/// One fresh database; dropped with the value.
#[derive(Debug)]
pub struct ScratchDb {
    server: url::Url,
    /// The database's name (`<prefix><random hex>`).
    pub name: String,
}

impl ScratchDb {
    /// Creates `<prefix><random hex>` on the server.
    pub async fn create(server: &url::Url, prefix: &str) -> Self {
        let name = format!("{prefix}{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let mut conn = connect(server).await.expect("connect to GOTRUE_TEST_MYSQL_URL");
        sqlx::raw_sql(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        Self { server: server.clone(), name }
    }

    /// `mysql://` URL of this database (the server URL with its path replaced).
    pub fn url(&self) -> url::Url {
        let mut u = self.server.clone();
        u.set_path(&format!("/{}", self.name));
        u
    }

    /// Connection options for this database, without a session time zone: timestamps
    /// are UTC wall-clock literals, as upstream's Go driver writes them (SCHEMA.md 4).
    pub fn options(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::from_str(self.url().as_str()).expect("mysql URL").timezone(None)
    }
}

async fn connect(server: &url::Url) -> Result<sqlx::MySqlConnection, sqlx::Error> {
    MySqlConnectOptions::from_str(server.as_str())?.connect().await
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime (possibly while unwinding), so the drop
        // happens on a thread of its own with a runtime of its own.
        let server = self.server.clone();
        let name = self.name.clone();
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if tokio::time::timeout(Duration::from_secs(15), drop_database(&server, &name)).await.is_err() {
                    eprintln!("note: dropping test database {name} timed out");
                }
            });
        });
        let _ = done.join();
    }
}

async fn drop_database(server: &url::Url, name: &str) {
    let mut conn = match connect(server).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("note: could not drop test database {name}: {e}");
            return;
        }
    };
    // Sessions of the test's pools may still be open: a connection whose transaction
    // failed is rolled back by a task that may never run once the test is over, and it
    // holds metadata locks DROP DATABASE would wait for. Kill them first.
    let sessions: Vec<i64> =
        match sqlx::query_scalar("SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()")
            .bind(name)
            .fetch_all(&mut conn)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("note: could not list the sessions on {name}: {e}");
                Vec::new()
            }
        };
    for id in sessions {
        let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}")).execute(&mut conn).await;
    }
    let _ = sqlx::raw_sql("SET SESSION lock_wait_timeout = 5").execute(&mut conn).await;
    let r = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut conn).await;
    if let Err(e) = r {
        eprintln!("note: could not drop test database {name}: {e}");
    }
    let _ = conn.close().await;
}
