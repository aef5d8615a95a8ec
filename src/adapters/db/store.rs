//! The store ports, implemented once for both engines by `sql_store!`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Tables;
use crate::domain::audit::{AuditScope, AuditSearch};
use crate::domain::email::normalise;
use crate::domain::metadata::Metadata;
use crate::domain::page::{Pagination, SortDirection};
use crate::ports::users::{StoreError, TokenColumn};

/// The SQL engine: the statements are the same on both except for a few fragments
/// (JSON access and case-insensitive matching), which this renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite (JSON1 functions; `LIKE` folds ASCII case).
    Sqlite,
    /// MySQL 5.7/8 and MariaDB 10.11: no `->>`, which MariaDB lacks.
    MySql,
}

impl Dialect {
    /// The text of a top-level key of a JSON column (SQL NULL when absent).
    fn json_text(self, column: &str, key: &str) -> String {
        match self {
            // json_extract raises an error on malformed JSON; such a row just does not match.
            Self::Sqlite => format!("CASE WHEN json_valid({column}) THEN json_extract({column}, '$.{key}') END"),
            Self::MySql => format!("JSON_UNQUOTE(JSON_EXTRACT({column}, '$.{key}'))"),
        }
    }

    /// A table hint for a scan that reads every row of a tenant anyway: sequential reads
    /// beat an index walk with a lookup per row. (`USE INDEX ()` reads the table itself, in
    /// MySQL and MariaDB alike.)
    fn scan_hint(self) -> &'static str {
        match self {
            Self::Sqlite => "NOT INDEXED",
            Self::MySql => "USE INDEX ()",
        }
    }

    /// `<expr> LIKE ?`, case-insensitive, with `!` as the escape character (a backslash
    /// would depend on MySQL's `NO_BACKSLASH_ESCAPES` mode).
    fn ilike(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("{expr} LIKE ? ESCAPE '!'"),
            Self::MySql => format!("CONVERT({expr} USING utf8mb4) COLLATE utf8mb4_unicode_ci LIKE ? ESCAPE '!'"),
        }
    }
}

/// A `LIKE` pattern matching values that contain `text`, where `%`, `_` and the escape
/// character `!` match themselves (upstream let `%` and `_` act as wildcards).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// How many matches of a search are fetched as (id, creation time) pairs and paginated in
/// memory; a search matching more is answered from the creation-time index instead.
///
/// Why: walking the creation-time index and looking up every row to test the filter costs
/// one random read per row, which for a rare match means every row of the tenant (measured
/// at 450 ms for 100,000 users on MariaDB). One sequential scan that keeps the few matches
/// costs a fraction of that; a common match, on the other hand, is found near the start of
/// the index, where the index walk stops early.
pub(crate) const SEARCH_WINDOW: usize = 2000;

/// The statements of one kind of list.
#[derive(Debug, Clone)]
pub(crate) struct ListStatements {
    /// One page in order: binds, then `LIMIT ? OFFSET ?`.
    pub(crate) page: String,
    /// `COUNT(*)` of the matches: binds.
    pub(crate) count: String,
    /// `id, created_at` of the matches, unordered, by a table scan: binds, then `LIMIT ?`.
    pub(crate) matches: String,
}

/// The list statements: users by (audience given, filter given, order), audit entries by
/// search scope.
#[derive(Debug, Clone)]
pub(crate) struct ListSql {
    users: Vec<ListStatements>,
    users_by_ids: String,
    audit: Vec<ListStatements>,
    audit_by_ids: String,
}

impl ListSql {
    fn new(t: &Tables, d: Dialect) -> Self {
        let mut users = Vec::new();
        for aud in [false, true] {
            for filter in [false, true] {
                let mut w = String::new();
                if filter {
                    // Both keys are lower-cased by the server, so both engines fold case the
                    // same way (Unicode, not just ASCII), and a plain substring test of the
                    // lower-cased filter suffices (INSTR: no wildcards to escape, and cheaper
                    // than LIKE on MariaDB). A row whose name key was never computed (written
                    // by another program) is matched on its JSON. The test comes first: it
                    // fails for most rows, sparing the collation-aware tenant comparison.
                    w.push_str(&format!(
                        "(INSTR(email_key, ?) > 0 OR INSTR(name_key, ?) > 0 OR (name_key IS NULL AND {})) AND ",
                        d.ilike(&d.json_text("raw_user_meta_data", "full_name"))
                    ));
                }
                w.push_str("instance_id = ?");
                if aud {
                    w.push_str(" AND aud = ?");
                }
                // A filtered count reads every row anyway: sequentially, not through an index.
                let hint = if filter { d.scan_hint() } else { "" };
                for dir in [SortDirection::Asc, SortDirection::Desc] {
                    users.push(ListStatements {
                        page: format!(
                            "SELECT {USER_COLUMNS} FROM {} WHERE {w} ORDER BY created_at {dir}, id {dir} LIMIT ? OFFSET ?",
                            t.users
                        ),
                        count: format!("SELECT COUNT(*) FROM {} {hint} WHERE {w}", t.users),
                        matches: format!("SELECT id, created_at FROM {} {} WHERE {w} LIMIT ?", t.users, d.scan_hint()),
                    });
                }
            }
        }
        let mut audit = Vec::new();
        for scope in [None, Some(AuditScope::Author), Some(AuditScope::Action), Some(AuditScope::Type)] {
            let mut w = String::from("instance_id = ?");
            if let Some(s) = scope {
                let ors: Vec<String> = s.fields().iter().map(|f| d.ilike(&d.json_text("payload", f))).collect();
                w.push_str(&format!(" AND ({})", ors.join(" OR ")));
            }
            let hint = if scope.is_some() { d.scan_hint() } else { "" };
            audit.push(ListStatements {
                page: format!(
                    "SELECT id, CAST(payload AS CHAR) AS payload, created_at FROM {} WHERE {w} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                    t.audit
                ),
                count: format!("SELECT COUNT(*) FROM {} {hint} WHERE {w}", t.audit),
                matches: format!("SELECT id, created_at FROM {} {} WHERE {w} LIMIT ?", t.audit, d.scan_hint()),
            });
        }
        Self {
            users,
            users_by_ids: format!("SELECT {USER_COLUMNS} FROM {} WHERE id IN ", t.users),
            audit,
            audit_by_ids: format!("SELECT id, CAST(payload AS CHAR) AS payload, created_at FROM {} WHERE id IN ", t.audit),
        }
    }

