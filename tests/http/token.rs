use serde_json::json;

use crate::{jwt_part, TestApp, AUD};

const BAD_LOGIN: &str = "No user found with that email, or password invalid.";

#[tokio::test]
async fn password_grant_returns_upstreams_token_response() {
    let app = TestApp::spawn().await;
    app.confirmed_user("login@example.com", "secret").await;
    let r = app.login("LOGIN@example.com ", "secret").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "bearer");
    assert_eq!(r.json["expires_in"], 3600);
    assert_eq!(r.json["refresh_token"].as_str().unwrap().len(), 22);
    let at = r.json["access_token"].as_str().unwrap();
    let header = jwt_part(at, 0);
    assert_eq!(header["kid"], "nf-ident");
    assert_eq!(header["alg"], "HS256");
    let claims = jwt_part(at, 1);
    assert_eq!(claims["aud"], AUD, "aud is a JSON string");
    assert_eq!(claims["email"], "login@example.com");
    assert_eq!(claims["app_metadata"]["provider"], "email");
    assert!(claims.get("iat").is_none() && claims.get("role").is_none());
    let exp = claims["exp"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 3590..=now + 3610).contains(&exp));
    let pos = |k: &str| r.text.find(&format!("\"{k}\":")).unwrap();
    assert!(
        pos("access_token") < pos("token_type") && pos("token_type") < pos("expires_in") && pos("expires_in") < pos("refresh_token"),
        "{}",
        r.text
    );
    assert_eq!(r.json.as_object().unwrap().len(), 4);
}

#[tokio::test]
async fn password_grant_errors_do_not_tell_which_part_was_wrong() {
    let app = TestApp::spawn().await;
    app.confirmed_user("who@example.com", "secret").await;
    app.login("who@example.com", "wrong").await.assert_oauth("invalid_grant", Some(BAD_LOGIN));
    app.login("nobody@example.com", "secret").await.assert_oauth("invalid_grant", Some(BAD_LOGIN));
    app.login("who@example.com", "").await.assert_oauth("invalid_grant", Some(BAD_LOGIN));
    app.signup("pending@example.com", "pw").await;
    app.login("pending@example.com", "wrong").await.assert_oauth("invalid_grant", Some(BAD_LOGIN));
    app.login("pending@example.com", "pw").await.assert_oauth("invalid_grant", Some("Email not confirmed"));
}

