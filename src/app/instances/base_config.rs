//! The instance configuration JSON of multi-instance mode (`instances.raw_base_config` and
//! the instance API's `config`, CONFIG.md 5), exactly as upstream writes it: every key
//! present (zero values included) except `smtp.port` and `smtp.pass` when zero/empty;
//! durations in nanoseconds.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::config::{InstanceConfig, PerMail, PROVIDERS};

/// `jwt`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtJson {
    /// HS256 key.
    pub secret: String,
    /// Lifetime, seconds.
    pub exp: i64,
    /// Default audience.
    pub aud: String,
    /// Admin role.
    pub admin_group_name: String,
    /// Role of new users.
    pub default_group_name: String,
    /// Refresh token lifetime, seconds.
    pub refresh_token_lifetime: i64,
}

/// `smtp`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpJson {
    /// Nanoseconds.
    pub max_frequency: i64,
    /// Host.
    pub host: String,
    /// Port (omitted when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub port: i64,
    /// User.
    pub user: String,
    /// Password (omitted when empty).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pass: String,
    /// `From`.
    pub admin_email: String,
}

// serde's skip_serializing_if hands a reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One value per mail kind.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PerMailJson {
    /// Invite.
    pub invite: String,
    /// Confirmation.
    pub confirmation: String,
    /// Recovery.
    pub recovery: String,
    /// Email change.
    pub email_change: String,
}

impl PerMailJson {
    fn to_per_mail(&self, default: &str) -> PerMail {
        let or = |v: &str| if v.is_empty() { default.to_owned() } else { v.to_owned() };
        PerMail {
            invite: or(&self.invite),
            confirmation: or(&self.confirmation),
            recovery: or(&self.recovery),
            email_change: or(&self.email_change),
        }
    }
}

/// `mailer`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MailerJson {
    /// Skip confirmation.
    pub autoconfirm: bool,
    /// Subjects.
    pub subjects: PerMailJson,
    /// Body templates.
    pub templates: PerMailJson,
    /// Link paths.
    pub url_paths: PerMailJson,
    /// Nanoseconds.
    pub recovery_max_age: i64,
    /// Nanoseconds.
    pub confirmation_max_age: i64,
    /// Nanoseconds.
    pub invite_max_age: i64,
}

/// One OAuth provider.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderJson {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub secret: String,
    /// Our callback URL.
    pub redirect_uri: String,
    /// Base URL override.
    pub url: String,
    /// On/off.
    pub enabled: bool,
}

/// `external.email`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailProviderJson {
    /// Email/password endpoints off.
    pub disabled: bool,
}

/// `external.saml`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SamlJson {
    /// On/off.
    pub enabled: bool,
    /// IdP metadata URL.
    pub metadata_url: String,
    /// Our public base URL.
    pub api_base: String,
    /// Label.
    pub name: String,
    /// PEM certificate.
    pub signing_cert: String,
    /// PEM private key.
    pub signing_key: String,
}

/// `external`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalJson {
    /// Bitbucket.
    pub bitbucket: ProviderJson,
    /// GitHub.
    pub github: ProviderJson,
    /// GitLab.
    pub gitlab: ProviderJson,
    /// Google.
    pub google: ProviderJson,
    /// Facebook.
    pub facebook: ProviderJson,
    /// Email provider switch.
    pub email: EmailProviderJson,
    /// SAML.
    pub saml: SamlJson,
    /// Redirect of every external login.
    pub redirect_url: String,
}

impl ExternalJson {
    fn provider(&self, name: &str) -> Option<&ProviderJson> {
        match name {
            "bitbucket" => Some(&self.bitbucket),
            "github" => Some(&self.github),
            "gitlab" => Some(&self.gitlab),
            "google" => Some(&self.google),
            "facebook" => Some(&self.facebook),
            _ => None,
        }
    }
}

/// `webhook`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookJson {
    /// Receiver.
    pub url: String,
    /// Attempts.
    pub retries: i64,
    /// Seconds per attempt.
    pub timeout_sec: i64,
    /// HMAC key.
    pub secret: String,
    /// Events sent to `url` (`null` when none).
    pub events: Option<Vec<String>>,
}

/// `cookies`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CookiesJson {
    /// Cookie name.
    pub key: String,
    /// Seconds.
    pub duration: i64,
}

/// The whole instance configuration.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BaseConfig {
    /// Site URL.
    pub site_url: String,
    /// Access tokens.
    pub jwt: JwtJson,
    /// Mail server.
    pub smtp: SmtpJson,
    /// Mails.
    pub mailer: MailerJson,
    /// External login.
    pub external: ExternalJson,
    /// Refuse signups.
    pub disable_signup: bool,
    /// Webhook.
    pub webhook: WebhookJson,
    /// Cookie.
    pub cookies: CookiesJson,
}

