//! `GET /ready`: readiness for load balancers and orchestrators. Unlike `/health` (which
//! answers without touching anything), it asks the database a trivial query and answers
//! 503 when that fails or takes longer than [`READY_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::ApiError;
use super::json::go_json;
use crate::ports::health::HealthProbe;

/// The longest `/ready` waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The `/ready` route, to be merged into the API router.
pub fn routes(probe: Arc<dyn HealthProbe>) -> Router {
    Router::new().route("/ready", get(get_ready)).with_state(probe)
}

async fn get_ready(State(probe): State<Arc<dyn HealthProbe>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, probe.check_database()).await {
        Ok(Ok(())) => go_json(&json!({"status": "ok", "database": "ok"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database refused a trivial query");
            ApiError::http(StatusCode::SERVICE_UNAVAILABLE, "Database is not reachable").into_response()
        }
        Err(_) => {
            tracing::warn!(timeout_ms = READY_TIMEOUT.as_millis(), "not ready: the database did not answer in time");
            ApiError::http(StatusCode::SERVICE_UNAVAILABLE, "Database did not answer in time").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use async_trait::async_trait;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use crate::ports::health::{HealthProbe, MockHealthProbe};
    use crate::ports::users::StoreError;

    async fn call(probe: Arc<dyn HealthProbe>) -> (u16, serde_json::Value) {
        let r = super::routes(probe).oneshot(Request::get("/ready").body(Body::empty()).unwrap()).await.unwrap();
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn ready_when_the_database_answers() {
        let mut p = MockHealthProbe::new();
        p.expect_check_database().times(1).returning(|| Ok(()));
        let (status, body) = call(Arc::new(p)).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ok");
    }

    #[tokio::test]
    async fn not_ready_when_the_database_fails() {
        let mut p = MockHealthProbe::new();
        p.expect_check_database().returning(|| Err(StoreError::Backend("connection refused".into())));
        let (status, body) = call(Arc::new(p)).await;
        assert_eq!(status, 503);
        assert_eq!(body["code"], 503);
        assert_eq!(body["msg"], "Database is not reachable");
    }

    struct Hanging;

    #[async_trait]
    impl HealthProbe for Hanging {
        async fn check_database(&self) -> Result<(), StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn not_ready_when_the_database_hangs() {
        let (status, body) = call(Arc::new(Hanging)).await;
        assert_eq!(status, 503);
        assert_eq!(body["msg"], "Database did not answer in time");
    }
}