#[tokio::test]
async fn grant_type_is_required_and_may_come_from_the_query_or_json() {
    let app = TestApp::spawn().await;
    app.send(app.post("/token")).await.assert_oauth("unsupported_grant_type", None);
    let r = app.send(app.post("/token").form(&[("grant_type", "client_credentials")])).await;
    assert_eq!(r.text, r#"{"error":"unsupported_grant_type"}"#);
    app.confirmed_user("q@example.com", "pw").await;
    let r = app.send(app.post("/token?grant_type=password").form(&[("username", "q@example.com"), ("password", "pw")])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.send(app.post("/token").json(&json!({"grant_type": "password", "username": "q@example.com", "password": "pw"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_used_one_is_refused() {
    // Without the reuse window (see tests/http/sessions.rs for it), as upstream.
    let app = TestApp::spawn_with(&[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let first = app.confirmed_user("rt@example.com", "pw").await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_owned();
    let r = app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", rt1.as_str())])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt2 = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    let gotrue::app::wiring::Store::Sqlite(s) = &app.store else { unreachable!() };
    let actions: Vec<String> = sqlx::query_scalar("SELECT json_extract(payload, '$.action') FROM audit_log_entries ORDER BY created_at")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(actions.iter().filter(|a| *a == "token_refreshed").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "token_revoked").count(), 1, "{actions:?}");
    let (live, revoked): (i64, i64) =
        sqlx::query_as("SELECT SUM(revoked = 0), SUM(revoked = 1) FROM refresh_tokens").fetch_one(s.pool()).await.unwrap();
    assert_eq!((live, revoked), (1, 1));
    let r = app.send(app.post("/token?grant_type=refresh_token").form(&[("refresh_token", rt2.as_str())])).await;
    assert_eq!(r.status, 200);
    let rt3 = r.json["refresh_token"].as_str().unwrap().to_owned();
    let again = app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", rt1.as_str())])).await;
    again.assert_oauth("invalid_grant", Some("Invalid Refresh Token"));
    assert!(again.cookies().iter().any(|c| c.starts_with("nf_jwt=;")), "a revoked token clears the cookie");
    // The replay revoked the whole session (WEAKNESSES.md 5).
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", rt3.as_str())]))
        .await
        .assert_oauth("invalid_grant", Some("Invalid Refresh Token"));
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", "")]))
        .await
        .assert_oauth("invalid_request", Some("refresh_token required"));
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", "nonsense")]))
        .await
        .assert_oauth("invalid_grant", Some("Invalid Refresh Token"));
    // A token differing only in case is another token (upstream's collation merged them).
    let live = app.confirmed_user("rt2@example.com", "pw").await["refresh_token"].as_str().unwrap().to_owned();
    let upper = live.to_uppercase();
    if upper != live {
        app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", upper.as_str())]))
            .await
            .assert_oauth("invalid_grant", Some("Invalid Refresh Token"));
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_do_not_fork_the_chain() {
    // Without the reuse window; with it every answer is the same token (tests/http/sessions.rs).
    let app = TestApp::spawn_with(&[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let t = app.confirmed_user("race@example.com", "pw").await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let (a, b, c) = tokio::join!(
        app.send(app.post("/token").form(&form)),
        app.send(app.post("/token").form(&form)),
        app.send(app.post("/token").form(&form))
    );
    let ok = [&a, &b, &c].iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1, "exactly one rotation wins: {} {} {}", a.text, b.text, c.text);
}

#[tokio::test]
async fn expired_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let t = app.confirmed_user("old@example.com", "pw").await;
    app.sql(&format!("UPDATE refresh_tokens SET created_at = '{}'", TestApp::ago(31 * 86_400))).await;
    let r = app.send(app.post("/token?grant_type=refresh_token").form(&[("refresh_token", t["refresh_token"].as_str().unwrap())])).await;
    assert_eq!(r.text, r#"{"error":"invalid_grant","error_description":"Refresh token expired"}"#);
}

#[tokio::test]
async fn rate_limit_header_buckets_like_upstream() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_HEADER", "My-Custom-Header")]).await;
    for _ in 0..30 {
        let r = app.send(app.post("/token").header("My-Custom-Header", "1.2.3.4").header("content-type", "application/json")).await;
        assert_eq!(r.status, 400);
    }
    let r = app.send(app.post("/token").header("My-Custom-Header", "1.2.3.4")).await;
    r.assert_error(429, "Rate limit exceeded");
    let r = app.send(app.post("/token").header("My-Custom-Header", "1.2.3.4").header("X-Forwarded-For", "9.9.9.9")).await;
    assert_eq!(r.status, 429);
    let r = app.send(app.post("/token").header("My-Custom-Header", "5.6.7.8")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn x_use_cookie_sets_the_access_token_cookie() {
    let app = TestApp::spawn().await;
    app.confirmed_user("c@example.com", "pw").await;
    let r = app
        .send(app.post("/token").header("X-Use-Cookie", "1").form(&[
            ("grant_type", "password"),
            ("username", "c@example.com"),
            ("password", "pw"),
        ]))
        .await;
    let cookie = r.cookies().into_iter().find(|c| c.starts_with("nf_jwt=")).unwrap();
    assert!(cookie.starts_with(&format!("nf_jwt={}; Path=/; Expires=", r.json["access_token"].as_str().unwrap())));
    assert!(cookie.contains("; Max-Age=86400; HttpOnly; Secure; SameSite=Lax"), "{cookie}");
    let r = app
        .send(app.post("/token").header("X-Use-Cookie", "session").form(&[
            ("grant_type", "password"),
            ("username", "c@example.com"),
            ("password", "pw"),
        ]))
        .await;
    let cookie = r.cookies().into_iter().find(|c| c.starts_with("nf_jwt=")).unwrap();
    assert!(!cookie.contains("Expires") && !cookie.contains("Max-Age"), "{cookie}");
    let r = app.login("c@example.com", "pw").await;
    assert!(r.cookies().is_empty());
}

#[tokio::test]
async fn cookie_is_not_secure_for_a_plain_http_site() {
    let app = TestApp::spawn_with(&[("GOTRUE_SITE_URL", "http://localhost:8080"), ("GOTRUE_COOKIE_KEY", "my_jwt")]).await;
    app.confirmed_user("h@example.com", "pw").await;
    let r = app
        .send(app.post("/token").header("X-Use-Cookie", "1").form(&[
            ("grant_type", "password"),
            ("username", "h@example.com"),
            ("password", "pw"),
        ]))
        .await;
    let cookie = r.cookies().into_iter().find(|c| c.starts_with("my_jwt=")).unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn upstream_bcrypt_hash_logs_in_and_is_upgraded() {
    let app = TestApp::spawn().await;
    app.confirmed_user("bc@example.com", "placeholder").await;
    let hash = bcrypt::hash("legacy", 4).unwrap();
    app.sql(&format!("UPDATE users SET encrypted_password = '{hash}'")).await;
    assert_eq!(app.login("bc@example.com", "legacy").await.status, 200);
    let gotrue::app::wiring::Store::Sqlite(s) = &app.store else { unreachable!() };
    let stored: String = sqlx::query_scalar("SELECT encrypted_password FROM users").fetch_one(s.pool()).await.unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert_eq!(app.login("bc@example.com", "legacy").await.status, 200);
}

#[tokio::test]
async fn bcrypt_can_be_kept_for_the_way_back() {
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_HASHER", "bcrypt")]).await;
    app.confirmed_user("keep@example.com", "pw").await;
    let gotrue::app::wiring::Store::Sqlite(s) = &app.store else { unreachable!() };
    let stored: String = sqlx::query_scalar("SELECT encrypted_password FROM users").fetch_one(s.pool()).await.unwrap();
    assert!(stored.starts_with("$2"), "{stored}");
    assert_eq!(app.login("keep@example.com", "pw").await.status, 200);
}

#[tokio::test]
async fn cookie_secure_setting_overrides_the_site_url() {
    for (site, setting, secure) in [("http://localhost:8080", "true", true), ("https://site.example", "false", false)] {
        let app = TestApp::spawn_with(&[("GOTRUE_SITE_URL", site), ("GOTRUE_COOKIE_SECURE", setting)]).await;
        app.confirmed_user("s@example.com", "pw").await;
        let r = app
            .send(app.post("/token").header("X-Use-Cookie", "1").form(&[
                ("grant_type", "password"),
                ("username", "s@example.com"),
                ("password", "pw"),
            ]))
            .await;
        let cookie = r.cookies().into_iter().find(|c| c.starts_with("nf_jwt=")).unwrap();
        assert_eq!(cookie.contains("; Secure"), secure, "{site} {setting}: {cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    }
}
