//! Configuration: a `.env` file plus the environment (which wins), under upstream's
//! variable names (spec/CONFIG.md). This is the only module that reads settings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

/// A setting could not be read; start-up stops with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value of the wrong form.
    #[error("invalid value for {var}: {reason}")]
    Invalid {
        /// The variable's name.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// The `-c` file could not be read.
    #[error("could not read configuration file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A required setting is missing.
    #[error("{0}")]
    Missing(String),
}

/// The variables visible to the server: the process environment over the file's values.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads `file` (which must exist) or, without one, `.env` when present, under the
    /// process environment.
    ///
    /// # Errors
    /// [`ConfigError::File`] when a named file is missing or malformed.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut vars = HashMap::new();
        let path = file.map(Path::to_path_buf).or_else(|| {
            let p = PathBuf::from(".env");
            p.exists().then_some(p)
        });
        if let Some(path) = path {
            let err = |e: dotenvy::Error| ConfigError::File { path: path.display().to_string(), reason: e.to_string() };
            for item in dotenvy::from_path_iter(&path).map_err(err)? {
                let (k, v) = item.map_err(err)?;
                vars.insert(k, v);
            }
        }
        vars.extend(std::env::vars());
        Ok(Self { vars })
    }

    /// An environment made of these pairs only (tests).
    #[must_use]
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `GOTRUE_<name>`, else of the first unprefixed fallback present.
    fn raw(&self, name: &str, fallbacks: &[&str]) -> Option<(String, &str)> {
        let prefixed = format!("GOTRUE_{name}");
        if let Some(v) = self.vars.get(&prefixed) {
            return Some((prefixed, v));
        }
        fallbacks.iter().find_map(|f| self.vars.get(*f).map(|v| ((*f).to_owned(), v.as_str())))
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name, &[]).map_or_else(|| default.to_owned(), |(_, v)| v.to_owned())
    }

    fn string_or(&self, name: &str, fallbacks: &[&str], default: &str) -> String {
        self.raw(name, fallbacks).map_or_else(|| default.to_owned(), |(_, v)| v.to_owned())
    }

    fn secret(&self, name: &str, fallbacks: &[&str]) -> Option<SecretString> {
        self.raw(name, fallbacks).filter(|(_, v)| !v.is_empty()).map(|(_, v)| SecretString::from(v.to_owned()))
    }

    fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(name, &[]) {
            None => Ok(default),
            Some((var, v)) => parse_bool(v).ok_or_else(|| invalid(&var, format!("{v:?} is not a boolean (true/false, 1/0, t/f)"))),
        }
    }

    fn int(&self, name: &str, fallbacks: &[&str], default: i64) -> Result<i64, ConfigError> {
        match self.raw(name, fallbacks) {
            None => Ok(default),
            Some((var, v)) => parse_int(v).ok_or_else(|| invalid(&var, format!("{v:?} is not an integer"))),
        }
    }

    fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(name, &[]) {
            None => Ok(default),
            Some((var, v)) => parse_duration(v)
                .ok_or_else(|| invalid(&var, format!("{v:?} is not a duration (such as 900s, 15m, 1h30m, or bare seconds)"))),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.raw(name, &[]).map_or_else(Vec::new, |(_, v)| parse_list(v))
    }

    fn map(&self, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        match self.raw(name, &[]) {
            None => Ok(BTreeMap::new()),
            Some((var, v)) => parse_map(v).ok_or_else(|| invalid(&var, format!("{v:?} is not a list of key:value pairs"))),
        }
    }
}

fn invalid(var: &str, reason: String) -> ConfigError {
    ConfigError::Invalid { var: var.to_owned(), reason }
}

/// Go's `strconv.ParseBool`.
#[must_use]
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// An integer with Go's automatic base (`0x`, `0o`, `0b`, leading `0` octal).
#[must_use]
pub fn parse_int(v: &str) -> Option<i64> {
    let t = v.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let t = t.replace('_', "");
    let n = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix("0o").or_else(|| t.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -n } else { n })
}

/// A Go duration (`300ms`, `1.5h`, `1h30m`) or bare seconds (`900`).
#[must_use]
pub fn parse_duration(v: &str) -> Option<Duration> {
    let t = v.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// A comma-separated list; items are trimmed and empty ones dropped (upstream kept the
/// spaces, which only ever produced unusable values).
#[must_use]
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `k1:v1,k2:v2`.
#[must_use]
pub fn parse_map(v: &str) -> Option<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for item in parse_list(v) {
        let (k, val) = item.split_once(':')?;
        if val.contains(':') {
            return None;
        }
        m.insert(k.trim().to_owned(), val.trim().to_owned());
    }
    Some(m)
}

/// Which database engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbDriver {
    /// The embedded default.
    Sqlite,
    /// MySQL or MariaDB.
    Mysql,
}

/// `GOTRUE_API_*`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listen host (`""`: all interfaces).
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// Multi-instance: echoed in instance creation.
    pub endpoint: String,
    /// Header whose value becomes the request id.
    pub request_id_header: String,
    /// Enables `GET /admin/users/export`.
    pub export_secret: Option<SecretString>,
    /// Largest request body accepted (bytes); larger bodies get 413.
    pub max_body_bytes: usize,
    /// Time allowed for one request before 503 (seconds).
    pub request_timeout: Duration,
    /// `GOTRUE_CORS_ALLOWED_ORIGINS` (ours): origins CORS answers, comma-separated; empty
    /// (the default) echoes any origin.
    pub cors_allowed_origins: Vec<String>,
    /// `GOTRUE_API_HEADER_READ_TIMEOUT`: time a connection may take to send a request's
    /// headers, and may sit idle before its first or next request (seconds; slowloris).
    pub header_read_timeout: Duration,
}

