//! Errors as upstream renders them: shape A `{"code","msg"}`, shape B
//! `{"error","error_description"}` (only `/token`), and the generic 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::json::go_json;
use crate::app::AuthError;
use crate::ports::hooks::HookError;

/// OAuth error codes used by `/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// Unknown or missing `grant_type`.
    UnsupportedGrantType,
    /// A required parameter is missing.
    InvalidRequest,
    /// Credentials or refresh token refused.
    InvalidGrant,
}

impl OAuthCode {
    /// The `error` value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidRequest => "invalid_request",
            Self::InvalidGrant => "invalid_grant",
        }
    }
}

/// An error response.
#[derive(Debug)]
pub enum ApiError {
    /// Shape A with a status and message.
    Http {
        /// Status.
        status: StatusCode,
        /// Message.
        msg: String,
    },
    /// Shape B, always 400.
    OAuth {
        /// Code.
        code: OAuthCode,
        /// Description (omitted when empty).
        description: String,
        /// Also clear the `nf_jwt` cookie.
        clear_cookie: bool,
    },
    /// 401 from bearer authentication, which also clears the access-token cookie.
    Unauthorized(String),
    /// A 503 (shape A) whose cause is logged, not shown: the database is unreachable.
    Unavailable {
        /// Public message.
        msg: String,
        /// Cause, for the log.
        cause: String,
    },
    /// A 500 whose cause is logged, not shown.
    Internal {
        /// Public message.
        msg: String,
        /// Cause, for the log.
        cause: String,
    },
}

/// The cause of a 5xx, attached to the response for the logging middleware.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// Marks a response whose `error_id` the request-id middleware fills in.
#[derive(Debug, Clone)]
pub struct NeedsErrorId(pub String);

impl ApiError {
    /// Shape A.
    pub fn http(status: StatusCode, msg: impl Into<String>) -> Self {
        Self::Http { status, msg: msg.into() }
    }

    /// Shape B.
    pub fn oauth(code: OAuthCode, description: impl Into<String>) -> Self {
        Self::OAuth { code, description: description.into(), clear_cookie: false }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError as A;
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            A::EmailProviderDisabled => Self::http(S::BAD_REQUEST, msg),
            A::SignupDisabled => Self::http(S::FORBIDDEN, msg),
            A::PasswordRequired
            | A::WeakPassword(_)
            | A::BreachedPassword
            | A::MetadataTooLarge
            | A::EmailTaken
            | A::UserExists
            | A::VerifyTokenRequired
            | A::VerifyTypeRequired => Self::http(S::UNPROCESSABLE_ENTITY, msg),
            A::ConfirmationTokenExpired
            | A::RecoveryTokenExpired
            | A::InvitePasswordRequired
            | A::RecoverEmailRequired
            | A::EmailChangeTokenExpired => Self::http(S::UNPROCESSABLE_ENTITY, msg),
            A::Email(crate::domain::email::EmailError::Empty) => Self::http(S::UNPROCESSABLE_ENTITY, msg),
            A::Email(inner) => Self::http(S::UNPROCESSABLE_ENTITY, format!("Unable to validate email address: {inner}")),
            A::AlreadyRegistered | A::BadUserIdClaim | A::AudienceMismatch => Self::http(S::BAD_REQUEST, msg),
            A::BadCredentials | A::EmailNotConfirmed | A::RefreshTokenExpired => Self::oauth(OAuthCode::InvalidGrant, msg),
            A::InvalidRefreshToken { clear_cookie } => Self::OAuth { code: OAuthCode::InvalidGrant, description: msg, clear_cookie },
            A::UnsupportedGrantType => Self::oauth(OAuthCode::UnsupportedGrantType, ""),
            A::RefreshTokenRequired => Self::oauth(OAuthCode::InvalidRequest, msg),
            A::UserNotFound => Self::http(S::NOT_FOUND, msg),
            A::BearerRequired | A::InvalidAdminUser | A::UserNotAllowed | A::InvalidExportSecret => Self::http(S::UNAUTHORIZED, msg),
            A::InvalidToken(_) => Self::Unauthorized(msg),
            A::AdminParams(_) | A::BadPagination(_) | A::BadSort(_) | A::InvalidAuditQuery(_) | A::BadUserId => {
                Self::http(S::BAD_REQUEST, msg)
            }
            A::RecoverRateLimited => Self::http(S::TOO_MANY_REQUESTS, msg),
            A::AppMetadataRequiresAdmin | A::EmailChangeTokenMismatch | A::InvalidUser => Self::http(S::UNAUTHORIZED, msg),
            A::Hook(h) => Self::from(h),
            A::External(x) => Self::from(x),
            A::Unavailable { msg, source } => Self::Unavailable { msg: msg.to_owned(), cause: error_chain(&*source) },
            A::Internal { msg, source } => Self::Internal { msg: msg.to_owned(), cause: error_chain(&*source) },
        }
    }
}

