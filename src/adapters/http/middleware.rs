//! Cross-cutting HTTP behaviour: request ids, the request log, error ids in 5xx bodies,
//! cookie clearing, CORS, timeouts and panics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::Instrument as _;

use super::error::{clear_cookie_value, ApiError, ClearCookie, InternalCause, NeedsErrorId};
use super::json::go_json;
use super::HttpState;

/// The request id, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Header carrying the request id back to the client.
pub const REQUEST_ID_RESPONSE_HEADER: &str = "x-request-id";

/// Assigns the request id, logs the request, fills `error_id` into 5xx bodies and clears
/// the cookie where a handler asked for it.
pub async fn request_context(State(state): State<Arc<HttpState>>, mut req: Request, next: Next) -> Response {
    let id = Some(state.request_id_header.as_str())
        .filter(|h| !h.is_empty())
        .and_then(|h| req.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let nf_client = req.headers().get("x-nf-client").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    // The route template names the exported span (`POST /token`); the raw path stays a field.
    // Without an exporter the span keeps only what the log lines need: every field is
    // formatted into every line, the hottest cost of a cheap request.
    let span = if state.export_spans {
        let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %method,
            path = %path,
            nf_client = %nf_client,
            otel.name = %format_args!("{method} {}", route.as_deref().unwrap_or("unmatched")),
            otel.kind = "server",
            http.route = route.as_deref().unwrap_or(""),
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        )
    } else {
        tracing::info_span!("request", request_id = %id, method = %method, path = %path, nf_client = %nf_client)
    };
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    if let Some(NeedsErrorId(msg)) = resp.extensions_mut().remove::<NeedsErrorId>() {
        let headers = std::mem::take(resp.headers_mut());
        let ext = std::mem::take(resp.extensions_mut());
        resp = (status, go_json(&json!({"code": status.as_u16(), "msg": msg, "error_id": id}))).into_response();
        for (k, v) in &headers {
            if k != header::CONTENT_LENGTH {
                resp.headers_mut().append(k, v.clone());
            }
        }
        *resp.extensions_mut() = ext;
    }
    if resp.extensions().get::<ClearCookie>().is_some() {
        if let Ok(v) = HeaderValue::from_str(&clear_cookie_value(&state.cookie_key, state.cookie_secure)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(HeaderName::from_static(REQUEST_ID_RESPONSE_HEADER), v);
    }
    let elapsed = start.elapsed();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let _enter = span.enter();
    if let Some(InternalCause(cause)) = resp.extensions().get::<InternalCause>() {
        tracing::error!(status = status.as_u16(), duration_ms = elapsed.as_secs_f64() * 1e3, error = %cause, "request completed");
    } else if status.is_server_error() {
        tracing::error!(status = status.as_u16(), duration_ms = elapsed.as_secs_f64() * 1e3, "request completed");
    } else {
        tracing::info!(status = status.as_u16(), duration_ms = elapsed.as_secs_f64() * 1e3, "request completed");
    }
    resp
}

/// Answers 503 with the JSON shape when a request runs longer than the configured limit.
pub async fn timeout(State(state): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::http(StatusCode::SERVICE_UNAVAILABLE, "Request timed out").into_response(),
    }
}

/// Turns a handler panic into the generic JSON 500 (upstream dropped the connection).
#[must_use]
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal { msg: "Internal server error".into(), cause: "handler panicked".into() }.into_response()
}

const ALLOWED_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
const ALLOWED_HEADERS: [&str; 6] = ["accept", "authorization", "content-type", "x-jwt-aud", "x-use-cookie", "x-nf-client"];

/// CORS as browsers need it (API.md 3.16): preflights answered here with 204; the origin is
/// echoed (never `*` beside credentials); `X-Nf-Client` allowed for gotrue-js 1.0.
pub async fn cors(State(state): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed_origin = origin.filter(|o| state.origin_allowed(o.to_str().unwrap_or("")));
    let is_preflight = req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if is_preflight {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        let h = resp.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"));
        let method_ok = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .filter(|m| ALLOWED_METHODS.contains(m));
        let req_headers = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
        let headers_ok = headers_allowed(req.headers());
        if let (Some(origin), Some(method), true) = (allowed_origin, method_ok, headers_ok) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if let Ok(m) = HeaderValue::from_str(method.as_str()) {
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, m);
            }
            if let Some(rh) = req_headers.filter(|v| !v.is_empty()) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, rh);
            }
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        return resp;
    }
    let method_ok = ALLOWED_METHODS.contains(req.method());
    let mut resp = next.run(req).await;
    resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    if let (Some(origin), true) = (allowed_origin, method_ok) {
        resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        resp.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Link, X-Total-Count, X-Request-Id"));
    }
    resp
}

fn headers_allowed(h: &HeaderMap) -> bool {
    h.get(header::ACCESS_CONTROL_REQUEST_HEADERS).and_then(|v| v.to_str().ok()).is_none_or(|v| {
        v.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).all(|s| ALLOWED_HEADERS.contains(&s.as_str()))
    })
}

/// How long a request may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    /// WEAKNESSES.md 31: a panic inside a handler is answered, not a dropped connection.
    async fn boom() -> &'static str {
        std::panic::panic_any("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_json_500() {
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(super::panic_response));
        let r = app.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), 500);
        assert!(r.extensions().get::<super::NeedsErrorId>().is_some(), "error_id is filled in by request_context");
    }
}
