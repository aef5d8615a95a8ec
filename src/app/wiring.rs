//! The one place that names concrete adapters: opens the store, resolves start-up
//! defaults, builds the service and the HTTP router, and serves.

use std::path::Path;
use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::net::TcpListener;

use super::admin::AdminSettings;
use super::config::{Config, DbDriver};
use super::instances::Instances;
use super::service::{Ports, Service};
use crate::adapters::breached::HibpBreachedPasswords;
use crate::adapters::clock::SystemClock;
use crate::adapters::crypto::PooledHasher;
use crate::adapters::db::migrate::Status;
use crate::adapters::db::{sqlite, MySqlStore, SqliteStore};
use crate::adapters::hooks::ReqwestHookSender;
use crate::adapters::http::{self, ratelimit::HeaderLimiter, HttpState};
use crate::adapters::mail::{DropMailer, FetchSettings, LogMailer, Renderer, SmtpMailer, SmtpMailerFactory, SmtpSettings};
use crate::adapters::metrics::{CountingHookSender, CountingMailer, CountingMailerFactory, Metrics, PoolState};
use crate::adapters::oauth::{self, OAuthRegistry};
use crate::adapters::ratelimit::{MemoryRateLimiter, RedisRateLimiter};
use crate::app::hooks::resolve_hook_url;
use crate::ports::audit::AuditStore;
use crate::ports::breached::BreachedPasswords;
use crate::ports::clock::Clock;
use crate::ports::flows::FlowStore;
use crate::ports::health::HealthProbe;
use crate::ports::hooks::{HookEvent, HookSender};
use crate::ports::identities::IdentityStore;
use crate::ports::instances::InstanceStore;
use crate::ports::mail::{Mailer, MailerFactory};
use crate::ports::ratelimit::RateLimiter;
use crate::ports::tokens::TokenStore;
use crate::ports::users::UserStore;

/// The opened database.
#[derive(Clone, Debug)]
pub enum Store {
    /// Embedded.
    Sqlite(SqliteStore),
    /// MySQL/MariaDB.
    MySql(MySqlStore),
}

impl Store {
    /// Opens the configured database.
    ///
    /// # Errors
    /// Connection failures.
    pub async fn open(config: &Config) -> Result<Self, String> {
        let db = &config.db;
        match db.driver {
            DbDriver::Sqlite => {
                Ok(Self::Sqlite(SqliteStore::connect_with(&db.url, &db.namespace, db.max_connections, db.acquire_timeout).await?))
            }
            DbDriver::Mysql => {
                Ok(Self::MySql(MySqlStore::connect_with(&db.url, &db.namespace, db.max_connections, db.acquire_timeout).await?))
            }
        }
    }

    /// Applies pending migrations and data fix-ups.
    ///
    /// # Errors
    /// The failing step.
    pub async fn migrate(&self) -> Result<Vec<Status>, String> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::MySql(s) => s.migrate().await,
        }
    }

    /// Migration status.
    ///
    /// # Errors
    /// Database errors.
    pub async fn status(&self) -> Result<Vec<Status>, String> {
        match self {
            Self::Sqlite(s) => s.status().await.map_err(|e| e.to_string()),
            Self::MySql(s) => s.status().await.map_err(|e| e.to_string()),
        }
    }

    /// The users port.
    #[must_use]
    pub fn users(&self) -> Arc<dyn UserStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The refresh-tokens port.
    #[must_use]
    pub fn tokens(&self) -> Arc<dyn TokenStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    fn identities(&self) -> Arc<dyn IdentityStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The audit port.
    #[must_use]
    pub fn audit(&self) -> Arc<dyn AuditStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The instances port (multi-instance mode).
    #[must_use]
    pub fn instances(&self) -> Arc<dyn InstanceStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// Opens the database with up to three attempts, sleeping 0, 100 and 200 ms before
    /// them (`gotrue multi`, CONFIG.md 8).
    ///
    /// # Errors
    /// The last connection failure.
    pub async fn open_with_retries(config: &Config) -> Result<Self, String> {
        let mut last = String::new();
        for delay_ms in [0u64, 100, 200] {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            match Self::open(config).await {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::warn!(error = %e, "could not connect to the database");
                    last = e;
                }
            }
        }
        Err(last)
    }

    fn flows(&self) -> Arc<dyn FlowStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The readiness probe.
    #[must_use]
    pub fn health(&self) -> Arc<dyn HealthProbe> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::MySql(s) => Arc::new(s.clone()),
        }
    }

    /// The connection pools' state, for metrics.
    #[must_use]
    pub fn pool_state(&self) -> Vec<PoolState> {
        match self {
            Self::Sqlite(s) => s.pool_state().to_vec(),
            Self::MySql(s) => s.pool_state().to_vec(),
        }
    }

    /// Migrates when configured to, else refuses a schema that is not up to date.
    async fn ensure_schema(&self, automigrate: bool) -> Result<(), String> {
        if automigrate {
            self.migrate().await?;
        } else if self.status().await?.iter().any(|s| !s.applied) {
            return Err("the database schema is not up to date: run `gotrue migrate` (or set GOTRUE_DB_AUTOMIGRATE=true)".into());
        }
        Ok(())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::MySql(s) => s.close().await,
        }
    }
}

