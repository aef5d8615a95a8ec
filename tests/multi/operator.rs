//! The operator endpoints (API.md 5) and upstream's `api/instance_test.go` (SCENARIOS.md
//! 12), on every engine; secrets never in answers; a PUT without them keeps them.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;

const SECRETS: [&str; 6] = ["jwt-secret-1", "smtp-pass-1", "github-secret-1", "saml-key-1", "hook-secret-1", "google-secret-1"];

fn full_config() -> Value {
    json!({
        "site_url": "https://a.example.com",
        "jwt": {"secret": SECRETS[0], "exp": 600},
        "smtp": {"host": "smtp.a.example.com", "port": 2525, "user": "mailer", "pass": SECRETS[1], "admin_email": "a@example.com"},
        "external": {
            "github": {"enabled": true, "client_id": "gh-id", "secret": SECRETS[2]},
            "google": {"client_id": "g-id", "secret": SECRETS[5]},
            "saml": {"signing_key": SECRETS[3]}
        },
        "webhook": {"url": "https://hooks.example.com", "secret": SECRETS[4], "events": ["signup"]}
    })
}

#[track_caller]
fn assert_no_secrets(r: &Reply) {
    for s in SECRETS {
        assert!(!r.text.contains(s), "{s} returned: {}", r.text);
    }
}

