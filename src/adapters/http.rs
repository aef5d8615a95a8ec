//! The HTTP front: axum router, extractors, error mapping and middleware. Handlers call
//! use cases of [`crate::app::Service`]; nothing here touches SQL.

mod admin;
pub mod client_limit;
pub mod error;
pub mod external;
mod handlers;
pub mod instances;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod ratelimit;
pub mod ready;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;
use uuid::Uuid;

use crate::app::config::InstanceConfig;
use crate::app::Service;

/// What every handler shares.
pub struct HttpState {
    /// Use cases.
    pub service: Service,
    /// Tenant (single-instance mode: the nil UUID).
    pub instance_id: Uuid,
    /// The tenant's configuration.
    pub config: Arc<InstanceConfig>,
    /// Header whose value becomes the request id (`""`: generate).
    pub request_id_header: String,
    /// Per-request time limit.
    pub request_timeout: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Upstream's `/token` limiter, when `RATE_LIMIT_HEADER` is set.
    pub token_limiter: Option<ratelimit::HeaderLimiter>,
    /// Our per-client limits and the trusted proxies.
    pub rate_limit: crate::app::config::RateLimitConfig,
    /// Where the per-client counters live.
    pub limiter: Arc<dyn crate::ports::ratelimit::RateLimiter>,
    /// Cookie name.
    pub cookie_key: String,
    /// Whether cookies carry `Secure` (off only for a plain-http `SITE_URL`).
    pub cookie_secure: bool,
    /// Allowed CORS origins (empty: any).
    pub cors_origins: Vec<String>,
    /// Build version for `/health`.
    pub version: String,
    /// Multi-instance mode: the instances (`None` in single-instance mode).
    pub instances: Option<Arc<crate::app::instances::Instances>>,
    /// Whether spans are exported (`TRACING_ENABLED`): request spans then carry the
    /// OpenTelemetry fields too, which every log line would otherwise pay for.
    pub export_spans: bool,
}

impl HttpState {
    /// Whether CORS answers this origin.
    #[must_use]
    pub fn origin_allowed(&self, origin: &str) -> bool {
        !origin.is_empty() && (self.cors_origins.is_empty() || self.cors_origins.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin)))
    }
}

/// Builds the router.
pub fn router(state: Arc<HttpState>) -> Router {
    let body_limit = state.max_body_bytes;
    let limited = |m: MethodRouter<Arc<HttpState>>, which: client_limit::Limited| {
        m.route_layer(axum::middleware::from_fn_with_state((Arc::clone(&state), which), client_limit::limit))
    };
    use client_limit::Limited;
    let users = || limited(get(admin::get_admin_users).post(admin::post_admin_users), Limited::Admin);
    let user = || limited(get(admin::get_admin_user).put(admin::put_admin_user).delete(admin::delete_admin_user), Limited::Admin);
    let me = || limited(put(handlers::put_user), Limited::User).merge(get(handlers::get_user));
    let audit = || limited(get(admin::get_admin_audit), Limited::Admin);
    let mut r = Router::new()
        .route("/health", get(handlers::get_health))
        .route("/settings", get(handlers::get_settings))
        .route("/openapi.json", get(openapi::get_openapi))
        .route("/signup", limited(post(handlers::post_signup), Limited::Signup))
        .route("/token", limited(post(handlers::post_token), Limited::Token))
        .route("/verify", limited(post(handlers::post_verify), Limited::Verify))
        .route("/recover", limited(post(handlers::post_recover), Limited::Recover))
        .route("/logout", post(handlers::post_logout))
        .route("/user", me())
        .route("/user/", me())
        .route("/authorize", get(external::get_authorize))
        .route("/callback", get(external::get_callback))
        .route("/invite", limited(post(admin::post_invite), Limited::Invite))
        // Route groups also match with a trailing slash (spec README, compatibility note 7).
        .route("/admin/users", users())
        .route("/admin/users/", users())
        .route("/admin/users/{user_id}", user())
        .route("/admin/users/{user_id}/", user())
        .route("/admin/audit", audit())
        .route("/admin/audit/", audit());
    // Only with a secret; otherwise the path is a user id (and answers 400, as upstream).
    if state.service.admin_settings().export_secret.is_some() {
        r = r.route("/admin/users/export", limited(get(admin::get_admin_users_export), Limited::Admin));
    }
    if state.instances.is_some() {
        let instance = || get(instances::get_instance).put(instances::put_instance).delete(instances::delete_instance);
        r = r
            .route("/", get(instances::get_root))
            .route("/instances", post(instances::post_instances))
            .route("/instances/", post(instances::post_instances))
            .route("/instances/{instance_id}", instance())
            .route("/instances/{instance_id}/", instance());
    }
    r.fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), instances::instance_context))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), middleware::timeout))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), middleware::cors))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), middleware::request_context))
        .with_state(state)
}
