//! Prometheus metrics (`GOTRUE_METRICS_*`), kept out of the app and domain layers: the HTTP
//! layer counts requests and derives sign-ups, logins and refreshes from the route, the
//! grant type and the status; decorators around the mail and hook ports count their
//! failures; the database pools are read when the metrics are scraped. Served in the
//! OpenMetrics text format (which Prometheus reads) on a listener of its own.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use uuid::Uuid;

use crate::domain::user::User;
use crate::ports::hooks::{DeliveryPolicy, HookDestination, HookError, HookEvent, HookReply, HookSender};
use crate::ports::mail::{Mail, MailError, Mailer, MailerFactory, SmtpServer};

/// Method, matched route template and status of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method.
    pub method: String,
    /// The route template (`/admin/users/{user_id}`), or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Whether an attempt succeeded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `failure`.
    pub result: &'static str,
}

/// A route, for rate-limit refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
}

/// The kind of a mail or the event of a hook.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Mail kind (`confirmation`, `recovery`, ...) or hook event (`signup`, ...).
    pub kind: &'static str,
}

/// A database connection pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `read` or `write` (the same pool on engines that have one).
    pub pool: &'static str,
}

/// The state of one connection pool: name, open connections, idle connections.
pub type PoolState = (&'static str, u32, usize);

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    signups: Family<OutcomeLabels, Counter>,
    logins: Family<OutcomeLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    rate_limited: Family<RouteLabels, Counter>,
    mail_failures: Family<KindLabels, Counter>,
    hook_failures: Family<KindLabels, Counter>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_idle: Family<PoolLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero, names prefixed `gotrue_`.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gotrue");
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            signups: Family::default(),
            logins: Family::default(),
            refreshes: Family::default(),
            rate_limited: Family::default(),
            mail_failures: Family::default(),
            hook_failures: Family::default(),
            pool_connections: Family::default(),
            pool_idle: Family::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests answered, by method, route template and status", m.requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests, by method, route and status", m.latency.clone());
        registry.register("signups", "Sign-ups (POST /signup) by result", m.signups.clone());
        registry.register("logins", "Password logins (POST /token, grant_type=password) by result", m.logins.clone());
        registry.register("refreshes", "Token refreshes (POST /token, grant_type=refresh_token) by result", m.refreshes.clone());
        registry.register("rate_limit_hits", "Requests refused with 429 by a rate limit, by route", m.rate_limited.clone());
        registry.register("mail_failures", "Mails the SMTP server did not accept, by kind", m.mail_failures.clone());
        registry.register("hook_failures", "Webhook deliveries that failed, by event", m.hook_failures.clone());
        registry.register("db_pool_connections", "Open database connections, by pool", m.pool_connections.clone());
        registry.register("db_pool_idle_connections", "Idle database connections, by pool", m.pool_idle.clone());
        Self { registry, ..m }
    }

    /// Counts one answered request. `grant_type` is that of a `POST /token`.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64, grant_type: Option<&str>) {
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
        if status == 429 {
            self.rate_limited.get_or_create(&RouteLabels { route: route.to_owned() }).inc();
            return;
        }
        let result = OutcomeLabels { result: if (200..300).contains(&status) { "success" } else { "failure" } };
        match (method, route, grant_type) {
            ("POST", "/signup", _) => self.signups.get_or_create(&result).inc(),
            ("POST", "/token", Some("password")) => self.logins.get_or_create(&result).inc(),
            ("POST", "/token", Some("refresh_token")) => self.refreshes.get_or_create(&result).inc(),
            _ => 0,
        };
    }

    /// The metrics in the OpenMetrics text format, after reading the pools.
    #[must_use]
    pub fn render(&self, pools: &[PoolState]) -> String {
        for (name, size, idle) in pools {
            let l = PoolLabels { pool: name };
            self.pool_connections.get_or_create(&l).set(i64::from(*size));
            self.pool_idle.get_or_create(&l).set(i64::try_from(*idle).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("could not encode the metrics");
        }
        out
    }
}

/// `GET /metrics` on its own listener; `pools` reads the database pools at each scrape.
pub fn router(metrics: Arc<Metrics>, pools: Arc<dyn Fn() -> Vec<PoolState> + Send + Sync>) -> Router {
    Router::new().route("/metrics", get(get_metrics)).with_state((metrics, pools))
}

type ScrapeState = (Arc<Metrics>, Arc<dyn Fn() -> Vec<PoolState> + Send + Sync>);

async fn get_metrics(State((metrics, pools)): State<ScrapeState>) -> Response {
    let body = metrics.render(&pools());
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    r
}

/// A mailer that counts the failures of the one it wraps.
pub struct CountingMailer {
    inner: Arc<dyn Mailer>,
    metrics: Arc<Metrics>,
}

impl CountingMailer {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn Mailer>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Mailer for CountingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let r = self.inner.send(mail).await;
        if r.is_err() {
            self.metrics.mail_failures.get_or_create(&KindLabels { kind: mail.kind.as_str() }).inc();
        }
        r
    }
}