    /// The statements of a user list.
    pub(crate) fn users(&self, aud: bool, filter: bool, order: SortDirection) -> &ListStatements {
        let i = usize::from(aud) * 2 + usize::from(filter);
        &self.users[i * 2 + usize::from(order == SortDirection::Desc)]
    }

    /// The statements of an audit list.
    pub(crate) fn audit(&self, search: Option<&AuditSearch>) -> &ListStatements {
        &self.audit[match search.map(|s| s.scope) {
            None => 0,
            Some(AuditScope::Author) => 1,
            Some(AuditScope::Action) => 2,
            Some(AuditScope::Type) => 3,
        }]
    }

    /// Users by id: `n` binds.
    pub(crate) fn users_by_ids(&self, n: usize) -> String {
        format!("{}({})", self.users_by_ids, placeholders(n))
    }

    /// Audit entries by id: `n` binds.
    pub(crate) fn audit_by_ids(&self, n: usize) -> String {
        format!("{}({})", self.audit_by_ids, placeholders(n))
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(", ")
}

/// One page of a search whose matches are all known: sorted by creation time then id in
/// `order`, as the SQL orders them. Returns the page's ids and the total.
pub(crate) fn page_of_matches(mut matches: Vec<(String, DateTime<Utc>)>, order: SortDirection, page: &Pagination) -> (Vec<String>, u64) {
    matches.sort_unstable_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    if order == SortDirection::Desc {
        matches.reverse();
    }
    let total = matches.len() as u64;
    let skip = usize::try_from(page.offset()).unwrap_or(usize::MAX);
    let take = usize::try_from(page.limit()).unwrap_or(usize::MAX);
    (matches.into_iter().skip(skip).take(take).map(|(id, _)| id).collect(), total)
}

/// Statements rendered for one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) user_by_email: String,
    pub(crate) user_by_id: String,
    pub(crate) user_by_id_any: String,
    pub(crate) user_by_confirmation: String,
    pub(crate) user_by_recovery: String,
    pub(crate) user_by_email_change: String,
    pub(crate) insert_user: String,
    pub(crate) update_user: String,
    pub(crate) record_login: String,
    pub(crate) delete_user: String,
    pub(crate) insert_audit: String,
    pub(crate) insert_refresh: String,
    pub(crate) refresh_by_token: String,
    pub(crate) refresh_session: String,
    pub(crate) revoke_refresh: String,
    pub(crate) revoke_user_refresh: String,
    pub(crate) current_session: String,
    pub(crate) delete_session: String,
    pub(crate) delete_user_refresh: String,
    pub(crate) delete_user_identities: String,
    pub(crate) external: super::external::ExternalSql,
    pub(crate) delete_audit: String,
    pub(crate) lists: ListSql,
}

const USER_COLUMNS: &str = "instance_id, id, aud, role, email, encrypted_password, confirmed_at, invited_at, \
    confirmation_token, confirmation_sent_at, recovery_token, recovery_sent_at, email_change_token, email_change, \
    email_change_sent_at, email_change_token_current, email_change_confirm_status, last_sign_in_at, CAST(raw_app_meta_data AS CHAR) AS raw_app_meta_data, \
    CAST(raw_user_meta_data AS CHAR) AS raw_user_meta_data, is_super_admin, created_at, updated_at";

/// The columns of a refresh-token row.
const REFRESH_COLUMNS: &str =
    "instance_id, id, token, user_id, revoked, created_at, updated_at, session_id, session_started_at, sealed_token";

/// The start of the statement that rotates a token out (binds: the time, the session to
/// adopt when it has none); the caller appends its `WHERE`. The sealed secret goes: only
/// the session's current token keeps one.
pub(crate) fn rotate_out(table: &str) -> String {
    format!("UPDATE {table} SET revoked = 1, updated_at = ?, sealed_token = NULL, session_id = COALESCE(session_id, ?)")
}

