//! Which endpoint fires which event, and what a receiver's answer does to the request.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{jwt_part, Answer, Receiver, TestApp};

const ALL: &str = "validate,signup,login,usermodified,userdeleted";

fn bearer(tokens: &Value) -> String {
    format!("Bearer {}", tokens["access_token"].as_str().unwrap())
}

#[tokio::test]
async fn each_event_fires_exactly_where_it_should() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, ALL, &[]).await;

    app.signup("flow@example.com", "pw").await.assert_ok();
    assert_eq!(rx.events(), ["identity_validate"]);
    // Signing up again while unconfirmed creates nothing: no validate.
    app.signup("flow@example.com", "pw").await.assert_ok();
    assert_eq!(rx.events(), ["identity_validate"]);

    let token = app.mailed_token("flow@example.com", "confirmation_token");
    app.verify("signup", &token).await.assert_ok();
    assert_eq!(rx.events(), ["identity_validate", "identity_signup"]);
    assert!(rx.calls()[1].json()["user"].get("confirmed_at").is_none(), "signup fires before the user is confirmed");

    let tokens = app.login("flow@example.com", "pw").await.assert_ok().clone();
    assert_eq!(rx.events(), ["identity_validate", "identity_signup", "identity_login"]);
    rx.clear();

    // Nothing else is hooked: refresh, PUT /user, recovery request and verification of a
    // confirmed user, logout.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])).await;
    let tokens = r.assert_ok().clone();
    let r = app
        .send(app.client.put(format!("{}/user", app.url)).header("authorization", bearer(&tokens)).json(&json!({"data": {"x": 1}})))
        .await;
    r.assert_ok();
    app.post_json("/recover", json!({"email": "flow@example.com"})).await.assert_ok();
    let recovery = app.mailed_token("flow@example.com", "recovery_token");
    app.verify("recovery", &recovery).await.assert_ok();
    let r = app.send(app.post("/logout").header("authorization", bearer(&tokens))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(rx.events().is_empty(), "{:?}", rx.events());
}

#[tokio::test]
async fn autoconfirm_signup_fires_validate_then_signup() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, ALL, &[("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    app.signup("auto@example.com", "pw").await.assert_ok();
    assert_eq!(rx.events(), ["identity_validate", "identity_signup"]);
    let validate = rx.calls()[0].json();
    assert_eq!(validate["user"].as_object().unwrap().len(), 8, "{validate}");
}

#[tokio::test]
async fn the_event_filter_is_honoured() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "signup", &[]).await;
    app.signup("f@example.com", "pw").await.assert_ok();
    assert!(rx.calls().is_empty(), "validate is not listed");
    let token = app.mailed_token("f@example.com", "confirmation_token");
    app.verify("signup", &token).await.assert_ok();
    app.login("f@example.com", "pw").await.assert_ok();
    assert_eq!(rx.events(), ["identity_signup"]);
}

#[tokio::test]
async fn a_validate_veto_leaves_no_user_and_sends_no_mail() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(403)]);
    let app = TestApp::with_hook(&rx, "validate", &[]).await;
    app.signup("veto@example.com", "pw").await.assert_error(422, "Failed to handle signup webhook");
    assert_eq!(app.users().await, 0);
    assert!(app.outbox.sent().is_empty());
    // Once the receiver agrees, the same address signs up normally.
    app.signup("veto@example.com", "pw").await.assert_ok();
    assert_eq!(app.users().await, 1);
}

#[tokio::test]
async fn validate_metadata_is_stored_with_the_new_user() {
    let rx = Receiver::start().await;
    rx.always(Answer::body(json!({"app_metadata": {"roles": ["member"]}, "user_metadata": {"plan": "free"}}).to_string()));
    let app = TestApp::with_hook(&rx, "validate", &[]).await;
    let r = app.post_json("/signup", json!({"email": "m@example.com", "password": "pw", "data": {"dropped": true}})).await;
    let user = r.assert_ok();
    assert_eq!(user["app_metadata"], json!({"provider": "email", "roles": ["member"]}), "provider kept, roles added");
    assert_eq!(user["user_metadata"], json!({"plan": "free"}), "replaced wholesale");
    let token = app.mailed_token("m@example.com", "confirmation_token");
    let tokens = app.verify("signup", &token).await.assert_ok().clone();
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["app_metadata"]["roles"], json!(["member"]), "stored, so later tokens carry it");
}

