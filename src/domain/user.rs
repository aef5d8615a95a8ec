//! The user account and the rules about its state.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::metadata::{self, Metadata};
use super::time::serde_opt;

/// A user account: one row of upstream's `users` table.
///
/// Token fields hold digests ([`crate::domain::token::digest`]), `""` when none is pending.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// Tenant; the nil UUID in single-instance mode.
    pub instance_id: Uuid,
    /// Primary key.
    pub id: Uuid,
    /// Audience the account belongs to.
    pub aud: String,
    /// Role claim (`""` for none).
    pub role: String,
    /// The address as given (never rewritten).
    pub email: String,
    /// PHC argon2id or bcrypt hash; `""` for password-less (invited, external) users.
    pub encrypted_password: String,
    /// When the address was confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When the user was invited.
    pub invited_at: Option<DateTime<Utc>>,
    /// Digest of the pending confirmation or invite token.
    pub confirmation_token: String,
    /// When the confirmation mail was sent.
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    /// Digest of the pending recovery token.
    pub recovery_token: String,
    /// When the recovery mail was sent.
    pub recovery_sent_at: Option<DateTime<Utc>>,
    /// Digest of the pending email-change token.
    pub email_change_token: String,
    /// The pending new address.
    pub email_change: String,
    /// When the email-change mail was sent.
    pub email_change_sent_at: Option<DateTime<Utc>>,
    /// Digest of the email-change token mailed to the current address (secure email change
    /// only; `""` otherwise or once that link was followed).
    pub email_change_token_current: String,
    /// Secure email change: one of the two links has been followed.
    pub email_change_half_confirmed: bool,
    /// Last successful sign-in.
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// Operator-controlled metadata (`provider`, `roles`, ...).
    pub app_metadata: Metadata,
    /// User-controlled metadata.
    pub user_metadata: Metadata,
    /// Passes every admin check of its instance.
    pub is_super_admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// The name of the provider that created an account, kept in `app_metadata.provider`.
pub const EMAIL_PROVIDER: &str = "email";

