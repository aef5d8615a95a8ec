//! `POST /invite` (API.md 4.7) and upstream's `api/invite_test.go` (SCENARIOS.md 13; the
//! external-provider invite scenarios belong to the external-login issue).

use serde_json::json;

use crate::{token_for, Seed, TestApp, AUD, SITE};

async fn admin_app(extra: &[(&str, &str)]) -> (TestApp, String) {
    let app = TestApp::spawn_with(extra).await;
    let u = app.seed(Seed { email: "admin@example.com", super_admin: true, ..Seed::default() }).await;
    (app, token_for(&u))
}

#[tokio::test]
async fn s13_2_invite() {
    let (app, t) = admin_app(&[("GOTRUE_JWT_DEFAULT_GROUP_NAME", "member")]).await;
    let r = app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "test@example.com", "data": {"a": 1}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["email"], "test@example.com");
    assert_eq!(r.json["aud"], AUD);
    assert_eq!(r.json["role"], "member");
    assert_eq!(r.json["user_metadata"], json!({"a": 1}));
    assert_eq!(r.json["app_metadata"], json!({"provider": "email"}));
    assert!(r.json.get("invited_at").is_some());
    assert!(r.json.get("confirmation_sent_at").is_none());
    assert!(r.json.get("confirmed_at").is_none());
    let mail = app.outbox.last_to("test@example.com").unwrap();
    assert_eq!(mail.kind, gotrue::ports::mail::MailKind::Invite);
    let token = app.mailed_token("test@example.com", "invite_token");
    assert_eq!(mail.confirmation_url, format!("{SITE}/#invite_token={token}"));
    app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "TEST@example.com"})))
        .await
        .assert_error(422, "Email address already registered by another user");
    app.send(app.post("/invite").bearer_auth(&t).json(&json!({}))).await.assert_error(422, "An email address is required");
    let r = app.send(app.post("/invite").bearer_auth(&t).body("nope")).await;
    assert_eq!(r.status, 400);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Could not decode admin user params: "), "the admin check reads the body first");
    app.send(app.post("/invite").bearer_auth(&t)).await.assert_error(400, "Could not read Invite params: EOF");
    // The invited user cannot log in before accepting.
    app.login("test@example.com", "").await.assert_oauth("invalid_grant", Some("No user found with that email, or password invalid."));
}

#[tokio::test]
async fn s13_3_invite_without_access() {
    let (app, _) = admin_app(&[]).await;
    app.send(app.post("/invite").json(&json!({"email": "test@example.com", "data": {"a": 1}})))
        .await
        .assert_error(401, "This endpoint requires a Bearer token");
    assert!(app.outbox.sent().is_empty());
}

#[tokio::test]
async fn s13_4_and_5_verify_invite() {
    let (app, t) = admin_app(&[]).await;
    app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "test@example.com"}))).await;
    let token = app.mailed_token("test@example.com", "invite_token");
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(422, "Invited users must specify a password");
    let r = app.post_json("/verify", json!({"type": "signup", "token": token, "password": "testing"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["access_token"].as_str().is_some());
    assert_eq!(app.login("test@example.com", "testing").await.status, 200);
    app.post_json("/verify", json!({"type": "signup", "token": token, "password": "again"})).await.assert_error(404, "User not found");
}

#[tokio::test]
async fn invites_work_with_signups_and_the_email_provider_disabled() {
    let (app, t) = admin_app(&[("GOTRUE_DISABLE_SIGNUP", "true"), ("GOTRUE_EXTERNAL_EMAIL_DISABLED", "true")]).await;
    let r = app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "test@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn invites_go_to_the_request_audience_within_the_admins() {
    let (app, t) = admin_app(&[("GOTRUE_OPERATOR_TOKEN", "foobar")]).await;
    let r = app.send(app.post("/invite").bearer_auth(&t).header("X-JWT-AUD", "other").json(&json!({"email": "o@example.com"}))).await;
    assert_eq!(r.json["aud"], "other", "a super admin invites into any audience");
    let r = app.send(app.post("/invite").bearer_auth("foobar").json(&json!({"email": "op@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let boss = app.seed(Seed { email: "boss@example.com", role: "admin", ..Seed::default() }).await;
    let tb = token_for(&boss);
    assert_eq!(app.send(app.post("/invite").bearer_auth(&tb).json(&json!({"email": "m@example.com"}))).await.status, 200);
    // The body's `aud` satisfies the admin check, but the invite would land in the header's.
    app.send(app.post("/invite").bearer_auth(&tb).header("X-JWT-AUD", "other").json(&json!({"email": "x@example.com", "aud": AUD})))
        .await
        .assert_error(401, "User not allowed");
}

#[tokio::test]
async fn a_failed_invite_mail_leaves_no_user_and_no_audit_entry() {
    let (app, t) = admin_app(&[]).await;
    app.outbox.set_failing(true);
    app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "test@example.com"})))
        .await
        .assert_error(500, "Error inviting user");
    let r = app.send(app.get("/admin/audit").bearer_auth(&t)).await;
    assert_eq!(r.text, "[]");
    let r = app.send(app.get("/admin/users?filter=test@").bearer_auth(&t)).await;
    assert_eq!(r.json["users"], json!([]));
    app.outbox.set_failing(false);
    let r = app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "test@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}