impl Sql {
    pub(crate) fn new(t: &Tables, dialect: Dialect) -> Self {
        let select = format!("SELECT {USER_COLUMNS} FROM {}", t.users);
        let set = "instance_id = ?, aud = ?, role = ?, email = ?, email_key = ?, name_key = ?, encrypted_password = ?, confirmed_at = ?, \
            invited_at = ?, confirmation_token = ?, confirmation_sent_at = ?, recovery_token = ?, recovery_sent_at = ?, \
            email_change_token = ?, email_change = ?, email_change_sent_at = ?, email_change_token_current = ?, \
            email_change_confirm_status = ?, last_sign_in_at = ?, raw_app_meta_data = ?, raw_user_meta_data = ?, is_super_admin = ?, \
            updated_at = ?";
        Self {
            user_by_email: format!("{select} WHERE instance_id = ? AND aud = ? AND email_key = ? LIMIT 1"),
            user_by_id: format!("{select} WHERE instance_id = ? AND id = ? LIMIT 1"),
            user_by_id_any: format!("{select} WHERE id = ? LIMIT 1"),
            user_by_confirmation: format!("{select} WHERE confirmation_token = ? AND (? IS NULL OR instance_id = ?) LIMIT 1"),
            user_by_recovery: format!("{select} WHERE recovery_token = ? AND (? IS NULL OR instance_id = ?) LIMIT 1"),
            user_by_email_change: format!("{select} WHERE email_change_token = ? AND (? IS NULL OR instance_id = ?) LIMIT 1"),
            insert_user: format!(
                "INSERT INTO {} (instance_id, id, aud, role, email, email_key, name_key, encrypted_password, confirmed_at, invited_at, \
                 confirmation_token, confirmation_sent_at, recovery_token, recovery_sent_at, email_change_token, email_change, \
                 email_change_sent_at, email_change_token_current, email_change_confirm_status, last_sign_in_at, raw_app_meta_data, \
                 raw_user_meta_data, is_super_admin, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                t.users
            ),
            update_user: format!("UPDATE {} SET {set} WHERE id = ?", t.users),
            record_login: format!(
                "UPDATE {} SET encrypted_password = ?, recovery_token = ?, last_sign_in_at = ?, updated_at = ? WHERE id = ?",
                t.users
            ),
            delete_user: format!("DELETE FROM {} WHERE id = ?", t.users),
            insert_audit: format!("INSERT INTO {} (instance_id, id, payload, created_at) VALUES (?, ?, ?, ?)", t.audit),
            insert_refresh: format!(
                "INSERT INTO {} (instance_id, token, user_id, revoked, created_at, updated_at, session_id, session_started_at, sealed_token) \
                 VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?)",
                t.refresh_tokens
            ),
            refresh_session: {
                // The user's columns under their own names, the token's prefixed with `rt_`.
                let user_cols = USER_COLUMNS
                    .split(", ")
                    .map(|c| c.trim())
                    .map(|c| c.strip_prefix("CAST(").map_or_else(|| format!("u.{c}"), |rest| format!("CAST(u.{rest}")))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "SELECT rt.instance_id AS rt_instance_id, rt.id AS rt_id, rt.token AS rt_token, rt.user_id AS rt_user_id, \
                     rt.revoked AS rt_revoked, rt.created_at AS rt_created_at, rt.updated_at AS rt_updated_at, \
                     rt.session_id AS rt_session_id, rt.session_started_at AS rt_session_started_at, rt.sealed_token AS rt_sealed_token, \
                     {user_cols} \
                     FROM {rt} rt LEFT JOIN {u} u ON u.id = rt.user_id WHERE rt.token = ? LIMIT 1",
                    rt = t.refresh_tokens,
                    u = t.users
                )
            },
            refresh_by_token: format!("SELECT {REFRESH_COLUMNS} FROM {} WHERE token = ? LIMIT 1", t.refresh_tokens),
            revoke_refresh: format!("{} WHERE id = ? AND revoked = 0", rotate_out(&t.refresh_tokens)),
            // Binds the session to keep, or "" to keep none.
            revoke_user_refresh: format!(
                "DELETE FROM {} WHERE instance_id = ? AND user_id = ? AND (session_id IS NULL OR session_id <> ?)",
                t.refresh_tokens
            ),
            current_session: format!(
                "SELECT {REFRESH_COLUMNS} FROM {} WHERE session_id = ? AND revoked = 0 ORDER BY id DESC LIMIT 1",
                t.refresh_tokens
            ),
            delete_session: format!("DELETE FROM {} WHERE session_id = ?", t.refresh_tokens),
            delete_user_refresh: format!("DELETE FROM {} WHERE instance_id = ? AND user_id = ?", t.refresh_tokens),
            delete_user_identities: format!("DELETE FROM {} WHERE instance_id = ? AND user_id = ?", t.identities),
            external: super::external::ExternalSql::new(t),
            delete_audit: format!("DELETE FROM {} WHERE id = ?", t.audit),
            lists: ListSql::new(t, dialect),
        }
    }

    pub(crate) fn by_token(&self, column: TokenColumn) -> &str {
        match column {
            TokenColumn::Confirmation => &self.user_by_confirmation,
            TokenColumn::Recovery => &self.user_by_recovery,
            TokenColumn::EmailChange => &self.user_by_email_change,
        }
    }
}

/// The guard clause appended to a user update or delete.
pub(crate) fn guard_clause(column: TokenColumn) -> &'static str {
    match column {
        TokenColumn::Confirmation => " AND confirmation_token = ?",
        TokenColumn::Recovery => " AND recovery_token = ?",
        TokenColumn::EmailChange => " AND email_change_token = ?",
    }
}

/// Metadata as stored: the object's JSON, or `null`.
pub(crate) fn metadata_json(m: &Metadata) -> String {
    m.as_ref().map_or_else(|| "null".to_owned(), |o| Value::Object(o.clone()).to_string())
}

/// Reads stored metadata: JSON `null`, `""` and SQL NULL all read as `{}` (SCHEMA.md 4).
pub(crate) fn parse_metadata(s: Option<String>) -> Result<Metadata, StoreError> {
    let s = s.unwrap_or_default();
    if s.trim().is_empty() || s.trim() == "null" {
        return Ok(Some(Map::new()));
    }
    match serde_json::from_str::<Value>(&s) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(Value::Null) => Ok(Some(Map::new())),
        Ok(_) | Err(_) => Err(StoreError::Backend("stored metadata is not a JSON object".into())),
    }
}

pub(crate) fn parse_uuid(s: Option<String>) -> Result<Uuid, StoreError> {
    let s = s.unwrap_or_default();
    if s.is_empty() {
        return Ok(Uuid::nil());
    }
    Uuid::parse_str(&s).map_err(|e| StoreError::Backend(Box::new(e)))
}

/// A stored session id; anything but a UUID (NULL, or a value another program wrote)
/// reads as no session.
pub(crate) fn session_uuid(s: Option<String>) -> Option<Uuid> {
    s.and_then(|s| Uuid::parse_str(&s).ok())
}

pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::EmailTaken,
        _ if is_unavailable(&e) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Whether a driver error means the database cannot be reached (as opposed to a query
/// that failed): no connection within the acquire timeout, a connection refused, reset or
/// closed, or the server going down (MySQL `ER_SERVER_SHUTDOWN` 1053, `ER_CONNECTION_KILLED`
/// 1927, SQLSTATE class 08 "connection exception").
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => {
            let code = d.code();
            let code = code.as_deref().unwrap_or("");
            code.starts_with("08")
                || d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| matches!(m.number(), 1053 | 1927))
        }
        _ => false,
    }
}

