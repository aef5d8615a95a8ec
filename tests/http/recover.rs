use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn unknown_addresses_get_a_generic_success() {
    let app = TestApp::spawn().await;
    let r = app.post_json("/recover", json!({"email": "ghost@example.com"})).await;
    assert_eq!((r.status, r.text.as_str()), (200, "{}"));
    assert!(app.outbox.sent().is_empty());
}

#[tokio::test]
async fn recovery_mail_is_throttled() {
    let app = TestApp::spawn().await;
    app.signup("t@example.com", "pw").await;
    assert_eq!(app.post_json("/recover", json!({"email": "T@example.com"})).await.status, 200);
    let mail = app.outbox.last_to("t@example.com").unwrap();
    assert_eq!(mail.kind, gotrue::ports::mail::MailKind::Recovery);
    app.post_json("/recover", json!({"email": "t@example.com"})).await.assert_error(429, "Rate limit exceeded, try again later");
    app.sql(&format!("UPDATE users SET recovery_sent_at = '{}'", TestApp::ago(5 * 60))).await;
    assert_eq!(app.post_json("/recover", json!({"email": "t@example.com"})).await.status, 429);
    app.sql(&format!("UPDATE users SET recovery_sent_at = '{}'", TestApp::ago(20 * 60))).await;
    assert_eq!(app.post_json("/recover", json!({"email": "t@example.com"})).await.status, 200);
}

#[tokio::test]
async fn recover_errors() {
    let app = TestApp::spawn().await;
    app.post_json("/recover", json!({"email": ""})).await.assert_error(422, "Password recovery requires an email");
    app.send(app.post("/recover")).await.assert_error(400, "Could not read verification params: EOF");
    app.signup("f@example.com", "pw").await;
    app.outbox.set_failing(true);
    app.post_json("/recover", json!({"email": "f@example.com"})).await.assert_error(500, "Error recovering user");
    app.outbox.set_failing(false);
    assert_eq!(app.post_json("/recover", json!({"email": "f@example.com"})).await.status, 200, "a failed send does not count as sent");
}
