//! Multi-instance mode over HTTP: the operator endpoints (API.md 5) and the middleware
//! that gives every other request its instance (API.md 3.9): from the `x-nf-sign` header,
//! or for `/callback` from the OAuth state.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tracing::Instrument as _;

use super::error::ApiError;
use super::handlers::{bearer, Body};
use super::json::{decode, go_json};
use super::HttpState;
use crate::app::instances::{InstanceError, Instances};

type S = State<Arc<HttpState>>;

impl From<InstanceError> for ApiError {
    fn from(e: InstanceError) -> Self {
        if e.status >= 500 {
            return Self::Internal { msg: e.msg, cause: e.cause.unwrap_or_default() };
        }
        Self::http(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), e.msg)
    }
}

/// Whether the path belongs to the operator (no `x-nf-sign`) or needs no instance.
fn without_instance(method: &Method, path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/openapi.json")
        || (path == "/" && method == Method::GET)
        || path == "/instances"
        || path.starts_with("/instances/")
}

/// Resolves the request's instance in multi-instance mode; a no-op otherwise.
pub async fn instance_context(State(state): S, mut req: Request, next: Next) -> Response {
    let Some(instances) = state.instances.clone() else {
        return next.run(req).await;
    };
    if without_instance(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let resolved = if req.uri().path().trim_end_matches('/') == "/callback" {
        let state_param = req
            .uri()
            .query()
            .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()))
            .unwrap_or_default();
        instances.from_oauth_state(&state_param).await
    } else {
        let header = req.headers().get("x-nf-sign").and_then(|v| v.to_str().ok()).map(str::to_owned);
        instances.from_signature(header.as_deref()).await
    };
    match resolved {
        Ok(r) => {
            // API.md 3.9's log fields, on every line logged for this request.
            let site_uuid = if r.resolved.uuid.is_nil() { String::new() } else { r.resolved.uuid.to_string() };
            let span = tracing::info_span!(
                "instance",
                instance_id = %r.resolved.id,
                netlify_id = %r.netlify_id,
                site_uuid = %site_uuid,
                site_url = %r.resolved.config.site_url
            );
            req.extensions_mut().insert(r);
            next.run(req).instrument(span).await
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn operator(state: &HttpState, headers: &HeaderMap) -> Result<Arc<Instances>, ApiError> {
    let instances = state.instances.clone().ok_or_else(|| ApiError::http(StatusCode::NOT_FOUND, "Not found"))?;
    instances.check_operator(bearer(headers))?;
    Ok(instances)
}

fn body_value(body: &[u8]) -> Result<Value, ApiError> {
    decode::<Value>(body).map_err(|e| ApiError::http(StatusCode::BAD_REQUEST, format!("Error decoding params: {e}")))
}

/// `GET /` (operator).
pub async fn get_root(State(state): S, headers: HeaderMap) -> Response {
    if let Err(e) = operator(&state, &headers) {
        return e.into_response();
    }
    super::handlers::get_health(State(state)).await
}

/// `POST /instances`.
pub async fn post_instances(State(state): S, headers: HeaderMap, Body(body): Body) -> Result<Response, ApiError> {
    let instances = operator(&state, &headers)?;
    let created = instances.create(body_value(&body)?).await?;
    Ok((StatusCode::CREATED, go_json(&created)).into_response())
}

/// `GET /instances/{instance_id}`.
pub async fn get_instance(State(state): S, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let instances = operator(&state, &headers)?;
    Ok(go_json(&instances.get(&id).await?).into_response())
}

/// `PUT /instances/{instance_id}`.
pub async fn put_instance(State(state): S, headers: HeaderMap, Path(id): Path<String>, Body(body): Body) -> Result<Response, ApiError> {
    let instances = operator(&state, &headers)?;
    let value = body_value(&body)?;
    Ok(go_json(&instances.update(&id, value).await?).into_response())
}

/// `DELETE /instances/{instance_id}`: 204.
pub async fn delete_instance(State(state): S, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, ApiError> {
    let instances = operator(&state, &headers)?;
    instances.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
