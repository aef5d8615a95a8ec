//! Counts every answered request into [`Metrics`]: by method, matched route template (never
//! the raw path, whose ids would make a series per user) and status. For `POST /token` the
//! grant type is read from the body first (these bodies are small: at most
//! [`PEEK_LIMIT`] bytes are buffered, larger or unsized bodies are passed on untouched and
//! counted without a grant type).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::adapters::metrics::Metrics;

/// The largest `/token` body read to find its grant type.
pub const PEEK_LIMIT: usize = 16 * 1024;

/// The middleware; add it with `axum::middleware::from_fn_with_state(metrics, track)` on the
/// whole router, so the route is already matched.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let (req, grant) = if method == Method::POST && route == "/token" {
        match peek_grant(req).await {
            Ok(r) => r,
            Err(resp) => return resp,
        }
    } else {
        (req, None)
    };
    let resp = next.run(req).await;
    metrics.observe_request(method.as_str(), &route, resp.status().as_u16(), start.elapsed().as_secs_f64(), grant.as_deref());
    resp
}

async fn peek_grant(req: Request) -> Result<(Request, Option<String>), Response> {
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= PEEK_LIMIT);
    if !small {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, PEEK_LIMIT)
        .await
        .map_err(|e| ApiError::http(StatusCode::BAD_REQUEST, format!("Could not read request body: {e}")).into_response())?;
    let grant = super::handlers::token_params(&parts.headers, &parts.uri, &bytes).remove("grant_type");
    Ok((Request::from_parts(parts, Body::from(bytes)), grant))
}
