//! OAuth 2.0 plumbing shared by the provider adapters (EXTERNAL.md 2), and the registry.
//!
//! What lives here: the HTTP client the `oauth2`/`openidconnect` crates talk through (no
//! redirects followed, time limits, token responses normalised), [`OAuthCore`] (an `oauth2`
//! client with the authorization URL, PKCE and the code exchange with upstream's
//! client-authentication fallback, plus the authenticated API calls) and the
//! [`providers!`] registry. A provider is one file under `oauth/` adding its name,
//! endpoints, scopes and profile mapping; see the README's "Adding a provider".
//!
//! Codes, provider tokens and PKCE verifiers never reach a log line or an error text.

pub mod bitbucket;
pub mod facebook;
pub mod github;
pub mod gitlab;
pub mod google;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, TokenResponse as _, TokenUrl,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderRegistry, ProviderSettings};

/// Time limit of one call to a provider, connection included.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A transport failure talking to a provider.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be sent or its answer read.
    #[error("request to the provider failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The request or answer could not be represented.
    #[error("malformed HTTP message: {0}")]
    Http(#[from] oauth2::http::Error),
}

/// The HTTP client every provider uses: never follows redirects (a provider answering
/// with a redirect is an error, not a hop to wherever it points), bounded in time, and
/// presents itself with a `User-Agent` (GitHub's API refuses requests without one).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    /// Builds the client.
    ///
    /// # Errors
    /// When the TLS backend cannot be set up.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("gotrue-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let is_post = request.method() == oauth2::http::Method::POST;
        let response = self.inner.execute(reqwest::Request::try_from(request)?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        let mut out = oauth2::http::Response::builder().status(status);
        for (name, value) in &headers {
            if is_post && (name == reqwest::header::CONTENT_TYPE || name == reqwest::header::CONTENT_LENGTH) {
                continue;
            }
            out = out.header(name, value);
        }
        if !is_post {
            return Ok(out.body(body)?);
        }
        let content_type = headers.get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        match normalise_token_response(content_type, &body) {
            Some(json) => Ok(out.header(reqwest::header::CONTENT_TYPE, "application/json").body(json)?),
            None => {
                if let Some(ct) = headers.get(reqwest::header::CONTENT_TYPE) {
                    out = out.header(reqwest::header::CONTENT_TYPE, ct);
                }
                Ok(out.body(body)?)
            }
        }
    }

    /// `GET url` with the bearer token, decoded leniently; a non-2xx answer is
    /// `Request failed with status <code>:\n<body>` as upstream words it.
    ///
    /// # Errors
    /// [`ProviderError::UserData`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, access_token: &SecretString) -> Result<T, ProviderError> {
        let response = self
            .inner
            .get(url)
            .bearer_auth(access_token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::UserData(format!("request to the provider failed: {}", e.without_url())))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::UserData(format!("reading the provider's answer failed: {}", e.without_url())))?;
        if !status.is_success() {
            return Err(ProviderError::UserData(format!(
                "Request failed with status {}:\n{}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            )));
        }
        decode_lenient(&body).map_err(ProviderError::UserData)
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.execute(request).await })
    }
}

/// Token endpoints answer in more shapes than RFC 6749 5.1 allows: GitHub answers a form
/// (`application/x-www-form-urlencoded`, or `text/plain` from older servers) unless asked
/// for JSON, some omit `token_type`, some send `expires_in` as a string, and JSON may be
/// followed by stray bytes. Such a 2xx body becomes the strict JSON the `oauth2` crate
/// parses; anything else is left alone (`None`).
#[must_use]
pub fn normalise_token_response(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let ct = content_type.to_ascii_lowercase();
    let mut map: Map<String, Value> = if ct.starts_with("application/x-www-form-urlencoded") || ct.starts_with("text/plain") {
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect()
    } else if ct.starts_with("application/json") || ct.is_empty() {
        match decode_lenient::<Value>(body) {
            Ok(Value::Object(m)) => m,
            _ => return None,
        }
    } else {
        return None;
    };
    if !map.contains_key("access_token") && !map.contains_key("error") {
        return None;
    }
    if map.contains_key("access_token") && !map.get("token_type").is_some_and(Value::is_string) {
        map.insert("token_type".into(), Value::String("bearer".into()));
    }
    if let Some(Value::String(s)) = map.get("expires_in") {
        let n = s.trim().parse::<u64>().ok();
        match n {
            Some(n) => map.insert("expires_in".into(), Value::from(n)),
            None => map.remove("expires_in"),
        };
    }
    serde_json::to_vec(&Value::Object(map)).ok()
}

