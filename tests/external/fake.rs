//! A fake of all five providers on one loopback server: authorization (consent is
//! immediate), token, user and email endpoints at each provider's real paths, and an
//! OpenID Connect issuer (discovery, JWKS, RS256 ID tokens) for Google. The token endpoint
//! checks what a real one checks: client credentials, the code (single use), the redirect
//! URI and the PKCE verifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

pub const CLIENT_ID: &str = "testclientid";
pub const CLIENT_SECRET: &str = "testsecret";

/// The provider account the fake reports.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub avatar: String,
    /// (address, verified, primary), in order.
    pub emails: Vec<(String, bool, bool)>,
}

impl Account {
    pub fn new(email: &str) -> Self {
        Self {
            id: "1001".into(),
            name: "Test User".into(),
            avatar: "http://example.com/avatar".into(),
            emails: vec![(email.into(), true, true)],
        }
    }
}

/// How the ID token deviates from a valid one.
#[derive(Clone, Debug, Default)]
pub struct IdTokenFaults {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub expired: bool,
    pub nonce: Option<String>,
    pub bad_signature: bool,
    pub omit: bool,
    /// The discovery document names this issuer instead of the fake's own URL.
    pub metadata_issuer: Option<String>,
}

/// What the fake answers.
#[derive(Clone, Debug)]
pub struct Script {
    pub account: Account,
    /// Replaces the user endpoint's answer: (status, body).
    pub raw_user: Option<(u16, String)>,
    /// Replaces the emails endpoint's answer.
    pub raw_emails: Option<(u16, String)>,
    /// The token endpoint answers this instead of a token.
    pub token_error: Option<(u16, String)>,
    /// The authorization endpoint redirects back with this error and description.
    pub authorize_error: Option<(String, String)>,
    /// Token responses as a form (GitHub's default) instead of JSON.
    pub token_as_form: bool,
    /// Refuse HTTP Basic client authentication (credentials must come in the body).
    pub refuse_basic_auth: bool,
    pub id_token: IdTokenFaults,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            account: Account::new("user@example.com"),
            raw_user: None,
            raw_emails: None,
            token_error: None,
            authorize_error: None,
            token_as_form: false,
            refuse_basic_auth: false,
            id_token: IdTokenFaults::default(),
        }
    }
}

/// What the fake saw.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub authorize: Vec<HashMap<String, String>>,
    pub token: Vec<HashMap<String, String>>,
    pub token_basic_auth: Vec<bool>,
    pub user_hits: usize,
    pub emails_hits: usize,
    pub discovery_hits: usize,
}

impl Seen {
    pub fn token_hits(&self) -> usize {
        self.token.len()
    }
}

struct Issued {
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
}

#[derive(Clone)]
struct Fake {
    base: String,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Seen>>,
    codes: Arc<Mutex<HashMap<String, Issued>>>,
}

