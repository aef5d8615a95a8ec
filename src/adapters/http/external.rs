//! `GET /authorize` and `GET /callback` (API.md 4.11-4.12, EXTERNAL.md 1): redirects, the
//! browser-binding cookie, and errors turned into redirect fragments.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, InternalCause, OAuthCode};
use super::handlers::ReqCtx;
use super::HttpState;
use crate::app::external::urls::{with_code, with_fragment};
use crate::app::external::{AuthorizeParams, CallbackError, CallbackOutcome, CallbackParams, ExternalError};
use crate::app::AuthError;

/// The cookie binding an OAuth state to the browser that started the flow.
pub const BINDING_COOKIE: &str = "gotrue-oauth-binding";

impl From<ExternalError> for ApiError {
    fn from(e: ExternalError) -> Self {
        use ExternalError as X;
        let msg = e.to_string();
        match e {
            X::StateMissing
            | X::StateInvalid(_)
            | X::UnsupportedProvider(_)
            | X::BadChallenge(_)
            | X::CodeMissing
            | X::InviteEmailMismatch
            | X::IdentityTaken
            | X::Provider { .. } => Self::http(StatusCode::BAD_REQUEST, msg),
            X::Unavailable { cause, .. } | X::Exchange { cause, .. } | X::UserData { cause } => Self::Internal { msg, cause },
            X::CodeRequired => Self::oauth(OAuthCode::InvalidRequest, msg),
            X::InvalidCode | X::CodeExpired | X::VerifierMismatch => Self::oauth(OAuthCode::InvalidGrant, msg),
        }
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// The binding cookie: scoped to the directory of the callback (so `/authorize` beside it
/// sees it too), `HttpOnly`, `SameSite=Lax` (the provider's redirect back is a top-level
/// navigation), and `Secure` unless the provider's configured redirect URI is plain http.
#[must_use]
pub fn binding_cookie(value: &str, redirect_uri: &str, max_age: i64) -> String {
    let path = url::Url::parse(redirect_uri)
        .ok()
        .map(|u| {
            let p = u.path();
            match p.rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => p[..i].to_owned(),
            }
        })
        .unwrap_or_else(|| "/".to_owned());
    let secure = if redirect_uri.starts_with("http://") { "" } else { "; Secure" };
    format!("{BINDING_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// 302 with Go's small HTML body.
fn found(location: &str) -> Response {
    let Ok(value) = HeaderValue::from_str(location) else {
        return ApiError::Internal { msg: "Internal server error".into(), cause: "redirect target is not a valid header value".into() }
            .into_response();
    };
    let body = format!("<a href=\"{}\">Found</a>.\n\n", html_escape(location));
    let mut r = (StatusCode::FOUND, body).into_response();
    r.headers_mut().insert(header::LOCATION, value);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&#34;").replace('\'', "&#39;")
}

/// `GET /authorize?provider=NAME[&invite_token=T][&code_challenge=C&code_challenge_method=S256]`.
pub async fn get_authorize(State(state): State<Arc<HttpState>>, ReqCtx(ctx): ReqCtx, headers: HeaderMap, uri: Uri) -> Response {
    let q = query(&uri);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let params = AuthorizeParams {
        provider: get("provider"),
        invite_token: get("invite_token"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        binding: cookie(&headers, BINDING_COOKIE),
    };
    match state.service.external_authorize(&ctx, params).await {
        Ok(r) => {
            let mut resp = found(&r.location);
            if let Ok(v) = HeaderValue::from_str(&binding_cookie(&r.binding, &r.redirect_uri, r.max_age)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The `error` code of an error redirect (EXTERNAL.md 1.6) and its description.
fn redirect_error(e: AuthError) -> (String, String, Option<String>) {
    if let AuthError::External(ExternalError::Provider { error, description }) = e {
        return (error, description, None);
    }
    match ApiError::from(e) {
        ApiError::Http { status, msg } => {
            let code = match status.as_u16() {
                400 => "invalid_request",
                401 => "unauthorized_client",
                403 => "access_denied",
                503 => "temporarily_unavailable",
                _ => "server_error",
            };
            (code.to_owned(), msg, None)
        }
        ApiError::Unauthorized(msg) => ("unauthorized_client".to_owned(), msg, None),
        ApiError::OAuth { code, description, .. } => (code.as_str().to_owned(), description, None),
        ApiError::Internal { msg, cause } => ("server_error".to_owned(), msg, Some(cause)),
        ApiError::Unavailable { msg, cause } => ("temporarily_unavailable".to_owned(), msg, Some(cause)),
    }
}

/// `GET /callback?state=...&code=...` (or `&error=...&error_description=...`).
pub async fn get_callback(State(state): State<Arc<HttpState>>, ReqCtx(ctx): ReqCtx, headers: HeaderMap, uri: Uri) -> Response {
    let q = query(&uri);
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let params = CallbackParams {
        state: get("state"),
        code: get("code"),
        error: get("error"),
        error_description: get("error_description"),
        binding: cookie(&headers, BINDING_COOKIE),
    };
    match state.service.external_callback(&ctx, params).await {
        Ok((target, CallbackOutcome::Tokens(t))) => {
            let expires_in = t.expires_in.to_string();
            found(&with_fragment(
                &target,
                &[
                    ("access_token", t.access_token.as_str()),
                    ("expires_in", expires_in.as_str()),
                    ("refresh_token", t.refresh_token.as_str()),
                    ("token_type", t.token_type),
                ],
            ))
        }
        Ok((target, CallbackOutcome::Code(code))) => found(&with_code(&target, &code)),
        Ok((target, CallbackOutcome::ConfirmationSent)) => found(&target),
        Err(CallbackError::State(e)) => ApiError::from(e).into_response(),
        Err(CallbackError::Redirect { target, error }) => {
            let (code, description, cause) = redirect_error(error);
            let mut r = found(&with_fragment(&target, &[("error", code.as_str()), ("error_description", description.as_str())]));
            if let Some(cause) = cause {
                r.extensions_mut().insert(InternalCause(cause));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_cookie_scope_and_security() {
        assert_eq!(
            binding_cookie("v", "https://id.example.com/callback", 600),
            "gotrue-oauth-binding=v; Path=/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            binding_cookie("v", "http://localhost:9999/.netlify/identity/callback", 600),
            "gotrue-oauth-binding=v; Path=/.netlify/identity; Max-Age=600; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; gotrue-oauth-binding=xyz; b=2"));
        assert_eq!(cookie(&h, BINDING_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&HeaderMap::new(), BINDING_COOKIE), None);
    }

    #[test]
    fn redirect_errors_follow_upstreams_table() {
        let (c, d, _) = redirect_error(AuthError::SignupDisabled);
        assert_eq!((c.as_str(), d.as_str()), ("access_denied", "Signups not allowed for this instance"));
        let (c, d, cause) = redirect_error(ExternalError::UserData { cause: "x".into() }.into());
        assert_eq!(
            (c.as_str(), d.as_str(), cause.as_deref()),
            ("server_error", "Error getting user email from external provider", Some("x"))
        );
        let (c, _, _) = redirect_error(ExternalError::InviteEmailMismatch.into());
        assert_eq!(c, "invalid_request");
        let (c, d, _) = redirect_error(ExternalError::Provider { error: "access_denied".into(), description: "no".into() }.into());
        assert_eq!((c.as_str(), d.as_str()), ("access_denied", "no"));
        let (c, _, _) = redirect_error(AuthError::UserNotFound);
        assert_eq!(c, "server_error");
    }
}
