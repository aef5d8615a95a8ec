//! Audit log entries with upstream's payload shape (API.md 4.22).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::user::User;

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Password grant or external login.
    Login,
    /// `POST /logout`.
    Logout,
    /// External login with an invite token.
    InviteAccepted,
    /// Account created and confirmed.
    UserSignedUp,
    /// `POST /invite`.
    UserInvited,
    /// Admin delete.
    UserDeleted,
    /// `PUT /user` or admin update.
    UserModified,
    /// `POST /recover`.
    UserRecoveryRequested,
    /// Refresh token rotated out.
    TokenRevoked,
    /// Refresh grant.
    TokenRefreshed,
}

impl AuditAction {
    /// The `action` value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::InviteAccepted => "invite_accepted",
            Self::UserSignedUp => "user_signedup",
            Self::UserInvited => "user_invited",
            Self::UserDeleted => "user_deleted",
            Self::UserModified => "user_modified",
            Self::UserRecoveryRequested => "user_recovery_requested",
            Self::TokenRevoked => "token_revoked",
            Self::TokenRefreshed => "token_refreshed",
        }
    }

    /// The `log_type` value.
    #[must_use]
    pub const fn log_type(self) -> &'static str {
        match self {
            Self::Login | Self::Logout | Self::InviteAccepted => "account",
            Self::UserSignedUp | Self::UserInvited | Self::UserDeleted => "team",
            Self::UserModified | Self::UserRecoveryRequested => "user",
            Self::TokenRevoked | Self::TokenRefreshed => "token",
        }
    }
}

/// Who performed an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// User id (nil UUID for the operator and the system user).
    pub id: Uuid,
    /// Email (`operator@netlify.com` for the operator token).
    pub email: String,
    /// `user_metadata.full_name`, when present.
    pub name: Option<String>,
}

impl Actor {
    /// The actor for a user acting on their own account.
    #[must_use]
    pub fn user(u: &User) -> Self {
        Self { id: u.id, email: u.email.clone(), name: u.full_name().map(str::to_owned) }
    }
}

/// One row of `audit_log_entries`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Tenant.
    pub instance_id: Uuid,
    /// Primary key.
    pub id: Uuid,
    /// The JSON payload (keys sorted, as Go writes maps).
    pub payload: Map<String, Value>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl AuditEntry {
    /// Builds an entry; `traits` are added for admin actions.
    #[must_use]
    pub fn new(instance_id: Uuid, actor: &Actor, action: AuditAction, traits: Option<Map<String, Value>>, now: DateTime<Utc>) -> Self {
        let mut p = Map::new();
        p.insert("timestamp".into(), Value::String(super::time::rfc3339_seconds(&now)));
        p.insert("actor_id".into(), Value::String(actor.id.to_string()));
        p.insert("actor_email".into(), Value::String(actor.email.clone()));
        p.insert("action".into(), Value::String(action.as_str().into()));
        p.insert("log_type".into(), Value::String(action.log_type().into()));
        if let Some(name) = &actor.name {
            p.insert("actor_name".into(), Value::String(name.clone()));
        }
        if let Some(t) = traits {
            p.insert("traits".into(), Value::Object(t));
        }
        Self { instance_id, id: Uuid::new_v4(), payload: p, created_at: now }
    }

    /// The traits admin actions carry: the target's id and email.
    #[must_use]
    pub fn user_traits(target: &User) -> Map<String, Value> {
        let mut t = Map::new();
        t.insert("user_id".into(), Value::String(target.id.to_string()));
        t.insert("user_email".into(), Value::String(target.email.clone()));
        t
    }
}

/// What the audit list's `query` searches (API.md 4.21): `<scope>:<value>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    /// `author`: the actor's email or name.
    Author,
    /// `action`: the action.
    Action,
    /// `type`: the log type.
    Type,
}

impl AuditScope {
    /// The payload keys the scope matches (any of them).
    #[must_use]
    pub const fn fields(self) -> &'static [&'static str] {
        match self {
            Self::Author => &["actor_email", "actor_name"],
            Self::Action => &["action"],
            Self::Type => &["log_type"],
        }
    }
}

/// A parsed audit `query`: entries whose scope fields contain `value`, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSearch {
    /// Which payload keys.
    pub scope: AuditScope,
    /// The substring to look for (never empty).
    pub value: String,
}

/// An audit `query` that is not `<scope>:<value>` with a known scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid query scope: {0}")]
pub struct InvalidAuditQuery(pub String);

impl AuditSearch {
    /// Parses a `query` value; empty (or an empty value after the scope) means no search.
    ///
    /// # Errors
    /// [`InvalidAuditQuery`] without a `:` or with an unknown scope.
    pub fn parse(query: &str) -> Result<Option<Self>, InvalidAuditQuery> {
        if query.is_empty() {
            return Ok(None);
        }
        let Some((scope, value)) = query.split_once(':') else {
            return Err(InvalidAuditQuery(query.to_owned()));
        };
        let scope = match scope {
            "author" => AuditScope::Author,
            "action" => AuditScope::Action,
            "type" => AuditScope::Type,
            _ => return Err(InvalidAuditQuery(query.to_owned())),
        };
        Ok((!value.is_empty()).then(|| Self { scope, value: value.to_owned() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn payload_matches_upstream_shape() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        let actor = Actor { id: Uuid::nil(), email: "a@example.com".into(), name: Some("Ann".into()) };
        let mut target = User::new(Uuid::nil(), "", "b@example.com", String::new(), None, now);
        target.id = Uuid::nil();
        let e = AuditEntry::new(Uuid::nil(), &actor, AuditAction::UserDeleted, Some(AuditEntry::user_traits(&target)), now);
        let s = serde_json::to_string(&e.payload).unwrap();
        assert_eq!(
            s,
            r#"{"action":"user_deleted","actor_email":"a@example.com","actor_id":"00000000-0000-0000-0000-000000000000","actor_name":"Ann","log_type":"team","timestamp":"2024-05-01T10:00:00Z","traits":{"user_email":"b@example.com","user_id":"00000000-0000-0000-0000-000000000000"}}"#
        );
    }

    #[test]
    fn audit_queries_parse_like_upstream() {
        assert_eq!(AuditSearch::parse(""), Ok(None));
        assert_eq!(AuditSearch::parse("author:"), Ok(None));
        assert_eq!(AuditSearch::parse("author:a:b"), Ok(Some(AuditSearch { scope: AuditScope::Author, value: "a:b".into() })));
        assert_eq!(AuditSearch::parse("type:team").unwrap().unwrap().scope.fields(), ["log_type"]);
        assert_eq!(AuditSearch::parse("action").unwrap_err().to_string(), "Invalid query scope: action");
        assert_eq!(AuditSearch::parse("who:x").unwrap_err().to_string(), "Invalid query scope: who:x");
    }

    #[test]
    fn log_types() {
        assert_eq!(AuditAction::TokenRefreshed.log_type(), "token");
        assert_eq!(AuditAction::UserRecoveryRequested.log_type(), "user");
        assert_eq!(AuditAction::Logout.log_type(), "account");
    }
}