/// The running fake.
#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    inner: Fake,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake { base: url.clone(), script: Arc::default(), seen: Arc::default(), codes: Arc::default() };
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/oauth/authorize", get(authorize))
            .route("/site/oauth2/authorize", get(authorize))
            .route("/dialog/oauth", get(authorize))
            .route("/o/oauth2/v2/auth", get(authorize))
            .route("/login/oauth/access_token", post(token))
            .route("/oauth/token", post(token))
            .route("/site/oauth2/access_token", post(token))
            .route("/oauth/access_token", post(token))
            .route("/token", post(token))
            .route("/api/v3/user", get(github_user))
            .route("/api/v3/user/emails", get(github_emails))
            .route("/api/v4/user", get(gitlab_user))
            .route("/api/v4/user/emails", get(gitlab_emails))
            .route("/2.0/user", get(bitbucket_user))
            .route("/2.0/user/emails", get(bitbucket_emails))
            .route("/me", get(facebook_me))
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, inner: fake }
    }

    pub fn script(&self, f: impl FnOnce(&mut Script)) {
        f(&mut self.inner.script.lock().unwrap());
    }

    pub fn seen(&self) -> Seen {
        self.inner.seen.lock().unwrap().clone()
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

fn json_response(status: u16, body: String) -> Response {
    (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

async fn authorize(State(f): State<Fake>, uri: Uri) -> Response {
    let q = query(&uri);
    f.seen.lock().unwrap().authorize.push(q.clone());
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    let mut back = url::Url::parse(&redirect_uri).unwrap();
    if let Some((error, description)) = f.script.lock().unwrap().authorize_error.clone() {
        back.query_pairs_mut().append_pair("error", &error).append_pair("error_description", &description).append_pair("state", &state);
        return redirect(back.as_str());
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    f.codes.lock().unwrap().insert(
        code.clone(),
        Issued { redirect_uri: redirect_uri.clone(), challenge: q.get("code_challenge").cloned(), nonce: q.get("nonce").cloned() },
    );
    back.query_pairs_mut().append_pair("code", &code).append_pair("state", &state);
    redirect(back.as_str())
}

fn token_for(path: &str) -> &'static str {
    match path {
        "/login/oauth/access_token" => "github_token",
        "/oauth/token" => "gitlab_token",
        "/site/oauth2/access_token" => "bitbucket_token",
        "/oauth/access_token" => "facebook_token",
        _ => "google_token",
    }
}

async fn token(State(f): State<Fake>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")).map(str::to_owned);
    {
        let mut seen = f.seen.lock().unwrap();
        seen.token.push(form.clone());
        seen.token_basic_auth.push(basic.is_some());
    }
    let script = f.script.lock().unwrap().clone();
    let expected_basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
    let client_ok = match &basic {
        Some(b) => !script.refuse_basic_auth && *b == expected_basic,
        None => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    };
    if !client_ok {
        return json_response(401, json!({"error": "invalid_client"}).to_string());
    }
    if let Some((status, body)) = script.token_error {
        return json_response(status, body);
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(issued) = f.codes.lock().unwrap().remove(&code) else {
        return json_response(400, json!({"error": "invalid_grant", "error_description": "unknown code"}).to_string());
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") || form.get("redirect_uri") != Some(&issued.redirect_uri) {
        return json_response(400, json!({"error": "invalid_grant", "error_description": "redirect_uri mismatch"}).to_string());
    }
    if let Some(challenge) = &issued.challenge {
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if computed != *challenge {
            return json_response(400, json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}).to_string());
        }
    }
    let access = token_for(uri.path());
    if uri.path() == "/token" {
        let mut body = json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600});
        if !script.id_token.omit {
            body["id_token"] = Value::String(id_token(&f.base, &script, issued.nonce.as_deref()));
        }
        return json_response(200, body.to_string());
    }
    if script.token_as_form {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded; charset=utf-8")],
            format!("access_token={access}&scope=user%3Aemail&token_type=bearer"),
        )
            .into_response();
    }
    json_response(200, json!({"access_token": access, "expires_in": 100_000}).to_string())
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
}

/// Counts the hit, checks the bearer token, and answers the scripted override or `render`.
fn api(f: &Fake, headers: &HeaderMap, token: &str, emails: bool, render: impl FnOnce(&Account) -> Value) -> Response {
    let script = f.script.lock().unwrap().clone();
    {
        let mut seen = f.seen.lock().unwrap();
        if emails {
            seen.emails_hits += 1;
        } else {
            seen.user_hits += 1;
        }
    }
    if !authorized(headers, token) {
        return json_response(401, json!({"message": "Bad credentials"}).to_string());
    }
    let raw = if emails { script.raw_emails } else { script.raw_user };
    match raw {
        Some((status, body)) => json_response(status, body),
        // Upstream's fixtures end with a stray `}`: decoding must stop after the value.
        None => json_response(200, format!("{}}}", render(&script.account))),
    }
}

fn primary(a: &Account) -> Option<&(String, bool, bool)> {
    a.emails.iter().find(|e| e.2)
}

async fn github_user(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(
        &f,
        &headers,
        "github_token",
        false,
        |a| json!({"id": a.id.parse::<i64>().unwrap_or(0), "login": "octo", "name": a.name, "avatar_url": a.avatar}),
    )
}

async fn github_emails(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(&f, &headers, "github_token", true, |a| {
        Value::Array(a.emails.iter().map(|(e, v, p)| json!({"email": e, "verified": v, "primary": p})).collect())
    })
}

