//! The `authorization_code` grant: a client that sends a PKCE challenge to `/authorize`
//! gets a one-time code on its redirect and redeems it at `POST /token`.

use base64::Engine as _;
use sha2::Digest as _;

use super::*;

fn pair() -> (String, String) {
    let verifier = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn code_for(app: &TestApp, challenge: &str) -> String {
    let d = app.dance_with(&Browser::default(), &format!("provider=github&code_challenge={challenge}&code_challenge_method=S256")).await;
    let loc = d.location();
    assert!(!loc.contains('#'), "no tokens in a fragment: {loc}");
    assert!(loc.starts_with(&format!("{SITE}/admin?code=")), "{loc}");
    query(&loc)["code"].clone()
}

#[tokio::test]
async fn a_code_is_exchanged_with_its_verifier_once() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        account(&app, "1", "Pat", &[("pat@example.com", true, true)]);
        let (verifier, challenge) = pair();
        let code = code_for(&app, &challenge).await;
        assert_eq!(app.count("refresh_tokens").await, 0, "no refresh token before the exchange");
        let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["token_type"], "bearer");
        assert_eq!(r.json["expires_in"], 3600);
        let me = app.get_user(r.json["access_token"].as_str().unwrap()).await;
        assert_eq!(me.json["email"], "pat@example.com");
        let again = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)]).await;
        assert_eq!((again.status, again.json["error"].as_str()), (400, Some("invalid_grant")), "{}", again.text);
        assert_eq!(again.json["error_description"], "Invalid authorization code");
    }
}

#[tokio::test]
async fn the_grant_accepts_json_bodies() {
    let app = TestApp::spawn().await;
    let (verifier, challenge) = pair();
    let code = code_for(&app, &challenge).await;
    let body = serde_json::json!({"grant_type": "authorization_code", "code": code, "code_verifier": verifier});
    let r = Browser::default().send(reqwest::Client::new().post(format!("{}/token", app.url)).json(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_wrong_verifier_burns_the_code() {
    let app = TestApp::spawn().await;
    let (verifier, challenge) = pair();
    let code = code_for(&app, &challenge).await;
    let (other, _) = pair();
    let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &other)]).await;
    assert_eq!(
        r.json,
        serde_json::json!({"error": "invalid_grant", "error_description": "code_verifier does not match the code_challenge"})
    );
    let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)]).await;
    assert_eq!(r.json["error_description"], "Invalid authorization code");
}

#[tokio::test]
async fn missing_parameters_and_expired_codes() {
    let app = TestApp::spawn().await;
    let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", "abc")]).await;
    assert_eq!(r.json, serde_json::json!({"error": "invalid_request", "error_description": "code and code_verifier are required"}));
    let (verifier, challenge) = pair();
    let code = code_for(&app, &challenge).await;
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    match &app.store {
        Store::Sqlite(s) => {
            sqlx::query("UPDATE oauth_codes SET expires_at = ?").bind(past).execute(s.pool()).await.unwrap();
        }
        Store::MySql(s) => {
            sqlx::query("UPDATE oauth_codes SET expires_at = ?").bind(past).execute(s.pool()).await.unwrap();
        }
    }
    let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)]).await;
    assert_eq!(r.json["error_description"], "Authorization code expired");
}

#[tokio::test]
async fn only_s256_challenges_are_accepted() {
    let app = TestApp::spawn().await;
    let (verifier, _) = pair();
    let r = app.authorize(&Browser::default(), &format!("provider=github&code_challenge={verifier}&code_challenge_method=plain")).await;
    r.assert_error(400, "code_challenge_method must be S256");
    let r = app.authorize(&Browser::default(), "provider=github&code_challenge=short&code_challenge_method=S256").await;
    r.assert_error(400, "code_challenge must be the base64url SHA-256 of the code_verifier");
}

#[tokio::test]
async fn the_grant_works_with_the_email_provider_disabled() {
    let app = TestApp::spawn_with(&[("GOTRUE_EXTERNAL_EMAIL_DISABLED", "true")]).await;
    let (verifier, challenge) = pair();
    let code = code_for(&app, &challenge).await;
    let r = app.post_form("/token", &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", &verifier)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post_form("/token", &[("grant_type", "password"), ("username", "a@example.com"), ("password", "x")]).await;
    r.assert_error(400, "Unsupported email provider");
}

#[tokio::test]
async fn codes_live_five_minutes() {
    // ASVS 10.4.3: an authorization code is short-lived (at most 10 minutes at level 2).
    let app = TestApp::spawn().await;
    let (_, challenge) = pair();
    code_for(&app, &challenge).await;
    let q = "SELECT created_at, expires_at FROM oauth_codes";
    let (created, expires): (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) = match &app.store {
        Store::Sqlite(s) => sqlx::query_as(q).fetch_one(s.pool()).await.unwrap(),
        Store::MySql(s) => sqlx::query_as(q).fetch_one(s.pool()).await.unwrap(),
    };
    assert_eq!((expires - created).num_seconds(), gotrue::app::external::AUTH_CODE_TTL_SECS);
    assert_eq!(gotrue::app::external::AUTH_CODE_TTL_SECS, 300);
}
