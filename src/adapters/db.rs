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