/// Requests allowed per client address in [`RATE_LIMIT_WINDOW`] on each limited endpoint
/// (`GOTRUE_RATE_LIMIT_<ENDPOINT>`, 0: no limit), the mail limit, and where counters live.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    /// `GOTRUE_RATE_LIMIT_REDIS_URL`: counters in Redis, shared by every process using it.
    pub redis_url: Option<SecretString>,
    /// `GOTRUE_RATE_LIMIT_REDIS_PREFIX`: prefix of the Redis keys.
    pub redis_prefix: String,
    /// `POST /token` per client.
    pub token: u32,
    /// `POST /signup` per client.
    pub signup: u32,
    /// `POST /recover` per client.
    pub recover: u32,
    /// `POST /verify` per client.
    pub verify: u32,
    /// `POST /invite` per client.
    pub invite: u32,
    /// `PUT /user` per client (`GOTRUE_RATE_LIMIT_USER`).
    pub user: u32,
    /// The admin API (`/admin/*`, all methods together) per client (`GOTRUE_RATE_LIMIT_ADMIN`).
    pub admin: u32,
    /// `GOTRUE_RATE_LIMIT_EMAIL_SENT`: mails to one address per hour (0: no limit).
    pub email_sent: u32,
    /// `GOTRUE_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The window of the per-client limits.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(300);

/// The window of the per-address mail limit.
pub const EMAIL_SENT_WINDOW: Duration = Duration::from_secs(3600);

impl RateLimitConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let limit = |name: &str, default: u32| -> Result<u32, ConfigError> {
            let v = env.int(name, &[], i64::from(default))?;
            u32::try_from(v).map_err(|_| invalid(&format!("GOTRUE_{name}"), format!("{v} is not a count of requests")))
        };
        let mut trusted_proxies = Vec::new();
        for p in env.list("TRUSTED_PROXIES") {
            let net = p
                .parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| invalid("GOTRUE_TRUSTED_PROXIES", format!("{p:?} is not an address or CIDR")))?;
            trusted_proxies.push(net);
        }
        Ok(Self {
            redis_url: env.secret("RATE_LIMIT_REDIS_URL", &[]),
            redis_prefix: env.string("RATE_LIMIT_REDIS_PREFIX", "gotrue:rl:"),
            token: limit("RATE_LIMIT_TOKEN", 600)?,
            signup: limit("RATE_LIMIT_SIGNUP", 150)?,
            recover: limit("RATE_LIMIT_RECOVER", 150)?,
            verify: limit("RATE_LIMIT_VERIFY", 300)?,
            invite: limit("RATE_LIMIT_INVITE", 300)?,
            user: limit("RATE_LIMIT_USER", 300)?,
            admin: limit("RATE_LIMIT_ADMIN", 3000)?,
            email_sent: limit("RATE_LIMIT_EMAIL_SENT", 30)?,
            trusted_proxies,
        })
    }
}

/// The public HaveIBeenPwned range API.
pub const DEFAULT_HIBP_URL: &str = "https://api.pwnedpasswords.com";

/// `GOTRUE_PASSWORD_HIBP_*` (ours): the breached-password check of new passwords.
#[derive(Debug, Clone)]
pub struct HibpConfig {
    /// `GOTRUE_PASSWORD_HIBP_ENABLED` (default off): refuse passwords the range API knows.
    pub enabled: bool,
    /// `GOTRUE_PASSWORD_HIBP_URL`: base URL of the range API (`<url>/range/<prefix>`).
    pub url: String,
    /// `GOTRUE_PASSWORD_HIBP_TIMEOUT` (default 2s): beyond it the password is accepted
    /// unchecked (fail open) and a warning logged.
    pub timeout: Duration,
}

impl HibpConfig {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.string("PASSWORD_HIBP_URL", "");
        let url = if url.trim().is_empty() { DEFAULT_HIBP_URL.to_owned() } else { url.trim().to_owned() };
        if url::Url::parse(&url).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
            return Err(invalid("GOTRUE_PASSWORD_HIBP_URL", format!("{url:?} is not an http(s) URL")));
        }
        Ok(Self {
            enabled: env.bool("PASSWORD_HIBP_ENABLED", false)?,
            url,
            timeout: nonzero_duration(env, "PASSWORD_HIBP_TIMEOUT", Duration::from_secs(2))?,
        })
    }
}

/// `GOTRUE_DB_*`.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Engine.
    pub driver: DbDriver,
    /// Connection URL (MySQL URL or Go DSN; SQLite path or `sqlite:` URL).
    pub url: SecretString,
    /// Table name prefix (`<ns>_users`).
    pub namespace: String,
    /// Apply pending migrations when serving.
    pub automigrate: bool,
    /// Pool size.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (including reconnecting to a
    /// database that went away) before it is answered 503 (`GOTRUE_DB_ACQUIRE_TIMEOUT`).
    pub acquire_timeout: Duration,
}

/// `GOTRUE_LOG_*`.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace` (`panic`/`fatal` map to `error`).
    pub level: String,
    /// Append logs to this file instead of stderr.
    pub file: String,
    /// Extra fields on every line.
    pub fields: BTreeMap<String, String>,
}

/// `GOTRUE_TRACING_*`.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// Export spans.
    pub enabled: bool,
    /// Collector host.
    pub host: String,
    /// Collector port.
    pub port: String,
    /// Service name.
    pub service_name: String,
    /// Global span tags.
    pub tags: BTreeMap<String, String>,
}