/// Decodes the first JSON value of a body, ignoring whatever follows it (upstream's
/// fixtures end with a stray `}`).
///
/// # Errors
/// The decoder's message.
pub fn decode_lenient<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    match serde_json::Deserializer::from_slice(body).into_iter::<T>().next() {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(format!("the provider's answer is not the expected JSON: {e}")),
        None => Err("the provider's answer is empty".into()),
    }
}

/// The base URL of a provider: `default` without an override, else the override with one
/// trailing `/` removed (EXTERNAL.md 2).
#[must_use]
pub fn base_url(override_url: &str, default: &str) -> String {
    if override_url.is_empty() {
        default.to_owned()
    } else {
        override_url.strip_suffix('/').unwrap_or(override_url).to_owned()
    }
}

/// What every provider is built with.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The HTTP client.
    pub http: HttpClient,
    /// Token URLs whose server refused HTTP Basic client authentication, remembered so the
    /// next exchange sends the credentials in the body straight away.
    body_auth: Arc<Mutex<HashMap<String, bool>>>,
    /// OpenID Connect discovery results by issuer.
    pub discovery: google::DiscoveryCache,
}

impl Shared {
    /// Shared state around one HTTP client.
    #[must_use]
    pub fn new(http: HttpClient) -> Self {
        Self { http, body_auth: Arc::default(), discovery: google::DiscoveryCache::default() }
    }

    fn prefers_body_auth(&self, token_url: &str) -> bool {
        self.body_auth.lock().map(|m| m.get(token_url).copied().unwrap_or(false)).unwrap_or(false)
    }

    fn remember_body_auth(&self, token_url: &str) {
        if let Ok(mut m) = self.body_auth.lock() {
            m.insert(token_url.to_owned(), true);
        }
    }
}

/// A provider adapter: a name and a constructor, besides the port's methods.
pub trait Provider: ExternalProvider + Sized + 'static {
    /// The lower-case name used in `?provider=`, settings and `app_metadata.provider`.
    const NAME: &'static str;

    /// Builds the provider from its settings.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when a URL is malformed.
    fn build(settings: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError>;
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// An `oauth2` client with what upstream's providers share: the authorization URL (with
/// PKCE when the provider accepts it), the code exchange, and API calls with the token.
#[derive(Clone, Debug)]
pub struct OAuthCore {
    client: Client,
    token_url: String,
    scopes: &'static [&'static str],
    pkce: bool,
    shared: Shared,
}

fn config_error(what: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Config(format!("{what} is not a valid URL: {e}"))
}

impl OAuthCore {
    /// A client for these endpoints and scopes. `pkce`: whether the provider accepts
    /// PKCE (RFC 7636); it is then sent with every authorization request.
    ///
    /// # Errors
    /// [`ProviderError::Config`] when a URL does not parse.
    pub fn new(
        settings: &ProviderSettings,
        auth_url: &str,
        token_url: &str,
        scopes: &'static [&'static str],
        pkce: bool,
        shared: &Shared,
    ) -> Result<Self, ProviderError> {
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::new(auth_url.to_owned()).map_err(|e| config_error("the authorization URL", e))?)
            .set_token_uri(TokenUrl::new(token_url.to_owned()).map_err(|e| config_error("the token URL", e))?)
            .set_redirect_uri(RedirectUrl::new(settings.redirect_uri.clone()).map_err(|e| config_error("the redirect URI", e))?);
        Ok(Self { client, token_url: token_url.to_owned(), scopes, pkce, shared: shared.clone() })
    }

    /// The authorization URL: `client_id`, `redirect_uri`, `response_type=code`, the
    /// scopes, `state`, and the PKCE challenge when the provider accepts PKCE.
    #[must_use]
    pub fn authorize_url(&self, request: &AuthorizeRequest) -> String {
        let state = request.state.clone();
        let mut req = self.client.authorize_url(move || CsrfToken::new(state));
        for s in self.scopes {
            req = req.add_scope(Scope::new((*s).to_owned()));
        }
        if self.pkce {
            let verifier = PkceCodeVerifier::new(request.pkce_verifier.clone());
            req = req.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
        }
        req.url().0.to_string()
    }

    /// Exchanges the code for an access token (RFC 6749 4.1.3). Client authentication
    /// starts with HTTP Basic; a server that refuses it gets the credentials in the body
    /// once more, and that choice is remembered for its token URL (upstream's
    /// auto-detection).
    ///
    /// # Errors
    /// [`ProviderError::Exchange`] with a text free of codes and tokens.
    pub async fn exchange(&self, exchange: &CodeExchange) -> Result<SecretString, ProviderError> {
        let body_first = self.shared.prefers_body_auth(&self.token_url);
        let first = if body_first { AuthType::RequestBody } else { AuthType::BasicAuth };
        match self.exchange_with(exchange, first).await {
            Ok(token) => Ok(token),
            Err(RequestTokenError::Request(e)) => Err(ProviderError::Exchange(e.to_string())),
            Err(e) if !body_first => match self.exchange_with(exchange, AuthType::RequestBody).await {
                Ok(token) => {
                    self.shared.remember_body_auth(&self.token_url);
                    Ok(token)
                }
                Err(_) => Err(ProviderError::Exchange(exchange_error_text(&e))),
            },
            Err(e) => Err(ProviderError::Exchange(exchange_error_text(&e))),
        }
    }

    async fn exchange_with(
        &self,
        exchange: &CodeExchange,
        auth: AuthType,
    ) -> Result<SecretString, RequestTokenError<HttpError, oauth2::basic::BasicErrorResponse>> {
        let client = self.client.clone().set_auth_type(auth);
        let mut req = client.exchange_code(AuthorizationCode::new(exchange.code.clone()));
        if self.pkce {
            req = req.set_pkce_verifier(PkceCodeVerifier::new(exchange.pkce_verifier.clone()));
        }
        let token = req.request_async(&self.shared.http).await?;
        Ok(SecretString::from(token.access_token().secret().clone()))
    }

    /// `GET url` with the access token (see [`HttpClient::get_json`]).
    ///
    /// # Errors
    /// [`ProviderError::UserData`].
    pub async fn get_json<T: DeserializeOwned>(&self, url: &str, access_token: &SecretString) -> Result<T, ProviderError> {
        self.shared.http.get_json(url, access_token).await
    }
}

