//! Endpoint handlers (API.md 4): decode, call the use case, encode.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ClearCookie};
use super::json::{decode, go_json};
use super::HttpState;
use crate::app::jwt::{self, VerifiedClaims};
use crate::app::service::{Ctx, TokenResponse};
use crate::app::signup::SignupParams;
use crate::app::user::{Caller, UserUpdateParams};
use crate::app::verify::VerifyParams;
use crate::app::AuthError;

type S = State<Arc<HttpState>>;

/// The per-request context of a use case.
pub struct ReqCtx(pub Ctx);

impl FromRequestParts<Arc<HttpState>> for ReqCtx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<HttpState>) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_owned);
        if let Some(r) = parts.extensions.get::<crate::app::instances::RequestInstance>() {
            return Ok(Self(r.ctx(header("x-jwt-aud"), header("referer"))));
        }
        let mut ctx = Ctx::new(state.instance_id, Arc::clone(&state.config));
        ctx.aud_header = header("x-jwt-aud");
        ctx.referrer = header("referer");
        Ok(Self(ctx))
    }
}

/// The raw body, with oversize bodies answered 413 in the JSON shape.
pub struct Body(pub Bytes);

impl FromRequest<Arc<HttpState>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<HttpState>) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::http(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"))
            }
            Err(e) => Err(ApiError::http(StatusCode::BAD_REQUEST, format!("Could not read request body: {e}"))),
        }
    }
}

pub(super) fn params<T: serde::de::DeserializeOwned + Default>(body: &[u8], prefix: &str) -> Result<T, ApiError> {
    decode(body).map_err(|e| ApiError::http(StatusCode::BAD_REQUEST, format!("{prefix}: {e}")))
}

/// Extracts and verifies the bearer token; failures answer 401 and clear the cookie.
/// `expected_aud`: the request's `X-JWT-AUD`, where a mismatch is a 401 (`GET`/`PUT /user`
/// keep upstream's 400 for it instead, and pass `None`).
fn authenticate(state: &HttpState, headers: &HeaderMap, ctx: &Ctx, expected_aud: Option<&str>) -> Result<VerifiedClaims, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::Unauthorized("This endpoint requires a Bearer token".into()))?;
    jwt::verify(token, ctx.jwt_secret(), state.service.now().timestamp(), expected_aud)
        .map_err(|e| ApiError::Unauthorized(format!("Invalid token: {e}")))
}

/// `Authorization: Bearer <token>` with exactly one space and no whitespace in the token.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
    (!token.is_empty() && !token.chars().any(char::is_whitespace)).then_some(token)
}

