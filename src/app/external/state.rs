//! The OAuth `state` of the external login (EXTERNAL.md 1.2, with WEAKNESSES.md 10 and 11
//! fixed): an HS256 JWT keyed with `OPERATOR_TOKEN` when set, else the JWT secret (never
//! an empty key), expiring after [`STATE_TTL_SECS`], single use (its `jti` is recorded
//! when the callback consumes it) and bound to the browser that started the flow (it
//! carries the SHA-256 of a random value kept in an HttpOnly cookie).
//!
//! The PKCE verifier sent to the provider and the OpenID Connect nonce are derived from
//! the key and the state's `jti` (HMAC-SHA256), so nothing about a flow is stored before
//! its callback, and neither can be computed from the state alone.

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::domain::token::constant_time_eq;

/// The JOSE `typ` of a state.
pub const STATE_TYP: &str = "gotrue-state+jwt";

/// How long a state is accepted after `/authorize`, in seconds.
pub const STATE_TTL_SECS: i64 = 600;

/// The state's claims. Upstream's (`exp`, `site_url`, `id`, `netlify_id`,
/// `function_hooks`, `provider`, `referrer`) keep their names; the invite travels as the
/// digest of its token (the provider sees the state, so the token itself stays out).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateClaims {
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// `SITE_URL` of the instance.
    #[serde(default)]
    pub site_url: String,
    /// Instance id.
    #[serde(default)]
    pub id: String,
    /// Netlify's site id (multi-instance mode; `""` otherwise).
    #[serde(default)]
    pub netlify_id: String,
    /// The request's function hooks (`{}` in single-instance mode).
    #[serde(default)]
    pub function_hooks: Map<String, Value>,
    /// The provider, lower-cased (WEAKNESSES.md 42).
    #[serde(default)]
    pub provider: String,
    /// Digest of the invite token, when the flow accepts an invite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<String>,
    /// The page to return to (same host as `SITE_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Unique id: recorded when used, and the seed of the PKCE verifier and nonce.
    #[serde(default)]
    pub jti: String,
    /// Hex SHA-256 of the browser-binding cookie's value.
    #[serde(default)]
    pub bnd: String,
    /// The client's PKCE challenge (S256) when it asked for an authorization code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
}

/// 32 random bytes, base64url without padding (43 characters).
#[must_use]
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The binding claim for a cookie value.
#[must_use]
pub fn binding_hash(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

/// Signs the claims.
///
/// # Errors
/// The signing library's error.
pub fn sign(claims: &StateClaims, key: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::HS256);
    // RFC 8725 3.11: explicit typing, so that a state is never taken for an access token.
    header.typ = Some(STATE_TYP.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key))
}

/// Verifies a state: HS256 only, signature, `exp` against `now`, a provider present.
///
/// # Errors
/// The reason, for `OAuth state is invalid: <reason>`.
pub fn verify(state: &str, key: &[u8], now: i64) -> Result<StateClaims, String> {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<StateClaims>(state, &DecodingKey::from_secret(key), &v)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature is invalid".to_owned(),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "signing method is invalid".to_owned(),
            _ => e.to_string(),
        })?
        .claims;
    if claims.exp < now {
        return Err("token is expired".into());
    }
    if claims.provider.is_empty() {
        return Err("missing provider".into());
    }
    if claims.jti.is_empty() || claims.bnd.is_empty() {
        return Err("not issued by this server".into());
    }
    Ok(claims)
}

/// Whether the browser's cookie value is the one the state was issued to.
#[must_use]
pub fn bound_to(claims: &StateClaims, cookie_value: Option<&str>) -> bool {
    cookie_value.is_some_and(|v| constant_time_eq(binding_hash(v).as_bytes(), claims.bnd.as_bytes()))
}

fn derive(key: &[u8], label: &str, jti: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(label.as_bytes());
    mac.update(&[0]);
    mac.update(jti.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// The PKCE verifier sent to the provider for this state (43 unreserved characters, as
/// RFC 7636 4.1 requires).
#[must_use]
pub fn provider_pkce_verifier(key: &[u8], jti: &str) -> String {
    derive(key, "gotrue-rs pkce", jti)
}

/// The OpenID Connect nonce for this state.
#[must_use]
pub fn nonce(key: &[u8], jti: &str) -> String {
    derive(key, "gotrue-rs nonce", jti)
}

/// Whether a client's `code_challenge` can be an S256 challenge: base64url of 32 bytes.
#[must_use]
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 4.6: `BASE64URL(SHA256(verifier)) == challenge`, for a verifier of 43 to 128
/// unreserved characters.
#[must_use]
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> StateClaims {
        StateClaims {
            exp: 1_000,
            site_url: "https://example.netlify.com".into(),
            id: uuid::Uuid::nil().to_string(),
            provider: "github".into(),
            jti: "j1".into(),
            bnd: binding_hash("cookie"),
            ..StateClaims::default()
        }
    }

    #[test]
    fn signed_states_verify_until_they_expire() {
        let s = sign(&claims(), b"key").unwrap();
        assert_eq!(verify(&s, b"key", 1_000).unwrap(), claims());
        assert_eq!(verify(&s, b"key", 1_001).unwrap_err(), "token is expired");
        assert_eq!(verify(&s, b"other", 10).unwrap_err(), "signature is invalid");
    }

    #[test]
    fn tampered_or_foreign_states_are_refused() {
        let s = sign(&claims(), b"key").unwrap();
        let mut parts: Vec<String> = s.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c.provider = "gitlab".into();
        parts[1] = sign(&c, b"key").unwrap().split('.').nth(1).unwrap().to_owned();
        assert!(verify(&parts.join("."), b"key", 10).is_err(), "claims swapped under the old signature");
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(), &EncodingKey::from_secret(b"key")).unwrap();
        assert_eq!(verify(&hs512, b"key", 10).unwrap_err(), "signing method is invalid");
        let mut no_provider = claims();
        no_provider.provider.clear();
        assert_eq!(verify(&sign(&no_provider, b"key").unwrap(), b"key", 10).unwrap_err(), "missing provider");
        let mut upstreams = claims();
        upstreams.bnd.clear();
        assert!(verify(&sign(&upstreams, b"key").unwrap(), b"key", 10).is_err(), "an upstream state is not bound");
        assert!(verify("not.a.jwt", b"key", 10).is_err());
    }

    #[test]
    fn binding_needs_the_same_cookie() {
        let c = claims();
        assert!(bound_to(&c, Some("cookie")));
        assert!(!bound_to(&c, Some("other")));
        assert!(!bound_to(&c, None));
    }

    #[test]
    fn derived_values_depend_on_key_and_jti_and_are_valid_verifiers() {
        let v = provider_pkce_verifier(b"key", "j1");
        assert_eq!(v.len(), 43);
        assert!(pkce_matches(&v, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()))));
        assert_ne!(v, provider_pkce_verifier(b"key", "j2"));
        assert_ne!(v, provider_pkce_verifier(b"other", "j1"));
        assert_ne!(v, nonce(b"key", "j1"));
    }

    #[test]
    fn pkce_s256_per_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_matches("short", challenge));
        assert!(!valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="));
        assert!(!valid_challenge("abc"));
    }
}
