//! External identity providers (OAuth 2.0 / OpenID Connect): where to send the browser,
//! and what the provider says about its user once it comes back with a code.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::domain::identity::ProviderUser;

/// One provider's settings (`GOTRUE_EXTERNAL_<NAME>_*`), already checked for presence.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub secret: SecretString,
    /// Our `/callback` URL as registered with the provider.
    pub redirect_uri: String,
    /// Base URL override (`""`: the provider's public hosts).
    pub url: String,
}

/// What goes into the authorization URL besides the provider's own parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// The signed `state`.
    pub state: String,
    /// PKCE verifier (RFC 7636 4.1); its S256 challenge is sent to providers that accept
    /// PKCE, the verifier itself only with the code exchange.
    pub pkce_verifier: String,
    /// OpenID Connect `nonce`, for providers that issue ID tokens.
    pub nonce: String,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest").finish_non_exhaustive()
    }
}

/// What the callback brings back, to turn into the provider's user. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeExchange {
    /// The authorization code.
    pub code: String,
    /// PKCE verifier matching the challenge sent with the authorization request.
    pub pkce_verifier: String,
    /// The nonce sent with the authorization request (checked against the ID token).
    pub nonce: String,
}

impl std::fmt::Debug for CodeExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeExchange").finish_non_exhaustive()
    }
}

/// A provider could not be used or did not deliver a user. The texts never contain codes
/// or tokens.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider cannot be built from its settings (answered as
    /// `Unsupported provider: <reason>`).
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached to learn its endpoints or keys (OpenID Connect
    /// discovery).
    #[error("{0}")]
    Unavailable(String),
    /// The code could not be exchanged for a token (or, for OpenID Connect, the ID token
    /// failed its checks).
    #[error("{0}")]
    Exchange(String),
    /// The provider's user or emails could not be read, or carry no usable address.
    #[error("{0}")]
    UserData(String),
}

/// One configured provider.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ExternalProvider: Send + Sync {
    /// The authorization URL to send the browser to.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] when the provider's endpoints cannot be learnt
    /// (OpenID Connect discovery).
    async fn authorize_url(&self, request: &AuthorizeRequest) -> Result<String, ProviderError>;

    /// Exchanges the code and reads the provider's user.
    ///
    /// # Errors
    /// [`ProviderError::Exchange`] when the exchange (or ID-token verification) fails,
    /// [`ProviderError::UserData`] when the user cannot be read or has no address.
    async fn user(&self, exchange: &CodeExchange) -> Result<ProviderUser, ProviderError>;
}

/// Builds providers by name from their settings.
#[cfg_attr(test, mockall::automock)]
pub trait ProviderRegistry: Send + Sync {
    /// Whether a provider of this (lower-case) name exists.
    fn knows(&self, name: &str) -> bool;

    /// Builds provider `name`.
    ///
    /// # Errors
    /// [`ProviderError::Config`] for an unknown name or unusable settings.
    fn build(&self, name: &str, settings: &ProviderSettings) -> Result<Arc<dyn ExternalProvider>, ProviderError>;
}
