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
    /// The refresh-token session the token was issued with (ours, after upstream's claims;
    /// omitted when there is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Signs an access token for `user`, expiring at `exp`.
///
/// # Errors
/// The signing library's error.
pub fn sign(user: &User, exp: i64, session_id: Option<uuid::Uuid>, secret: &[u8]) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KID.to_owned());
    let claims = AccessClaims {
        aud: &user.aud,
        exp,
        sub: user.id.to_string(),
        email: &user.email,
        app_metadata: &user.app_metadata,
        user_metadata: &user.user_metadata,
        session_id: session_id.map(|s| s.to_string()),
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
    /// The session the token was issued with (absent from tokens minted elsewhere).
    #[serde(default)]
    pub session_id: Option<Value>,
    #[serde(default)]
    exp: Option<Value>,
    /// Present only in webhook signatures (the body digest): never an access token.
    #[serde(default)]
    sha256: Option<Value>,
    /// Present only in OAuth states (the browser binding): never an access token.
    #[serde(default)]
    bnd: Option<Value>,
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

    /// The `session_id` claim when it is a UUID.
    #[must_use]
    pub fn session_id(&self) -> Option<uuid::Uuid> {
        self.session_id.as_ref().and_then(Value::as_str).and_then(|s| uuid::Uuid::parse_str(s).ok())
    }
}

