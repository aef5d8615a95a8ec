use serde_json::json;

use crate::{sign, TestApp, AUD};

fn token(t: &serde_json::Value) -> String {
    t["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn get_user_requires_a_valid_bearer_token() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/user")).await;
    r.assert_error(401, "This endpoint requires a Bearer token");
    assert!(r.cookies().iter().any(|c| c.starts_with("nf_jwt=;") && c.contains("Max-Age=0")));
    app.send(app.get("/user").header("Authorization", "Bearer  two-spaces"))
        .await
        .assert_error(401, "This endpoint requires a Bearer token");
    app.send(app.get("/user").header("Authorization", "Basic abc")).await.assert_error(401, "This endpoint requires a Bearer token");
    let r = app.send(app.get("/user").bearer_auth("not.a.jwt")).await;
    assert_eq!(r.status, 401);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Invalid token: "));
    let expired = sign(&json!({"sub": uuid::Uuid::new_v4().to_string(), "aud": AUD, "exp": 1000}));
    let r = app.send(app.get("/user").bearer_auth(expired)).await;
    assert_eq!(r.status, 401);
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": uuid::Uuid::new_v4().to_string(), "exp": 4_000_000_000i64}),
        &jsonwebtoken::EncodingKey::from_secret(b"wrong secret"),
    )
    .unwrap();
    assert_eq!(app.send(app.get("/user").bearer_auth(forged)).await.status, 401);
}

#[tokio::test]
async fn get_user_returns_the_account_and_checks_the_audience() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("me@example.com", "pw").await;
    let r = app.send(app.get("/user").bearer_auth(token(&t))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["email"], "me@example.com");
    let r = app.send(app.get("/user/").bearer_auth(token(&t))).await;
    assert_eq!(r.status, 200, "group paths also match with a trailing slash");
    app.send(app.get("/user").bearer_auth(token(&t)).header("X-JWT-AUD", "other"))
        .await
        .assert_error(400, "Token audience doesn't match request audience");
    let system = sign(&json!({"sub": "0", "aud": AUD, "exp": 4_000_000_000i64}));
    app.send(app.get("/user").bearer_auth(system)).await.assert_error(400, "Could not read User ID claim");
    let ghost = sign(&json!({"sub": uuid::Uuid::new_v4().to_string(), "aud": AUD, "exp": 4_000_000_000i64}));
    app.send(app.get("/user").bearer_auth(ghost)).await.assert_error(404, "User not found");
}

#[tokio::test]
async fn put_user_merges_metadata_and_changes_the_password() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("upd@example.com", "old").await;
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"data": {"a": 1, "b": 2}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"data": {"a": null, "c": "x"}}))).await;
    assert_eq!(r.json["user_metadata"], json!({"b": 2, "c": "x"}));
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"password": "newpass"}))).await;
    assert_eq!(r.status, 200);
    app.login("upd@example.com", "old").await.assert_oauth("invalid_grant", Some("No user found with that email, or password invalid."));
    assert_eq!(app.login("upd@example.com", "newpass").await.status, 200);
    let r = app.send(app.put("/user").bearer_auth(token(&t)).body("{bad")).await;
    assert_eq!(r.status, 400);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Could not read User Update params: "));
}

#[tokio::test]
async fn app_metadata_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("plain@example.com", "pw").await;
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"app_metadata": {"roles": ["x"]}})))
        .await
        .assert_error(401, "Updating app_metadata requires admin privileges");
    app.sql("UPDATE users SET role = 'admin'").await;
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"app_metadata": {"roles": ["x"]}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["app_metadata"], json!({"provider": "email", "roles": ["x"]}));
}

#[tokio::test]
async fn email_change_is_confirmed_with_the_mailed_token() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("before@example.com", "pw").await;
    app.confirmed_user("taken@example.com", "pw").await;
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email": "Taken@example.com"})))
        .await
        .assert_error(422, "Email address already registered by another user");
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email": "after@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["email"], "before@example.com");
    assert_eq!(r.json["new_email"], "after@example.com");
    assert!(r.json.get("email_change_sent_at").is_some());
    let mail = app.outbox.last_to("after@example.com").unwrap();
    assert_eq!(mail.kind, gotrue::ports::mail::MailKind::EmailChange);
    assert_eq!(mail.email, "before@example.com");
    assert_eq!(mail.new_email, "after@example.com");
    let change = app.mailed_token("after@example.com", "email_change_token");
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email_change_token": "wrong"})))
        .await
        .assert_error(401, "Email Change Token didn't match token on file");
    let r = app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email_change_token": change}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["email"], "after@example.com");
    assert!(r.json.get("new_email").is_none());
    assert_eq!(app.login("after@example.com", "pw").await.status, 200);
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email_change_token": change})))
        .await
        .assert_error(401, "Email Change Token didn't match token on file");
}

#[tokio::test]
async fn an_expired_email_change_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("e1@example.com", "pw").await;
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email": "e2@example.com"}))).await;
    let change = app.mailed_token("e2@example.com", "email_change_token");
    app.sql(&format!("UPDATE users SET email_change_sent_at = '{}'", TestApp::ago(48 * 3600))).await;
    app.send(app.put("/user").bearer_auth(token(&t)).json(&json!({"email_change_token": change})))
        .await
        .assert_error(422, "Email change token expired");
}

#[tokio::test]
async fn logout_revokes_refresh_tokens_and_clears_the_cookie() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("bye@example.com", "pw").await;
    let r = app.send(app.post("/logout").bearer_auth(token(&t))).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    assert!(r.cookies().iter().any(|c| c.starts_with("nf_jwt=;")));
    let rt = t["refresh_token"].as_str().unwrap();
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]))
        .await
        .assert_oauth("invalid_grant", Some("Invalid Refresh Token"));
    app.send(app.post("/logout")).await.assert_error(401, "This endpoint requires a Bearer token");
    let ghost = sign(&json!({"sub": uuid::Uuid::new_v4().to_string(), "exp": 4_000_000_000i64}));
    app.send(app.post("/logout").bearer_auth(ghost)).await.assert_error(401, "Invalid user");
    let system = sign(&json!({"sub": "0", "exp": 4_000_000_000i64}));
    assert_eq!(app.send(app.post("/logout").bearer_auth(system)).await.status, 204);
}
