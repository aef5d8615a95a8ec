//! The `x-webhook-signature` header (HOOKS_AND_MAIL.md 1.4): a compact JWS, HS256 over the
//! signing key, whose claims bind the exact body bytes through their SHA-256.
//!
//! Upstream's claims are `iss`, `sub`, `iat`, `sha256`; we add `exp` (WEAKNESSES.md 29) so
//! that receivers using a standard JWT library refuse a replayed request after a few
//! minutes. Claims a receiver does not know are ignored by JWT libraries, so existing
//! receivers keep working.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// The issuer every signature carries.
pub const ISSUER: &str = "gotrue";

/// How long a signature stays valid, in seconds.
pub const LIFETIME_SECS: i64 = 300;

/// The JOSE header, byte for byte as upstream's JWT library writes it.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a webhook signature, in upstream's order with `exp` last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The instance id.
    pub sub: String,
    /// Signing time, seconds since the epoch.
    pub iat: i64,
    /// Lower-case hex SHA-256 of the exact request body.
    pub sha256: String,
    /// `iat` + [`LIFETIME_SECS`].
    pub exp: i64,
}

/// Lower-case hex SHA-256 of `body`.
#[must_use]
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Signs `body` for `instance_id` at `now` (seconds since the epoch).
///
/// # Errors
/// The signing library's error (an HMAC key is never refused in practice).
pub fn sign(body: &[u8], instance_id: Uuid, now: i64, key: &SecretString) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = WebhookClaims {
        iss: ISSUER.to_owned(),
        sub: instance_id.to_string(),
        iat: now,
        sha256: body_sha256(body),
        exp: now + LIFETIME_SECS,
    };
    let claims = serde_json::to_vec(&claims)?;
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key.expose_secret().as_bytes()), Algorithm::HS256)?;
    Ok(format!("{input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn part(token: &str, i: usize) -> serde_json::Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn signature_verifies_with_the_key_and_binds_the_body() {
        let key = SecretString::from("top-secret");
        let body = br#"{"event":"signup","instance_id":"00000000-0000-0000-0000-000000000000","user":{}}"#;
        let id = Uuid::new_v4();
        let now = 4_102_444_800; // 2100-01-01, so that `exp` is in the future for the check
        let token = sign(body, id, now, &key).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data = jsonwebtoken::decode::<WebhookClaims>(&token, &DecodingKey::from_secret(b"top-secret"), &v).unwrap();
        assert_eq!(
            data.claims,
            WebhookClaims { iss: "gotrue".into(), sub: id.to_string(), iat: now, sha256: body_sha256(body), exp: now + LIFETIME_SECS }
        );
        assert_eq!(data.claims.sha256, hex::encode(Sha256::digest(body)));
        assert!(jsonwebtoken::decode::<WebhookClaims>(&token, &DecodingKey::from_secret(b"other"), &v).is_err());
    }

    #[test]
    fn header_and_claim_order_are_upstreams() {
        let token = sign(b"{}", Uuid::nil(), 1_714_557_600, &SecretString::from("k")).unwrap();
        let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
        assert_eq!(header, br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(claims).unwrap(),
            format!(
                r#"{{"iss":"gotrue","sub":"00000000-0000-0000-0000-000000000000","iat":1714557600,"sha256":"{}","exp":1714557900}}"#,
                body_sha256(b"{}")
            )
        );
        assert_eq!(part(&token, 1)["sha256"], "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn an_expired_signature_is_refused_by_standard_validation() {
        let key = SecretString::from("k");
        let token = sign(b"x", Uuid::nil(), 1_000_000, &key).unwrap();
        let v = Validation::new(Algorithm::HS256);
        let err = jsonwebtoken::decode::<WebhookClaims>(&token, &DecodingKey::from_secret(b"k"), &v).unwrap_err();
        assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    }
}
