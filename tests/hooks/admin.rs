//! The admin endpoints' hooks: `usermodified` and `userdeleted` after the commit (failures
//! only logged), `validate` before an invited user is stored.

use serde_json::json;

use crate::{Answer, Receiver, TestApp};

const OPERATOR: &str = "operator-token-for-hook-tests";

fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client.request(method, format!("{}{path}", app.url)).bearer_auth(OPERATOR)
}

async fn created_user(app: &TestApp, email: &str) -> String {
    let r =
        app.send(admin(app, reqwest::Method::POST, "/admin/users").json(&json!({"email": email, "password": "pw", "confirm": true}))).await;
    r.assert_ok()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_update_fires_usermodified_and_shows_the_replys_metadata() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "usermodified,userdeleted", &[("GOTRUE_OPERATOR_TOKEN", OPERATOR)]).await;
    let id = created_user(&app, "mod@example.com").await;
    assert!(rx.calls().is_empty(), "admin create fires no hook");
    rx.always(Answer::body(json!({"app_metadata": {"roles": ["editor"]}}).to_string()));
    let r =
        app.send(admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}")).json(&json!({"user_metadata": {"name": "Ann"}}))).await;
    let body = r.assert_ok();
    assert_eq!(rx.events(), ["identity_usermodified"]);
    let sent = rx.calls()[0].json();
    assert_eq!(sent["user"]["user_metadata"]["name"], "Ann", "the hook sees the committed change");
    assert_eq!(body["app_metadata"], json!({"provider": "email", "roles": ["editor"]}));
    let r = app.send(admin(&app, reqwest::Method::GET, &format!("/admin/users/{id}"))).await;
    assert_eq!(r.assert_ok()["app_metadata"]["roles"], json!(["editor"]), "the reply is stored");
}

#[tokio::test]
async fn a_failing_usermodified_hook_does_not_fail_the_update() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "usermodified", &[("GOTRUE_OPERATOR_TOKEN", OPERATOR)]).await;
    let id = created_user(&app, "fail@example.com").await;
    rx.always(Answer::status(500));
    let r = app.send(admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}")).json(&json!({"role": "writer"}))).await;
    assert_eq!(r.assert_ok()["role"], "writer");
    assert_eq!(rx.events(), ["identity_usermodified"]);
}

#[tokio::test]
async fn admin_delete_fires_userdeleted_with_the_deleted_user() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "usermodified,userdeleted", &[("GOTRUE_OPERATOR_TOKEN", OPERATOR)]).await;
    let id = created_user(&app, "gone@example.com").await;
    rx.always(Answer::status(500));
    let r = app.send(admin(&app, reqwest::Method::DELETE, &format!("/admin/users/{id}"))).await;
    assert_eq!((r.status, r.text.as_str()), (200, "{}"), "a failing userdeleted hook does not fail the delete");
    assert_eq!(rx.events(), ["identity_userdeleted"]);
    let sent = rx.calls()[0].json();
    assert_eq!(sent["user"]["email"], "gone@example.com");
    assert_eq!(app.users().await, 0);
}

#[tokio::test]
async fn invite_runs_validate_before_storing_and_a_veto_stores_nothing() {
    let rx = Receiver::start().await;
    let app = TestApp::with_hook(&rx, "validate", &[("GOTRUE_OPERATOR_TOKEN", OPERATOR)]).await;
    rx.always(Answer::status(400));
    let r = app.send(admin(&app, reqwest::Method::POST, "/invite").json(&json!({"email": "vetoed@example.com"}))).await;
    r.assert_error(422, "Failed to handle signup webhook");
    assert_eq!(app.users().await, 0);
    assert!(app.outbox.sent().is_empty(), "no invite mail for a vetoed user");
    rx.clear();
    rx.always(Answer::body(json!({"user_metadata": {"team": "blue"}}).to_string()));
    let r = app.send(admin(&app, reqwest::Method::POST, "/invite").json(&json!({"email": "ok@example.com"}))).await;
    assert_eq!(r.assert_ok()["user_metadata"]["team"], "blue");
    assert_eq!(rx.events(), ["identity_validate"]);
    assert_eq!(app.users().await, 1);
}