impl TracingConfig {
    /// Where spans are POSTed (OTLP over HTTP): `http://<host>:<port>/v1/traces`, with
    /// `localhost` and 4318 (the OTLP/HTTP port) standing in for an empty host or port. A
    /// host that already names a scheme (`https://collector`) keeps it.
    #[must_use]
    pub fn endpoint(&self) -> String {
        let host = if self.host.is_empty() { "localhost" } else { self.host.trim_end_matches('/') };
        let port = if self.port.is_empty() { "4318" } else { self.port.as_str() };
        if host.contains("://") {
            format!("{host}:{port}/v1/traces")
        } else {
            format!("http://{host}:{port}/v1/traces")
        }
    }
}

/// `GOTRUE_METRICS_*` (ours): Prometheus metrics on a separate listener.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Listen address (default `127.0.0.1`).
    pub host: String,
    /// Listen port (default 9464).
    pub port: u16,
}

/// Which hash new passwords get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// argon2id (default).
    Argon2id,
    /// bcrypt, to keep the way back to the Go server open.
    Bcrypt,
}

/// `GOTRUE_PASSWORD_*` (ours).
#[derive(Debug, Clone)]
pub struct PasswordConfig {
    /// Scheme of new hashes.
    pub scheme: HashScheme,
    /// argon2 memory in KiB.
    pub argon2_memory_kib: u32,
    /// argon2 iterations.
    pub argon2_iterations: u32,
    /// argon2 lanes.
    pub argon2_parallelism: u32,
    /// bcrypt cost when the scheme is bcrypt.
    pub bcrypt_cost: u32,
    /// Hashing threads (default: cores).
    pub hash_threads: usize,
    /// Minimum password length in characters.
    pub min_length: usize,
}

/// `GOTRUE_JWT_*`.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// HS256 key (resolved at start-up when generated).
    pub secret: Option<SecretString>,
    /// Access token lifetime.
    pub exp: Duration,
    /// Default audience.
    pub aud: String,
    /// Role that makes a user admin.
    pub admin_group_name: String,
    /// Role given to new users.
    pub default_group_name: String,
    /// Refresh token validity from its creation.
    pub refresh_token_lifetime: Duration,
}

/// `GOTRUE_SMTP_*`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Minimum interval between two confirmation or recovery mails to a user.
    pub max_frequency: Duration,
    /// Server; empty means no SMTP (mails are logged).
    pub host: String,
    /// Port (465: implicit TLS).
    pub port: u16,
    /// AUTH user.
    pub user: String,
    /// AUTH password.
    pub pass: Option<SecretString>,
    /// `From` address.
    pub admin_email: String,
    /// PEM file of an extra CA to trust for the server's certificate (ours:
    /// `GOTRUE_SMTP_CA_CERT`); empty for the built-in roots only.
    pub ca_cert: String,
    /// Limit for establishing the connection (ours: `GOTRUE_SMTP_CONNECT_TIMEOUT`, 10 s).
    pub connect_timeout: Duration,
    /// Limit for one whole delivery (ours: `GOTRUE_SMTP_SEND_TIMEOUT`, 30 s).
    pub send_timeout: Duration,
}

/// One value per mail kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerMail {
    /// Invite.
    pub invite: String,
    /// Signup confirmation.
    pub confirmation: String,
    /// Recovery.
    pub recovery: String,
    /// Email change.
    pub email_change: String,
}

impl PerMail {
    fn load(env: &Env, section: &str, default: &str) -> Self {
        let get = |k: &str| {
            let v = env.string(&format!("MAILER_{section}_{k}"), default);
            if v.is_empty() {
                default.to_owned()
            } else {
                v
            }
        };
        Self { invite: get("INVITE"), confirmation: get("CONFIRMATION"), recovery: get("RECOVERY"), email_change: get("EMAIL_CHANGE") }
    }

    /// The value for one mail kind.
    #[must_use]
    pub fn get(&self, kind: crate::ports::mail::MailKind) -> &str {
        use crate::ports::mail::MailKind;
        match kind {
            MailKind::Invite => &self.invite,
            MailKind::Confirmation => &self.confirmation,
            MailKind::Recovery => &self.recovery,
            MailKind::EmailChange => &self.email_change,
        }
    }
}

/// `GOTRUE_MAILER_*`.
#[derive(Debug, Clone)]
pub struct MailerConfig {
    /// Skip email confirmation.
    pub autoconfirm: bool,
    /// Subject templates (empty: default at send time).
    pub subjects: PerMail,
    /// Body template paths on the site (empty: built-in).
    pub templates: PerMail,
    /// Link paths (default `/`).
    pub url_paths: PerMail,
    /// Recovery token validity.
    pub recovery_max_age: Duration,
    /// Confirmation and email-change token validity.
    pub confirmation_max_age: Duration,
    /// Invite token validity (enforced, unlike upstream).
    pub invite_max_age: Duration,
    /// How long a downloaded body template is reused (ours:
    /// `GOTRUE_MAILER_TEMPLATE_CACHE_TTL`, 5 min; 0 downloads it for every mail).
    pub template_cache_ttl: Duration,
    /// Email change needs a confirmation from the current address too (Supabase's
    /// `GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED`; off, as upstream).
    pub secure_email_change: bool,
}

/// One OAuth provider's settings.
#[derive(Debug, Clone, Default)]
pub struct ProviderConfig {
    /// Usable and advertised.
    pub enabled: bool,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub secret: Option<SecretString>,
    /// Our `/callback` URL as registered with the provider.
    pub redirect_uri: String,
    /// Base URL override.
    pub url: String,
}

/// The OAuth providers this server knows, in `/settings` order.
pub const PROVIDERS: [&str; 5] = ["bitbucket", "github", "gitlab", "google", "facebook"];

/// `GOTRUE_EXTERNAL_SAML_*`.
#[derive(Debug, Clone, Default)]
pub struct SamlConfig {
    /// On/off.
    pub enabled: bool,
    /// IdP metadata URL.
    pub metadata_url: String,
    /// Public base URL of this server.
    pub api_base: String,
    /// Label in `/settings`.
    pub name: String,
    /// PEM certificate.
    pub signing_cert: String,
    /// PEM private key.
    pub signing_key: Option<SecretString>,
}

