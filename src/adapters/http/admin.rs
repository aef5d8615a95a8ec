//! The admin endpoints (API.md 4.7, 4.15-4.21) and their extractor, [`AdminRequest`],
//! which runs the admin check (API.md 3.8) before any handler code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::handlers::{bearer, params, Body, ReqCtx};
use super::json::{decode, go_json, null_as_default};
use super::pagination::{self, GoQuery};
use super::HttpState;
use crate::app::admin::{Admin, AdminUserParams, BodyAud, UserList, UserListParams};
use crate::app::service::Ctx;
use crate::domain::time::rfc3339_nano;
use crate::domain::user::UserView;

type S = State<Arc<HttpState>>;

/// A request that passed the admin check, with its context and body.
///
/// The bearer is checked before the body is read, and the body of a `GET` (or `HEAD`) is
/// never read at all (upstream crashed on a `GET` with a body, WEAKNESSES.md 23). Other
/// bodies are read up to the configured limit (413 beyond) and their `aud` takes part in the
/// check.
pub struct AdminRequest {
    /// Who acts.
    pub admin: Admin,
    /// The request context.
    pub ctx: Ctx,
    /// The body (empty for `GET`).
    pub body: Bytes,
}

impl FromRequest<Arc<HttpState>> for AdminRequest {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<HttpState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ReqCtx(ctx) = ReqCtx::from_request_parts(&mut parts, state).await?;
        let candidate = state.service.admin_candidate(&ctx, bearer(&parts.headers)).await?;
        let reads_body = !matches!(parts.method, Method::GET | Method::HEAD);
        let body = if reads_body { Body::from_request(Request::from_parts(parts, body), state).await?.0 } else { Bytes::new() };
        let body_aud = if candidate.reads_body_aud() && !body.is_empty() {
            match decode::<AdminUserBody>(&body) {
                Ok(b) => BodyAud::Aud(b.aud),
                Err(e) => BodyAud::Invalid(e),
            }
        } else {
            BodyAud::Absent
        };
        let admin = candidate.authorize(&ctx, body_aud)?;
        Ok(Self { admin, ctx, body })
    }
}

/// The JSON body of `POST /admin/users` and `PUT /admin/users/{id}` (and what the admin
/// check reads of any admin body).
#[derive(Default, Deserialize)]
#[serde(default)]
struct AdminUserBody {
    #[serde(deserialize_with = "null_as_default")]
    aud: String,
    #[serde(deserialize_with = "null_as_default")]
    role: String,
    #[serde(deserialize_with = "null_as_default")]
    email: String,
    #[serde(deserialize_with = "null_as_default")]
    password: String,
    #[serde(deserialize_with = "null_as_default")]
    confirm: bool,
    user_metadata: Option<Map<String, Value>>,
    app_metadata: Option<Map<String, Value>>,
}

impl From<AdminUserBody> for AdminUserParams {
    fn from(b: AdminUserBody) -> Self {
        Self {
            aud: b.aud,
            role: b.role,
            email: b.email,
            password: SecretString::from(b.password),
            confirm: b.confirm,
            user_metadata: b.user_metadata,
            app_metadata: b.app_metadata,
        }
    }
}

const ADMIN_PARAMS: &str = "Could not decode admin user params";

fn list_params(q: &GoQuery) -> UserListParams {
    UserListParams {
        page: q.get("page").map(str::to_owned),
        per_page: q.get("per_page").map(str::to_owned),
        sort: q.all("sort"),
        filter: q.get("filter").unwrap_or_default().to_owned(),
    }
}

/// `{"aud": ..., "users": [...]}` (keys sorted, as Go writes a map) with pagination headers.
fn user_list_reply(uri: &Uri, q: &GoQuery, list: &UserList, export: bool) -> Response {
    #[derive(Serialize)]
    struct Out<'a> {
        aud: &'a str,
        users: Vec<UserView<'a>>,
    }
    let users = list.page.items.iter().map(|u| if export { u.export_view() } else { u.view() }).collect();
    let mut r = go_json(&Out { aud: &list.aud, users }).into_response();
    pagination::add_headers(r.headers_mut(), uri.path(), q, &list.pagination, list.page.total);
    r
}