/// Fills in what single-instance mode may leave unset: the JWT secret (SQLite only,
/// generated once into a 0600 file beside the database) and `SITE_URL`.
///
/// # Errors
/// A missing secret with MySQL, or an unreadable secret file.
pub fn resolve_defaults(config: &mut Config) -> Result<(), String> {
    if config.instance.jwt.secret.is_none() {
        if config.db.driver != DbDriver::Sqlite {
            return Err(
                "GOTRUE_JWT_SECRET is required when the database is MySQL: every instance must sign tokens with the same secret".into()
            );
        }
        let db_path = sqlite::file_path(&config.db.url);
        let secret_path =
            db_path.with_file_name(format!("{}.jwt-secret", db_path.file_name().and_then(|n| n.to_str()).unwrap_or("gotrue.db")));
        config.instance.jwt.secret = Some(load_or_create_secret(&secret_path)?);
        tracing::warn!(path = %secret_path.display(), "GOTRUE_JWT_SECRET is not set; using a generated secret kept beside the database");
    }
    if config.instance.site_url.is_empty() {
        let host = if config.api.host.is_empty() || config.api.host == "0.0.0.0" { "localhost" } else { &config.api.host };
        config.instance.site_url = format!("http://{host}:{}", config.api.port);
        tracing::warn!(site_url = %config.instance.site_url, "GOTRUE_SITE_URL is not set; mail links point at this server");
    }
    Ok(())
}

fn load_or_create_secret(path: &Path) -> Result<SecretString, String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_owned();
        if s.len() >= 32 {
            return Ok(SecretString::from(s));
        }
        return Err(format!("{} is too short to be a JWT secret", path.display()));
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let secret = hex::encode(bytes);
    write_private(path, &secret).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Adapters a caller may substitute (tests).
#[derive(Default, Clone)]
pub struct Overrides {
    /// Mailer instead of the configured one.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Clock instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
}

/// A ready server: its router and its store.
pub struct Built {
    /// The HTTP application.
    pub router: axum::Router,
    /// The database.
    pub store: Store,
    /// The configuration actually in force.
    pub config: Config,
    /// The metrics, when `GOTRUE_METRICS_ENABLED` is on ([`serve`] exposes them).
    pub metrics: Option<Arc<Metrics>>,
}

