//! Per-client limits (both adapters), trusted proxies, the mail limit and `/recover`
//! answering alike for known and unknown addresses (WEAKNESSES.md 17 and 19).

use serde_json::json;

use crate::TestApp;

async fn signup_as(app: &TestApp, email: &str, forwarded_for: Option<&str>) -> crate::Reply {
    let mut req = app.post("/signup").json(&json!({"email": email, "password": "long enough password"}));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    app.send(req).await
}

#[track_caller]
fn assert_limited(r: &crate::Reply) {
    r.assert_error(429, "Rate limit exceeded");
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=300).contains(&secs), "Retry-After {secs}");
}

#[tokio::test]
async fn signup_is_limited_per_client_with_retry_after() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_SIGNUP", "2")]).await;
    assert_eq!(signup_as(&app, "a@example.com", None).await.status, 200);
    assert_eq!(signup_as(&app, "b@example.com", None).await.status, 200);
    assert_limited(&signup_as(&app, "c@example.com", None).await);
    // Without a trusted proxy, X-Forwarded-For is the client's word and changes nothing.
    assert_limited(&signup_as(&app, "d@example.com", Some("9.9.9.9")).await);
}

#[tokio::test]
async fn forwarded_address_counts_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_SIGNUP", "1"), ("GOTRUE_TRUSTED_PROXIES", "127.0.0.0/8, ::1")]).await;
    assert_eq!(signup_as(&app, "a@example.com", Some("1.1.1.1")).await.status, 200);
    assert_limited(&signup_as(&app, "b@example.com", Some("1.1.1.1")).await);
    assert_eq!(signup_as(&app, "c@example.com", Some("2.2.2.2")).await.status, 200);
    let real = app
        .send(
            app.post("/signup").header("x-real-ip", "3.3.3.3").json(&json!({"email": "d@example.com", "password": "long enough password"})),
        )
        .await;
    assert_eq!(real.status, 200, "{}", real.text);
}

#[tokio::test]
async fn token_verify_recover_and_invite_are_limited_and_zero_turns_a_limit_off() {
    let app = TestApp::spawn_with(&[
        ("GOTRUE_RATE_LIMIT_TOKEN", "1"),
        ("GOTRUE_RATE_LIMIT_VERIFY", "1"),
        ("GOTRUE_RATE_LIMIT_RECOVER", "1"),
        ("GOTRUE_RATE_LIMIT_INVITE", "1"),
        ("GOTRUE_RATE_LIMIT_SIGNUP", "0"),
    ])
    .await;
    assert_eq!(app.login("x@example.com", "whatever-password").await.status, 400);
    assert_limited(&app.login("x@example.com", "whatever-password").await);
    assert_eq!(app.post_json("/verify", json!({"type": "signup", "token": "nope"})).await.status, 404);
    assert_limited(&app.post_json("/verify", json!({"type": "signup", "token": "nope"})).await);
    assert_eq!(app.post_json("/recover", json!({"email": "r1@example.com"})).await.status, 200);
    assert_limited(&app.post_json("/recover", json!({"email": "r2@example.com"})).await);
    assert_eq!(app.post_json("/invite", json!({"email": "i@example.com"})).await.status, 401);
    assert_limited(&app.post_json("/invite", json!({"email": "i@example.com"})).await);
    for i in 0..5 {
        assert_eq!(signup_as(&app, &format!("s{i}@example.com"), None).await.status, 200);
    }
}

#[tokio::test]
async fn defaults_leave_room_for_normal_use() {
    let app = TestApp::spawn().await;
    for i in 0..40 {
        assert_eq!(app.login(&format!("n{i}@example.com"), "whatever-password").await.status, 400);
    }
}

#[tokio::test]
async fn recover_answers_alike_for_known_and_unknown_addresses() {
    let app = TestApp::spawn().await;
    app.signup("known@example.com", "long enough password").await;
    for email in ["known@example.com", "ghost@example.com"] {
        let first = app.post_json("/recover", json!({"email": email})).await;
        assert_eq!((first.status, first.text.as_str()), (200, "{}"), "{email}");
        let again = app.post_json("/recover", json!({"email": email.to_uppercase()})).await;
        again.assert_error(429, "Rate limit exceeded, try again later");
    }
}