/// `GOTRUE_EXTERNAL_*`.
#[derive(Debug, Clone, Default)]
pub struct ExternalConfig {
    /// OAuth providers by lower-case name.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Email/password endpoints off.
    pub email_disabled: bool,
    /// SAML.
    pub saml: SamlConfig,
    /// Where every external-login redirect goes, when set.
    pub redirect_url: String,
}

/// `GOTRUE_WEBHOOK_*`.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Receiver.
    pub url: String,
    /// Attempts.
    pub retries: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// HMAC key of the signature.
    pub secret: Option<SecretString>,
    /// Events sent to `url`.
    pub events: Vec<String>,
    /// Allow receivers on private and loopback addresses.
    pub allow_private: bool,
}

/// `GOTRUE_COOKIE_*`.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// Cookie name.
    pub key: String,
    /// Lifetime in seconds.
    pub duration: i64,
    /// `GOTRUE_COOKIE_SECURE` (ours): forces `Secure` on or off; unset, it is on unless
    /// `SITE_URL` is plain `http`.
    pub secure: Option<bool>,
}

/// The per-site configuration (spec/CONFIG.md 3).
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    /// Base URL of the site; `None` until resolved at start-up.
    pub site_url: String,
    /// Access tokens.
    pub jwt: JwtConfig,
    /// Outgoing mail server.
    pub smtp: SmtpConfig,
    /// Mails and their tokens.
    pub mailer: MailerConfig,
    /// External login.
    pub external: ExternalConfig,
    /// Refuse new signups.
    pub disable_signup: bool,
    /// Webhooks.
    pub webhook: WebhookConfig,
    /// The `nf_jwt` cookie.
    pub cookie: CookieConfig,
    /// Password rules and hashing.
    pub password: PasswordConfig,
    /// Refresh-token sessions: reuse window and lifetimes.
    pub sessions: SessionConfig,
}

/// Refresh-token sessions (ours; the reuse interval keeps the name Supabase's fork uses).
#[derive(Debug, Clone, Default)]
pub struct SessionConfig {
    /// `GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL`: how long after its rotation a refresh
    /// token presented again is answered with the session's current token (concurrent tabs)
    /// rather than treated as stolen. Zero: never.
    pub reuse_interval: Duration,
    /// `GOTRUE_SESSIONS_TIMEBOX`: absolute session lifetime from login. Zero: none.
    pub timebox: Duration,
    /// `GOTRUE_SESSIONS_INACTIVITY_TIMEOUT`: a session not refreshed for this long ends. Zero: none.
    pub inactivity_timeout: Duration,
}

/// `GOTRUE_ADMIN_*` (ours).
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Whether an access token whose `sub` is `0` or the nil UUID (the "system user",
    /// which anyone holding `JWT_SECRET` can mint) is a super admin, as upstream has it.
    pub system_user_enabled: bool,
}

/// Everything the server reads at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener and HTTP limits.
    pub api: ApiConfig,
    /// Database.
    pub db: DbConfig,
    /// Logging.
    pub logging: LogConfig,
    /// Shared secret with the operator (optional in single-instance mode).
    pub operator_token: Option<SecretString>,
    /// Admin API switches.
    pub admin: AdminConfig,
    /// Multi-instance mode.
    pub multi_instance_mode: bool,
    /// Tracing export.
    pub tracing: TracingConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Header keying upstream's `/token` rate limiter.
    pub rate_limit_header: String,
    /// Our per-client and per-address limits (`GOTRUE_RATE_LIMIT_*`).
    pub rate_limit: RateLimitConfig,
    /// The breached-password check (`GOTRUE_PASSWORD_HIBP_*`).
    pub hibp: HibpConfig,
    /// Whether `SITE_URL` was given (else it defaults to our own address).
    pub site_url_configured: bool,
    /// The site's configuration.
    pub instance: InstanceConfig,
}

fn nonneg_secs(env: &Env, name: &str, fallbacks: &[&str], default: i64) -> Result<Duration, ConfigError> {
    let v = env.int(name, fallbacks, 0)?;
    Ok(Duration::from_secs(u64::try_from(if v <= 0 { default } else { v }).unwrap_or(0)))
}

fn nonzero_duration(env: &Env, name: &str, default: Duration) -> Result<Duration, ConfigError> {
    let d = env.duration(name, Duration::ZERO)?;
    Ok(if d.is_zero() { default } else { d })
}

fn port(env: &Env, name: &str, fallbacks: &[&str], default: u16) -> Result<u16, ConfigError> {
    let v = env.int(name, fallbacks, i64::from(default))?;
    u16::try_from(v).map_err(|_| invalid(&format!("GOTRUE_{name}"), format!("{v} is not a port number")))
}

fn positive_u32(env: &Env, name: &str, default: u32) -> Result<u32, ConfigError> {
    let v = env.int(name, &[], i64::from(default))?;
    u32::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| invalid(&format!("GOTRUE_{name}"), format!("{v} must be a positive integer")))
}