/// Opens the database (migrating when configured), builds the adapters and the router.
///
/// # Errors
/// A message for the operator.
pub async fn build(mut config: Config, overrides: Overrides) -> Result<Built, String> {
    let multi = config.multi_instance_mode;
    if multi {
        // Instances bring their own JWT secret and site URL (CONFIG.md 4.3).
        if config.operator_token.as_ref().is_none_or(|t| t.expose_secret().is_empty()) {
            return Err("Operator token secret is required".into());
        }
    } else {
        resolve_defaults(&mut config)?;
    }
    let store = if multi { Store::open_with_retries(&config).await? } else { Store::open(&config).await? };
    store.ensure_schema(config.db.automigrate).await?;
    let hasher = PooledHasher::new(&config.instance.password).map_err(|e| e.to_string())?;
    let mailer: Arc<dyn Mailer> = match overrides.mailer {
        Some(m) => m,
        None if multi => Arc::new(DropMailer),
        None => mailer(&config)?,
    };
    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let metrics = config.metrics.enabled.then(|| Arc::new(Metrics::new()));
    let mailer = match &metrics {
        Some(m) => Arc::new(CountingMailer::new(mailer, Arc::clone(m))),
        None => mailer,
    };
    let instances = if multi {
        let mut factory = mailer_factory(&config, Arc::clone(&mailer))?;
        if let Some(m) = &metrics {
            factory = Arc::new(CountingMailerFactory::new(factory, Arc::clone(m)));
        }
        Some(Arc::new(Instances::new(
            store.instances(),
            Arc::clone(&clock),
            Arc::new(config.instance.clone()),
            config.operator_token.clone(),
            factory,
            config.api.endpoint.clone(),
        )?))
    } else {
        None
    };
    let mut hooks = webhook_sender(&config, Arc::clone(&clock))?;
    let limiter = rate_limiter(&config)?;
    if let Some(m) = &metrics {
        hooks = Arc::new(CountingHookSender::new(hooks, Arc::clone(m)));
    }
    warn_short_jwt_secret(&config);
    let providers = Arc::new(OAuthRegistry::new(
        oauth::HttpClient::new(oauth::PROVIDER_TIMEOUT).map_err(|e| format!("could not set up the OAuth client: {e}"))?,
    ));
    let service = Service::new(Ports {
        users: store.users(),
        tokens: store.tokens(),
        audit: store.audit(),
        mailer,
        hasher: Arc::new(hasher),
        clock,
        hooks,
        providers,
        identities: store.identities(),
        flows: store.flows(),
    })
    .with_operator_token(config.operator_token.clone())
    .with_admin_settings(admin_settings(&config))
    .with_rate_limiter(Arc::clone(&limiter), config.rate_limit.email_sent)
    .with_breached_passwords(breached_passwords(&config)?);
    let state = HttpState {
        rate_limit: config.rate_limit.clone(),
        limiter,
        service,
        instance_id: crate::domain::SINGLE_INSTANCE_ID,
        cookie_key: config.instance.cookie.key.clone(),
        cookie_secure: config.instance.cookie.secure.unwrap_or_else(|| !config.instance.site_url.starts_with("http://")),
        config: Arc::new(config.instance.clone()),
        request_id_header: config.api.request_id_header.clone(),
        request_timeout: config.api.request_timeout,
        max_body_bytes: config.api.max_body_bytes,
        token_limiter: (!config.rate_limit_header.is_empty()).then(|| HeaderLimiter::new(&config.rate_limit_header)),
        cors_origins: config.api.cors_allowed_origins.clone(),
        version: crate::VERSION.to_owned(),
        instances,
        export_spans: config.tracing.enabled,
    };
    let mut router = http::router(Arc::new(state)).merge(http::ready::routes(store.health()));
    if let Some(m) = &metrics {
        router = router.layer(axum::middleware::from_fn_with_state(Arc::clone(m), http::metrics::track));
    }
    Ok(Built { router, store, config, metrics })
}

/// The rate-limit counters: in Redis when `GOTRUE_RATE_LIMIT_REDIS_URL` is set (shared by
/// every process using it), else in this process.
///
/// # Errors
/// A Redis URL that cannot be parsed.
pub fn rate_limiter(config: &Config) -> Result<Arc<dyn RateLimiter>, String> {
    match &config.rate_limit.redis_url {
        Some(url) => {
            let l = RedisRateLimiter::new(url.expose_secret(), &config.rate_limit.redis_prefix)?;
            tracing::info!("rate-limit counters are kept in Redis");
            Ok(Arc::new(l))
        }
        None => Ok(Arc::new(MemoryRateLimiter::new())),
    }
}

/// The breached-password corpus when `GOTRUE_PASSWORD_HIBP_ENABLED` is on.
///
/// # Errors
/// The HTTP client cannot be built.
pub fn breached_passwords(config: &Config) -> Result<Option<Arc<dyn BreachedPasswords>>, String> {
    if !config.hibp.enabled {
        return Ok(None);
    }
    tracing::info!(url = %config.hibp.url, "new passwords are checked against the breached-password range API");
    Ok(Some(Arc::new(HibpBreachedPasswords::new(&config.hibp.url, config.hibp.timeout)?)))
}

/// RFC 8725 3.5: an HMAC key must carry at least as much entropy as the hash output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Whether the configured JWT secret is shorter than [`MIN_JWT_SECRET_BYTES`].
fn jwt_secret_is_short(config: &Config) -> bool {
    config.instance.jwt.secret.as_ref().is_some_and(|s| s.expose_secret().len() < MIN_JWT_SECRET_BYTES)
}

fn warn_short_jwt_secret(config: &Config) {
    if jwt_secret_is_short(config) {
        tracing::warn!(
            "GOTRUE_JWT_SECRET is shorter than {MIN_JWT_SECRET_BYTES} bytes: access tokens can be forged by guessing it offline; use a long random secret"
        );
    }
}

fn admin_settings(config: &Config) -> AdminSettings {
    AdminSettings {
        operator_token: config.operator_token.clone(),
        system_user_enabled: config.admin.system_user_enabled,
        export_secret: config.api.export_secret.clone(),
    }
}