fn user_id(path: Result<Path<String>, axum::extract::rejection::PathRejection>) -> String {
    path.map(|Path(id)| id).unwrap_or_default()
}

pub async fn get_admin_users(State(state): S, uri: Uri, req: AdminRequest) -> Result<Response, ApiError> {
    let q = GoQuery::parse(uri.query().unwrap_or_default());
    let list = state.service.admin_list_users(&req.ctx, &req.admin, list_params(&q)).await?;
    Ok(user_list_reply(&uri, &q, &list, false))
}

pub async fn get_admin_users_export(State(state): S, uri: Uri, headers: HeaderMap, req: AdminRequest) -> Result<Response, ApiError> {
    // The documented header has an underscore, which many proxies drop; accept both names.
    let secret = ["export_secret", "x-export-secret"].iter().find_map(|h| headers.get(*h)).and_then(|v| v.to_str().ok());
    let q = GoQuery::parse(uri.query().unwrap_or_default());
    let list = state.service.admin_export_users(&req.ctx, &req.admin, secret, list_params(&q)).await?;
    Ok(user_list_reply(&uri, &q, &list, true))
}

pub async fn post_admin_users(State(state): S, req: AdminRequest) -> Result<Response, ApiError> {
    req.ctx.require_email_provider()?;
    let p: AdminUserBody = params(&req.body, ADMIN_PARAMS)?;
    let user = state.service.admin_create_user(&req.ctx, &req.admin, p.into()).await?;
    Ok(go_json(&user.view()).into_response())
}

pub async fn get_admin_user(
    State(state): S,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: AdminRequest,
) -> Result<Response, ApiError> {
    let target = state.service.admin_load_user(&req.ctx, &req.admin, &user_id(path)).await?;
    Ok(go_json(&target.user().view()).into_response())
}

pub async fn put_admin_user(
    State(state): S,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: AdminRequest,
) -> Result<Response, ApiError> {
    // The user is loaded first (400/404 before a body error), as upstream's middleware does.
    let target = state.service.admin_load_user(&req.ctx, &req.admin, &user_id(path)).await?;
    let p: AdminUserBody = params(&req.body, ADMIN_PARAMS)?;
    let user = state.service.admin_update_user(&req.ctx, &req.admin, target, p.into()).await?;
    Ok(go_json(&user.view()).into_response())
}

pub async fn delete_admin_user(
    State(state): S,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    req: AdminRequest,
) -> Result<Response, ApiError> {
    let target = state.service.admin_load_user(&req.ctx, &req.admin, &user_id(path)).await?;
    state.service.admin_delete_user(&req.ctx, &req.admin, target).await?;
    Ok(go_json(&json!({})).into_response())
}

pub async fn get_admin_audit(State(state): S, uri: Uri, req: AdminRequest) -> Result<Response, ApiError> {
    #[derive(Serialize)]
    struct Entry<'a> {
        id: &'a Uuid,
        payload: &'a Map<String, Value>,
        created_at: String,
    }
    let q = GoQuery::parse(uri.query().unwrap_or_default());
    let list =
        state.service.admin_audit(&req.ctx, &req.admin, q.get("page"), q.get("per_page"), q.get("query").unwrap_or_default()).await?;
    let entries: Vec<Entry<'_>> =
        list.page.items.iter().map(|e| Entry { id: &e.id, payload: &e.payload, created_at: rfc3339_nano(&e.created_at) }).collect();
    let mut r = go_json(&entries).into_response();
    pagination::add_headers(r.headers_mut(), uri.path(), &q, &list.pagination, list.page.total);
    Ok(r)
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct InviteBody {
    #[serde(deserialize_with = "null_as_default")]
    email: String,
    data: Option<Map<String, Value>>,
}

pub async fn post_invite(State(state): S, req: AdminRequest) -> Result<Response, ApiError> {
    let p: InviteBody = params(&req.body, "Could not read Invite params")?;
    let user = state.service.invite(&req.ctx, &req.admin, &p.email, p.data).await?;
    Ok(go_json(&user.view()).into_response())
}
