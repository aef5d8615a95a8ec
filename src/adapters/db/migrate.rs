//! Migrations: SQL files per engine embedded in the binary, rendered with the namespace
//! prefix, recorded in upstream's `schema_migration` table (one row per 14-digit version).
//!
//! A statement may be preceded by a directive comment that makes it conditional, so that
//! the steps are idempotent on a database upstream (or a half-finished run) left behind:
//! `-- @if_column_missing <table> <column>`, `-- @if_column_exists <table> <column>`,
//! `-- @if_index_missing <table> <index>` (table names without the prefix).

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 14-digit version.
    pub version: &'static str,
    /// Name after the version.
    pub name: &'static str,
    /// The SQL, with `{{prefix}}` placeholders.
    pub sql: &'static str,
}

macro_rules! migration {
    ($dir:literal, $version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/", $dir, "/", $version, "_", $name, ".up.sql")),
        }
    };
}

/// MySQL/MariaDB: upstream's seven migrations (same versions) then ours.
pub const MYSQL: &[Migration] = &[
    migration!("mysql", "20171026211738", "create_users"),
    migration!("mysql", "20171026211808", "create_instances"),
    migration!("mysql", "20171026211834", "create_refresh_tokens"),
    migration!("mysql", "20180103212743", "json_user_metadata"),
    migration!("mysql", "20180108183307", "drop_instance_deleted_at"),
    migration!("mysql", "20180119214651", "create_audit_log_entries"),
    migration!("mysql", "20180125194653", "add_refresh_tokens_updated_at"),
    migration!("mysql", "20261128000001", "gotrue_rs_email_key"),
    migration!("mysql", "20261128000002", "gotrue_rs_token_indexes"),
    migration!("mysql", "20261128000003", "gotrue_rs_secure_email_change"),
    migration!("mysql", "20261128000004", "gotrue_rs_external_identities"),
    migration!("mysql", "20261128000005", "gotrue_rs_admin_lists"),
    migration!("mysql", "20261128000010", "gotrue_rs_sessions"),
];

/// SQLite.
pub const SQLITE: &[Migration] = &[
    migration!("sqlite", "20261128000000", "initial"),
    migration!("sqlite", "20261128000001", "gotrue_rs_admin_lists"),
    migration!("sqlite", "20261128000003", "secure_email_change"),
    migration!("sqlite", "20261128000004", "external_identities"),
    migration!("sqlite", "20261128000010", "gotrue_rs_sessions"),
];

/// A condition on the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Run when the column is absent.
    ColumnMissing(String, String),
    /// Run when the column is present.
    ColumnExists(String, String),
    /// Run when the index is absent.
    IndexMissing(String, String),
}

/// A statement and its optional condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Only when this holds.
    pub condition: Option<Condition>,
    /// Rendered SQL.
    pub sql: String,
}

/// Splits a migration into rendered statements.
#[must_use]
pub fn steps(m: &Migration, prefix: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut condition = None;
    let mut buf = String::new();
    for line in m.sql.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("-- @") {
            let parts: Vec<&str> = d.split_whitespace().collect();
            let pair = |i: usize| {
                (format!("{prefix}{}", parts.get(1).copied().unwrap_or_default()), parts.get(i).copied().unwrap_or_default().to_owned())
            };
            condition = match parts.first().copied() {
                Some("if_column_missing") => Some(Condition::ColumnMissing(pair(2).0, pair(2).1)),
                Some("if_column_exists") => Some(Condition::ColumnExists(pair(2).0, pair(2).1)),
                Some("if_index_missing") => Some(Condition::IndexMissing(pair(2).0, pair(2).1)),
                _ => None,
            };
            continue;
        }
        if t.starts_with("--") || t.is_empty() {
            continue;
        }
        buf.push_str(line);
        buf.push('\n');
        if t.ends_with(';') {
            let sql = buf.trim().trim_end_matches(';').replace("{{prefix}}", prefix);
            out.push(Step { condition: condition.take(), sql });
            buf.clear();
        }
    }
    if !buf.trim().is_empty() {
        out.push(Step { condition: condition.take(), sql: buf.trim().replace("{{prefix}}", prefix) });
    }
    out
}

/// How `migrate` reports each migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Already recorded.
    pub applied: bool,
}

/// Renders the status table `gotrue migrate` prints.
#[must_use]
pub fn render_status(rows: &[Status]) -> String {
    let mut s = format!("{:<16}{:<40}{}\n", "Version", "Name", "Status");
    for r in rows {
        s.push_str(&format!("{:<16}{:<40}{}\n", r.version, r.name, if r.applied { "Applied" } else { "Pending" }));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_and_prefix_render() {
        let m = MYSQL.iter().find(|m| m.version == "20180125194653").unwrap();
        let s = steps(m, "auth_");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].condition, Some(Condition::ColumnMissing("auth_refresh_tokens".into(), "updated_at".into())));
        assert!(s[0].sql.starts_with("ALTER TABLE auth_refresh_tokens ADD COLUMN"));
        assert_eq!(s[1].condition, None);
        let json = steps(&MYSQL[3], "");
        assert_eq!(json.len(), 4);
        assert!(json.iter().all(|s| !s.sql.contains("{{")));
    }

    #[test]
    fn upstream_versions_come_first_in_order() {
        let v: Vec<&str> = MYSQL.iter().map(|m| m.version).collect();
        assert_eq!(
            &v[..7],
            ["20171026211738", "20171026211808", "20171026211834", "20180103212743", "20180108183307", "20180119214651", "20180125194653"]
        );
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(v, sorted);
        assert!(render_status(&[Status { version: "1".into(), name: "x".into(), applied: false }]).contains("Pending"));
    }
}