/// Verifies an access token (RFC 8725): HS256 only (3.1), header `typ` absent or `JWT`,
/// signature, `exp` required and not past, `iat`/`nbf` not in the future, `aud` a string
/// when present and equal to `expected_aud` when the request names one (3.9), and none of
/// the claims that mark our other JWTs (3.11: `sha256` of webhook signatures, `bnd` of
/// OAuth states), since those may be signed with the same secret.
///
/// # Errors
/// A message suitable for `Invalid token: <reason>`.
pub fn verify(token: &str, secret: &[u8], now: i64, expected_aud: Option<&str>) -> Result<VerifiedClaims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::HS256 {
        return Err("signing method is invalid".into());
    }
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err("token type is not an access token".into());
    }
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
    if c.sha256.is_some() || c.bnd.is_some() {
        return Err("token type is not an access token".into());
    }
    if let Some(a) = &c.aud {
        if !a.is_string() {
            return Err("aud claim must be a string".into());
        }
    }
    if let Some(expected) = expected_aud.filter(|a| !a.is_empty()) {
        if !c.aud().is_empty() && c.aud() != expected {
            return Err("token audience does not match the request audience".into());
        }
    }
    let exp = c.exp.as_ref().ok_or_else(|| "token has no exp claim".to_owned())?;
    let exp = exp.as_f64().ok_or_else(|| "exp claim must be a number".to_owned())?;
    if exp < now as f64 {
        return Err("token is expired".into());
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
        let t = sign(&user(), 4_000_000_000, None, b"secret").unwrap();
        assert_eq!(part(&t, 0)["kid"], "nf-ident");
        assert_eq!(part(&t, 1)["aud"], "myapp");
        let keys: Vec<String> = part(&t, 1).as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 6);
        let c = verify(&t, b"secret", 1, None).unwrap();
        assert_eq!(c.aud(), "myapp");
    }

    #[test]
    fn the_session_id_claim_comes_after_upstreams_claims() {
        let sid = Uuid::new_v4();
        let t = sign(&user(), 4_000_000_000, Some(sid), b"secret").unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.split('.').nth(1).unwrap()).unwrap();
        let raw = String::from_utf8(raw).unwrap();
        let order: Vec<usize> = ["\"aud\"", "\"exp\"", "\"sub\"", "\"email\"", "\"app_metadata\"", "\"user_metadata\"", "\"session_id\""]
            .iter()
            .map(|k| raw.find(k).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{raw}");
        assert_eq!(verify(&t, b"secret", 1, None).unwrap().session_id(), Some(sid));
    }

    #[test]
    fn rejects_wrong_key_expired_and_array_aud() {
        let t = sign(&user(), 100, None, b"secret").unwrap();
        assert!(verify(&t, b"other", 1, None).is_err());
        assert_eq!(verify(&t, b"secret", 101, None).unwrap_err(), "token is expired");
        let arr = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "aud": ["a"]}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(verify(&arr, b"secret", 1, None).is_err());
        let hs512 =
            jsonwebtoken::encode(&Header::new(Algorithm::HS512), &serde_json::json!({"sub": "x"}), &EncodingKey::from_secret(b"secret"))
                .unwrap();
        assert!(verify(&hs512, b"secret", 1, None).is_err());
        let future = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "iat": 500, "exp": 1000}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(verify(&future, b"secret", 1, None).is_err());
    }

    fn hs256(header: &Value, claims: &Value, key: &[u8]) -> String {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", b64(header), b64(claims));
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key).unwrap();
        hmac::Mac::update(&mut mac, input.as_bytes());
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac::Mac::finalize(mac).into_bytes());
        format!("{input}.{sig}")
    }

    const NOW: i64 = 1_700_000_000;

    fn claims() -> Value {
        serde_json::json!({"sub": Uuid::nil().to_string(), "aud": "myapp", "email": "", "exp": NOW + 60})
    }

    #[test]
    fn operator_minted_upstream_format_tokens_stay_valid() {
        let system =
            hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &serde_json::json!({"sub": "0", "exp": NOW + 60}), b"secret");
        assert_eq!(verify(&system, b"secret", NOW, None).unwrap().sub, "0");
        let no_typ = hs256(&serde_json::json!({"alg": "HS256"}), &claims(), b"secret");
        assert!(verify(&no_typ, b"secret", NOW, Some("myapp")).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims()));
        assert!(verify(&none, b"secret", NOW, None).is_err());
        let none_upper = format!("{}.{}.", b64(&serde_json::json!({"alg": "NONE"})), b64(&claims()));
        assert!(verify(&none_upper, b"secret", NOW, None).is_err());
    }

    #[test]
    fn hs512_and_rs_hs_confusion_are_refused() {
        let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims(), &EncodingKey::from_secret(b"secret")).unwrap();
        assert_eq!(verify(&hs512, b"secret", NOW, None).unwrap_err(), "signing method is invalid");
        // The classic confusion: an RS256 header over an HMAC made with the shared secret
        // (or a public key a server would use as one).
        let rs = hs256(&serde_json::json!({"alg": "RS256", "typ": "JWT"}), &claims(), b"secret");
        assert_eq!(verify(&rs, b"secret", NOW, None).unwrap_err(), "signing method is invalid");
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let mut c = claims();
        c.as_object_mut().unwrap().remove("exp");
        let t = hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &c, b"secret");
        assert_eq!(verify(&t, b"secret", NOW, None).unwrap_err(), "token has no exp claim");
    }

    #[test]
    fn a_wrong_audience_is_refused_when_the_request_names_one() {
        let t = hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &claims(), b"secret");
        assert!(verify(&t, b"secret", NOW, Some("myapp")).is_ok());
        assert!(verify(&t, b"secret", NOW, None).is_ok());
        assert_eq!(verify(&t, b"secret", NOW, Some("other")).unwrap_err(), "token audience does not match the request audience");
    }

    #[test]
    fn oauth_states_are_not_access_tokens() {
        let state = crate::app::external::state::StateClaims {
            exp: NOW + 60,
            provider: "github".into(),
            jti: "j".into(),
            bnd: "b".into(),
            ..Default::default()
        };
        let s = crate::app::external::state::sign(&state, b"secret").unwrap();
        assert_eq!(verify(&s, b"secret", NOW, None).unwrap_err(), "token type is not an access token");
        // Even with a plain `JWT` header, the state's binding claim gives it away.
        let plain = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &state, &EncodingKey::from_secret(b"secret")).unwrap();
        assert_eq!(verify(&plain, b"secret", NOW, None).unwrap_err(), "token type is not an access token");
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        // ASVS 9.2.1: `nbf` (and `iat`) in the future are refused like a past `exp`.
        let mut c = claims();
        c["nbf"] = serde_json::json!(NOW + 30);
        let t = hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &c, b"secret");
        assert_eq!(verify(&t, b"secret", NOW, None).unwrap_err(), "token is not valid yet");
        assert!(verify(&t, b"secret", NOW + 30, None).is_ok(), "valid from nbf on");
        let mut c = claims();
        c["exp"] = serde_json::json!(NOW - 1);
        let t = hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &c, b"secret");
        assert_eq!(verify(&t, b"secret", NOW, None).unwrap_err(), "token is expired");
    }

    #[test]
    fn keys_named_in_the_header_are_never_used() {
        // ASVS 9.1.3, RFC 8725 3.10: `jwk`, `jku`, `x5u` and `kid` do not choose the key; only
        // the configured secret verifies.
        let header = serde_json::json!({
            "alg": "HS256",
            "typ": "JWT",
            "kid": "attacker",
            "jku": "https://attacker.example/jwks.json",
            "x5u": "https://attacker.example/cert.pem",
            "jwk": {"kty": "oct", "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"attacker-key")},
        });
        let forged = hs256(&header, &claims(), b"attacker-key");
        assert_eq!(verify(&forged, b"secret", NOW, None).unwrap_err(), "signature is invalid");
        let ours = hs256(&header, &claims(), b"secret");
        assert!(verify(&ours, b"secret", NOW, None).is_ok());
    }

    #[test]
    fn tampered_claims_are_refused_before_they_are_read() {
        // ASVS 9.1.1, RFC 8725 3.3: the MAC covers header and claims.
        let t = hs256(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &claims(), b"secret");
        let mut c = claims();
        c["sub"] = serde_json::json!(Uuid::new_v4().to_string());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        let parts: Vec<&str> = t.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], b64, parts[2]);
        assert_eq!(verify(&tampered, b"secret", NOW, None).unwrap_err(), "signature is invalid");
    }
}