/// Hands out [`CountingMailer`]s around the mailers of the factory it wraps (the
/// per-instance SMTP servers of multi-instance mode).
pub struct CountingMailerFactory {
    inner: Arc<dyn MailerFactory>,
    metrics: Arc<Metrics>,
}

impl CountingMailerFactory {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn MailerFactory>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl MailerFactory for CountingMailerFactory {
    fn mailer_for(&self, server: &SmtpServer) -> Result<Arc<dyn Mailer>, MailError> {
        let inner = self.inner.mailer_for(server)?;
        Ok(Arc::new(CountingMailer::new(inner, Arc::clone(&self.metrics))))
    }
}

/// A hook sender that counts the failures of the one it wraps.
pub struct CountingHookSender {
    inner: Arc<dyn HookSender>,
    metrics: Arc<Metrics>,
}

impl CountingHookSender {
    /// Wraps `inner`.
    #[must_use]
    pub fn new(inner: Arc<dyn HookSender>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl HookSender for CountingHookSender {
    async fn send(
        &self,
        destination: &HookDestination,
        policy: DeliveryPolicy,
        event: HookEvent,
        instance_id: Uuid,
        user: &User,
    ) -> Result<HookReply, HookError> {
        let r = self.inner.send(destination, policy, event, instance_id, user).await;
        if r.is_err() {
            self.metrics.hook_failures.get_or_create(&KindLabels { kind: event.as_str() }).inc();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::Metrics;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
    }

    #[tokio::test]
    async fn mail_failures_are_counted_by_kind() {
        use std::sync::Arc;

        use crate::ports::mail::{Mail, MailError, MailKind, Mailer, MockMailer};

        let mut inner = MockMailer::new();
        let mut n = 0;
        inner.expect_send().times(2).returning(move |_| {
            n += 1;
            if n == 1 {
                Ok(())
            } else {
                Err(MailError("535 authentication failed".into()))
            }
        });
        let m = Arc::new(Metrics::new());
        let mailer = super::CountingMailer::new(Arc::new(inner), Arc::clone(&m));
        let mail = Mail {
            kind: MailKind::Recovery,
            to: "a@example.com".into(),
            site_url: String::new(),
            confirmation_url: String::new(),
            email: "a@example.com".into(),
            new_email: String::new(),
            token: String::new(),
            data: serde_json::Map::new(),
            subject_template: String::new(),
            template_url: String::new(),
        };
        assert!(mailer.send(&mail).await.is_ok());
        assert!(mailer.send(&mail).await.is_err(), "the failure is passed on");
        assert_eq!(value(&m.render(&[]), r#"gotrue_mail_failures_total{kind="recovery"}"#), Some(1.0));
    }

    #[test]
    fn requests_are_counted_per_route_and_status() {
        let m = Metrics::new();
        m.observe_request("GET", "/admin/users/{user_id}", 404, 0.01, None);
        m.observe_request("GET", "/admin/users/{user_id}", 404, 0.02, None);
        let text = m.render(&[]);
        assert_eq!(value(&text, r#"gotrue_http_requests_total{method="GET",route="/admin/users/{user_id}",status="404"}"#), Some(2.0));
        assert_eq!(
            value(&text, r#"gotrue_http_request_duration_seconds_count{method="GET",route="/admin/users/{user_id}",status="404"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn outcomes_follow_route_grant_and_status() {
        let m = Metrics::new();
        m.observe_request("POST", "/signup", 200, 0.1, None);
        m.observe_request("POST", "/signup", 400, 0.1, None);
        m.observe_request("POST", "/token", 200, 0.1, Some("password"));
        m.observe_request("POST", "/token", 400, 0.1, Some("password"));
        m.observe_request("POST", "/token", 400, 0.1, Some("password"));
        m.observe_request("POST", "/token", 200, 0.1, Some("refresh_token"));
        m.observe_request("POST", "/token", 429, 0.1, Some("password"));
        let text = m.render(&[("write", 3, 1)]);
        assert_eq!(value(&text, r#"gotrue_signups_total{result="success"}"#), Some(1.0));
        assert_eq!(value(&text, r#"gotrue_signups_total{result="failure"}"#), Some(1.0));
        assert_eq!(value(&text, r#"gotrue_logins_total{result="success"}"#), Some(1.0));
        assert_eq!(value(&text, r#"gotrue_logins_total{result="failure"}"#), Some(2.0));
        assert_eq!(value(&text, r#"gotrue_refreshes_total{result="success"}"#), Some(1.0));
        assert_eq!(value(&text, r#"gotrue_rate_limit_hits_total{route="/token"}"#), Some(1.0));
        assert_eq!(value(&text, r#"gotrue_db_pool_connections{pool="write"}"#), Some(3.0));
        assert_eq!(value(&text, r#"gotrue_db_pool_idle_connections{pool="write"}"#), Some(1.0));
    }
}