/// The text of a failed exchange: the server's `error` and description, or what went
/// wrong reading its answer (never the body, which might echo the code).
fn exchange_error_text<E: std::error::Error, T: oauth2::ErrorResponse>(e: &RequestTokenError<E, T>) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => format!("the token endpoint refused the code: {r}"),
        RequestTokenError::Request(inner) => inner.to_string(),
        RequestTokenError::Parse(inner, _) => format!("the token endpoint's answer could not be read: {inner}"),
        RequestTokenError::Other(s) => format!("the token endpoint's answer could not be used: {s}"),
    }
}

/// A string field of a provider's JSON, `""` when absent or not a string.
#[must_use]
pub fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// An id field that providers send as a number or a string.
#[must_use]
pub fn id_text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The `full_name`/`avatar_url` metadata pair every provider reports.
#[must_use]
pub fn name_and_avatar(full_name: String, avatar_url: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("full_name".into(), Value::String(full_name));
    m.insert("avatar_url".into(), Value::String(avatar_url));
    m
}

/// A provider's user without a stable id cannot be linked.
///
/// # Errors
/// [`ProviderError::UserData`] when `id` is empty.
pub fn require_id(id: String, provider: &str) -> Result<String, ProviderError> {
    if id.is_empty() {
        Err(ProviderError::UserData(format!("Unable to find the user id with {provider} provider")))
    } else {
        Ok(id)
    }
}

/// Registers the provider adapters: each entry is `module::Type`, where `Type`
/// implements [`Provider`]. Adding a provider is one file under `oauth/` (declared with
/// `pub mod` above) and one line here.
macro_rules! providers {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// Every provider name, in registration order.
        pub const NAMES: &[&str] = &[$(<$module::$ty as Provider>::NAME),*];

        fn build_named(name: &str, settings: &ProviderSettings, shared: &Shared) -> Option<Result<Arc<dyn ExternalProvider>, ProviderError>> {
            $(
                if name == <$module::$ty as Provider>::NAME {
                    return Some(<$module::$ty as Provider>::build(settings, shared).map(|p| Arc::new(p) as Arc<dyn ExternalProvider>));
                }
            )*
            None
        }
    };
}

providers! {
    bitbucket::Bitbucket,
    github::GitHub,
    gitlab::GitLab,
    google::Google,
    facebook::Facebook,
}

/// The registry of the providers above.
#[derive(Clone, Debug)]
pub struct OAuthRegistry {
    shared: Shared,
}

impl OAuthRegistry {
    /// A registry whose providers share `http`.
    #[must_use]
    pub fn new(http: HttpClient) -> Self {
        Self { shared: Shared::new(http) }
    }
}

impl ProviderRegistry for OAuthRegistry {
    fn knows(&self, name: &str) -> bool {
        NAMES.contains(&name)
    }