#[tokio::test]
async fn operator_endpoints_need_the_operator_token() {
    let app = Multi::spawn().await;
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::POST, "/instances".to_owned()),
        (Method::GET, format!("/instances/{}", Uuid::new_v4())),
        (Method::PUT, format!("/instances/{}", Uuid::new_v4())),
        (Method::DELETE, format!("/instances/{}", Uuid::new_v4())),
    ] {
        let r = app.send(app.at(method.clone(), &path).json(&json!({}))).await;
        r.assert_error(401, "This endpoint requires a Bearer token");
        let r = app.send(app.at(method.clone(), &path).bearer_auth("operatorTokeN").json(&json!({}))).await;
        r.assert_error(401, "Request does not include an Operator token");
        // The x-nf-sign header is no substitute.
        let r = app.send(app.at(method, &path).header("x-nf-sign", nf_sign(&json!({"id": Uuid::new_v4()})))).await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = app.send(app.op(Method::GET, "/")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"], "GoTrue");
    assert_eq!(r.json["description"], "GoTrue is a user registration and authentication API");
}

#[tokio::test]
async fn create_get_update_delete_on_every_engine() {
    for engine in engines() {
        let app = Multi::spawn_on(engine, &[]).await;
        // TestCreate: an ignored top-level site_url, the config stored as sent.
        let site = Uuid::parse_str("11111111-1111-1111-1111-111111111111").unwrap();
        let body = json!({"uuid": site, "site_url": "https://ignored.example.com", "config": full_config()});
        let r = app.send(app.op(Method::POST, "/instances").json(&body)).await;
        assert_eq!(r.status, 201, "{engine:?}: {}", r.text);
        assert_no_secrets(&r);
        assert_eq!(r.json["uuid"], site.to_string());
        assert_eq!(r.json["endpoint"], ENDPOINT);
        assert_eq!(r.json["state"], "active");
        assert_eq!(r.json["config"]["site_url"], "https://a.example.com");
        assert_eq!(r.json["config"]["smtp"]["user"], "mailer");
        assert_eq!(r.json["config"]["external"]["github"]["client_id"], "gh-id");
        assert!(r.json["config"]["jwt"].get("secret").is_none());
        assert!(r.json["created_at"].is_string() && r.json["updated_at"].is_string());
        let id = Uuid::parse_str(r.json["id"].as_str().unwrap()).unwrap();
        assert_ne!(id, site, "a new random id");
        // Stored in upstream's format: every key, secrets included.
        let stored = app.stored_config(id).await;
        assert_eq!(stored["jwt"]["secret"], SECRETS[0]);
        assert_eq!(stored["smtp"]["pass"], SECRETS[1]);
        assert_eq!(stored["smtp"]["port"], 2525);
        assert_eq!(stored["cookies"], json!({"key": "", "duration": 0}), "zero values written");
        assert_eq!(stored["external"]["email"], json!({"disabled": false}));

        // The same uuid again.
        let r = app.send(app.op(Method::POST, "/instances").json(&json!({"uuid": site, "config": {}}))).await;
        r.assert_error(400, "An instance with that UUID already exists");
        let r = app.send(app.op(Method::POST, "/instances").body("{\"config\": 5}")).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.json["msg"].as_str().unwrap().starts_with("Error decoding params: "), "{}", r.text);

        // TestGet.
        let r = app.send(app.op(Method::GET, &format!("/instances/{id}"))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_no_secrets(&r);
        assert_eq!(r.json["id"], id.to_string());
        assert!(r.json.get("endpoint").is_none());
        app.send(app.op(Method::GET, "/instances/not-a-uuid")).await.assert_error(400, "Invalid instance ID");
        app.send(app.op(Method::GET, &format!("/instances/{}", Uuid::new_v4()))).await.assert_error(404, "Instance not found");

        // GET, edit, PUT: the omitted secrets are kept (PreserveSMTPConfig).
        let mut config = r.json["config"].clone();
        config["mailer"]["subjects"]["confirmation"] = json!("Welcome");
        config["mailer"]["templates"]["confirmation"] = json!("/templates/confirm.html");
        let r = app.send(app.op(Method::PUT, &format!("/instances/{id}")).json(&json!({"config": config}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_no_secrets(&r);
        let stored = app.stored_config(id).await;
        for (path, want) in [
            ("/jwt/secret", SECRETS[0]),
            ("/smtp/pass", SECRETS[1]),
            ("/external/github/secret", SECRETS[2]),
            ("/external/saml/signing_key", SECRETS[3]),
            ("/webhook/secret", SECRETS[4]),
            ("/external/google/secret", SECRETS[5]),
            ("/mailer/subjects/confirmation", "Welcome"),
        ] {
            assert_eq!(stored.pointer(path).unwrap(), want, "{engine:?} {path}");
        }

        // TestUpdate: secret and site URL change.
        let r = app
            .send(
                app.op(Method::PUT, &format!("/instances/{id}"))
                    .json(&json!({"config": {"jwt": {"secret": "new-secret"}, "site_url": "https://test.mysite.com"}})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let stored = app.stored_config(id).await;
        assert_eq!(stored["jwt"]["secret"], "new-secret");
        assert_eq!(stored["jwt"]["exp"], 600, "siblings of a changed key are kept");
        assert_eq!(stored["site_url"], "https://test.mysite.com");
        // TestUpdate_DisableEmail.
        let r = app
            .send(app.op(Method::PUT, &format!("/instances/{id}")).json(&json!({"config": {"external": {"email": {"disabled": true}}}})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(app.stored_config(id).await["external"]["email"]["disabled"], true);
        // TestUpdate_ClearPassword.
        let r = app.send(app.op(Method::PUT, &format!("/instances/{id}")).json(&json!({"config": {"smtp": {"pass": ""}}}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(app.stored_config(id).await["smtp"].get("pass").is_none(), "cleared (and omitted, as upstream writes it)");
        let r = app.send(app.op(Method::PUT, &format!("/instances/{}", Uuid::new_v4())).json(&json!({"config": {}}))).await;
        r.assert_error(404, "Instance not found");

        // DELETE: the instance goes with its users; another instance keeps its own.
        let other = app.create(site_config("other-secret", "https://b.example.com")).await;
        app.send(app.op(Method::PUT, &format!("/instances/{id}")).json(
            &json!({"config": {"external": {"email": {"disabled": false}}, "mailer": {"autoconfirm": true}, "webhook": {"url": ""}}}),
        ))
        .await;
        assert_eq!(app.signup(id, "gone@example.com", "pw").await.status, 200);
        assert_eq!(app.signup(other, "kept@example.com", "pw").await.status, 200);
        let r = app.send(app.op(Method::DELETE, &format!("/instances/{id}"))).await;
        assert_eq!(r.status, 204, "{}", r.text);
        assert!(r.text.is_empty());
        app.send(app.op(Method::GET, &format!("/instances/{id}"))).await.assert_error(404, "Instance not found");
        app.send(app.site(Method::GET, "/settings", id)).await.assert_error(404, "Unable to locate site configuration");
        let users = app.store.users();
        assert!(users.find_user_by_email(id, AUD, "gone@example.com").await.unwrap().is_none());
        assert!(users.find_user_by_email(other, AUD, "kept@example.com").await.unwrap().is_some());
    }
}