impl User {
    /// A new, unconfirmed account with upstream's initial values.
    #[must_use]
    pub fn new(
        instance_id: Uuid,
        aud: &str,
        email: &str,
        encrypted_password: String,
        user_metadata: Option<Map<String, Value>>,
        now: DateTime<Utc>,
    ) -> Self {
        let mut app = Map::new();
        app.insert("provider".into(), Value::String(EMAIL_PROVIDER.into()));
        Self {
            instance_id,
            id: Uuid::new_v4(),
            aud: aud.to_owned(),
            role: String::new(),
            email: email.to_owned(),
            encrypted_password,
            confirmed_at: None,
            invited_at: None,
            confirmation_token: String::new(),
            confirmation_sent_at: None,
            recovery_token: String::new(),
            recovery_sent_at: None,
            email_change_token: String::new(),
            email_change: String::new(),
            email_change_sent_at: None,
            email_change_token_current: String::new(),
            email_change_half_confirmed: false,
            last_sign_in_at: None,
            app_metadata: Some(app),
            user_metadata,
            is_super_admin: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the address has been confirmed.
    #[must_use]
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }

    /// Marks the address confirmed and consumes the confirmation token.
    pub fn confirm(&mut self, now: DateTime<Utc>) {
        self.confirmed_at = Some(now);
        self.confirmation_token.clear();
    }

    /// Upstream's admin rule: a super admin, or the admin role inside `aud`.
    #[must_use]
    pub fn is_admin_for(&self, aud: &str, admin_group: &str) -> bool {
        self.is_super_admin || (self.aud == aud && self.role == admin_group)
    }

    /// `user_metadata.full_name` when it is a string (the audit log's `actor_name`).
    #[must_use]
    pub fn full_name(&self) -> Option<&str> {
        self.user_metadata.as_ref()?.get("full_name")?.as_str()
    }

    /// Merges into `user_metadata` with upstream's rule.
    pub fn merge_user_metadata(&mut self, update: Map<String, Value>) {
        metadata::merge(&mut self.user_metadata, update);
    }

    /// Merges into `app_metadata` with upstream's rule.
    pub fn merge_app_metadata(&mut self, update: Map<String, Value>) {
        metadata::merge(&mut self.app_metadata, update);
    }

    /// Applies the metadata a webhook returned (HOOKS_AND_MAIL.md 1.6). As upstream does,
    /// each object the hook returned replaces the stored one wholesale (keys it leaves out
    /// are gone); unlike upstream, `app_metadata.provider` is kept when the hook's
    /// `app_metadata` has no `provider` key at all, so that a hook returning only `roles`
    /// does not erase how the account was created (WEAKNESSES.md 29). A hook that wants the
    /// key gone or changed says so by including it. Returns whether anything was replaced.
    pub fn apply_hook_metadata(&mut self, app_metadata: Option<Map<String, Value>>, user_metadata: Option<Map<String, Value>>) -> bool {
        let changed = app_metadata.is_some() || user_metadata.is_some();
        if let Some(meta) = user_metadata {
            self.user_metadata = Some(meta);
        }
        if let Some(mut meta) = app_metadata {
            if !meta.contains_key("provider") {
                if let Some(provider) = self.app_metadata.as_ref().and_then(|m| m.get("provider")) {
                    meta.insert("provider".into(), provider.clone());
                }
            }
            self.app_metadata = Some(meta);
        }
        changed
    }

    /// Whether a mail sent at `sent_at` is recent enough that another must wait.
    #[must_use]
    pub fn sent_within(sent_at: Option<DateTime<Utc>>, interval: chrono::Duration, now: DateTime<Utc>) -> bool {
        sent_at.is_some_and(|t| t + interval >= now)
    }

    /// Whether a token sent at `sent_at` is past `max_age`. A token whose sending time is
    /// unknown counts as expired when `strict` (we always record it; only rows written by
    /// other tools lack it).
    #[must_use]
    pub fn token_expired(sent_at: Option<DateTime<Utc>>, max_age: chrono::Duration, now: DateTime<Utc>, strict: bool) -> bool {
        match sent_at {
            Some(t) => now > t + max_age,
            None => strict,
        }
    }

    /// The JSON view with upstream's field order and omissions (API.md 3.5).
    #[must_use]
    pub fn view(&self) -> UserView<'_> {
        UserView { user: self, encrypted_password: None }
    }

    /// The export view, which also carries the password hash (API.md 4.16).
    #[must_use]
    pub fn export_view(&self) -> UserView<'_> {
        UserView { user: self, encrypted_password: Some(&self.encrypted_password) }
    }
}

