use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn confirmation_logs_in_and_is_single_use() {
    let app = TestApp::spawn().await;
    app.signup("v@example.com", "pw").await;
    let token = app.mailed_token("v@example.com", "confirmation_token");
    let r = app.post_json("/verify", json!({"type": "signup", "token": token})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "bearer");
    let me = app.send(app.get("/user").bearer_auth(r.json["access_token"].as_str().unwrap())).await;
    assert!(me.json.get("confirmed_at").is_some());
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(404, "User not found");
}

#[tokio::test]
async fn blank_tokens_and_bad_types_are_refused_before_any_lookup() {
    let app = TestApp::spawn().await;
    for (t, kind) in [(" ", "signup"), (" ", "recovery"), ("\t", "signup"), ("   ", "signup"), ("", "signup")] {
        app.post_json("/verify", json!({"type": kind, "token": t})).await.assert_error(422, "Verify requires a token");
    }
    app.post_json("/verify", json!({"type": "magic", "token": "abc"})).await.assert_error(422, "Verify requires a verification type");
    app.post_json("/verify", json!({"token": "abc"})).await.assert_error(422, "Verify requires a verification type");
    app.send(app.post("/verify")).await.assert_error(400, "Could not read verification params: EOF");
    app.post_json("/verify", json!({"type": "signup", "token": "unknown-token"})).await.assert_error(404, "User not found");
}

#[tokio::test]
async fn an_expired_confirmation_is_refused() {
    let app = TestApp::spawn().await;
    app.signup("late@example.com", "pw").await;
    let token = app.mailed_token("late@example.com", "confirmation_token");
    app.sql(&format!("UPDATE users SET confirmation_sent_at = '{}'", TestApp::ago(48 * 3600))).await;
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(422, "Confirmation token expired");
}

#[tokio::test]
async fn recovery_logs_in_confirms_and_expires() {
    let app = TestApp::spawn().await;
    app.signup("rec@example.com", "pw").await;
    assert_eq!(app.post_json("/recover", json!({"email": "rec@example.com"})).await.status, 200);
    let token = app.mailed_token("rec@example.com", "recovery_token");
    let r = app.send(app.post("/verify").header("X-Use-Cookie", "1").json(&json!({"type": "recovery", "token": token}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.cookies().iter().any(|c| c.starts_with("nf_jwt=ey")));
    let me = app.send(app.get("/user").bearer_auth(r.json["access_token"].as_str().unwrap())).await;
    assert!(me.json.get("confirmed_at").is_some(), "recovery confirms an unconfirmed user");
    app.post_json("/verify", json!({"type": "recovery", "token": token})).await.assert_error(404, "User not found");

    app.sql(&format!("UPDATE users SET recovery_sent_at = '{}'", TestApp::ago(3600))).await;
    app.post_json("/recover", json!({"email": "rec@example.com"})).await;
    let token = app.mailed_token("rec@example.com", "recovery_token");
    app.sql(&format!("UPDATE users SET recovery_sent_at = '{}'", TestApp::ago(48 * 3600))).await;
    app.post_json("/verify", json!({"type": "recovery", "token": token})).await.assert_error(422, "Recovery token expired");
}

#[tokio::test]
async fn an_invited_user_must_choose_a_password() {
    let app = TestApp::spawn().await;
    // An invite as upstream stores it: no password, invited_at set, the token in
    // confirmation_token (as its digest).
    app.signup("inv@example.com", "placeholder").await;
    let token = app.mailed_token("inv@example.com", "confirmation_token");
    app.sql(&format!("UPDATE users SET encrypted_password = '', invited_at = '{}', confirmation_sent_at = NULL", TestApp::ago(60))).await;
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(422, "Invited users must specify a password");
    let r = app.post_json("/verify", json!({"type": "signup", "token": token, "password": "chosen"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.login("inv@example.com", "chosen").await.status, 200);
}

#[tokio::test]
async fn an_invite_older_than_its_max_age_is_refused() {
    let app = TestApp::spawn().await;
    app.signup("old-inv@example.com", "placeholder").await;
    let token = app.mailed_token("old-inv@example.com", "confirmation_token");
    app.sql(&format!("UPDATE users SET encrypted_password = '', invited_at = '{}', confirmation_sent_at = NULL", TestApp::ago(8 * 86_400)))
        .await;
    app.post_json("/verify", json!({"type": "signup", "token": token, "password": "x"}))
        .await
        .assert_error(422, "Confirmation token expired");
}
