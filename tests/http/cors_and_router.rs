use serde_json::json;

use crate::TestApp;

#[tokio::test]
async fn health_answers_with_the_build() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/health")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["name"], "GoTrue");
    assert_eq!(r.json["description"], "GoTrue is a user registration and authentication API");
    assert_eq!(r.json["version"], gotrue::VERSION);
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_like_go() {
    let app = TestApp::spawn().await;
    let r = app.send(app.get("/nope")).await;
    assert_eq!((r.status, r.text.as_str()), (404, "404 page not found\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = app.send(app.client.delete(format!("{}/user", app.url))).await;
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("GET"));
    assert!(r.text.is_empty());
    assert_eq!(app.send(app.get("/settings/")).await.status, 404, "leaf routes do not take a trailing slash");
}

#[tokio::test]
async fn preflights_allow_what_gotrue_js_sends() {
    let app = TestApp::spawn().await;
    let r = app
        .send(
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/token", app.url))
                .header("Origin", "https://site.example")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "authorization,content-type,x-nf-client"),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://site.example"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(r.header("access-control-allow-headers"), Some("authorization,content-type,x-nf-client"));
    let r = app
        .send(
            app.client
                .request(reqwest::Method::OPTIONS, format!("{}/token", app.url))
                .header("Origin", "https://site.example")
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "x-evil"),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    let r = app.send(app.get("/settings").header("Origin", "https://site.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://site.example"), "never * beside credentials");
    assert!(r.header("vary").unwrap().contains("Origin"));
}

#[tokio::test]
async fn oversized_bodies_get_413_in_json() {
    let app = TestApp::spawn_with(&[("GOTRUE_API_MAX_BODY_BYTES", "1024")]).await;
    let big = json!({"email": "a@example.com", "password": "x".repeat(4000)});
    app.post_json("/signup", big).await.assert_error(413, "Request body too large");
}

#[tokio::test]
async fn malformed_requests_never_answer_500() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, &str, &str)> = vec![
        ("/signup", "application/json", "[]"),
        ("/signup", "text/plain", "\u{0}\u{1}"),
        ("/signup", "application/json", r#"{"data": "not an object", "email":"a@b.c","password":"x"}"#),
        ("/verify", "application/json", r#"{"type": 1}"#),
        ("/recover", "application/json", "null"),
        ("/token", "application/x-www-form-urlencoded", "%%%"),
        ("/token", "application/json", "{"),
        ("/token", "multipart/form-data", "--x"),
    ];
    for (path, ct, body) in cases {
        let r = app.send(app.post(path).header("content-type", ct).body(body)).await;
        assert!(r.status < 500, "{path} {body:?} -> {} {}", r.status, r.text);
        assert!(r.json.is_object(), "{path} {body:?} -> {}", r.text);
    }
}

#[tokio::test]
async fn internal_errors_carry_the_request_id_and_hide_the_cause() {
    let app = TestApp::spawn_with(&[("GOTRUE_API_REQUEST_ID_HEADER", "X-Request-ID")]).await;
    app.sql("DROP TABLE users").await;
    let r = app.send(app.post("/signup").header("X-Request-ID", "req-123").json(&json!({"email": "a@example.com", "password": "x"}))).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json, json!({"code": 500, "msg": "Database error finding user", "error_id": "req-123"}));
    assert!(!r.text.contains("no such table"));
}

#[tokio::test]
async fn cors_allowed_origins_restricts_the_echo() {
    let app = TestApp::spawn_with(&[("GOTRUE_CORS_ALLOWED_ORIGINS", "https://a.example, http://127.0.0.1:8080/")]).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/user", app.url))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "PUT")
            .header("Access-Control-Request-Headers", "Authorization, Content-Type, X-Nf-Client, X-Use-Cookie, X-JWT-AUD")
    };
    for origin in ["https://a.example", "http://127.0.0.1:8080"] {
        let r = app.send(preflight(origin)).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-allow-methods"), Some("PUT"));
    }
    let r = app.send(preflight("https://b.example")).await;
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-credentials").is_none(), "credentials only beside an echoed origin");
    let r = app.send(app.get("/settings").header("Origin", "https://b.example")).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-credentials").is_none());
    let r = app.send(app.get("/settings").header("Origin", "https://a.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), Some("https://a.example"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
}
