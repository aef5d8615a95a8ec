//! `GET /admin/audit` (API.md 4.21-4.22) and upstream's `api/audit_test.go` (SCENARIOS.md 3),
//! plus the entries every admin action leaves.

use serde_json::{json, Value};

use crate::{engines, Engine, Seed, TestApp};

async fn delete_fixture(engine: Engine) -> (TestApp, String) {
    let app = TestApp::spawn_on(engine, &[]).await;
    let t = app.super_admin().await;
    let u = app.seed(Seed { email: "test-delete@example.com", ..Seed::default() }).await;
    let r = app.send(app.delete(&format!("/admin/users/{}", u.id)).bearer_auth(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (app, t)
}

#[tokio::test]
async fn s3_2_audit_get() {
    for engine in engines() {
        let (app, t) = delete_fixture(engine).await;
        let r = app.send(app.get("/admin/audit").bearer_auth(&t)).await;
        assert_eq!(r.status, 200, "{engine:?}: {}", r.text);
        assert_eq!(r.header("link"), Some(r#"</admin/audit?page=1>; rel="last""#));
        assert_eq!(r.header("x-total-count"), Some("1"));
        let entries = r.json.as_array().unwrap();
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert!(r.text.starts_with(r#"[{"id":""#) && r.text.contains(r#"},"created_at":""#), "{}", r.text);
        assert_eq!(e["payload"]["actor_email"], "test@example.com");
        assert_eq!(e["payload"]["actor_name"], "Test User");
        assert_eq!(e["payload"]["action"], "user_deleted");
        assert_eq!(e["payload"]["log_type"], "team");
        assert_eq!(e["payload"]["traits"]["user_email"], "test-delete@example.com");
        assert!(e["payload"]["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}

#[tokio::test]
async fn s3_3_audit_filters() {
    for engine in engines() {
        let (app, t) = delete_fixture(engine).await;
        for q in ["action:user_deleted", "type:team", "author:user", "author:@example.com", "author:TEST%20USER", "action:"] {
            let r = app.send(app.get(&format!("/admin/audit?query={q}")).bearer_auth(&t)).await;
            assert_eq!(r.status, 200, "{engine:?} {q}: {}", r.text);
            assert_eq!(r.json.as_array().unwrap().len(), 1, "{engine:?} {q}: {}", r.text);
            assert_eq!(r.header("x-total-count"), Some("1"));
            assert_eq!(r.json[0]["payload"]["traits"]["user_email"], "test-delete@example.com");
        }
        for q in ["action:login", "type:account", "author:nobody", "author:%25", "author:_"] {
            let r = app.send(app.get(&format!("/admin/audit?query={q}")).bearer_auth(&t)).await;
            assert_eq!(r.text, "[]", "{engine:?} {q}");
            assert_eq!(r.header("x-total-count"), Some("0"));
        }
        let r = app.send(app.get("/admin/audit?query=type:team").bearer_auth(&t)).await;
        assert_eq!(r.header("link"), Some(r#"</admin/audit?page=1&query=type%3Ateam>; rel="last""#));
    }
}

#[tokio::test]
async fn bad_audit_queries() {
    let app = TestApp::spawn().await;
    let t = app.super_admin().await;
    app.send(app.get("/admin/audit?query=user_deleted").bearer_auth(&t)).await.assert_error(400, "Invalid query scope: user_deleted");
    app.send(app.get("/admin/audit?query=who:me").bearer_auth(&t)).await.assert_error(400, "Invalid query scope: who:me");
    app.send(app.get("/admin/audit?per_page=0").bearer_auth(&t))
        .await
        .assert_error(400, "Bad Pagination Parameters: per_page must be at least 1");
    app.send(app.get("/admin/audit")).await.assert_error(401, "This endpoint requires a Bearer token");
}

fn actions(r: &Value) -> Vec<String> {
    r.as_array().unwrap().iter().map(|e| e["payload"]["action"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn every_admin_action_is_recorded_newest_first() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        let t = app.super_admin().await;
        let r = app.send(app.post("/admin/users").bearer_auth(&t).json(&json!({"email": "a@example.com", "password": "pw"}))).await;
        let id = r.json["id"].as_str().unwrap().to_owned();
        let check = |r: &Value, action: &str, log_type: &str, email: &str| {
            let e = &r[0]["payload"];
            assert_eq!(e["action"], action, "{engine:?}: {r}");
            assert_eq!(e["log_type"], log_type);
            assert_eq!(e["actor_email"], "test@example.com");
            assert_eq!(e["traits"], json!({"user_id": id, "user_email": email}));
        };
        let r = app.send(app.get("/admin/audit").bearer_auth(&t)).await;
        check(&r.json, "user_signedup", "team", "a@example.com");
        app.send(app.put(&format!("/admin/users/{id}")).bearer_auth(&t).json(&json!({"email": "b@example.com"}))).await;
        let r = app.send(app.get("/admin/audit?query=action:user_modified").bearer_auth(&t)).await;
        check(&r.json, "user_modified", "user", "b@example.com");
        app.send(app.delete(&format!("/admin/users/{id}")).bearer_auth(&t)).await;
        let r = app.send(app.get("/admin/audit?query=action:user_deleted").bearer_auth(&t)).await;
        check(&r.json, "user_deleted", "team", "b@example.com");
        let r = app.send(app.post("/invite").bearer_auth(&t).json(&json!({"email": "inv@example.com"}))).await;
        let inv = r.json["id"].as_str().unwrap().to_owned();
        let r = app.send(app.get("/admin/audit?query=action:user_invited").bearer_auth(&t)).await;
        assert_eq!(r.json[0]["payload"]["log_type"], "team");
        assert_eq!(r.json[0]["payload"]["traits"], json!({"user_id": inv, "user_email": "inv@example.com"}));
        // (MySQL keeps whole seconds, so entries of one second are ordered by id only.)
        let r = app.send(app.get("/admin/audit?query=type:team&per_page=1").bearer_auth(&t)).await;
        assert_eq!(r.json.as_array().unwrap().len(), 1);
        assert_eq!(r.header("x-total-count"), Some("3"));
        assert_eq!(
            r.header("link"),
            Some(
                r#"</admin/audit?page=2&per_page=1&query=type%3Ateam>; rel="next", </admin/audit?page=3&per_page=1&query=type%3Ateam>; rel="last""#
            )
        );
        // Account actions are recorded too, with the user as actor and no traits.
        app.seed(Seed { email: "user@example.com", ..Seed::default() }).await;
        let login = app.login("user@example.com", "password").await;
        assert_eq!(login.status, 200);
        let r = app.send(app.get("/admin/audit?query=author:user@example.com").bearer_auth(&t)).await;
        assert_eq!(actions(&r.json), ["login"], "{engine:?}");
        assert!(r.json[0]["payload"].get("traits").is_none());
        let all = app.send(app.get("/admin/audit?per_page=1000").bearer_auth(&t)).await;
        let times: Vec<_> = all
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|e| chrono::DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap()).unwrap())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "newest first");
    }
}