#[tokio::test]
async fn login_metadata_is_in_the_new_token_and_stored() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "login", &[("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    app.signup("meta@example.com", "pw").await.assert_ok();
    rx.always(Answer::body(json!({"app_metadata": {"roles": ["admin"]}, "user_metadata": {"seen": 1}}).to_string()));
    let tokens = app.login("meta@example.com", "pw").await.assert_ok().clone();
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["app_metadata"], json!({"provider": "email", "roles": ["admin"]}));
    assert_eq!(claims["user_metadata"], json!({"seen": 1}));
    let r = app.send(app.client.get(format!("{}/user", app.url)).header("authorization", bearer(&tokens))).await;
    assert_eq!(r.assert_ok()["app_metadata"]["roles"], json!(["admin"]));
}

#[tokio::test]
async fn a_login_refusal_refuses_the_login() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "login", &[("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    app.signup("no@example.com", "pw").await.assert_ok();
    rx.always(Answer::status(401));
    app.login("no@example.com", "pw").await.assert_error(422, "Failed to handle signup webhook");
    assert_eq!(app.count("SELECT COUNT(*) FROM refresh_tokens").await, 0, "no session was created");
}

#[tokio::test]
async fn a_malformed_login_reply_is_a_500() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "login", &[("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    app.signup("mal@example.com", "pw").await.assert_ok();
    rx.always(Answer::body("not json"));
    let r = app.login("mal@example.com", "pw").await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Webhook returned malformed JSON: "), "{}", r.text);
    assert!(r.json["error_id"].is_string());
}

#[tokio::test]
async fn a_signup_refusal_on_verify_leaves_the_user_unconfirmed() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "signup", &[]).await;
    app.signup("v@example.com", "pw").await.assert_ok();
    let token = app.mailed_token("v@example.com", "confirmation_token");
    rx.script([Answer::status(500)]);
    app.verify("signup", &token).await.assert_error(422, "Failed to handle signup webhook");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE confirmed_at IS NOT NULL").await, 0);
    app.verify("signup", &token).await.assert_ok();
    assert_eq!(rx.calls().len(), 2);
}

#[tokio::test]
async fn recovery_of_an_unconfirmed_user_fires_signup_and_a_refusal_is_a_database_error() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "signup", &[]).await;
    app.signup("r@example.com", "pw").await.assert_ok();
    app.post_json("/recover", json!({"email": "r@example.com"})).await.assert_ok();
    let token = app.mailed_token("r@example.com", "recovery_token");
    rx.script([Answer::status(400)]);
    let r = app.verify("recovery", &token).await;
    r.assert_error(500, "Database error updating user");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE confirmed_at IS NOT NULL").await, 0);
    app.verify("recovery", &token).await.assert_ok();
    assert_eq!(rx.events(), ["identity_signup", "identity_signup"]);
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE confirmed_at IS NOT NULL").await, 1);
}

#[tokio::test]
async fn signup_retries_server_errors() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(500), Answer::status(502), Answer::ok()]);
    let app = TestApp::with_hook(&rx, "validate", &[("GOTRUE_WEBHOOK_RETRIES", "3")]).await;
    app.signup("retry@example.com", "pw").await.assert_ok();
    assert_eq!(rx.calls().len(), 3);
    for c in rx.calls() {
        c.verified_claims(crate::HOOK_SECRET);
    }
}

#[tokio::test]
async fn a_receiver_that_times_out_every_attempt_is_a_504() {
    let rx = Receiver::start().await;
    rx.always(Answer::ok().after(Duration::from_secs(3)));
    let app = TestApp::with_hook(&rx, "validate", &[("GOTRUE_WEBHOOK_RETRIES", "2"), ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "1")]).await;
    let r = app.signup("slow@example.com", "pw").await;
    r.assert_error(504, "Failed to perform webhook in time frame (1 seconds)");
    assert!(r.json["error_id"].is_string());
    assert_eq!(rx.calls().len(), 2);
    assert_eq!(app.users().await, 0);
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_502() {
    let url = crate::closed_port_url().await;
    let app = TestApp::spawn_with(&[
        ("GOTRUE_WEBHOOK_URL", &url),
        ("GOTRUE_WEBHOOK_EVENTS", "validate"),
        ("GOTRUE_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    app.signup("u@example.com", "pw").await.assert_error(502, &format!("Failed to connect to {url}/"));
    assert_eq!(app.users().await, 0);
}