pub(crate) fn email_key(email: &str) -> String {
    normalise(email)
}

/// The `name_key` column: `user_metadata.full_name` lower-cased, at most 255 characters
/// (`""` when there is no name).
pub(crate) fn name_key(metadata: &Metadata) -> String {
    let name = match metadata.as_ref().and_then(|m| m.get("full_name")) {
        Some(Value::String(s)) => s.to_lowercase(),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => String::new(),
    };
    name.chars().take(255).collect()
}

pub(crate) fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// A row count or offset as SQL binds it (no engine holds more than `i64::MAX` rows).
pub(crate) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The total a page already tells: a page that is not full, and not past the end, is the
/// last one, so no `COUNT(*)` (a scan of every matching row) is needed.
pub(crate) fn known_total(page: &Pagination, rows: usize) -> Option<u64> {
    let rows = rows as u64;
    let offset = page.offset();
    (rows < page.limit() && (rows > 0 || offset == 0)).then(|| offset.saturating_add(rows))
}

/// A `COUNT(*)` as a row count.
pub(crate) fn row_count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Reads a stored audit payload; anything but a JSON object reads as an empty object.
pub(crate) fn parse_payload(s: Option<String>) -> Map<String, Value> {
    match s.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    }
}

/// Implements `UserStore` and `TokenStore` for a store struct with `read` and `write` pools
/// and `sql: Sql`, for one sqlx database type. The calling module imports `sqlx::Row` and
/// provides `async fn rotate(&self, old, new, audit)` (usually delegating to `rotate_in_tx`).
macro_rules! sql_store {
    ($store:ty, $db:ty) => {
        use chrono::{DateTime, Utc};
        use $crate::adapters::db::store::{
            backend, contains_pattern, email_key, epoch, guard_clause, known_total, metadata_json, name_key, parse_metadata, parse_payload,
            parse_uuid, row_count, session_uuid, sql_int,
        };
        use $crate::adapters::db::store::{page_of_matches, ListStatements, SEARCH_WINDOW};
        use $crate::domain::audit::AuditEntry;
        use $crate::domain::page::{Page, Pagination, SortDirection};
        use $crate::domain::user::User;
        use $crate::ports::audit::{AuditListQuery, AuditStore};
        use $crate::ports::tokens::{NewRefreshToken, RefreshToken, TokenStore};
        use $crate::ports::users::{Effects, Guard, StoreError, TokenColumn, UserListQuery, UserStore};

        type Row = <$db as sqlx::Database>::Row;
        /// The engine's name on the `db.system` field of the store spans.
        const DB_SYSTEM: &str = <$db as sqlx::Database>::NAME;
        type Tx<'a> = sqlx::Transaction<'a, $db>;

        fn user_from_row(r: &Row) -> Result<User, StoreError> {
            let s = |c: &str| -> Result<String, StoreError> { Ok(r.try_get::<Option<String>, _>(c).map_err(backend)?.unwrap_or_default()) };
            let t = |c: &str| -> Result<Option<DateTime<Utc>>, StoreError> { r.try_get::<Option<DateTime<Utc>>, _>(c).map_err(backend) };
            Ok(User {
                instance_id: parse_uuid(r.try_get("instance_id").map_err(backend)?)?,
                id: parse_uuid(r.try_get("id").map_err(backend)?)?,
                aud: s("aud")?,
                role: s("role")?,
                email: s("email")?,
                encrypted_password: s("encrypted_password")?,
                confirmed_at: t("confirmed_at")?,
                invited_at: t("invited_at")?,
                confirmation_token: s("confirmation_token")?,
                confirmation_sent_at: t("confirmation_sent_at")?,
                recovery_token: s("recovery_token")?,
                recovery_sent_at: t("recovery_sent_at")?,
                email_change_token: s("email_change_token")?,
                email_change: s("email_change")?,
                email_change_sent_at: t("email_change_sent_at")?,
                email_change_token_current: s("email_change_token_current")?,
                email_change_half_confirmed: r.try_get::<Option<bool>, _>("email_change_confirm_status").map_err(backend)?.unwrap_or(false),
                last_sign_in_at: t("last_sign_in_at")?,
                app_metadata: parse_metadata(r.try_get("raw_app_meta_data").map_err(backend)?)?,
                user_metadata: parse_metadata(r.try_get("raw_user_meta_data").map_err(backend)?)?,
                is_super_admin: r.try_get::<Option<bool>, _>("is_super_admin").map_err(backend)?.unwrap_or(false),
                created_at: t("created_at")?.unwrap_or_else(epoch),
                updated_at: t("updated_at")?.unwrap_or_else(epoch),
            })
        }

        fn refresh_from_row(r: &Row) -> Result<RefreshToken, StoreError> {
            Ok(RefreshToken {
                instance_id: parse_uuid(r.try_get("instance_id").map_err(backend)?)?,
                id: r.try_get("id").map_err(backend)?,
                token: r.try_get::<Option<String>, _>("token").map_err(backend)?.unwrap_or_default(),
                user_id: parse_uuid(r.try_get("user_id").map_err(backend)?)?,
                revoked: r.try_get::<Option<bool>, _>("revoked").map_err(backend)?.unwrap_or(false),
                created_at: r.try_get::<Option<DateTime<Utc>>, _>("created_at").map_err(backend)?.unwrap_or_else(epoch),
                updated_at: r.try_get::<Option<DateTime<Utc>>, _>("updated_at").map_err(backend)?,
                session_id: session_uuid(r.try_get("session_id").map_err(backend)?),
                session_started_at: r.try_get::<Option<DateTime<Utc>>, _>("session_started_at").map_err(backend)?,
                sealed: r.try_get::<Option<String>, _>("sealed_token").map_err(backend)?,
            })
        }

        fn audit_from_row(r: &Row, instance_id: uuid::Uuid) -> Result<AuditEntry, StoreError> {
            Ok(AuditEntry {
                instance_id,
                id: parse_uuid(r.try_get("id").map_err(backend)?)?,
                payload: parse_payload(r.try_get("payload").map_err(backend)?),
                created_at: r.try_get::<Option<DateTime<Utc>>, _>("created_at").map_err(backend)?.unwrap_or_else(epoch),
            })
        }

        impl $store {
            async fn apply_effects(
                &self,
                tx: &mut Tx<'_>,
                user_instance: uuid::Uuid,
                user_id: uuid::Uuid,
                effects: &Effects,
            ) -> Result<(), StoreError> {
                if effects.revoke_sessions {
                    sqlx::query(&self.sql.revoke_user_refresh)
                        .bind(user_instance.to_string())
                        .bind(user_id.to_string())
                        .bind(effects.keep_session.map(|s| s.to_string()).unwrap_or_default())
                        .execute(&mut **tx)
                        .await
                        .map_err(backend)?;
                }
                if let Some(g) = &effects.grant {
                    self.insert_refresh(tx, g).await?;
                }
                self.insert_audit(tx, &effects.audit).await
            }

            async fn insert_refresh(&self, tx: &mut Tx<'_>, g: &NewRefreshToken) -> Result<(), StoreError> {
                sqlx::query(&self.sql.insert_refresh)
                    .bind(g.instance_id.to_string())
                    .bind(&g.token)
                    .bind(g.user_id.to_string())
                    .bind(g.created_at)
                    .bind(g.created_at)
                    .bind(g.session_id.to_string())
                    .bind(g.session_started_at)
                    .bind(g.sealed.as_deref())
                    .execute(&mut **tx)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            async fn insert_audit(&self, tx: &mut Tx<'_>, entries: &[AuditEntry]) -> Result<(), StoreError> {
                if entries.is_empty() {
                    return Ok(());
                }
                // One statement for all entries: a round trip less per entry.
                let mut sql = self.sql.insert_audit.clone();
                for _ in 1..entries.len() {
                    sql.push_str(", (?, ?, ?, ?)");
                }
                let mut q = sqlx::query(&sql);
                for e in entries {
                    q = q
                        .bind(e.instance_id.to_string())
                        .bind(e.id.to_string())
                        .bind(serde_json::Value::Object(e.payload.clone()).to_string())
                        .bind(e.created_at);
                }
                q.execute(&mut **tx).await.map_err(backend)?;
                Ok(())
            }

            /// Rotation as a transaction of separate statements (any engine).
            #[allow(dead_code, reason = "engines with a faster path do not use it")]
            async fn rotate_in_tx(&self, old: &RefreshToken, new: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                let done = sqlx::query(&self.sql.revoke_refresh)
                    .bind(new.created_at)
                    .bind(new.session_id.to_string())
                    .bind(old.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                self.insert_refresh(&mut tx, new).await?;
                self.insert_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(backend)
            }

            /// One page of a list and its total. A search first collects its matches by one
            /// sequential scan when they are few (see `SEARCH_WINDOW`); otherwise, and for
            /// plain lists, the page is read in index order and rows are counted only when
            /// the page does not tell the total.
            #[expect(clippy::too_many_arguments, reason = "one helper serves both lists; the closures adapt it to each")]
            async fn list_page<T>(
                &self,
                st: &ListStatements,
                binds: &[String],
                page: &Pagination,
                order: SortDirection,
                search: bool,
                by_ids: impl Fn(usize) -> String,
                from_row: impl Fn(&Row) -> Result<T, StoreError>,
                id_of: impl Fn(&T) -> uuid::Uuid,
            ) -> Result<Page<T>, StoreError> {
                if search {
                    let mut q = sqlx::query(&st.matches);
                    for b in binds {
                        q = q.bind(b);
                    }
                    let rows = q.bind(sql_int(SEARCH_WINDOW as u64 + 1)).fetch_all(&self.read).await.map_err(backend)?;
                    if rows.len() <= SEARCH_WINDOW {
                        let matches = rows
                            .iter()
                            .map(|r| {
                                let id = r.try_get::<Option<String>, _>("id").map_err(backend)?.unwrap_or_default();
                                let at = r.try_get::<Option<DateTime<Utc>>, _>("created_at").map_err(backend)?.unwrap_or_else(epoch);
                                Ok((id, at))
                            })
                            .collect::<Result<Vec<_>, StoreError>>()?;
                        let (ids, total) = page_of_matches(matches, order, page);
                        if ids.is_empty() {
                            return Ok(Page { items: Vec::new(), total });
                        }
                        let sql = by_ids(ids.len());
                        let mut q = sqlx::query(&sql);
                        for id in &ids {
                            q = q.bind(id);
                        }
                        let rows = q.fetch_all(&self.read).await.map_err(backend)?;
                        let mut items = rows.iter().map(&from_row).collect::<Result<Vec<_>, _>>()?;
                        let position: std::collections::HashMap<uuid::Uuid, usize> =
                            ids.iter().enumerate().filter_map(|(i, id)| uuid::Uuid::parse_str(id).ok().map(|u| (u, i))).collect();
                        items.sort_by_key(|t| position.get(&id_of(t)).copied().unwrap_or(usize::MAX));
                        return Ok(Page { items, total });
                    }
                }
                let mut q = sqlx::query(&st.page);
                for b in binds {
                    q = q.bind(b);
                }
                let rows = q.bind(sql_int(page.limit())).bind(sql_int(page.offset())).fetch_all(&self.read).await.map_err(backend)?;
                let items = rows.iter().map(&from_row).collect::<Result<Vec<_>, _>>()?;
                let total = match known_total(page, items.len()) {
                    Some(t) => t,
                    None => {
                        let mut count = sqlx::query_scalar::<_, i64>(&st.count);
                        for b in binds {
                            count = count.bind(b);
                        }
                        row_count(count.fetch_one(&self.read).await.map_err(backend)?)
                    }
                };
                Ok(Page { items, total })
            }

            async fn fetch_user(&self, sql: &str, binds: &[Option<String>]) -> Result<Option<User>, StoreError> {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(b.clone());
                }
                q.fetch_optional(&self.read).await.map_err(backend)?.as_ref().map(user_from_row).transpose()
            }
        }

        #[async_trait::async_trait]
        impl UserStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_user_by_email(&self, instance_id: uuid::Uuid, aud: &str, key: &str) -> Result<Option<User>, StoreError> {
                self.fetch_user(&self.sql.user_by_email, &[Some(instance_id.to_string()), Some(aud.to_owned()), Some(key.to_owned())]).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_user_by_id(&self, instance_id: Option<uuid::Uuid>, id: uuid::Uuid) -> Result<Option<User>, StoreError> {
                match instance_id {
                    Some(i) => self.fetch_user(&self.sql.user_by_id, &[Some(i.to_string()), Some(id.to_string())]).await,
                    None => self.fetch_user(&self.sql.user_by_id_any, &[Some(id.to_string())]).await,
                }
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_user_by_token(
                &self,
                instance_id: Option<uuid::Uuid>,
                column: TokenColumn,
                digest: &str,
            ) -> Result<Option<User>, StoreError> {
                if digest.trim().is_empty() {
                    return Ok(None);
                }
                let i = instance_id.map(|i| i.to_string());
                self.fetch_user(self.sql.by_token(column), &[Some(digest.to_owned()), i.clone(), i]).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn insert_user(&self, u: &User, effects: &Effects) -> Result<(), StoreError> {
                let (u, effects) = (u.clone(), effects.clone());
                self.detached(move |s| async move { s.insert_user_now(&u, &effects).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn update_user(&self, u: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError> {
                let (u, guard, effects) = (u.clone(), guard.clone(), effects.clone());
                self.detached(move |s| async move { s.update_user_now(&u, &guard, &effects).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn record_login(&self, u: &User, effects: &Effects) -> Result<(), StoreError> {
                let (u, effects) = (u.clone(), effects.clone());
                self.detached(move |s| async move { s.record_login_now(&u, &effects).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn delete_user(&self, u: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError> {
                let (u, guard, effects) = (u.clone(), guard.clone(), effects.clone());
                self.detached(move |s| async move { s.delete_user_now(&u, &guard, &effects).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn retract_user(&self, u: &User, guard: &Guard, audit_ids: &[uuid::Uuid]) -> Result<(), StoreError> {
                let (u, guard, ids) = (u.clone(), guard.clone(), audit_ids.to_vec());
                self.detached(move |s| async move { s.retract_user_now(&u, &guard, &ids).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn list_users(&self, instance_id: uuid::Uuid, query: &UserListQuery) -> Result<Page<User>, StoreError> {
                let filter = query.filter.as_deref().filter(|f| !f.is_empty());
                let st = self.sql.lists.users(query.aud.is_some(), filter.is_some(), query.order);
                let mut binds = Vec::new();
                if let Some(f) = filter {
                    let lower = f.to_lowercase();
                    binds.extend([lower.clone(), lower, contains_pattern(f)]);
                }
                binds.push(instance_id.to_string());
                binds.extend(query.aud.clone());
                let lists = &self.sql.lists;
                self.list_page(st, &binds, &query.page, query.order, filter.is_some(), |n| lists.users_by_ids(n), user_from_row, |u| u.id)
                    .await
            }
        }

        #[async_trait::async_trait]
        impl TokenStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_refresh_token(&self, digest: &str) -> Result<Option<RefreshToken>, StoreError> {
                let row = sqlx::query(&self.sql.refresh_by_token).bind(digest).fetch_optional(&self.read).await.map_err(backend)?;
                row.as_ref().map(refresh_from_row).transpose()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn find_refresh_session(&self, digest: &str) -> Result<Option<(RefreshToken, Option<User>)>, StoreError> {
                let Some(r) = sqlx::query(&self.sql.refresh_session).bind(digest).fetch_optional(&self.read).await.map_err(backend)? else {
                    return Ok(None);
                };
                let token = RefreshToken {
                    instance_id: parse_uuid(r.try_get("rt_instance_id").map_err(backend)?)?,
                    id: r.try_get("rt_id").map_err(backend)?,
                    token: r.try_get::<Option<String>, _>("rt_token").map_err(backend)?.unwrap_or_default(),
                    user_id: parse_uuid(r.try_get("rt_user_id").map_err(backend)?)?,
                    revoked: r.try_get::<Option<bool>, _>("rt_revoked").map_err(backend)?.unwrap_or(false),
                    created_at: r.try_get::<Option<DateTime<Utc>>, _>("rt_created_at").map_err(backend)?.unwrap_or_else(epoch),
                    updated_at: r.try_get::<Option<DateTime<Utc>>, _>("rt_updated_at").map_err(backend)?,
                    session_id: session_uuid(r.try_get("rt_session_id").map_err(backend)?),
                    session_started_at: r.try_get::<Option<DateTime<Utc>>, _>("rt_session_started_at").map_err(backend)?,
                    sealed: r.try_get::<Option<String>, _>("rt_sealed_token").map_err(backend)?,
                };
                let user = if r.try_get::<Option<String>, _>("id").map_err(backend)?.is_some() { Some(user_from_row(&r)?) } else { None };
                Ok(Some((token, user)))
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn current_session_token(&self, session_id: uuid::Uuid) -> Result<Option<RefreshToken>, StoreError> {
                let row = sqlx::query(&self.sql.current_session)
                    .bind(session_id.to_string())
                    .fetch_optional(&self.read)
                    .await
                    .map_err(backend)?;
                row.as_ref().map(refresh_from_row).transpose()
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn revoke_session(&self, session_id: uuid::Uuid, audit: &[AuditEntry]) -> Result<(), StoreError> {
                let audit = audit.to_vec();
                self.detached(move |s| async move { s.revoke_session_now(session_id, &audit).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn grant_refresh_token(&self, token: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError> {
                let (token, audit) = (token.clone(), audit.to_vec());
                self.detached(move |s| async move { s.grant_refresh_token_now(&token, &audit).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn rotate_refresh_token(
                &self,
                old: &RefreshToken,
                new: &NewRefreshToken,
                audit: &[AuditEntry],
            ) -> Result<(), StoreError> {
                let (old, new, audit) = (old.clone(), new.clone(), audit.to_vec());
                self.detached(move |s| async move { s.rotate(&old, &new, &audit).await }).await
            }

            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn revoke_user_tokens(
                &self,
                instance_id: uuid::Uuid,
                user_id: uuid::Uuid,
                audit: &[AuditEntry],
            ) -> Result<(), StoreError> {
                let audit = audit.to_vec();
                self.detached(move |s| async move { s.revoke_user_tokens_now(instance_id, user_id, &audit).await }).await
            }
        }

        #[async_trait::async_trait]
        impl AuditStore for $store {
            #[tracing::instrument(target = "gotrue::db", level = "debug", skip_all, fields(db.system = DB_SYSTEM))]
            async fn list_audit(&self, instance_id: uuid::Uuid, query: &AuditListQuery) -> Result<Page<AuditEntry>, StoreError> {
                let search = query.search.as_ref();
                let st = self.sql.lists.audit(search);
                let mut binds = vec![instance_id.to_string()];
                if let Some(s) = search {
                    let pattern = contains_pattern(&s.value);
                    binds.extend(s.scope.fields().iter().map(|_| pattern.clone()));
                }
                let lists = &self.sql.lists;
                let from_row = |r: &Row| audit_from_row(r, instance_id);
                self.list_page(
                    st,
                    &binds,
                    &query.page,
                    SortDirection::Desc,
                    search.is_some(),
                    |n| lists.audit_by_ids(n),
                    from_row,
                    |e| e.id,
                )
                .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::health::HealthProbe for $store {
            async fn check_database(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.read).await.map_err(backend)?;
                Ok(())
            }
        }

        impl $store {
            /// Open and idle connections of the read and the write pool (for metrics).
            #[must_use]
            pub fn pool_state(&self) -> [(&'static str, u32, usize); 2] {
                [("read", self.read.size(), self.read.num_idle()), ("write", self.write.size(), self.write.num_idle())]
            }
        }

        /// The writes proper; the port methods run them detached (see `detached`).
        impl $store {
            /// Runs a write in a task of its own, on a clone of the store, so that it
            /// finishes even when the caller's future is dropped (client gone, request
            /// timeout). sqlx's `begin()` is not cancel-safe: a `BEGIN` dropped in flight
            /// leaves the pooled connection inside a transaction nobody ends
            /// (launchbadge/sqlx#3932), and SQLite's rotation script holds `BEGIN`..`COMMIT`
            /// on the only writer connection.
            async fn detached<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
            where
                T: Send + 'static,
                F: FnOnce(Self) -> Fut,
                Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
            {
                tokio::spawn(f(self.clone())).await.map_err(|e| StoreError::Backend(Box::new(e)))?
            }

            async fn insert_user_now(&self, u: &User, effects: &Effects) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                self.insert_user_row(&mut tx, u).await?;
                self.apply_effects(&mut tx, u.instance_id, u.id, effects).await?;
                tx.commit().await.map_err(backend)
            }

            async fn record_login_now(&self, u: &User, effects: &Effects) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                let done = sqlx::query(&self.sql.record_login)
                    .bind(&u.encrypted_password)
                    .bind(&u.recovery_token)
                    .bind(u.last_sign_in_at)
                    .bind(u.updated_at)
                    .bind(u.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                self.apply_effects(&mut tx, u.instance_id, u.id, effects).await?;
                tx.commit().await.map_err(backend)
            }

            async fn update_user_now(&self, u: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                self.update_user_row(&mut tx, u, guard).await?;
                self.apply_effects(&mut tx, u.instance_id, u.id, effects).await?;
                tx.commit().await.map_err(backend)
            }

            /// Inserts the user row (inside the caller's transaction).
            async fn insert_user_row(&self, tx: &mut Tx<'_>, u: &User) -> Result<(), StoreError> {
                sqlx::query(&self.sql.insert_user)
                    .bind(u.instance_id.to_string())
                    .bind(u.id.to_string())
                    .bind(&u.aud)
                    .bind(&u.role)
                    .bind(&u.email)
                    .bind(email_key(&u.email))
                    .bind(name_key(&u.user_metadata))
                    .bind(&u.encrypted_password)
                    .bind(u.confirmed_at)
                    .bind(u.invited_at)
                    .bind(&u.confirmation_token)
                    .bind(u.confirmation_sent_at)
                    .bind(&u.recovery_token)
                    .bind(u.recovery_sent_at)
                    .bind(&u.email_change_token)
                    .bind(&u.email_change)
                    .bind(u.email_change_sent_at)
                    .bind(&u.email_change_token_current)
                    .bind(u.email_change_half_confirmed)
                    .bind(u.last_sign_in_at)
                    .bind(metadata_json(&u.app_metadata))
                    .bind(metadata_json(&u.user_metadata))
                    .bind(u.is_super_admin)
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .execute(&mut **tx)
                    .await
                    .map_err(backend)?;
                Ok(())
            }

            /// Writes every column of the user row if `guard` holds (inside the caller's
            /// transaction); [`StoreError::Conflict`] when it does not or the row is gone.
            async fn update_user_row(&self, tx: &mut Tx<'_>, u: &User, guard: &Guard) -> Result<(), StoreError> {
                let mut sql = self.sql.update_user.clone();
                if let Guard::Token(c, _) = guard {
                    sql.push_str(guard_clause(*c));
                }
                let mut q = sqlx::query(&sql)
                    .bind(u.instance_id.to_string())
                    .bind(&u.aud)
                    .bind(&u.role)
                    .bind(&u.email)
                    .bind(email_key(&u.email))
                    .bind(name_key(&u.user_metadata))
                    .bind(&u.encrypted_password)
                    .bind(u.confirmed_at)
                    .bind(u.invited_at)
                    .bind(&u.confirmation_token)
                    .bind(u.confirmation_sent_at)
                    .bind(&u.recovery_token)
                    .bind(u.recovery_sent_at)
                    .bind(&u.email_change_token)
                    .bind(&u.email_change)
                    .bind(u.email_change_sent_at)
                    .bind(&u.email_change_token_current)
                    .bind(u.email_change_half_confirmed)
                    .bind(u.last_sign_in_at)
                    .bind(metadata_json(&u.app_metadata))
                    .bind(metadata_json(&u.user_metadata))
                    .bind(u.is_super_admin)
                    .bind(u.updated_at)
                    .bind(u.id.to_string());
                if let Guard::Token(_, digest) = guard {
                    q = q.bind(digest);
                }
                let done = q.execute(&mut **tx).await.map_err(backend)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                Ok(())
            }

            async fn delete_user_now(&self, u: &User, guard: &Guard, effects: &Effects) -> Result<(), StoreError> {
                let mut sql = self.sql.delete_user.clone();
                if let Guard::Token(c, _) = guard {
                    sql.push_str(guard_clause(*c));
                }
                let mut tx = self.write.begin().await.map_err(backend)?;
                let mut q = sqlx::query(&sql).bind(u.id.to_string());
                if let Guard::Token(_, digest) = guard {
                    q = q.bind(digest);
                }
                if q.execute(&mut *tx).await.map_err(backend)?.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                sqlx::query(&self.sql.delete_user_refresh)
                    .bind(u.instance_id.to_string())
                    .bind(u.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                sqlx::query(&self.sql.delete_user_identities)
                    .bind(u.instance_id.to_string())
                    .bind(u.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                self.insert_audit(&mut tx, &effects.audit).await?;
                tx.commit().await.map_err(backend)
            }

            async fn retract_user_now(&self, u: &User, guard: &Guard, audit_ids: &[uuid::Uuid]) -> Result<(), StoreError> {
                let mut sql = self.sql.delete_user.clone();
                if let Guard::Token(c, _) = guard {
                    sql.push_str(guard_clause(*c));
                }
                let mut tx = self.write.begin().await.map_err(backend)?;
                let mut q = sqlx::query(&sql).bind(u.id.to_string());
                if let Guard::Token(_, digest) = guard {
                    q = q.bind(digest);
                }
                if q.execute(&mut *tx).await.map_err(backend)?.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                for id in audit_ids {
                    sqlx::query(&self.sql.delete_audit).bind(id.to_string()).execute(&mut *tx).await.map_err(backend)?;
                }
                tx.commit().await.map_err(backend)
            }

            async fn grant_refresh_token_now(&self, token: &NewRefreshToken, audit: &[AuditEntry]) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                self.insert_refresh(&mut tx, token).await?;
                self.insert_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(backend)
            }

            async fn revoke_session_now(&self, session_id: uuid::Uuid, audit: &[AuditEntry]) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                sqlx::query(&self.sql.delete_session).bind(session_id.to_string()).execute(&mut *tx).await.map_err(backend)?;
                self.insert_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(backend)
            }

            async fn revoke_user_tokens_now(
                &self,
                instance_id: uuid::Uuid,
                user_id: uuid::Uuid,
                audit: &[AuditEntry],
            ) -> Result<(), StoreError> {
                let mut tx = self.write.begin().await.map_err(backend)?;
                sqlx::query(&self.sql.delete_user_refresh)
                    .bind(instance_id.to_string())
                    .bind(user_id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                self.insert_audit(&mut tx, audit).await?;
                tx.commit().await.map_err(backend)
            }
        }
    };
}

pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_others_backend() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(backend(sqlx::Error::Io(refused)), StoreError::Unavailable(_)));
        assert!(matches!(backend(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        assert!(matches!(backend(sqlx::Error::PoolClosed), StoreError::Unavailable(_)));
        assert!(matches!(backend(sqlx::Error::RowNotFound), StoreError::Backend(_)));
        assert!(matches!(backend(sqlx::Error::Protocol("bad packet".into())), StoreError::Backend(_)));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c!d"), "%a!%b!_c!!d%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn name_keys_are_lower_case_and_bounded() {
        let m = |v: Value| Some(v.as_object().cloned().unwrap());
        assert_eq!(name_key(&m(json!({"full_name": "Zoë QUUX"}))), "zoë quux");
        assert_eq!(name_key(&m(json!({"full_name": 42}))), "42");
        assert_eq!(name_key(&m(json!({"full_name": null}))), "");
        assert_eq!(name_key(&None), "");
        assert_eq!(name_key(&m(json!({"full_name": "x".repeat(300)}))).len(), 255);
    }

    #[test]
    fn known_matches_are_paged_in_sql_order() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let m = vec![("b".to_owned(), t(5)), ("a".to_owned(), t(5)), ("c".to_owned(), t(1)), ("d".to_owned(), t(9))];
        let p = |page| Pagination { page, per_page: 2, capped: false };
        assert_eq!(page_of_matches(m.clone(), SortDirection::Desc, &p(1)), (vec!["d".to_owned(), "b".to_owned()], 4));
        assert_eq!(page_of_matches(m.clone(), SortDirection::Desc, &p(2)), (vec!["a".to_owned(), "c".to_owned()], 4));
        assert_eq!(page_of_matches(m.clone(), SortDirection::Asc, &p(1)), (vec!["c".to_owned(), "a".to_owned()], 4));
        assert_eq!(page_of_matches(m, SortDirection::Asc, &p(3)), (vec![], 4));
    }

    #[test]
    fn a_short_page_tells_the_total() {
        let p = |page, per_page| Pagination { page, per_page, capped: false };
        assert_eq!(known_total(&p(1, 50), 0), Some(0));
        assert_eq!(known_total(&p(1, 50), 7), Some(7));
        assert_eq!(known_total(&p(3, 10), 4), Some(24));
        assert_eq!(known_total(&p(1, 50), 50), None, "a full page may have more after it");
        assert_eq!(known_total(&p(4, 10), 0), None, "past the end: the total is unknown");
        assert_eq!(known_total(&p(0, 10), 3), Some(3));
    }
}