/// The secrets of the configuration JSON: never in an instance API answer (WEAKNESSES.md
/// 24), and kept when a `PUT` leaves them out.
pub const SECRET_PATHS: [&[&str]; 9] = [
    &["jwt", "secret"],
    &["smtp", "pass"],
    &["external", "bitbucket", "secret"],
    &["external", "github", "secret"],
    &["external", "gitlab", "secret"],
    &["external", "google", "secret"],
    &["external", "facebook", "secret"],
    &["external", "saml", "signing_key"],
    &["webhook", "secret"],
];

impl BaseConfig {
    /// Reads a stored or sent configuration: missing keys are zero values, an empty string
    /// is `{}`.
    ///
    /// # Errors
    /// The JSON decoder's message.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(raw).map_err(|e| e.to_string())
    }

    /// Reads a JSON value (decoded onto the zero configuration, so that `null` members
    /// mean what they mean to Go's decoder).
    ///
    /// # Errors
    /// The JSON decoder's message.
    pub fn from_value(v: Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(Self::default()),
            v @ Value::Object(_) => {
                let mut base = serde_json::to_value(Self::default()).map_err(|e| e.to_string())?;
                merge(&mut base, fold_keys(v));
                serde_json::from_value(base).map_err(|e| e.to_string())
            }
            v => serde_json::from_value(v).map_err(|e| e.to_string()),
        }
    }

    /// The JSON text to store.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The JSON an operator sees: everything but the secrets.
    #[must_use]
    pub fn public_value(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        for path in SECRET_PATHS {
            remove_path(&mut v, path);
        }
        v
    }

    /// The configuration a request of this instance runs with: defaults applied
    /// (CONFIG.md 4.1), the global `SMTP` and `External` sections overlaid (4.2), and our
    /// own process-wide settings (password hashing, timeouts, ...) taken from `global`.
    #[must_use]
    pub fn to_instance_config(&self, global: &InstanceConfig, site_url_claim: &str) -> InstanceConfig {
        let mut c = global.clone();
        let secret = |s: &str| (!s.is_empty()).then(|| SecretString::from(s.to_owned()));
        let secs = |n: i64, default: u64| Duration::from_secs(u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(default));
        let nanos = |n: i64, default: Duration| u64::try_from(n).ok().filter(|n| *n > 0).map_or(default, Duration::from_nanos);
        let or = |v: &str, default: &str| if v.is_empty() { default.to_owned() } else { v.to_owned() };
        c.site_url = if site_url_claim.is_empty() { self.site_url.clone() } else { site_url_claim.to_owned() };
        c.jwt.secret = secret(&self.jwt.secret);
        c.jwt.exp = secs(self.jwt.exp, 3600);
        c.jwt.aud.clone_from(&self.jwt.aud);
        c.jwt.admin_group_name = or(&self.jwt.admin_group_name, "admin");
        c.jwt.default_group_name = self.jwt.default_group_name.trim().to_owned();
        c.jwt.refresh_token_lifetime = secs(self.jwt.refresh_token_lifetime, 2_592_000);
        // SMTP: the global section, overwritten by every non-zero field of the instance's.
        let s = &self.smtp;
        if s.max_frequency > 0 {
            c.smtp.max_frequency = nanos(s.max_frequency, c.smtp.max_frequency);
        }
        if !s.host.is_empty() {
            c.smtp.host.clone_from(&s.host);
        }
        if let Some(port) = u16::try_from(s.port).ok().filter(|p| *p > 0) {
            c.smtp.port = port;
        }
        if !s.user.is_empty() {
            c.smtp.user.clone_from(&s.user);
        }
        if !s.pass.is_empty() {
            c.smtp.pass = secret(&s.pass);
        }
        if !s.admin_email.is_empty() {
            c.smtp.admin_email.clone_from(&s.admin_email);
        }
        let m = &self.mailer;
        c.mailer.autoconfirm = m.autoconfirm;
        c.mailer.subjects = m.subjects.to_per_mail("");
        c.mailer.templates = m.templates.to_per_mail("");
        c.mailer.url_paths = m.url_paths.to_per_mail("/");
        c.mailer.recovery_max_age = nanos(m.recovery_max_age, Duration::from_secs(86_400));
        c.mailer.confirmation_max_age = nanos(m.confirmation_max_age, Duration::from_secs(86_400));
        c.mailer.invite_max_age = nanos(m.invite_max_age, Duration::from_secs(7 * 86_400));
        // External: the same overlay.
        for name in PROVIDERS {
            let Some(p) = self.external.provider(name) else { continue };
            let g = c.external.providers.entry(name.to_owned()).or_default();
            g.enabled |= p.enabled;
            if !p.client_id.is_empty() {
                g.client_id.clone_from(&p.client_id);
            }
            if !p.secret.is_empty() {
                g.secret = secret(&p.secret);
            }
            if !p.redirect_uri.is_empty() {
                g.redirect_uri.clone_from(&p.redirect_uri);
            }
            if !p.url.is_empty() {
                g.url.clone_from(&p.url);
            }
        }
        c.external.email_disabled |= self.external.email.disabled;
        let (is, gs) = (&self.external.saml, &mut c.external.saml);
        gs.enabled |= is.enabled;
        for (from, to) in [
            (&is.metadata_url, &mut gs.metadata_url),
            (&is.api_base, &mut gs.api_base),
            (&is.name, &mut gs.name),
            (&is.signing_cert, &mut gs.signing_cert),
        ] {
            if !from.is_empty() {
                to.clone_from(from);
            }
        }
        if !is.signing_key.is_empty() {
            gs.signing_key = secret(&is.signing_key);
        }
        if !self.external.redirect_url.is_empty() {
            c.external.redirect_url.clone_from(&self.external.redirect_url);
        }
        c.disable_signup = self.disable_signup;
        let w = &self.webhook;
        c.webhook.url.clone_from(&w.url);
        c.webhook.retries = u32::try_from(w.retries).ok().filter(|n| *n > 0).unwrap_or(3);
        c.webhook.timeout = secs(w.timeout_sec, 5);
        c.webhook.secret = secret(&w.secret);
        c.webhook.events = w.events.clone().unwrap_or_default();
        c.cookie.key = or(&self.cookies.key, "nf_jwt");
        c.cookie.duration = if self.cookies.duration == 0 { 86_400 } else { self.cookies.duration };
        c
    }
}

