//! SQL storage on SQLite (embedded default) and MySQL/MariaDB (upstream's schema).
//!
//! Both engines use `?` placeholders and the same statements, so one body of code (the
//! `sql_store!` macro in `store.rs`) implements the store ports for each; only the pool
//! set-up and the migration files differ. Table names carry the `DB_NAMESPACE` prefix,
//! rendered once when the store is built.

mod external;
mod instances;
pub mod migrate;
pub mod mysql;
pub mod sqlite;
mod store;

pub use mysql::MySqlStore;
pub use sqlite::SqliteStore;

/// The table names of one namespace.
#[derive(Debug, Clone)]
pub struct Tables {
    /// `<ns>_` or `""`.
    pub prefix: String,
    /// `users`.
    pub users: String,
    /// `refresh_tokens`.
    pub refresh_tokens: String,
    /// `audit_log_entries`.
    pub audit: String,
    /// `instances`.
    pub instances: String,
    /// `identities` (gotrue-rs: external accounts linked to users).
    pub identities: String,
    /// `oauth_states` (gotrue-rs: OAuth states already used).
    pub oauth_states: String,
    /// `oauth_codes` (gotrue-rs: authorization codes of the PKCE flow).
    pub oauth_codes: String,
    /// Migration bookkeeping: upstream's shared `schema_migration` for the empty namespace,
    /// `<ns>_schema_migration` otherwise (upstream shared one table between namespaces,
    /// so a second namespace never got its tables, WEAKNESSES.md 39).
    pub migrations: String,
}

impl Tables {
    /// Names for a namespace (`""` for none).
    #[must_use]
    pub fn new(namespace: &str) -> Self {
        let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}_") };
        Self {
            users: format!("{prefix}users"),
            refresh_tokens: format!("{prefix}refresh_tokens"),
            audit: format!("{prefix}audit_log_entries"),
            instances: format!("{prefix}instances"),
            identities: format!("{prefix}identities"),
            oauth_states: format!("{prefix}oauth_states"),
            oauth_codes: format!("{prefix}oauth_codes"),
            migrations: format!("{prefix}schema_migration"),
            prefix,
        }
    }
}

/// Pool options shared by every pool: no idle timeout and no maximum lifetime, so sqlx
/// spawns no maintenance task. That task walks `0..num_idle()`, and sqlx 0.8.6 updates its
/// idle counter after the queue it counts (`release` pushes then increments, `pop_idle` pops
/// then decrements), so a walk that reads the counter in between sees it wrapped below zero
/// and spins a runtime thread for good (seen: a CLI run that never exited, at 80 % CPU).
/// Nothing is lost: SQLite connections never go stale, and a MySQL connection the server
/// dropped is found by the ping before each acquire (`test_before_acquire`, on by default).
#[must_use]
pub fn pool_options<DB: sqlx::Database>(max_connections: u32, acquire_timeout: std::time::Duration) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .min_connections(0)
}

/// Checks a namespace: letters, digits and `_` only, since it becomes part of table names.
///
/// # Errors
/// A message naming the problem.
pub fn validate_namespace(ns: &str) -> Result<(), String> {
    if ns.len() > 32 || !ns.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("GOTRUE_DB_NAMESPACE {ns:?} must be at most 32 letters, digits or underscores"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_have_no_maintenance_task() {
        let o = pool_options::<sqlx::Sqlite>(3, std::time::Duration::from_secs(2));
        assert_eq!((o.get_idle_timeout(), o.get_max_lifetime(), o.get_min_connections()), (None, None, 0));
        assert_eq!((o.get_max_connections(), o.get_acquire_timeout()), (3, std::time::Duration::from_secs(2)));
    }

    #[test]
    fn namespaced_table_names() {
        let t = Tables::new("test");
        assert_eq!(
            [t.audit.as_str(), t.instances.as_str(), t.refresh_tokens.as_str(), t.users.as_str()],
            ["test_audit_log_entries", "test_instances", "test_refresh_tokens", "test_users"]
        );
        assert_eq!(Tables::new("").users, "users");
        assert_eq!(Tables::new("").migrations, "schema_migration");
        assert!(validate_namespace("auth_1").is_ok());
        assert!(validate_namespace("x; DROP").is_err());
    }
}