    fn build(&self, name: &str, settings: &ProviderSettings) -> Result<Arc<dyn ExternalProvider>, ProviderError> {
        build_named(name, settings, &self.shared)
            .unwrap_or_else(|| Err(ProviderError::Config(format!("Provider {name} could not be found"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ProviderSettings {
        ProviderSettings {
            client_id: "testclientid".into(),
            secret: SecretString::from("testsecret"),
            redirect_uri: "https://identity.services.netlify.com/callback".into(),
            url: url.into(),
        }
    }

    fn registry() -> OAuthRegistry {
        OAuthRegistry::new(HttpClient::new(PROVIDER_TIMEOUT).unwrap())
    }

    fn query(url: &str) -> HashMap<String, String> {
        url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
    }

    #[test]
    fn base_urls_drop_one_trailing_slash() {
        assert_eq!(base_url("", "https://gitlab.com"), "https://gitlab.com");
        assert_eq!(base_url("https://git.example.com/", "https://gitlab.com"), "https://git.example.com");
        assert_eq!(base_url("https://git.example.com//", "x"), "https://git.example.com/");
    }

    #[test]
    fn token_responses_are_normalised() {
        let j = |ct: &str, b: &str| normalise_token_response(ct, b.as_bytes()).map(|v| serde_json::from_slice::<Value>(&v).unwrap());
        assert_eq!(
            j("application/x-www-form-urlencoded; charset=utf-8", "access_token=abc&scope=user%3Aemail&token_type=bearer").unwrap(),
            serde_json::json!({"access_token": "abc", "scope": "user:email", "token_type": "bearer"})
        );
        assert_eq!(
            j("text/plain", "access_token=abc&expires_in=100").unwrap(),
            serde_json::json!({"access_token": "abc", "expires_in": 100, "token_type": "bearer"})
        );
        assert_eq!(
            j("application/json", r#"{"access_token":"t","expires_in":100000}}"#).unwrap(),
            serde_json::json!({"access_token": "t", "expires_in": 100_000, "token_type": "bearer"})
        );
        assert_eq!(j("application/json", r#"{"error":"bad_verification_code"}"#).unwrap()["error"], "bad_verification_code");
        assert!(j("text/html", "<html>").is_none());
        assert!(j("application/json", r#"{"unrelated":1}"#).is_none());
    }

    #[test]
    fn lenient_decoding_stops_after_the_first_value() {
        let v: Value = decode_lenient(br#"{"name":"Google Test"}}"#).unwrap();
        assert_eq!(v["name"], "Google Test");
        assert!(decode_lenient::<Value>(b"").is_err());
        assert!(decode_lenient::<Value>(b"{").is_err());
    }

    #[test]
    fn unknown_providers_are_refused() {
        let r = registry();
        assert!(!r.knows("external"));
        assert!(r.knows("github"));
        let err = r.build("external", &settings("")).err().unwrap();
        assert_eq!(err.to_string(), "Provider external could not be found");
        assert_eq!(NAMES, ["bitbucket", "github", "gitlab", "google", "facebook"]);
    }

    #[tokio::test]
    async fn authorize_urls_carry_upstreams_parameters_and_pkce() {
        let r = registry();
        let req = AuthorizeRequest { state: "st".into(), pkce_verifier: "v".repeat(43), nonce: "n".into() };
        for (name, host, path, scope) in [
            ("github", "github.com", "/login/oauth/authorize", "user:email"),
            ("gitlab", "gitlab.com", "/oauth/authorize", "read_user"),
            ("bitbucket", "bitbucket.org", "/site/oauth2/authorize", "account email"),
            ("facebook", "www.facebook.com", "/dialog/oauth", "email"),
        ] {
            let p = r.build(name, &settings("")).unwrap();
            let url = p.authorize_url(&req).await.unwrap();
            let parsed = url::Url::parse(&url).unwrap();
            assert_eq!((parsed.host_str(), parsed.path()), (Some(host), path), "{name}");
            let q = query(&url);
            assert_eq!(q["client_id"], "testclientid");
            assert_eq!(q["redirect_uri"], "https://identity.services.netlify.com/callback");
            assert_eq!(q["response_type"], "code");
            assert_eq!(q["scope"], scope, "{name}");
            assert_eq!(q["state"], "st");
            assert!(!url.contains(&"v".repeat(43)), "the verifier never leaves");
        }
        let gh = r.build("github", &settings("")).unwrap().authorize_url(&req).await.unwrap();
        let q = query(&gh);
        assert_eq!(q["code_challenge_method"], "S256");
        let verifier = PkceCodeVerifier::new("v".repeat(43));
        assert_eq!(&q["code_challenge"], PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str());
        let overridden = r.build("gitlab", &settings("http://127.0.0.1:9/")).unwrap().authorize_url(&req).await.unwrap();
        assert!(overridden.starts_with("http://127.0.0.1:9/oauth/authorize?"), "{overridden}");
    }
}