/// The service without the HTTP front, for the `admin` commands: opens the database (and
/// migrates it when configured to), mails go to the log, no JWT secret is needed.
///
/// # Errors
/// A message for the operator.
pub async fn open_service(config: &Config) -> Result<(Service, Store), String> {
    let store = Store::open(config).await?;
    store.ensure_schema(config.db.automigrate).await?;
    let hasher = PooledHasher::new(&config.instance.password).map_err(|e| e.to_string())?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hooks = webhook_sender(config, Arc::clone(&clock))?;
    let service = Service::new(Ports {
        users: store.users(),
        tokens: store.tokens(),
        audit: store.audit(),
        mailer: Arc::new(LogMailer),
        hasher: Arc::new(hasher),
        clock,
        hooks,
        providers: Arc::new(OAuthRegistry::new(
            oauth::HttpClient::new(oauth::PROVIDER_TIMEOUT).map_err(|e| format!("could not set up the OAuth client: {e}"))?,
        )),
        identities: store.identities(),
        flows: store.flows(),
    })
    .with_operator_token(config.operator_token.clone())
    .with_admin_settings(admin_settings(config))
    .with_breached_passwords(breached_passwords(config)?);
    Ok((service, store))
}

/// The configured mailer: SMTP when `SMTP_HOST` is set, else the log mailer.
///
/// # Errors
/// SMTP settings that can never work (no From address, unreadable CA file).
pub fn mailer(config: &Config) -> Result<Arc<dyn Mailer>, String> {
    let smtp = &config.instance.smtp;
    if smtp.host.is_empty() {
        tracing::warn!("no SMTP server configured (GOTRUE_SMTP_HOST): mails are not sent, their links are written to the log");
        return Ok(Arc::new(LogMailer));
    }
    let extra_ca_pem = if smtp.ca_cert.is_empty() {
        None
    } else {
        Some(std::fs::read(&smtp.ca_cert).map_err(|e| format!("could not read GOTRUE_SMTP_CA_CERT {}: {e}", smtp.ca_cert))?)
    };
    let renderer = Renderer::new(FetchSettings { cache_ttl: config.instance.mailer.template_cache_ttl, ..FetchSettings::default() })?;
    let settings = SmtpSettings {
        host: smtp.host.clone(),
        port: smtp.port,
        user: smtp.user.clone(),
        pass: smtp.pass.clone(),
        from: smtp.admin_email.clone(),
        extra_ca_pem,
        connect_timeout: smtp.connect_timeout,
        send_timeout: smtp.send_timeout,
    };
    let mailer = SmtpMailer::new(settings, Arc::new(renderer))?;
    tracing::info!(host = %smtp.host, port = smtp.port, "mail is sent over SMTP");
    Ok(Arc::new(mailer))
}

/// Multi-instance mode: each instance's SMTP server (overlaid on `GOTRUE_SMTP_*`) gets its
/// own mailer; instances without an SMTP host use `fallback`.
///
/// # Errors
/// An unreadable CA file or template renderer set-up failure.
fn mailer_factory(config: &Config, fallback: Arc<dyn Mailer>) -> Result<Arc<dyn MailerFactory>, String> {
    let smtp = &config.instance.smtp;
    let extra_ca_pem = if smtp.ca_cert.is_empty() {
        None
    } else {
        Some(std::fs::read(&smtp.ca_cert).map_err(|e| format!("could not read GOTRUE_SMTP_CA_CERT {}: {e}", smtp.ca_cert))?)
    };
    let renderer = Renderer::new(FetchSettings { cache_ttl: config.instance.mailer.template_cache_ttl, ..FetchSettings::default() })?;
    Ok(Arc::new(SmtpMailerFactory::new(Arc::new(renderer), extra_ca_pem, smtp.connect_timeout, smtp.send_timeout, fallback)))
}