impl From<HookError> for ApiError {
    /// Upstream's statuses for a failed webhook (HOOKS_AND_MAIL.md 1.5-1.6).
    fn from(e: HookError) -> Self {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            HookError::Timeout { .. } => Self::http(S::GATEWAY_TIMEOUT, msg),
            HookError::Unreachable { .. } => Self::http(S::BAD_GATEWAY, msg),
            HookError::Refused => Self::http(S::UNPROCESSABLE_ENTITY, msg),
            HookError::Failed { source, .. } => Self::Internal { msg, cause: error_chain(&*source) },
            HookError::MalformedReply(_) | HookError::UnreadableReply(_) => Self::Internal { cause: msg.clone(), msg },
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e.to_string();
    let mut s = e.source();
    while let Some(inner) = s {
        cause.push_str(": ");
        cause.push_str(&inner.to_string());
        s = inner.source();
    }
    cause
}

/// The `Set-Cookie` value that clears the access-token cookie.
#[must_use]
pub fn clear_cookie_value(key: &str, secure: bool) -> String {
    let past = crate::domain::time::http_date(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    format!("{key}=; Path=/; Expires={past}; Max-Age=0; HttpOnly{}; SameSite=Lax", if secure { "; Secure" } else { "" })
}

/// Marks a response so that the cookie middleware clears the access-token cookie.
#[derive(Debug, Clone, Copy)]
pub struct ClearCookie;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Http { status, msg } => {
                let mut r = (status, go_json(&json!({"code": status.as_u16(), "msg": msg}))).into_response();
                if status.is_server_error() {
                    r.extensions_mut().insert(NeedsErrorId(msg));
                }
                r
            }
            Self::Unauthorized(msg) => {
                let mut r = Self::http(StatusCode::UNAUTHORIZED, msg).into_response();
                r.extensions_mut().insert(ClearCookie);
                r
            }
            Self::OAuth { code, description, clear_cookie } => {
                let body = if description.is_empty() {
                    json!({"error": code.as_str()})
                } else {
                    json!({"error": code.as_str(), "error_description": description})
                };
                let mut r = (StatusCode::BAD_REQUEST, go_json(&body)).into_response();
                if clear_cookie {
                    r.extensions_mut().insert(ClearCookie);
                }
                r
            }
            Self::Unavailable { msg, cause } => {
                let mut r = (StatusCode::SERVICE_UNAVAILABLE, go_json(&json!({"code": 503, "msg": msg}))).into_response();
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r.extensions_mut().insert(NeedsErrorId(msg));
                r.extensions_mut().insert(InternalCause(cause));
                r
            }
            Self::Internal { msg, cause } => {
                let mut r = (StatusCode::INTERNAL_SERVER_ERROR, go_json(&json!({"code": 500, "msg": msg}))).into_response();
                r.extensions_mut().insert(NeedsErrorId(msg));
                r.extensions_mut().insert(InternalCause(cause));
                r
            }
        }
    }
}

/// Plain-text 404 for unknown routes, as Go's router answers.
pub async fn not_found() -> Response {
    let mut r = (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ports::users::StoreError;

    #[tokio::test]
    async fn an_unreachable_database_answers_503_in_shape_a() {
        let e = AuthError::internal("Database error finding user", StoreError::Unavailable("pool timed out".into()));
        let r = ApiError::from(e).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert!(r.extensions().get::<NeedsErrorId>().is_some(), "error_id is filled in by request_context");
        let cause = r.extensions().get::<InternalCause>().unwrap().0.clone();
        assert!(cause.contains("pool timed out"), "{cause}");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"code": 503, "msg": "Database error finding user"}));
    }

    #[tokio::test]
    async fn other_database_failures_stay_500() {
        let e = AuthError::internal("Database error finding user", StoreError::Backend("syntax".into()));
        assert_eq!(ApiError::from(e).into_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
