//! Google Sign-In over OpenID Connect (issue 7, replacing upstream's userinfo call of
//! EXTERNAL.md 2.5): the endpoints and keys come from discovery at the issuer
//! (`https://accounts.google.com`, or `GOTRUE_EXTERNAL_GOOGLE_URL`), the scopes are
//! `openid email profile`, and the user is read from the ID token, whose signature,
//! issuer, audience, expiry and nonce are all checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreIdTokenClaims, CoreProviderMetadata};
use openidconnect::{
    AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::{base_url, exchange_error_text, name_and_avatar, Provider, Shared};
use crate::domain::identity::{ProviderEmail, ProviderUser};
use crate::ports::external::{AuthorizeRequest, CodeExchange, ExternalProvider, ProviderError, ProviderSettings};

/// How long a discovery document (and the signing keys it led to) is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Keys are fetched again when a signature fails to verify, at most this often.
const KEY_REFRESH_MIN_AGE: Duration = Duration::from_secs(30);

/// Discovery documents with their keys, by issuer, shared by every request.
#[derive(Clone, Default)]
pub struct DiscoveryCache {
    inner: Arc<Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>>,
}

impl std::fmt::Debug for DiscoveryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryCache").finish_non_exhaustive()
    }
}

impl DiscoveryCache {
    fn get(&self, issuer: &str, max_age: Duration) -> Option<CoreProviderMetadata> {
        let map = self.inner.lock().ok()?;
        map.get(issuer).filter(|(at, _)| at.elapsed() < max_age).map(|(_, m)| m.clone())
    }

    fn put(&self, issuer: &str, metadata: CoreProviderMetadata) {
        if let Ok(mut map) = self.inner.lock() {
            map.insert(issuer.to_owned(), (Instant::now(), metadata));
        }
    }
}

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// Google as an OpenID Connect provider.
#[derive(Debug)]
pub struct Google {
    settings: ProviderSettings,
    issuer: IssuerUrl,
    shared: Shared,
}

impl Provider for Google {
    const NAME: &'static str = "google";

    fn build(s: &ProviderSettings, shared: &Shared) -> Result<Self, ProviderError> {
        let issuer = IssuerUrl::new(base_url(&s.url, "https://accounts.google.com"))
            .map_err(|e| ProviderError::Config(format!("the issuer URL is not valid: {e}")))?;
        RedirectUrl::new(s.redirect_uri.clone()).map_err(|e| ProviderError::Config(format!("the redirect URI is not valid: {e}")))?;
        Ok(Self { settings: s.clone(), issuer, shared: shared.clone() })
    }
}

impl Google {
    /// The issuer's discovery document, from the cache unless it is older than `max_age`.
    async fn metadata(&self, max_age: Duration) -> Result<CoreProviderMetadata, ProviderError> {
        if let Some(m) = self.shared.discovery.get(self.issuer.as_str(), max_age) {
            return Ok(m);
        }
        let m = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.shared.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("OpenID Connect discovery at {} failed: {e}", self.issuer.as_str())))?;
        self.shared.discovery.put(self.issuer.as_str(), m.clone());
        Ok(m)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Result<Client, ProviderError> {
        // client_secret_basic is the default when the issuer lists no methods (OpenID
        // Connect Discovery 1.0, section 3).
        let basic = metadata
            .token_endpoint_auth_methods_supported()
            .is_none_or(|methods| methods.contains(&CoreClientAuthMethod::ClientSecretBasic));
        let redirect = RedirectUrl::new(self.settings.redirect_uri.clone())
            .map_err(|e| ProviderError::Config(format!("the redirect URI is not valid: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.secret.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(if basic { AuthType::BasicAuth } else { AuthType::RequestBody }))
    }
}

/// Maps verified ID-token claims to the provider's user.
///
/// # Errors
/// [`ProviderError::UserData`] when the token carries no email.
pub fn user_from_claims(claims: &CoreIdTokenClaims) -> Result<ProviderUser, ProviderError> {
    let email = claims.email().map(|e| e.as_str().to_owned()).unwrap_or_default();
    if email.is_empty() {
        return Err(ProviderError::UserData("Unable to find email with Google provider".into()));
    }
    let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()).unwrap_or_default();
    let picture = claims.picture().and_then(|p| p.get(None)).map(|p| p.as_str().to_owned()).unwrap_or_default();
    let profile = match serde_json::to_value(claims) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    Ok(ProviderUser {
        id: claims.subject().as_str().to_owned(),
        emails: vec![ProviderEmail { address: email, verified: claims.email_verified().unwrap_or(false), primary: true }],
        metadata: name_and_avatar(name, picture),
        profile,
    })
}

#[async_trait]
impl ExternalProvider for Google {
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError> {
        let client = self.client(self.metadata(DISCOVERY_TTL).await?)?;
        let (state, nonce) = (request.state.clone(), request.nonce.clone());
        let verifier = PkceCodeVerifier::new(request.pkce_verifier.clone());
        let (url, _, _) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, move || CsrfToken::new(state), move || Nonce::new(nonce))
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier))
            .url();
        Ok(url.to_string())
    }

    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError> {
        let client = self.client(self.metadata(DISCOVERY_TTL).await?)?;
        let token = client
            .exchange_code(AuthorizationCode::new(exchange.code.clone()))
            .map_err(|e| ProviderError::Exchange(format!("the issuer has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(exchange.pkce_verifier.clone()))
            .request_async(&self.shared.http)
            .await
            .map_err(|e| ProviderError::Exchange(exchange_error_text(&e)))?;
        let id_token =
            token.extra_fields().id_token().ok_or_else(|| ProviderError::Exchange("the token response carries no ID token".into()))?;
        let nonce = Nonce::new(exchange.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(c) => c.clone(),
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                // The issuer may have rotated its keys since discovery: fetch them again
                // (at most every few seconds) and verify once more.
                let fresh = self.client(self.metadata(KEY_REFRESH_MIN_AGE).await?)?;
                let verifier = fresh.id_token_verifier();
                let verified = id_token.claims(&verifier, &nonce).cloned();
                verified.map_err(|e| ProviderError::Exchange(format!("the ID token was refused: {e}")))?
            }
            Err(e) => return Err(ProviderError::Exchange(format!("the ID token was refused: {e}"))),
        };
        user_from_claims(&claims)
    }
}
