//! Password policy (WEAKNESSES.md 20): at least GOTRUE_PASSWORD_MIN_LENGTH characters
//! (default 8), long passphrases accepted, nothing truncated.

use serde_json::json;

use crate::TestApp;

async fn signup(app: &TestApp, email: &str, password: &str) -> crate::Reply {
    app.post_json("/signup", json!({"email": email, "password": password})).await
}

#[tokio::test]
async fn default_minimum_is_eight_characters() {
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "8"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    signup(&app, "a@example.com", "seven77").await.assert_error(422, "Password should be at least 8 characters");
    // Characters, not bytes: eight two-byte characters pass.
    assert_eq!(signup(&app, "b@example.com", "éééééééé").await.status, 200);
    let r = app.post_json("/signup", json!({"email": "c@example.com", "password": "12345678"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_default_applies_without_configuration() {
    let c = gotrue::app::config::Config::from_env(&gotrue::app::config::Env::from_pairs([("GOTRUE_JWT_SECRET", "x")])).unwrap();
    assert_eq!(c.instance.password.min_length, 8);
}

#[tokio::test]
async fn one_restores_upstreams_any_non_empty_password() {
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "1")]).await;
    assert_eq!(signup(&app, "a@example.com", "x").await.status, 200);
}

#[tokio::test]
async fn long_passphrases_are_accepted_whole_and_oversize_ones_refused() {
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "8"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    let long = "correct horse battery staple ".repeat(20); // 580 bytes
    assert_eq!(signup(&app, "long@example.com", &long).await.status, 200);
    assert_eq!(app.login("long@example.com", &long).await.status, 200);
    // No truncation: the same first 72 bytes (or anything short of the whole) do not log in.
    assert_eq!(app.login("long@example.com", &long[..72]).await.status, 400);
    assert_eq!(app.login("long@example.com", &long[..long.len() - 1]).await.status, 400);
    signup(&app, "huge@example.com", &"x".repeat(1025)).await.assert_error(422, "Password should be at most 1024 bytes");
}

#[tokio::test]
async fn with_bcrypt_over_72_bytes_is_refused_not_truncated() {
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_HASHER", "bcrypt"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    let p64 = "a".repeat(64);
    assert_eq!(signup(&app, "ok@example.com", &p64).await.status, 200);
    assert_eq!(app.login("ok@example.com", &p64).await.status, 200);
    assert_eq!(signup(&app, "max@example.com", &"b".repeat(72)).await.status, 200);
    signup(&app, "over@example.com", &"c".repeat(73)).await.assert_error(422, "Password should be at most 72 bytes");
}

#[tokio::test]
async fn passwords_of_any_composition_are_verified_exactly() {
    // ASVS 6.2.5 and 6.2.8: no composition rules; the password is compared as sent (no
    // trimming, case folding or Unicode normalisation).
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "8"), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    let pw = " Pa\u{0308}ss wörd 🙂\t";
    assert_eq!(signup(&app, "any@example.com", pw).await.status, 200);
    assert_eq!(app.login("any@example.com", pw).await.status, 200);
    for variant in [pw.trim().to_owned(), pw.to_uppercase(), pw.to_lowercase(), pw.replace("a\u{0308}", "ä")] {
        assert_eq!(app.login("any@example.com", &variant).await.status, 400, "{variant:?}");
    }
    for (i, only) in ["aaaaaaaa", "        ", "!!!!!!!!", "日本語のパスワード"].into_iter().enumerate() {
        let email = format!("only{i}@example.com");
        assert_eq!(signup(&app, &email, only).await.status, 200, "{only:?}");
    }
}