/// Serialises a token response and sets the access-token cookie when asked (API.md 3.6).
/// The cookie settings are the request's instance's (in single-instance mode, the
/// environment's).
fn token_reply(state: &HttpState, ctx: &Ctx, headers: &HeaderMap, t: &TokenResponse) -> Response {
    let mut r = go_json(t).into_response();
    let use_cookie = headers.get("x-use-cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
    let cookie = &ctx.config.cookie;
    let duration = cookie.duration;
    if !use_cookie.is_empty() && duration > 0 {
        let mut c = format!("{}={}; Path=/", cookie.key, t.access_token);
        if use_cookie != "session" {
            let expires = state.service.now() + chrono::Duration::seconds(duration);
            c.push_str(&format!("; Expires={}; Max-Age={duration}", crate::domain::time::http_date(expires)));
        }
        c.push_str("; HttpOnly");
        if cookie.secure.unwrap_or_else(|| !ctx.config.site_url.starts_with("http://")) {
            c.push_str("; Secure");
        }
        c.push_str("; SameSite=Lax");
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

pub async fn get_health(State(state): S) -> Response {
    go_json(&json!({"description": "GoTrue is a user registration and authentication API", "name": "GoTrue", "version": state.version}))
        .into_response()
}

pub async fn get_settings(ReqCtx(ctx): ReqCtx) -> Response {
    let c = &ctx.config;
    let enabled = |p: &str| c.external.providers.get(p).is_some_and(|p| p.enabled);
    let mut labels = Map::new();
    if !c.external.saml.name.is_empty() {
        labels.insert("saml".into(), Value::String(c.external.saml.name.clone()));
    }
    #[derive(serde::Serialize)]
    struct External {
        bitbucket: bool,
        github: bool,
        gitlab: bool,
        google: bool,
        facebook: bool,
        email: bool,
        saml: bool,
    }
    #[derive(serde::Serialize)]
    struct Settings {
        external: External,
        external_labels: Map<String, Value>,
        disable_signup: bool,
        autoconfirm: bool,
    }
    go_json(&Settings {
        external: External {
            bitbucket: enabled("bitbucket"),
            github: enabled("github"),
            gitlab: enabled("gitlab"),
            google: enabled("google"),
            facebook: enabled("facebook"),
            email: !c.external.email_disabled,
            saml: c.external.saml.enabled,
        },
        external_labels: labels,
        disable_signup: c.disable_signup,
        autoconfirm: c.mailer.autoconfirm,
    })
    .into_response()
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct SignupBody {
    email: String,
    password: String,
    data: Option<Map<String, Value>>,
}

pub async fn post_signup(State(state): S, ReqCtx(ctx): ReqCtx, Body(body): Body) -> Result<Response, ApiError> {
    ctx.require_email_provider()?;
    ctx.require_signup_enabled()?;
    let p: SignupBody = params(&body, "Could not read Signup params")?;
    let user = state.service.signup(&ctx, SignupParams { email: p.email, password: SecretString::from(p.password), data: p.data }).await?;
    Ok(go_json(&user.view()).into_response())
}

/// `/token` parameters: from a urlencoded (or JSON) body first, then the query string.
pub(super) fn token_params(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/json") {
        if let Ok(Value::Object(o)) = decode::<Value>(body) {
            for (k, v) in o {
                if let Some(s) = v.as_str() {
                    out.insert(k, s.to_owned());
                }
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") || ct.is_empty() {
        for (k, v) in url::form_urlencoded::parse(body) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    out
}

pub async fn post_token(
    State(state): S,
    ReqCtx(ctx): ReqCtx,
    headers: HeaderMap,
    uri: Uri,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let p = token_params(&headers, &uri, &body);
    let get = |k: &str| p.get(k).map_or("", String::as_str);
    // The authorization-code grant finishes an external login, which does not need the
    // email provider.
    if get("grant_type") != "authorization_code" {
        ctx.require_email_provider()?;
    }
    if let Some(l) = &state.token_limiter {
        let key = headers.get(l.header.as_str()).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !l.allow(key, std::time::Instant::now()) {
            return Err(ApiError::http(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded"));
        }
    }
    let t = match get("grant_type") {
        "password" => state.service.password_grant(&ctx, get("username"), SecretString::from(get("password").to_owned())).await?,
        "refresh_token" => state.service.refresh_grant(&ctx, get("refresh_token")).await?,
        "authorization_code" => state.service.authorization_code_grant(&ctx, get("code"), get("code_verifier")).await?,
        _ => return Err(ApiError::from(AuthError::UnsupportedGrantType)),
    };
    Ok(token_reply(&state, &ctx, &headers, &t))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct VerifyBody {
    #[serde(rename = "type")]
    kind: String,
    token: String,
    password: String,
}

pub async fn post_verify(State(state): S, ReqCtx(ctx): ReqCtx, headers: HeaderMap, Body(body): Body) -> Result<Response, ApiError> {
    let p: VerifyBody = params(&body, "Could not read verification params")?;
    let t = state.service.verify(&ctx, VerifyParams { kind: p.kind, token: p.token, password: SecretString::from(p.password) }).await?;
    Ok(token_reply(&state, &ctx, &headers, &t))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct RecoverBody {
    email: String,
}

pub async fn post_recover(State(state): S, ReqCtx(ctx): ReqCtx, Body(body): Body) -> Result<Response, ApiError> {
    ctx.require_email_provider()?;
    let p: RecoverBody = params(&body, "Could not read verification params")?;
    state.service.recover(&ctx, &p.email).await?;
    Ok(go_json(&json!({})).into_response())
}

pub async fn post_logout(State(state): S, ReqCtx(ctx): ReqCtx, headers: HeaderMap) -> Response {
    let claims = match authenticate(&state, &headers, &ctx, ctx.aud_header.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut r = match state.service.logout(&ctx, &claims.sub, &claims.email).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    };
    r.extensions_mut().insert(ClearCookie);
    r
}

fn caller(c: &VerifiedClaims) -> Caller {
    Caller { sub: c.sub.clone(), aud: c.aud().to_owned(), session_id: c.session_id() }
}

pub async fn get_user(State(state): S, ReqCtx(ctx): ReqCtx, headers: HeaderMap) -> Response {
    let claims = match authenticate(&state, &headers, &ctx, None) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match state.service.get_user(&ctx, &caller(&claims)).await {
        Ok(u) => go_json(&u.view()).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct UserBody {
    email: String,
    password: String,
    email_change_token: String,
    data: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
}

pub async fn put_user(State(state): S, ReqCtx(ctx): ReqCtx, headers: HeaderMap, Body(body): Body) -> Response {
    let claims = match authenticate(&state, &headers, &ctx, None) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let p: UserBody = match params(&body, "Could not read User Update params") {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let update = UserUpdateParams {
        email: p.email,
        password: SecretString::from(p.password),
        email_change_token: p.email_change_token,
        data: p.data,
        app_metadata: p.app_metadata,
    };
    match state.service.update_user(&ctx, &caller(&claims), update).await {
        Ok(u) => go_json(&u.view()).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