impl Config {
    /// Reads the whole configuration.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is invalid.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let api_port = port(env, "API_PORT", &["PORT"], 8081)?;
        let url = env.string_or("DB_DATABASE_URL", &["DATABASE_URL"], "");
        let driver_name = env.string("DB_DRIVER", "");
        let driver = match driver_name.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => DbDriver::Sqlite,
            "mysql" | "mariadb" => DbDriver::Mysql,
            "" if url.starts_with("sqlite:") || url.is_empty() || url.ends_with(".db") => DbDriver::Sqlite,
            "" => DbDriver::Mysql,
            other => return Err(invalid("GOTRUE_DB_DRIVER", format!("{other:?} is not supported (use sqlite or mysql)"))),
        };
        let url = match (driver, url.is_empty()) {
            (DbDriver::Sqlite, true) => "gotrue.db".to_owned(),
            (DbDriver::Mysql, true) => {
                return Err(ConfigError::Missing("DATABASE_URL (or GOTRUE_DB_DATABASE_URL) is required with GOTRUE_DB_DRIVER=mysql".into()))
            }
            _ => url,
        };
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let hash_threads = env.int("PASSWORD_HASH_THREADS", &[], i64::try_from(cores).unwrap_or(2))?;
        let scheme = match env.string("PASSWORD_HASHER", "argon2id").to_ascii_lowercase().as_str() {
            "argon2id" | "argon2" | "" => HashScheme::Argon2id,
            "bcrypt" => HashScheme::Bcrypt,
            other => return Err(invalid("GOTRUE_PASSWORD_HASHER", format!("{other:?} is not argon2id or bcrypt"))),
        };
        let bcrypt_cost = positive_u32(env, "PASSWORD_BCRYPT_COST", 10)?;
        if !(4..=31).contains(&bcrypt_cost) {
            return Err(invalid("GOTRUE_PASSWORD_BCRYPT_COST", format!("{bcrypt_cost} is outside 4..=31")));
        }
        let mut providers = BTreeMap::new();
        for p in PROVIDERS {
            let up = p.to_ascii_uppercase();
            providers.insert(
                p.to_owned(),
                ProviderConfig {
                    enabled: env.bool(&format!("EXTERNAL_{up}_ENABLED"), false)?,
                    client_id: env.string(&format!("EXTERNAL_{up}_CLIENT_ID"), ""),
                    secret: env.secret(&format!("EXTERNAL_{up}_SECRET"), &[]),
                    redirect_uri: env.string(&format!("EXTERNAL_{up}_REDIRECT_URI"), ""),
                    url: env.string(&format!("EXTERNAL_{up}_URL"), ""),
                },
            );
        }
        let timeout_secs = match env.raw("WEBHOOK_TIMEOUT_SEC", &[]) {
            Some(_) => env.int("WEBHOOK_TIMEOUT_SEC", &[], 0)?,
            None => env.int("WEBHOOK_TIMEOUTSEC", &[], 0)?,
        };
        let retries = env.int("WEBHOOK_RETRIES", &[], 0)?;
        let site_url = env.string("SITE_URL", "");
        let level = env.string_or("LOG_LEVEL", &["LOG_LEVEL"], "info").to_ascii_lowercase();
        let level = match level.as_str() {
            "" => "info".to_owned(),
            "panic" | "fatal" | "error" => "error".to_owned(),
            "warn" | "warning" => "warn".to_owned(),
            "info" | "debug" | "trace" => level,
            other => return Err(invalid("GOTRUE_LOG_LEVEL", format!("{other:?} is not a log level"))),
        };
        Ok(Self {
            api: ApiConfig {
                host: env.string("API_HOST", ""),
                port: api_port,
                endpoint: env.string("API_ENDPOINT", ""),
                request_id_header: env.string_or("API_REQUEST_ID_HEADER", &["REQUEST_ID_HEADER"], ""),
                export_secret: env.secret("API_EXPORT_SECRET", &[]),
                max_body_bytes: usize::try_from(env.int("API_MAX_BODY_BYTES", &[], 1 << 20)?)
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| invalid("GOTRUE_API_MAX_BODY_BYTES", "must be positive".into()))?,
                request_timeout: nonneg_secs(env, "API_REQUEST_TIMEOUT", &[], 30)?,
                cors_allowed_origins: env
                    .list("CORS_ALLOWED_ORIGINS")
                    .into_iter()
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
                header_read_timeout: nonneg_secs(env, "API_HEADER_READ_TIMEOUT", &[], 10)?,
            },
            db: DbConfig {
                driver,
                url: SecretString::from(url),
                namespace: env.string("DB_NAMESPACE", ""),
                automigrate: env.bool("DB_AUTOMIGRATE", driver == DbDriver::Sqlite)?,
                // SQLite readers each own a worker thread: two per core is plenty.
                max_connections: positive_u32(
                    env,
                    "DB_MAX_CONNECTIONS",
                    if driver == DbDriver::Sqlite { u32::try_from(cores * 2).unwrap_or(4).clamp(2, 16) } else { 16 },
                )?,
                // MySQL: answer 503 quickly when the server is down. SQLite: a local file is
                // never "down"; waiting is queueing for the one writer connection.
                acquire_timeout: nonzero_duration(
                    env,
                    "DB_ACQUIRE_TIMEOUT",
                    Duration::from_secs(if driver == DbDriver::Sqlite { 30 } else { 2 }),
                )?,
            },
            logging: {
                // Read for validation as upstream does; the JSON format makes colours,
                // quoting and the timestamp format moot.
                env.bool("LOG_DISABLE_COLORS", false)?;
                env.bool("LOG_QUOTE_EMPTY_FIELDS", false)?;
                let _ = env.string("LOG_TSFORMAT", "");
                let _ = env.string("DB_MIGRATIONS_PATH", "./migrations");
                LogConfig { level, file: env.string("LOG_FILE", ""), fields: env.map("LOG_FIELDS")? }
            },
            operator_token: env.secret("OPERATOR_TOKEN", &[]),
            admin: AdminConfig { system_user_enabled: env.bool("ADMIN_SYSTEM_USER_ENABLED", true)? },
            multi_instance_mode: env.bool("MULTIINSTANCEMODE", false)?,
            tracing: TracingConfig {
                enabled: env.bool("TRACING_ENABLED", false)?,
                host: env.string("TRACING_HOST", ""),
                port: env.string("TRACING_PORT", ""),
                service_name: {
                    let s = env.string("TRACING_SERVICE_NAME", "gotrue");
                    if s.is_empty() {
                        "gotrue".into()
                    } else {
                        s
                    }
                },
                tags: env.map("TRACING_TAGS")?,
            },
            metrics: MetricsConfig {
                enabled: env.bool("METRICS_ENABLED", false)?,
                host: {
                    let h = env.string("METRICS_HOST", "127.0.0.1");
                    if h.is_empty() {
                        "127.0.0.1".into()
                    } else {
                        h
                    }
                },
                port: port(env, "METRICS_PORT", &[], 9464)?,
            },
            rate_limit_header: env.string("RATE_LIMIT_HEADER", ""),
            rate_limit: RateLimitConfig::from_env(env)?,
            hibp: HibpConfig::from_env(env)?,
            site_url_configured: !site_url.is_empty(),
            instance: InstanceConfig {
                site_url,
                jwt: JwtConfig {
                    secret: env.secret("JWT_SECRET", &[]),
                    exp: nonneg_secs(env, "JWT_EXP", &[], 3600)?,
                    aud: env.string("JWT_AUD", ""),
                    admin_group_name: {
                        let g = env.string("JWT_ADMIN_GROUP_NAME", "admin");
                        if g.is_empty() {
                            "admin".into()
                        } else {
                            g
                        }
                    },
                    default_group_name: env.string("JWT_DEFAULT_GROUP_NAME", "").trim().to_owned(),
                    refresh_token_lifetime: nonneg_secs(env, "JWT_REFRESH_TOKEN_LIFETIME", &[], 2_592_000)?,
                },
                smtp: SmtpConfig {
                    max_frequency: nonzero_duration(env, "SMTP_MAX_FREQUENCY", Duration::from_secs(900))?,
                    host: env.string("SMTP_HOST", ""),
                    port: port(env, "SMTP_PORT", &[], 587)?,
                    user: env.string("SMTP_USER", ""),
                    pass: env.secret("SMTP_PASS", &[]),
                    admin_email: env.string("SMTP_ADMIN_EMAIL", ""),
                    ca_cert: env.string("SMTP_CA_CERT", ""),
                    connect_timeout: nonzero_duration(env, "SMTP_CONNECT_TIMEOUT", Duration::from_secs(10))?,
                    send_timeout: nonzero_duration(env, "SMTP_SEND_TIMEOUT", Duration::from_secs(30))?,
                },
                mailer: MailerConfig {
                    autoconfirm: env.bool("MAILER_AUTOCONFIRM", false)?,
                    subjects: PerMail::load(env, "SUBJECTS", ""),
                    templates: PerMail::load(env, "TEMPLATES", ""),
                    url_paths: PerMail::load(env, "URLPATHS", "/"),
                    recovery_max_age: nonzero_duration(env, "MAILER_RECOVERY_MAX_AGE", Duration::from_secs(86_400))?,
                    confirmation_max_age: nonzero_duration(env, "MAILER_CONFIRMATION_MAX_AGE", Duration::from_secs(86_400))?,
                    invite_max_age: nonzero_duration(env, "MAILER_INVITE_MAX_AGE", Duration::from_secs(7 * 86_400))?,
                    template_cache_ttl: env.duration("MAILER_TEMPLATE_CACHE_TTL", Duration::from_secs(300))?,
                    secure_email_change: env.bool("MAILER_SECURE_EMAIL_CHANGE_ENABLED", false)?,
                },
                external: ExternalConfig {
                    providers,
                    email_disabled: env.bool("EXTERNAL_EMAIL_DISABLED", false)?,
                    saml: SamlConfig {
                        enabled: env.bool("EXTERNAL_SAML_ENABLED", false)?,
                        metadata_url: env.string_or("EXTERNAL_SAML_METADATA_URL", &["METADATA_URL"], ""),
                        api_base: env.string_or("EXTERNAL_SAML_API_BASE", &["API_BASE"], ""),
                        name: env.string("EXTERNAL_SAML_NAME", ""),
                        signing_cert: env.string_or("EXTERNAL_SAML_SIGNING_CERT", &["SIGNING_CERT"], ""),
                        signing_key: env.secret("EXTERNAL_SAML_SIGNING_KEY", &["SIGNING_KEY"]),
                    },
                    redirect_url: env.string("EXTERNAL_REDIRECTURL", ""),
                },
                disable_signup: env.bool("DISABLE_SIGNUP", false)?,
                webhook: WebhookConfig {
                    url: env.string("WEBHOOK_URL", ""),
                    retries: u32::try_from(if retries <= 0 { 3 } else { retries }).unwrap_or(3),
                    timeout: Duration::from_secs(u64::try_from(if timeout_secs <= 0 { 5 } else { timeout_secs }).unwrap_or(5)),
                    secret: env.secret("WEBHOOK_SECRET", &[]),
                    events: env.list("WEBHOOK_EVENTS"),
                    allow_private: env.bool("WEBHOOK_ALLOW_PRIVATE", false)?,
                },
                sessions: SessionConfig {
                    reuse_interval: env.duration("SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", Duration::from_secs(10))?,
                    timebox: env.duration("SESSIONS_TIMEBOX", Duration::ZERO)?,
                    inactivity_timeout: env.duration("SESSIONS_INACTIVITY_TIMEOUT", Duration::ZERO)?,
                },
                cookie: CookieConfig {
                    key: {
                        let k = env.string("COOKIE_KEY", "nf_jwt");
                        if k.is_empty() {
                            "nf_jwt".into()
                        } else {
                            k
                        }
                    },
                    duration: {
                        let d = env.int("COOKIE_DURATION", &[], 0)?;
                        if d == 0 {
                            86_400
                        } else {
                            d
                        }
                    },
                    secure: match env.raw("COOKIE_SECURE", &[]) {
                        None => None,
                        Some((_, v)) if v.trim().is_empty() => None,
                        Some(_) => Some(env.bool("COOKIE_SECURE", true)?),
                    },
                },
                password: PasswordConfig {
                    scheme,
                    argon2_memory_kib: positive_u32(env, "PASSWORD_ARGON2_MEMORY_KIB", 19_456)?,
                    argon2_iterations: positive_u32(env, "PASSWORD_ARGON2_ITERATIONS", 2)?,
                    argon2_parallelism: positive_u32(env, "PASSWORD_ARGON2_PARALLELISM", 1)?,
                    bcrypt_cost,
                    hash_threads: usize::try_from(hash_threads).ok().filter(|n| *n > 0).unwrap_or(cores),
                    min_length: usize::try_from(env.int("PASSWORD_MIN_LENGTH", &[], 8)?).unwrap_or(8).max(1),
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn tracing_endpoint_and_metrics_defaults() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert!(!c.tracing.enabled);
        assert_eq!(c.tracing.endpoint(), "http://localhost:4318/v1/traces");
        assert!(!c.metrics.enabled);
        assert_eq!((c.metrics.host.as_str(), c.metrics.port), ("127.0.0.1", 9464));
        let c = Config::from_env(&Env::from_pairs([
            ("GOTRUE_TRACING_HOST", "otel.internal"),
            ("GOTRUE_TRACING_PORT", "14318"),
            ("GOTRUE_METRICS_ENABLED", "true"),
            ("GOTRUE_METRICS_HOST", "0.0.0.0"),
            ("GOTRUE_METRICS_PORT", "9100"),
        ]))
        .unwrap();
        assert_eq!(c.tracing.endpoint(), "http://otel.internal:14318/v1/traces");
        assert!(c.metrics.enabled);
        assert_eq!((c.metrics.host.as_str(), c.metrics.port), ("0.0.0.0", 9100));
        let c = Config::from_env(&Env::from_pairs([("GOTRUE_TRACING_HOST", "https://collector.example/")])).unwrap();
        assert_eq!(c.tracing.endpoint(), "https://collector.example:4318/v1/traces");
        assert!(Config::from_env(&Env::from_pairs([("GOTRUE_METRICS_PORT", "70000")])).is_err());
    }

    #[test]
    fn go_values_parse() {
        assert_eq!(parse_bool("T"), Some(true));
        assert_eq!(parse_bool("yes"), None);
        assert_eq!(parse_int("0x10"), Some(16));
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("-42"), Some(-42));
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("900"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_list("a, b,,"), vec!["a", "b"]);
        assert_eq!(parse_map("tag1:value1,tag2:value2").map(|m| m.len()), Some(2));
        assert_eq!(parse_map("nocolon"), None);
    }

    #[test]
    fn cors_origins_and_cookie_secure_parse() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert!(c.api.cors_allowed_origins.is_empty());
        assert_eq!(c.instance.cookie.secure, None);
        let c = Config::from_env(&Env::from_pairs([
            ("GOTRUE_CORS_ALLOWED_ORIGINS", "https://a.example/, http://b.example:8080"),
            ("GOTRUE_COOKIE_SECURE", "false"),
        ]))
        .unwrap();
        assert_eq!(c.api.cors_allowed_origins, vec!["https://a.example", "http://b.example:8080"]);
        assert_eq!(c.instance.cookie.secure, Some(false));
        assert!(Config::from_env(&Env::from_pairs([("GOTRUE_COOKIE_SECURE", "maybe")])).is_err());
    }

    #[test]
    fn session_settings_default_and_parse() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert_eq!(c.instance.sessions.reuse_interval, Duration::from_secs(10));
        assert!(c.instance.sessions.timebox.is_zero());
        assert!(c.instance.sessions.inactivity_timeout.is_zero());
        let c = Config::from_env(&Env::from_pairs([
            ("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0"),
            ("GOTRUE_SESSIONS_TIMEBOX", "24h"),
            ("GOTRUE_SESSIONS_INACTIVITY_TIMEOUT", "1800"),
        ]))
        .unwrap();
        assert!(c.instance.sessions.reuse_interval.is_zero());
        assert_eq!(c.instance.sessions.timebox, Duration::from_secs(86_400));
        assert_eq!(c.instance.sessions.inactivity_timeout, Duration::from_secs(1800));
        assert!(Config::from_env(&Env::from_pairs([("GOTRUE_SESSIONS_TIMEBOX", "soon")])).is_err());
    }

    #[test]
    fn defaults_are_upstreams_and_the_embedded_database() {
        let c = Config::from_env(&Env::default()).unwrap();
        assert_eq!(c.api.port, 8081);
        assert_eq!(c.db.driver, DbDriver::Sqlite);
        assert_eq!(c.db.url.expose_secret(), "gotrue.db");
        assert!(c.db.automigrate);
        assert_eq!(c.instance.jwt.exp, Duration::from_secs(3600));
        assert_eq!(c.instance.jwt.admin_group_name, "admin");
        assert_eq!(c.instance.smtp.max_frequency, Duration::from_secs(900));
        assert_eq!(c.instance.mailer.url_paths.confirmation, "/");
        assert_eq!(c.instance.mailer.template_cache_ttl, Duration::from_secs(300));
        assert!(!c.instance.mailer.secure_email_change);
        assert_eq!(c.instance.smtp.port, 587);
        assert_eq!(c.instance.smtp.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.instance.smtp.send_timeout, Duration::from_secs(30));
        assert_eq!(c.instance.cookie.key, "nf_jwt");
        assert_eq!(c.instance.webhook.retries, 3);
        assert_eq!(c.instance.password.argon2_memory_kib, 19_456);
        assert!(c.operator_token.is_none());
        assert!(c.admin.system_user_enabled);
        let c = Config::from_env(&Env::from_pairs([("GOTRUE_ADMIN_SYSTEM_USER_ENABLED", "false")])).unwrap();
        assert!(!c.admin.system_user_enabled);
    }

    #[test]
    fn prefixed_wins_over_fallback_and_both_timeout_names_work() {
        let env = Env::from_pairs([
            ("PORT", "9999"),
            ("GOTRUE_DB_DRIVER", "mysql"),
            ("DATABASE_URL", "root@tcp(127.0.0.1:3306)/db?parseTime=true"),
            ("GOTRUE_WEBHOOK_TIMEOUTSEC", "7"),
            ("LOG_LEVEL", "DEBUG"),
            ("GOTRUE_API_REQUEST_ID_HEADER", "X-Request-ID"),
            ("GOTRUE_TRACING_TAGS", "tag1:value1,tag2:value2"),
        ]);
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.api.port, 9999);
        assert_eq!(c.db.driver, DbDriver::Mysql);
        assert!(!c.db.automigrate);
        assert_eq!(c.instance.webhook.timeout, Duration::from_secs(7));
        assert_eq!(c.logging.level, "debug");
        assert_eq!(c.api.request_id_header, "X-Request-ID");
        assert_eq!(c.tracing.tags.get("tag2").map(String::as_str), Some("value2"));
        let env = Env::from_pairs([
            ("GOTRUE_API_PORT", "1"),
            ("PORT", "2"),
            ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "3"),
            ("GOTRUE_WEBHOOK_TIMEOUTSEC", "4"),
        ]);
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.api.port, 1);
        assert_eq!(c.instance.webhook.timeout, Duration::from_secs(3));
    }

    #[test]
    fn db_acquire_timeout_defaults_per_engine_and_reads_durations() {
        let mysql = [("GOTRUE_DB_DRIVER", "mysql"), ("DATABASE_URL", "mysql://root@127.0.0.1/db")];
        assert_eq!(Config::from_env(&Env::from_pairs(mysql)).unwrap().db.acquire_timeout, Duration::from_secs(2));
        assert_eq!(Config::from_env(&Env::from_pairs(Vec::<(String, String)>::new())).unwrap().db.acquire_timeout, Duration::from_secs(30));
        let env = Env::from_pairs([mysql[0], mysql[1], ("GOTRUE_DB_ACQUIRE_TIMEOUT", "500ms")]);
        assert_eq!(Config::from_env(&env).unwrap().db.acquire_timeout, Duration::from_millis(500));
        let env = Env::from_pairs([mysql[0], mysql[1], ("GOTRUE_DB_ACQUIRE_TIMEOUT", "5")]);
        assert_eq!(Config::from_env(&env).unwrap().db.acquire_timeout, Duration::from_secs(5));
        let err = Config::from_env(&Env::from_pairs([("GOTRUE_DB_ACQUIRE_TIMEOUT", "soon")])).unwrap_err();
        assert!(err.to_string().contains("GOTRUE_DB_ACQUIRE_TIMEOUT"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (k, v) in [
            ("GOTRUE_MAILER_AUTOCONFIRM", "maybe"),
            ("GOTRUE_JWT_EXP", ""),
            ("GOTRUE_SMTP_MAX_FREQUENCY", "soon"),
            ("GOTRUE_DB_DRIVER", "postgres"),
            ("GOTRUE_LOG_LEVEL", "loud"),
            ("PORT", "70000"),
        ] {
            let err = Config::from_env(&Env::from_pairs([(k, v)])).unwrap_err();
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
        let err = Config::from_env(&Env::from_pairs([("GOTRUE_DB_DRIVER", "mysql")])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let env = Env::from_pairs([("GOTRUE_JWT_SECRET", "supersecretvalue"), ("GOTRUE_SMTP_PASS", "hunter2hunter2")]);
        let c = Config::from_env(&env).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("supersecretvalue"));
        assert!(!dbg.contains("hunter2hunter2"));
    }

    #[test]
    fn dotenv_file_fills_gaps_under_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.env");
        std::fs::write(&path, "GOTRUE_JWT_AUD=fromfile\nexport GOTRUE_SITE_URL=\"https://site.example\"\n# comment\nPATH=nope\n").unwrap();
        let env = Env::load(Some(&path)).unwrap();
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.instance.jwt.aud, "fromfile");
        assert_eq!(c.instance.site_url, "https://site.example");
        assert_ne!(env.vars.get("PATH").map(String::as_str), Some("nope"));
        assert!(Env::load(Some(&dir.path().join("missing.env"))).is_err());
    }

    #[test]
    fn breached_password_check_is_off_by_default_and_validates_its_url() {
        let c = Config::from_env(&Env::from_pairs([("GOTRUE_JWT_SECRET", "x")])).unwrap();
        assert!(!c.hibp.enabled);
        assert_eq!(c.hibp.url, DEFAULT_HIBP_URL);
        assert_eq!(c.hibp.timeout, Duration::from_secs(2));
        let c = Config::from_env(&Env::from_pairs([
            ("GOTRUE_PASSWORD_HIBP_ENABLED", "true"),
            ("GOTRUE_PASSWORD_HIBP_URL", "http://127.0.0.1:9/"),
            ("GOTRUE_PASSWORD_HIBP_TIMEOUT", "500ms"),
        ]))
        .unwrap();
        assert!(c.hibp.enabled);
        assert_eq!(c.hibp.timeout, Duration::from_millis(500));
        let err = Config::from_env(&Env::from_pairs([("GOTRUE_PASSWORD_HIBP_URL", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("GOTRUE_PASSWORD_HIBP_URL"), "{err}");
    }
}
