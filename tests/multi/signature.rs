//! The `x-nf-sign` header (API.md 3.9): every site endpoint needs it, bad or missing ones
//! are refused with upstream's errors, and the claims shape the request.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn a_missing_or_bad_signature_is_refused() {
    let app = Multi::spawn().await;
    let id = app.create(site_config("site-secret", "https://a.example.com")).await;
    for path in ["/settings", "/no/such/path", "/user", "/admin/users"] {
        app.send(app.at(Method::GET, path)).await.assert_error(400, "Operator microservice headers missing");
    }
    let r = app.send(app.at(Method::POST, "/signup").json(&json!({"email": "a@example.com", "password": "pw"}))).await;
    r.assert_error(400, "Operator microservice headers missing");
    let get = |sign: String| app.send(app.at(Method::GET, "/settings").header("x-nf-sign", sign));
    // Signed with another key, with the instance's own JWT secret, or not a JWT at all.
    for bad in [sign_with(&json!({"id": id}), "not-the-operator"), sign_with(&json!({"id": id}), "site-secret"), "garbage".to_owned()] {
        let r = get(bad).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.json["msg"].as_str().unwrap().starts_with("Operator microservice signature is invalid: "), "{}", r.text);
    }
    // HS512 is not accepted.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"id": id}),
        &jsonwebtoken::EncodingKey::from_secret(OPERATOR.as_bytes()),
    )
    .unwrap();
    assert_eq!(get(hs512).await.status, 400);
    // Registered claims are checked when present.
    let now = chrono::Utc::now().timestamp();
    let r = get(nf_sign(&json!({"id": id, "exp": now - 10}))).await;
    r.assert_error(400, "Operator microservice signature is invalid: token is expired");
    let r = get(nf_sign(&json!({"id": id, "nbf": now + 300}))).await;
    r.assert_error(400, "Operator microservice signature is invalid: token is not valid yet");
    assert_eq!(get(nf_sign(&json!({"id": id, "exp": now + 60}))).await.status, 200);
    // The instance id.
    get(nf_sign(&json!({"site_url": "x"}))).await.assert_error(400, "Instance ID is missing");
    get(nf_sign(&json!({"id": "not-a-uuid"}))).await.assert_error(400, "Instance ID is not a valid UUID");
    get(nf_sign(&json!({"id": Uuid::new_v4()}))).await.assert_error(404, "Unable to locate site configuration");
    // Function hooks of another shape make the signature invalid.
    let r = get(nf_sign(&json!({"id": id, "function_hooks": {"signup": {"foo": "bar"}}}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json["msg"].as_str().unwrap().starts_with("Operator microservice signature is invalid: "), "{}", r.text);
    // A good one.
    let r = get(nf_sign(&json!({"id": id}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["autoconfirm"], true);
    // /health and the API document need none.
    assert_eq!(app.send(app.at(Method::GET, "/health")).await.status, 200);
    assert_eq!(app.send(app.at(Method::GET, "/openapi.json")).await.status, 200);
}

#[tokio::test]
async fn the_site_url_claim_replaces_the_stored_one() {
    let app = Multi::spawn().await;
    let id = app.create(json!({"site_url": "https://stored.example.com", "jwt": {"secret": "s"}})).await;
    let sign = nf_sign(&json!({"id": id, "site_url": "https://claimed.example.com", "netlify_id": "n-1"}));
    let r = app
        .send(app.at(Method::POST, "/signup").header("x-nf-sign", sign).json(&json!({"email": "c@example.com", "password": "pw"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mail = app.outbox.last_to("c@example.com").unwrap();
    assert!(mail.confirmation_url.starts_with("https://claimed.example.com/"), "{}", mail.confirmation_url);
    assert_eq!(mail.site_url, "https://claimed.example.com");
    // Without the claim, the stored one.
    let r = app.signup(id, "d@example.com", "pw").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(app.outbox.last_to("d@example.com").unwrap().confirmation_url.starts_with("https://stored.example.com/"));
}

#[tokio::test]
async fn a_stored_config_that_cannot_be_read_is_a_500() {
    let app = Multi::spawn().await;
    let id = app.create(json!({"jwt": {"secret": "s"}})).await;
    let Store::Sqlite(s) = &app.store else { unreachable!() };
    sqlx::query("UPDATE instances SET raw_base_config = NULL WHERE id = ?").bind(id.to_string()).execute(s.pool()).await.unwrap();
    let r = app.send(app.site(Method::GET, "/settings", id)).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.json["msg"], "Error loading environment config");
}

#[tokio::test]
async fn configuration_changes_apply_to_the_next_request() {
    let app = Multi::spawn().await;
    let id = app.create(site_config("s", "https://a.example.com")).await;
    let r = app.send(app.site(Method::GET, "/settings", id)).await;
    assert_eq!(r.json["disable_signup"], false);
    let r = app.send(app.op(Method::PUT, &format!("/instances/{id}")).json(&json!({"config": {"disable_signup": true}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.send(app.site(Method::GET, "/settings", id)).await;
    assert_eq!(r.json["disable_signup"], true, "the cached configuration was dropped");
    app.signup(id, "e@example.com", "pw").await.assert_error(403, "Signups not allowed for this instance");
}

#[tokio::test]
async fn an_instance_written_by_upstream_loads() {
    // The JSON GoTrue (Go) writes: every key, durations in nanoseconds, `events: null`,
    // no `smtp.port`/`smtp.pass` when zero.
    let raw = r#"{"site_url":"https://go.example.com","jwt":{"secret":"go-secret","exp":600,"aud":"go-aud","admin_group_name":"","default_group_name":"member","refresh_token_lifetime":0},"smtp":{"max_frequency":60000000000,"host":"","user":"","admin_email":""},"mailer":{"autoconfirm":true,"subjects":{"invite":"","confirmation":"","recovery":"","email_change":""},"templates":{"invite":"","confirmation":"","recovery":"","email_change":""},"url_paths":{"invite":"","confirmation":"","recovery":"","email_change":""},"recovery_max_age":0,"confirmation_max_age":0,"invite_max_age":0},"external":{"bitbucket":{"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false},"github":{"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false},"gitlab":{"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false},"google":{"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false},"facebook":{"client_id":"","secret":"","redirect_uri":"","url":"","enabled":false},"email":{"disabled":false},"saml":{"enabled":false,"metadata_url":"","api_base":"","name":"","signing_cert":"","signing_key":""},"redirect_url":""},"disable_signup":false,"webhook":{"url":"","retries":0,"timeout_sec":0,"secret":"","events":null},"cookies":{"key":"","duration":0}}"#;
    let id = Uuid::new_v4();
    let now = chrono::Utc::now();
    let row = gotrue::ports::instances::InstanceRow {
        id,
        uuid: Uuid::nil(),
        raw_base_config: Some(raw.to_owned()),
        created_at: now,
        updated_at: now,
    };
    let app = Multi::spawn().await;
    app.store.instances().insert_instance(&row).await.unwrap();
    let r = app.signup(id, "go@example.com", "pw").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["aud"], "go-aud");
    assert_eq!(r.json["role"], "member");
    let login = app.login(id, "go@example.com", "pw").await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.json["expires_in"], 600);
    assert_eq!(decode_hs256(login.json["access_token"].as_str().unwrap(), "go-secret")["aud"], "go-aud");
    // Read back through the API, without its secret.
    let r = app.send(app.op(Method::GET, &format!("/instances/{id}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["config"]["smtp"]["max_frequency"], 60_000_000_000i64);
    assert!(!r.text.contains("go-secret"));
}