/// Serialisable view of a [`User`].
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    user: &'a User,
    encrypted_password: Option<&'a str>,
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl Serialize for UserView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            id: &'a Uuid,
            aud: &'a str,
            role: &'a str,
            email: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            encrypted_password: Option<&'a str>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            confirmed_at: Option<DateTime<Utc>>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            invited_at: Option<DateTime<Utc>>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            confirmation_sent_at: Option<DateTime<Utc>>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            recovery_sent_at: Option<DateTime<Utc>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            new_email: Option<&'a str>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            email_change_sent_at: Option<DateTime<Utc>>,
            #[serde(with = "serde_opt", skip_serializing_if = "Option::is_none")]
            last_sign_in_at: Option<DateTime<Utc>>,
            app_metadata: &'a Metadata,
            user_metadata: &'a Metadata,
            created_at: String,
            updated_at: String,
        }
        let u = self.user;
        Out {
            id: &u.id,
            aud: &u.aud,
            role: &u.role,
            email: &u.email,
            encrypted_password: self.encrypted_password,
            confirmed_at: u.confirmed_at,
            invited_at: u.invited_at,
            confirmation_sent_at: u.confirmation_sent_at,
            recovery_sent_at: u.recovery_sent_at,
            new_email: nonempty(&u.email_change),
            email_change_sent_at: u.email_change_sent_at,
            last_sign_in_at: u.last_sign_in_at,
            app_metadata: &u.app_metadata,
            user_metadata: &u.user_metadata,
            created_at: super::time::rfc3339_nano(&u.created_at),
            updated_at: super::time::rfc3339_nano(&u.updated_at),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn user() -> User {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        User::new(Uuid::nil(), "api.netlify.com", "a@example.com", String::new(), None, now)
    }

    #[test]
    fn view_has_upstream_fields_in_order_and_hides_secrets() {
        let mut u = user();
        u.confirmation_token = "h1:secret".into();
        u.encrypted_password = "$argon2id$...".into();
        let s = serde_json::to_string(&u.view()).unwrap();
        let expected = format!(
            r#"{{"id":"{}","aud":"api.netlify.com","role":"","email":"a@example.com","app_metadata":{{"provider":"email"}},"user_metadata":null,"created_at":"2024-05-01T10:00:00Z","updated_at":"2024-05-01T10:00:00Z"}}"#,
            u.id
        );
        assert_eq!(s, expected);
        let e = serde_json::to_value(u.export_view()).unwrap();
        assert_eq!(e["encrypted_password"], json!("$argon2id$..."));
    }

    #[test]
    fn pending_email_change_shows_as_new_email() {
        let mut u = user();
        u.email_change = "b@example.com".into();
        let v = serde_json::to_value(u.view()).unwrap();
        assert_eq!(v["new_email"], json!("b@example.com"));
    }

    #[test]
    fn admin_rule_needs_role_in_audience_or_super_admin() {
        let mut u = user();
        assert!(!u.is_admin_for("api.netlify.com", "admin"));
        u.role = "admin".into();
        assert!(u.is_admin_for("api.netlify.com", "admin"));
        assert!(!u.is_admin_for("other", "admin"));
        u.is_super_admin = true;
        assert!(u.is_admin_for("other", "admin"));
    }

    #[test]
    fn expiry_and_throttle_windows() {
        let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
        let day = chrono::Duration::hours(24);
        assert!(!User::token_expired(Some(t0), day, t0 + day, true));
        assert!(User::token_expired(Some(t0), day, t0 + day + chrono::Duration::seconds(1), false));
        assert!(User::token_expired(None, day, t0, true));
        assert!(!User::token_expired(None, day, t0, false));
        let q = chrono::Duration::minutes(15);
        assert!(User::sent_within(Some(t0), q, t0 + chrono::Duration::minutes(5)));
        assert!(!User::sent_within(Some(t0), q, t0 + chrono::Duration::minutes(20)));
        assert!(!User::sent_within(None, q, t0));
    }

    #[test]
    fn hook_metadata_replaces_wholesale_but_keeps_the_provider() {
        let mut u = user();
        u.merge_user_metadata(json!({"a": 1, "b": 2}).as_object().cloned().unwrap());
        u.merge_app_metadata(json!({"roles": ["old"], "plan": "free"}).as_object().cloned().unwrap());
        assert!(!u.apply_hook_metadata(None, None));
        assert!(u.apply_hook_metadata(json!({"roles": ["admin"]}).as_object().cloned(), json!({"c": 3}).as_object().cloned()));
        assert_eq!(u.user_metadata, json!({"c": 3}).as_object().cloned());
        assert_eq!(u.app_metadata, json!({"provider": "email", "roles": ["admin"]}).as_object().cloned());
        assert!(u.apply_hook_metadata(json!({"provider": "github"}).as_object().cloned(), None));
        assert_eq!(u.app_metadata, json!({"provider": "github"}).as_object().cloned());
        assert_eq!(u.user_metadata, json!({"c": 3}).as_object().cloned(), "absent user_metadata is left alone");
        u.app_metadata = None;
        assert!(u.apply_hook_metadata(Some(Map::new()), None));
        assert_eq!(u.app_metadata, Some(Map::new()), "nothing to keep when nothing was stored");
    }

    #[test]
    fn confirm_clears_the_token_and_full_name_reads_metadata() {
        let mut u = user();
        u.confirmation_token = "h1:x".into();
        u.confirm(u.created_at);
        assert!(u.is_confirmed());
        assert!(u.confirmation_token.is_empty());
        assert_eq!(u.full_name(), None);
        u.merge_user_metadata(json!({"full_name": "Ann"}).as_object().cloned().unwrap());
        assert_eq!(u.full_name(), Some("Ann"));
    }
}
