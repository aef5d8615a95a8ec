//! `GET /openapi.json`: the checked-in OpenAPI 3.1 document of this API (`openapi.json` at
//! the repository root), compiled into the binary. `tests/http/openapi.rs` keeps it in step
//! with the router.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The document, byte for byte as checked in.
pub const OPENAPI_JSON: &str = include_str!("../../../openapi.json");

/// Serves [`OPENAPI_JSON`] as `application/json`.
pub async fn get_openapi() -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI_JSON).into_response()
}
