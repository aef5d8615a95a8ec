//! Access tokens: HS256 JWTs with upstream's header and claims (API.md 3.2-3.3).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::metadata::Metadata;
use crate::domain::user::User;

/// The fixed `kid` downstream Netlify services look for.
pub const KID: &str = "nf-ident";

/// Claims of an access token we issue, in upstream's order.
#[derive(Debug, Clone, Serialize)]
pub struct AccessClaims<'a> {
    /// Audience, a JSON string (omitted when empty).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub aud: &'a str,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// User id.
    pub sub: String,
    /// Email.
    pub email: &'a str,
    /// App metadata.
    pub app_metadata: &'a Metadata,
    /// User metadata.
    pub user_metadata: &'a Metadata,
}

/// Signs an access token for `user`, expiring at `exp`.
///
/// # Errors
/// The signing library's error.
pub fn sign(user: &User, exp: i64, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.to_owned());
    let claims = AccessClaims {
        aud: &user.aud,
        exp,
        sub: user.id.to_string(),
        email: &user.email,
        app_metadata: &user.app_metadata,
        user_metadata: &user.user_metadata,
    };
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret))
}

/// The claims of a verified access token that requests use.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct VerifiedClaims {
    /// Subject: a user id, or the system user (`0` / nil UUID).
    #[serde(default)]
    pub sub: String,
    /// Audience (must be a string when present).
    #[serde(default)]
    pub aud: Option<Value>,
    /// Email.
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    exp: Option<Value>,
    #[serde(default)]
    iat: Option<Value>,
    #[serde(default)]
    nbf: Option<Value>,
}

impl VerifiedClaims {
    /// The audience claim, `""` when absent.
    #[must_use]
    pub fn aud(&self) -> &str {
        self.aud.as_ref().and_then(Value::as_str).unwrap_or("")
    }
}

/// Verifies an HS256 token: signature, `exp` when present, `iat`/`nbf` not in the future,
/// `aud` a string when present.
///
/// # Errors
/// A message suitable for `Invalid token: <reason>`.
pub fn verify(token: &str, secret: &[u8], now: i64) -> Result<VerifiedClaims, String> {
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_aud = false;
    // `exp` is compared with the injected clock below, not the library's system clock.
    v.validate_exp = false;
    v.leeway = 0;
    let data = jsonwebtoken::decode::<VerifiedClaims>(token, &DecodingKey::from_secret(secret), &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token is expired".to_owned(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature is invalid".to_owned(),
        jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "signing method is invalid".to_owned(),
        _ => e.to_string(),
    })?;
    let c = data.claims;
    if let Some(a) = &c.aud {
        if !a.is_string() {
            return Err("aud claim must be a string".into());
        }
    }
    if let Some(exp) = &c.exp {
        let exp = exp.as_f64().ok_or_else(|| "exp claim must be a number".to_owned())?;
        if exp < now as f64 {
            return Err("token is expired".into());
        }
    }
    let future = |v: &Option<Value>| v.as_ref().and_then(Value::as_f64).is_some_and(|t| t > now as f64);
    if future(&c.iat) {
        return Err("Token used before issued".into());
    }
    if future(&c.nbf) {
        return Err("token is not valid yet".into());
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use chrono::Utc;
    use uuid::Uuid;

    fn user() -> User {
        User::new(
            Uuid::nil(),
            "myapp",
            "a@example.com",
            String::new(),
            None,
            chrono::DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap(),
        )
    }

    fn part(token: &str, i: usize) -> Value {
        let p = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
    }

    #[test]
    fn header_has_kid_and_aud_is_a_string() {
        let t = sign(&user(), 4_000_000_000, b"secret").unwrap();
        assert_eq!(part(&t, 0)["kid"], "nf-ident");
        assert_eq!(part(&t, 1)["aud"], "myapp");
        let keys: Vec<String> = part(&t, 1).as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 6);
        let c = verify(&t, b"secret", 1).unwrap();
        assert_eq!(c.aud(), "myapp");
    }

    #[test]
    fn rejects_wrong_key_expired_and_array_aud() {
        let t = sign(&user(), 100, b"secret").unwrap();
        assert!(verify(&t, b"other", 1).is_err());
        assert_eq!(verify(&t, b"secret", 101).unwrap_err(), "token is expired");
        let arr = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "aud": ["a"]}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(verify(&arr, b"secret", 1).is_err());
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &serde_json::json!({"sub": "x"}), &EncodingKey::from_secret(b"secret"))
                .unwrap();
        assert!(verify(&hs512, b"secret", 1).is_err());
        let future = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "iat": 500}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(verify(&future, b"secret", 1).is_err());
    }
}
