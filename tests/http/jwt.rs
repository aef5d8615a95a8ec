//! RFC 8725 at the HTTP front: what is refused as a bearer token, and what stays valid.

use serde_json::json;

use crate::{sign, TestApp, AUD, SECRET};

#[tokio::test]
async fn a_webhook_signature_is_not_a_system_user_token() {
    // Netlify hands JWT_SECRET to functions for hook verification, so the webhook secret
    // may well be the JWT secret; the signature's `sub` is the instance id (the nil UUID,
    // which as an access token would be the super-admin system user).
    let app = TestApp::spawn_with(&[("GOTRUE_WEBHOOK_SECRET", SECRET)]).await;
    let key = secrecy::SecretString::from(SECRET.to_owned());
    let hook = gotrue::adapters::hooks::signature::sign(b"{}", uuid::Uuid::nil(), chrono::Utc::now().timestamp(), &key).unwrap();
    let r = app.send(app.get("/admin/users").bearer_auth(&hook)).await;
    r.assert_error(401, "Invalid token: token type is not an access token");
}

#[tokio::test]
async fn an_oauth_state_is_not_an_access_token() {
    let app = TestApp::spawn().await;
    let state = gotrue::app::external::state::StateClaims {
        exp: chrono::Utc::now().timestamp() + 60,
        provider: "github".into(),
        jti: "j".into(),
        bnd: "b".into(),
        ..Default::default()
    };
    let s = gotrue::app::external::state::sign(&state, SECRET.as_bytes()).unwrap();
    let r = app.send(app.get("/user").bearer_auth(&s)).await;
    r.assert_error(401, "Invalid token: token type is not an access token");
}

#[tokio::test]
async fn tokens_without_exp_are_refused_but_operator_minted_ones_with_exp_work() {
    let app = TestApp::spawn().await;
    let no_exp = sign(&json!({"sub": "0", "aud": AUD, "email": ""}));
    app.send(app.get("/admin/users").bearer_auth(&no_exp)).await.assert_error(401, "Invalid token: token has no exp claim");
    let system = sign(&json!({"sub": "0", "aud": AUD, "email": "", "exp": chrono::Utc::now().timestamp() + 60}));
    assert_eq!(app.send(app.get("/admin/users").bearer_auth(&system)).await.status, 200);
}

#[tokio::test]
async fn alg_none_and_hs512_are_refused() {
    use base64::Engine as _;
    let app = TestApp::spawn().await;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
    let claims = json!({"sub": "0", "aud": AUD, "exp": 4_000_000_000i64});
    let none = format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT"})), b64(claims.clone()));
    assert_eq!(app.send(app.get("/admin/users").bearer_auth(&none)).await.status, 401);
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    app.send(app.get("/admin/users").bearer_auth(&hs512)).await.assert_error(401, "Invalid token: signing method is invalid");
}

#[tokio::test]
async fn logout_checks_the_audience_the_request_names() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("aud@example.com", "long enough password").await;
    let access = t["access_token"].as_str().unwrap();
    let r = app.send(app.post("/logout").bearer_auth(access).header("X-JWT-AUD", "someone-else")).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(app.send(app.post("/logout").bearer_auth(access).header("X-JWT-AUD", AUD)).await.status, 204);
}