/// Lower-cases every key, recursively: Go's decoder matches struct fields without regard
/// to case, and every field of this JSON is lower-case. An exactly lower-case key wins
/// over a folded one.
#[must_use]
pub fn fold_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            let mut folded = Vec::new();
            for (k, v) in m {
                let lower = k.to_lowercase();
                if lower == k {
                    out.insert(k, fold_keys(v));
                } else {
                    folded.push((lower, fold_keys(v)));
                }
            }
            for (k, v) in folded {
                out.entry(k).or_insert(v);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(fold_keys).collect()),
        other => other,
    }
}

fn remove_path(v: &mut Value, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(o) = cur.as_object_mut() {
        o.remove(*last);
    }
}

/// Decodes `patch` on top of `stored` as Go's JSON decoder does into an existing struct:
/// keys present overwrite (even with zero values), absent keys keep their value,
/// recursively for objects; arrays and scalars are replaced; `null` empties a list and
/// leaves anything else as it was.
pub fn merge(stored: &mut Value, patch: Value) {
    match (stored, patch) {
        (Value::Object(s), Value::Object(p)) => {
            for (k, v) in p {
                match s.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    Some(existing) if v.is_null() && !existing.is_array() && !existing.is_null() => {}
                    _ => {
                        s.insert(k, v);
                    }
                }
            }
        }
        (s, p) => *s = p,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::app::config::{Config, Env};
    use secrecy::ExposeSecret as _;
    use serde_json::json;

    fn global(extra: &[(&str, &str)]) -> InstanceConfig {
        let mut pairs = vec![("GOTRUE_SITE_URL", "https://global.example"), ("GOTRUE_JWT_SECRET", "global-secret")];
        pairs.extend_from_slice(extra);
        Config::from_env(&Env::from_pairs(pairs)).unwrap().instance
    }

    #[test]
    fn writes_upstreams_format() {
        let v: Value = serde_json::from_str(&BaseConfig::default().to_json()).unwrap();
        assert_eq!(
            v["jwt"],
            json!({"secret":"","exp":0,"aud":"","admin_group_name":"","default_group_name":"","refresh_token_lifetime":0})
        );
        assert_eq!(v["smtp"], json!({"max_frequency":0,"host":"","user":"","admin_email":""}), "port and pass omitted when zero");
        assert_eq!(v["webhook"]["events"], Value::Null);
        assert_eq!(v["external"]["github"], json!({"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false}));
        assert_eq!(v["external"]["email"], json!({"disabled": false}));
        assert_eq!(v["cookies"], json!({"key":"","duration":0}));
        assert_eq!(v["mailer"]["url_paths"], json!({"invite":"","confirmation":"","recovery":"","email_change":""}));
        assert!(BaseConfig::parse("").is_ok());
        assert!(BaseConfig::parse("{\"jwt\":{\"exp\":\"x\"}}").is_err());
    }

    #[test]
    fn defaults_and_overlay() {
        let g = global(&[
            ("GOTRUE_SMTP_HOST", "smtp.global"),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "global@example.com"),
            ("GOTRUE_EXTERNAL_GITHUB_ENABLED", "true"),
            ("GOTRUE_EXTERNAL_GITHUB_CLIENT_ID", "gid"),
        ]);
        let b = BaseConfig::parse(
            r#"{"site_url":"https://a.example","jwt":{"secret":"a-secret"},"smtp":{"host":"smtp.a","pass":"p","max_frequency":60000000000},
                "external":{"github":{"secret":"gs"},"gitlab":{"enabled":true,"client_id":"lid"}},
                "mailer":{"recovery_max_age":3600000000000},"webhook":{"events":["signup"]}}"#,
        )
        .unwrap();
        let c = b.to_instance_config(&g, "");
        assert_eq!(c.site_url, "https://a.example");
        assert_eq!(c.jwt.secret.as_ref().unwrap().expose_secret(), "a-secret");
        assert_eq!(c.jwt.exp, Duration::from_secs(3600));
        assert_eq!(c.jwt.admin_group_name, "admin");
        assert_eq!(c.smtp.host, "smtp.a");
        assert_eq!(c.smtp.admin_email, "global@example.com", "global value where the instance has none");
        assert_eq!(c.smtp.port, 587);
        assert_eq!(c.smtp.max_frequency, Duration::from_secs(60));
        assert_eq!(c.mailer.recovery_max_age, Duration::from_secs(3600));
        assert_eq!(c.mailer.url_paths.recovery, "/");
        let gh = &c.external.providers["github"];
        assert!(gh.enabled && gh.client_id == "gid" && gh.secret.as_ref().unwrap().expose_secret() == "gs");
        assert!(c.external.providers["gitlab"].enabled);
        assert_eq!(c.webhook.events, vec!["signup".to_owned()]);
        assert_eq!(c.webhook.retries, 3);
        assert_eq!(c.cookie.key, "nf_jwt");
        assert_eq!(b.to_instance_config(&g, "https://claim.example").site_url, "https://claim.example");
        // Nothing of the global JWT section leaks into an instance without one.
        assert!(BaseConfig::default().to_instance_config(&g, "").jwt.secret.is_none());
    }

    #[test]
    fn secrets_are_left_out_of_answers() {
        let b = BaseConfig::parse(
            r#"{"jwt":{"secret":"j"},"smtp":{"pass":"p","user":"u"},"external":{"google":{"secret":"g","client_id":"c"},
                "saml":{"signing_key":"k"}},"webhook":{"secret":"w"}}"#,
        )
        .unwrap();
        let v = b.public_value();
        let text = v.to_string();
        for s in ["\"j\"", "\"p\"", "\"g\"", "\"k\"", "\"w\""] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert_eq!(v["smtp"]["user"], "u");
        assert_eq!(v["external"]["google"]["client_id"], "c");
        assert!(v["jwt"].get("secret").is_none());
    }

    #[test]
    fn merge_keeps_absent_keys_and_overwrites_present_ones() {
        let mut stored = json!({"smtp": {"host": "h", "pass": "p"}, "site_url": "a", "webhook": {"events": ["a", "b"]}});
        merge(&mut stored, json!({"smtp": {"host": "h2"}, "webhook": {"events": ["c"]}}));
        assert_eq!(stored, json!({"smtp": {"host": "h2", "pass": "p"}, "site_url": "a", "webhook": {"events": ["c"]}}));
        merge(&mut stored, json!({"smtp": {"pass": ""}}));
        assert_eq!(stored["smtp"]["pass"], "");
        merge(&mut stored, json!({"smtp": null, "site_url": null, "webhook": {"events": null}}));
        assert_eq!(stored, json!({"smtp": {"host": "h2", "pass": ""}, "site_url": "a", "webhook": {"events": null}}));
        let b = BaseConfig::from_value(json!({"SMTP": null, "Jwt": {"Secret": "s", "exp": null}})).unwrap();
        assert_eq!((b.jwt.secret.as_str(), b.jwt.exp), ("s", 0));
    }
}