async fn gitlab_user(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(&f, &headers, "gitlab_token", false, |a| {
        let (email, confirmed) = primary(a).map_or((String::new(), false), |(e, v, _)| (e.clone(), *v));
        let mut u = json!({"id": a.id.parse::<i64>().unwrap_or(0), "name": a.name, "avatar_url": a.avatar, "email": email});
        if confirmed {
            u["confirmed_at"] = json!("2012-05-23T09:05:22Z");
        }
        u
    })
}

async fn gitlab_emails(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(&f, &headers, "gitlab_token", true, |a| {
        Value::Array(
            a.emails
                .iter()
                .filter(|e| !e.2)
                .enumerate()
                .map(
                    |(i, (e, v, _))| {
                        if *v {
                            json!({"id": i, "email": e, "confirmed_at": "2012-05-23T09:05:22Z"})
                        } else {
                            json!({"id": i, "email": e})
                        }
                    },
                )
                .collect(),
        )
    })
}

async fn bitbucket_user(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(
        &f,
        &headers,
        "bitbucket_token",
        false,
        |a| json!({"uuid": format!("{{{}}}", a.id), "display_name": a.name, "avatar": {"href": a.avatar}}),
    )
}

async fn bitbucket_emails(State(f): State<Fake>, headers: HeaderMap) -> Response {
    api(
        &f,
        &headers,
        "bitbucket_token",
        true,
        |a| json!({"values": a.emails.iter().map(|(e, v, p)| json!({"email": e, "is_confirmed": v, "is_primary": p})).collect::<Vec<_>>()}),
    )
}

async fn facebook_me(State(f): State<Fake>, headers: HeaderMap, uri: Uri) -> Response {
    let q = query(&uri);
    let script = f.script.lock().unwrap().clone();
    let proof_ok = q.get("appsecret_proof").is_some_and(|p| p.len() == 64) && q.contains_key("fields");
    if !proof_ok {
        return json_response(400, json!({"error": {"message": "appsecret_proof missing"}}).to_string());
    }
    if let Some((status, body)) = script.raw_user.clone() {
        f.seen.lock().unwrap().user_hits += 1;
        return json_response(status, body);
    }
    api(&f, &headers, "facebook_token", false, |a| {
        let (first, last) = a.name.split_once(' ').unwrap_or((&a.name, ""));
        let mut u =
            json!({"id": a.id, "name": "facebook.slug", "first_name": first, "last_name": last, "picture": {"data": {"url": a.avatar}}});
        if let Some((e, _, _)) = primary(a) {
            u["email"] = json!(e);
        }
        u
    })
}

async fn discovery(State(f): State<Fake>) -> Response {
    f.seen.lock().unwrap().discovery_hits += 1;
    let b = &f.base;
    let issuer = f.script.lock().unwrap().id_token.metadata_issuer.clone().unwrap_or_else(|| b.clone());
    json_response(
        200,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{b}/o/oauth2/v2/auth"),
            "token_endpoint": format!("{b}/token"),
            "jwks_uri": format!("{b}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"]
        })
        .to_string(),
    )
}

struct Key {
    pem: Vec<u8>,
    n: String,
    e: String,
}

fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = private.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes().to_vec();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Key { pem, n: b64(private.n().to_bytes_be()), e: b64(private.e().to_bytes_be()) }
    })
}

async fn jwks() -> Response {
    let k = key();
    json_response(200, json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1", "n": k.n, "e": k.e}]}).to_string())
}

fn id_token(base: &str, script: &Script, nonce: Option<&str>) -> String {
    let now = chrono::Utc::now().timestamp();
    let faults = &script.id_token;
    let a = &script.account;
    let mut claims = json!({
        "iss": faults.issuer.clone().unwrap_or_else(|| base.to_owned()),
        "aud": faults.audience.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "sub": a.id,
        "iat": now,
        "exp": if faults.expired { now - 600 } else { now + 3600 },
        "name": a.name,
        "picture": a.avatar,
    });
    if let Some(n) = faults.nonce.clone().or_else(|| nonce.map(str::to_owned)) {
        claims["nonce"] = json!(n);
    }
    if let Some((e, v, _)) = primary(a) {
        claims["email"] = json!(e);
        claims["email_verified"] = json!(v);
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("k1".into());
    let token = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_rsa_pem(&key().pem).unwrap()).unwrap();
    if faults.bad_signature {
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut sig: Vec<char> = sig.chars().collect();
        sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
        return format!("{head}.{}", sig.into_iter().collect::<String>());
    }
    token
}