/// The webhook sender, after checking that `GOTRUE_WEBHOOK_URL` can be used.
fn webhook_sender(config: &Config, clock: Arc<dyn Clock>) -> Result<Arc<dyn HookSender>, String> {
    let w = &config.instance.webhook;
    if !w.url.is_empty() {
        let url = resolve_hook_url(&w.url, &config.instance.site_url).map_err(|e| format!("GOTRUE_WEBHOOK_URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("GOTRUE_WEBHOOK_URL: {url} is not an http or https URL"));
        }
        if w.events.is_empty() {
            tracing::warn!("GOTRUE_WEBHOOK_URL is set but GOTRUE_WEBHOOK_EVENTS lists no event: no webhook will be sent");
        }
        for e in w.events.iter().filter(|e| !HookEvent::ALL.iter().any(|k| k.as_str() == e.as_str())) {
            tracing::warn!(event = %e, "GOTRUE_WEBHOOK_EVENTS names an unknown event (known: validate, signup, login, usermodified, userdeleted)");
        }
        if w.secret.is_none() {
            tracing::warn!("GOTRUE_WEBHOOK_SECRET is not set: webhooks are sent unsigned");
        }
        if w.timeout.saturating_mul(w.retries) >= config.api.request_timeout {
            tracing::warn!(
                "GOTRUE_WEBHOOK_RETRIES x GOTRUE_WEBHOOK_TIMEOUT_SEC reaches GOTRUE_API_REQUEST_TIMEOUT: a slow receiver makes requests answer 503"
            );
        }
    }
    if w.allow_private {
        tracing::warn!("GOTRUE_WEBHOOK_ALLOW_PRIVATE is on: webhooks may reach private, loopback and link-local addresses");
    }
    let sender = ReqwestHookSender::new(w.allow_private, clock).map_err(|e| format!("could not set up the webhook client: {e}"))?;
    Ok(Arc::new(sender))
}

/// Serves until SIGINT/SIGTERM, then lets in-flight requests finish (up to a minute).
///
/// # Errors
/// Bind or server failures.
pub async fn serve(built: Built) -> Result<(), String> {
    let host = if built.config.api.host.is_empty() { "0.0.0.0" } else { built.config.api.host.as_str() };
    let addr = format!("{host}:{}", built.config.api.port);
    let listener = TcpListener::bind(&addr).await.map_err(|e| format!("could not listen on {addr}: {e}"))?;
    if let Some(m) = &built.metrics {
        serve_metrics(&built.config, Arc::clone(m), built.store.clone()).await?;
    }
    tracing::info!("GoTrue API started on: {addr}");
    serve_on(listener, built.router, built.config.api.header_read_timeout, shutdown_signal()).await;
    built.store.close().await;
    Ok(())
}

/// Starts the Prometheus listener (`GOTRUE_METRICS_HOST:GOTRUE_METRICS_PORT`, `GET /metrics`);
/// it runs until the process ends.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve_metrics(config: &Config, metrics: Arc<Metrics>, store: Store) -> Result<(), String> {
    let addr = format!("{}:{}", config.metrics.host, config.metrics.port);
    let listener = TcpListener::bind(&addr).await.map_err(|e| format!("could not listen on {addr} (GOTRUE_METRICS_HOST/PORT): {e}"))?;
    let app = crate::adapters::metrics::router(metrics, Arc::new(move || store.pool_state()));
    tracing::info!("metrics served on: http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// How long in-flight requests may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// At shutdown, how long connections accepted at the last moment get to read the request
/// already sent on them before idle connections are closed.
const FIRST_READ_SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then serves the connections
/// already waiting in the listen backlog, closes the listener and drains open connections
/// (up to [`SHUTDOWN_GRACE`]). A connection that does not deliver a request's headers
/// within `header_read_timeout` (including while idle before its first or next request)
/// is closed (WEAKNESSES.md 32). Handlers see the peer address as
/// `ConnectInfo<SocketAddr>`.
pub async fn serve_on(
    listener: TcpListener,
    router: axum::Router,
    header_read_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let serve = |stream: tokio::net::TcpStream, peer: std::net::SocketAddr| {
        let svc = router.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            req
        });
        let conn = builder.serve_connection(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(svc));
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                serve(stream, peer);
            }
            () = &mut shutdown => break,
        }
    }
    // Connections the kernel completed before the signal wait in the listen backlog; closing
    // the listener would reset them unanswered. Take them without waiting (the std listener
    // accepts straight from the kernel; tokio's may not have seen their readiness yet), then
    // close: later connections are refused.
    match listener.into_std() {
        Ok(std_listener) => {
            for _ in 0..4096 {
                let Ok((stream, peer)) = std_listener.accept() else { break };
                match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                    Ok(stream) => serve(stream, peer),
                    Err(e) => tracing::warn!(error = %e, "could not serve a connection accepted at shutdown"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not take the connections waiting at shutdown"),
    }
    // hyper's graceful shutdown closes a connection it has read nothing from yet as idle;
    // let the connections accepted just now read the request their client already sent.
    tokio::time::sleep(FIRST_READ_SETTLE).await;
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::config::Env;

    #[test]
    fn a_jwt_secret_shorter_than_32_bytes_is_warned_about() {
        let with = |secret: &str| Config::from_env(&Env::from_pairs([("GOTRUE_JWT_SECRET", secret)])).unwrap();
        assert!(jwt_secret_is_short(&with("x")));
        assert!(jwt_secret_is_short(&with(&"k".repeat(31))));
        assert!(!jwt_secret_is_short(&with(&"k".repeat(32))));
    }
}