#[tokio::test]
async fn mails_to_one_address_are_limited() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_EMAIL_SENT", "1")]).await;
    assert_eq!(app.signup("m@example.com", "long enough password").await.status, 200);
    assert_eq!(app.outbox.sent().len(), 1);
    // Answered as usual (an error would reveal the account), but not sent.
    let r = app.post_json("/recover", json!({"email": "m@example.com"})).await;
    assert_eq!((r.status, r.text.as_str()), (200, "{}"));
    assert_eq!(app.outbox.sent().len(), 1);
    assert_eq!(app.signup("other@example.com", "long enough password").await.status, 200);
    assert_eq!(app.outbox.sent().len(), 2);
}

fn redis_url() -> Option<String> {
    std::env::var("GOTRUE_TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
}

#[tokio::test]
async fn two_servers_on_one_redis_share_one_budget() {
    let Some(redis) = redis_url() else {
        eprintln!("GOTRUE_TEST_REDIS_URL not set: skipping the Redis limiter test");
        return;
    };
    let prefix = format!("gotrue-test:{}:", uuid::Uuid::new_v4());
    let env = [
        ("GOTRUE_RATE_LIMIT_SIGNUP", "3"),
        ("GOTRUE_RATE_LIMIT_REDIS_URL", redis.as_str()),
        ("GOTRUE_RATE_LIMIT_REDIS_PREFIX", prefix.as_str()),
    ];
    let a = TestApp::spawn_with(&env).await;
    let b = TestApp::spawn_with(&env).await;
    assert_eq!(signup_as(&a, "1@example.com", None).await.status, 200);
    assert_eq!(signup_as(&b, "2@example.com", None).await.status, 200);
    assert_eq!(signup_as(&a, "3@example.com", None).await.status, 200);
    assert_limited(&signup_as(&b, "4@example.com", None).await);
    assert_limited(&signup_as(&a, "5@example.com", None).await);
}

#[tokio::test]
async fn redis_down_fails_open() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_SIGNUP", "1"), ("GOTRUE_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:1/")]).await;
    for i in 0..3 {
        assert_eq!(signup_as(&app, &format!("o{i}@example.com"), None).await.status, 200);
    }
}

#[tokio::test]
async fn put_user_is_limited_per_client_but_get_user_is_not() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_USER", "2"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    assert_eq!(app.signup("u@example.com", "long enough password").await.status, 200);
    let token = app.login("u@example.com", "long enough password").await.json["access_token"].as_str().unwrap().to_owned();
    let put = || app.put("/user").bearer_auth(&token).json(&json!({"data": {"n": 1}}));
    assert_eq!(app.send(put()).await.status, 200);
    assert_eq!(app.send(put()).await.status, 200);
    assert_limited(&app.send(put()).await);
    // The trailing-slash twin shares the budget.
    assert_limited(&app.send(app.put("/user/").bearer_auth(&token).json(&json!({}))).await);
    for _ in 0..5 {
        assert_eq!(app.send(app.get("/user").bearer_auth(&token)).await.status, 200);
    }
}

#[tokio::test]
async fn the_admin_api_shares_one_budget_per_client_and_counts_unauthenticated_attempts() {
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_ADMIN", "4")]).await;
    let admin = app.super_admin().await;
    assert_eq!(app.send(app.get("/admin/users").bearer_auth(&admin)).await.status, 200);
    assert_eq!(app.send(app.get("/admin/audit").bearer_auth(&admin)).await.status, 200);
    assert_eq!(app.send(app.get("/admin/users/not-a-uuid").bearer_auth(&admin)).await.status, 400);
    assert_eq!(app.send(app.get("/admin/users").bearer_auth("wrong")).await.status, 401);
    assert_limited(&app.send(app.post("/admin/users").bearer_auth(&admin).json(&json!({"email": "x@example.com"}))).await);
    assert_limited(&app.send(app.delete(&format!("/admin/users/{}", uuid::Uuid::nil())).bearer_auth(&admin)).await);
}

#[tokio::test]
async fn user_and_admin_defaults_leave_room_for_a_busy_admin_ui() {
    let c = gotrue::app::config::Config::from_env(&gotrue::app::config::Env::from_pairs([("GOTRUE_JWT_SECRET", "x")])).unwrap();
    assert_eq!((c.rate_limit.user, c.rate_limit.admin), (300, 3000));
    let app = TestApp::spawn_with(&[("GOTRUE_RATE_LIMIT_ADMIN", "0")]).await;
    let admin = app.super_admin().await;
    for _ in 0..20 {
        assert_eq!(app.send(app.get("/admin/users").bearer_auth(&admin)).await.status, 200);
    }
}
