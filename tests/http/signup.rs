use serde_json::json;

use crate::{TestApp, AUD, SITE};

#[tokio::test]
async fn signup_creates_an_unconfirmed_user_and_mails_a_link() {
    let app = TestApp::spawn().await;
    let r = app.post_json("/signup", json!({"email": "test@example.com", "password": "test", "data": {"a": 1}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json["email"], "test@example.com");
    assert_eq!(r.json["aud"], AUD);
    assert_eq!(r.json["role"], "");
    assert_eq!(r.json["user_metadata"]["a"], 1);
    assert_eq!(r.json["app_metadata"]["provider"], "email");
    assert!(r.json.get("confirmation_sent_at").is_some());
    assert!(r.json.get("confirmed_at").is_none());
    assert!(r.json.get("access_token").is_none());
    for secret in ["encrypted_password", "confirmation_token", "password"] {
        assert!(r.json.get(secret).is_none(), "{secret} leaked");
    }
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "{keys:?}");
    let mail = app.outbox.last_to("test@example.com").unwrap();
    assert_eq!(mail.kind, gotrue::ports::mail::MailKind::Confirmation);
    let token = app.mailed_token("test@example.com", "confirmation_token");
    assert_eq!(token.len(), 22);
    assert_eq!(mail.confirmation_url, format!("{SITE}/#confirmation_token={token}"));
}

#[tokio::test]
async fn signup_field_names_match_case_insensitively_and_trailing_bytes_are_ignored() {
    let app = TestApp::spawn().await;
    let r = app.send(app.post("/signup").body(r#"{"EMAIL":"Mixed@Example.com","Password":"pw"}}"#)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["email"], "Mixed@Example.com", "the address keeps its case");
}

#[tokio::test]
async fn signup_errors_follow_the_spec() {
    let app = TestApp::spawn().await;
    app.send(app.post("/signup")).await.assert_error(400, "Could not read Signup params: EOF");
    let r = app.send(app.post("/signup").body("{not json")).await;
    assert_eq!(r.status, 400);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Could not read Signup params: "));
    let r = app.send(app.post("/signup").body(r#"{"email": 5}"#)).await;
    assert_eq!(r.status, 400);
    app.post_json("/signup", json!({"email": "a@example.com"})).await.assert_error(422, "Signup requires a valid password");
    app.post_json("/signup", json!({"email": "", "password": "x"})).await.assert_error(422, "An email address is required");
    let r = app.post_json("/signup", json!({"email": "not-an-email", "password": "x"})).await;
    assert_eq!(r.status, 422);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Unable to validate email address: "), "{}", r.text);
    let long = format!("{}@example.com", "a".repeat(300));
    assert_eq!(app.post_json("/signup", json!({"email": long, "password": "x"})).await.status, 422);
}

#[tokio::test]
async fn signup_of_a_confirmed_address_is_refused_in_any_case() {
    let app = TestApp::spawn().await;
    app.confirmed_user("dup@example.com", "pw").await;
    app.signup("dup@example.com", "pw").await.assert_error(400, "A user with this email address has already been registered");
    app.signup(" DUP@example.COM ", "other").await.assert_error(400, "A user with this email address has already been registered");
}

#[tokio::test]
async fn signing_up_again_unconfirmed_resends_only_after_the_interval() {
    let app = TestApp::spawn().await;
    assert_eq!(app.signup("again@example.com", "pw").await.status, 200);
    assert_eq!(app.outbox.sent().len(), 1);
    assert_eq!(app.signup("again@example.com", "pw").await.status, 200);
    assert_eq!(app.outbox.sent().len(), 1, "within SMTP_MAX_FREQUENCY nothing is re-sent");
    let first = app.mailed_token("again@example.com", "confirmation_token");
    app.sql(&format!("UPDATE users SET confirmation_sent_at = '{}'", TestApp::ago(20 * 60))).await;
    assert_eq!(app.signup("again@example.com", "pw").await.status, 200);
    assert_eq!(app.outbox.sent().len(), 2);
    let second = app.mailed_token("again@example.com", "confirmation_token");
    assert_ne!(first, second);
    let r = app.post_json("/verify", json!({"type": "signup", "token": first})).await;
    r.assert_error(404, "User not found");
    assert_eq!(app.post_json("/verify", json!({"type": "signup", "token": second})).await.status, 200);
}

#[tokio::test]
async fn re_signup_merges_data_only_for_the_owner_of_the_password() {
    let app = TestApp::spawn().await;
    app.post_json("/signup", json!({"email": "m@example.com", "password": "right", "data": {"full_name": "Ann"}})).await;
    let r = app.post_json("/signup", json!({"email": "m@example.com", "password": "wrong", "data": {"full_name": "Mallory"}})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["user_metadata"]["full_name"], "Ann");
    let r = app.post_json("/signup", json!({"email": "m@example.com", "password": "right", "data": {"age": 3}})).await;
    assert_eq!(r.json["user_metadata"]["full_name"], "Ann");
    assert_eq!(r.json["user_metadata"]["age"], 3);
}

#[tokio::test]
async fn autoconfirm_confirms_at_signup_and_login_works_at_once() {
    let app = TestApp::spawn_with(&[("GOTRUE_MAILER_AUTOCONFIRM", "true"), ("GOTRUE_JWT_DEFAULT_GROUP_NAME", " member ")]).await;
    let r = app.signup("auto@example.com", "pw").await;
    assert_eq!(r.status, 200);
    assert!(r.json.get("confirmed_at").is_some());
    assert_eq!(r.json["role"], "member");
    assert!(app.outbox.sent().is_empty());
    assert_eq!(app.login("auto@example.com", "pw").await.status, 200);
}

#[tokio::test]
async fn disabled_signup_answers_403_before_reading_the_body() {
    let app = TestApp::spawn_with(&[("GOTRUE_DISABLE_SIGNUP", "true")]).await;
    app.send(app.post("/signup").body("garbage")).await.assert_error(403, "Signups not allowed for this instance");
}

#[tokio::test]
async fn disabled_email_provider_refuses_email_endpoints() {
    let app = TestApp::spawn_with(&[("GOTRUE_EXTERNAL_EMAIL_DISABLED", "true")]).await;
    app.signup("x@example.com", "pw").await.assert_error(400, "Unsupported email provider");
    app.post_json("/recover", json!({"email": "x@example.com"})).await.assert_error(400, "Unsupported email provider");
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]))
        .await
        .assert_error(400, "Unsupported email provider");
    let s = app.send(app.get("/settings")).await;
    assert_eq!(s.json["external"]["email"], false);
}

#[tokio::test]
async fn x_jwt_aud_chooses_the_audience() {
    let app = TestApp::spawn_with(&[("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    let r = app.send(app.post("/signup").header("X-JWT-AUD", "myapp").json(&json!({"email": "aud@example.com", "password": "pw"}))).await;
    assert_eq!(r.json["aud"], "myapp");
    // The same address in the default audience is another account.
    assert_eq!(app.signup("aud@example.com", "pw2").await.status, 200);
    let t = app
        .send(app.post("/token").header("X-JWT-AUD", "myapp").form(&[
            ("grant_type", "password"),
            ("username", "aud@example.com"),
            ("password", "pw"),
        ]))
        .await;
    assert_eq!(t.status, 200);
    assert_eq!(crate::jwt_part(t.json["access_token"].as_str().unwrap(), 1)["aud"], "myapp");
    app.login("aud@example.com", "pw").await.assert_oauth("invalid_grant", Some("No user found with that email, or password invalid."));
}

#[tokio::test]
async fn a_failed_mail_leaves_no_user_behind_and_signup_can_be_retried() {
    let app = TestApp::spawn().await;
    app.outbox.set_failing(true);
    let r = app.signup("fail@example.com", "pw").await;
    r.assert_error(500, "Error sending confirmation mail");
    assert_eq!(r.json["error_id"], r.header("x-request-id").unwrap());
    app.outbox.set_failing(false);
    assert_eq!(app.signup("fail@example.com", "pw").await.status, 200);
    let token = app.mailed_token("fail@example.com", "confirmation_token");
    assert_eq!(app.post_json("/verify", json!({"type": "signup", "token": token})).await.status, 200);
}

#[tokio::test]
async fn settings_report_providers_and_labels() {
    let app = TestApp::spawn_with(&[
        ("GOTRUE_EXTERNAL_GITHUB_ENABLED", "true"),
        ("GOTRUE_EXTERNAL_SAML_ENABLED", "true"),
        ("GOTRUE_EXTERNAL_SAML_NAME", "TestSamlName"),
        ("GOTRUE_MAILER_AUTOCONFIRM", "true"),
    ])
    .await;
    let r = app.send(app.get("/settings")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text,
        r#"{"external":{"bitbucket":false,"github":true,"gitlab":false,"google":false,"facebook":false,"email":true,"saml":true},"external_labels":{"saml":"TestSamlName"},"disable_signup":false,"autoconfirm":true}"#
    );
}
