//! Users, tokens and audit entries for the contract tests, and comparisons at the
//! precision both engines keep (whole seconds: MySQL `TIMESTAMP` has no fractions).

use chrono::{DateTime, TimeZone as _, Utc};
use gotrue::domain::audit::{Actor, AuditAction, AuditEntry};
use gotrue::domain::token::{digest, NewToken};
use gotrue::domain::user::User;
use gotrue::ports::tokens::NewRefreshToken;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The default audience.
pub const AUD: &str = "api.netlify.com";

/// `2024-05-01T10:00:00.250Z + secs`. The quarter second is kept on purpose: MySQL
/// rounds and MariaDB truncates fractions, and both land on the same second.
pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(250) + chrono::Duration::seconds(secs)
}

/// A JSON object literal as a map.
pub fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// A new unconfirmed user as signup creates it.
pub fn user(instance_id: Uuid, aud: &str, email: &str) -> User {
    User::new(
        instance_id,
        aud,
        email,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
        Some(obj(json!({"full_name": "Test User"}))),
        at(0),
    )
}

/// A user with every field set to a distinct, non-default value.
pub fn full_user(instance_id: Uuid) -> User {
    User {
        instance_id,
        id: Uuid::new_v4(),
        aud: "custom-aud".into(),
        role: "editor".into(),
        email: "Round.Trip@Example.COM".into(),
        encrypted_password: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".into(),
        confirmed_at: Some(at(10)),
        invited_at: Some(at(5)),
        confirmation_token: digest("confirmation secret"),
        confirmation_sent_at: Some(at(6)),
        recovery_token: digest("recovery secret"),
        recovery_sent_at: Some(at(7)),
        email_change_token: digest("email change secret"),
        email_change: "Next.Address@Example.org".into(),
        email_change_sent_at: Some(at(8)),
        email_change_token_current: digest("current address secret"),
        email_change_half_confirmed: true,
        last_sign_in_at: Some(at(20)),
        app_metadata: Some(obj(json!({
            "provider": "email",
            "roles": ["admin", "editor"],
        }))),
        user_metadata: Some(obj(json!({
            "full_name": "Zoë Ångström",
            "crab": "🦀",
            "age": 42,
            "ratio": 1.5,
            "nested": {"list": [1, "two", null, true], "empty": {}},
        }))),
        is_super_admin: true,
        created_at: at(0),
        updated_at: at(30),
    }
}

fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap()
}

/// The user as a store reads it back: timestamps at whole seconds, metadata never
/// `None` (it is stored as JSON `null` and read as an empty object).
pub fn as_read(u: &User) -> User {
    let mut r = u.clone();
    for t in [
        &mut r.confirmed_at,
        &mut r.invited_at,
        &mut r.confirmation_sent_at,
        &mut r.recovery_sent_at,
        &mut r.email_change_sent_at,
        &mut r.last_sign_in_at,
    ] {
        *t = t.map(whole_second);
    }
    r.created_at = whole_second(r.created_at);
    r.updated_at = whole_second(r.updated_at);
    for m in [&mut r.app_metadata, &mut r.user_metadata] {
        if m.is_none() {
            *m = Some(Map::new());
        }
    }
    r
}

/// Asserts the store returned this user, field by field.
#[track_caller]
pub fn assert_user(found: Option<User>, expected: &User) {
    let found = found.unwrap_or_else(|| panic!("user {} not found", expected.email));
    assert_eq!(as_read(&found), as_read(expected));
}

/// A refresh token for the user, issued at `at(secs)`; returns the row to insert.
/// It starts a session of its own, with no sealed secret (as a login's token).
pub fn refresh_for(u: &User, secs: i64) -> NewRefreshToken {
    NewRefreshToken {
        instance_id: u.instance_id,
        user_id: u.id,
        token: NewToken::generate().digest,
        created_at: at(secs),
        session_id: Uuid::new_v4(),
        session_started_at: at(secs),
        sealed: None,
    }
}

/// The token that replaces `old` in its session, issued at `at(secs)`, with `sealed` as
/// its sealed secret.
pub fn next_in_session(old: &NewRefreshToken, secs: i64, sealed: &str) -> NewRefreshToken {
    NewRefreshToken { token: NewToken::generate().digest, created_at: at(secs), sealed: Some(sealed.to_owned()), ..old.clone() }
}

/// An audit entry by the user about themself.
pub fn audit(u: &User, action: AuditAction) -> AuditEntry {
    AuditEntry::new(u.instance_id, &Actor::user(u), action, None, at(40))
}

/// An audit entry with traits, Unicode and nested values, to check the JSON round trip.
pub fn rich_audit(instance_id: Uuid) -> AuditEntry {
    let actor = Actor { id: Uuid::new_v4(), email: "Ädmin@Example.com".into(), name: Some("Ådmin 🦀 \"quoted\" \\ back".into()) };
    let mut traits = obj(json!({
        "user_id": Uuid::new_v4().to_string(),
        "user_email": "target@example.com",
        "numbers": [1, 2.5, -3],
        "flag": false,
        "none": null,
    }));
    traits.insert("deep".into(), json!({"a": {"b": {"c": "d"}}}));
    AuditEntry::new(instance_id, &actor, AuditAction::UserModified, Some(traits), at(50))
}
