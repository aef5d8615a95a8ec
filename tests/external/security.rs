//! The state's protections (signed, expiring, single use, bound to the browser, also
//! across servers sharing a database) and Google's ID-token checks.

use super::*;

/// Runs `/authorize` and the provider, stopping before `/callback`.
async fn until_callback(app: &TestApp, browser: &Browser, provider: &str) -> String {
    let r = app.authorize(browser, &format!("provider={provider}")).await;
    browser.get(&r.location()).await.location()
}

fn with_state(callback_url: &str, state: &str) -> String {
    let mut u = url::Url::parse(callback_url).unwrap();
    let pairs: Vec<(String, String)> = u.query_pairs().into_owned().filter(|(k, _)| k != "state").collect();
    u.query_pairs_mut().clear().extend_pairs(pairs).append_pair("state", state);
    u.to_string()
}

#[tokio::test]
async fn missing_and_tampered_states_are_refused_as_json() {
    let app = TestApp::spawn().await;
    let b = Browser::default();
    let cb = until_callback(&app, &b, "github").await;
    let state = query(&cb)["state"].clone();
    let no_state = cb.split('?').next().unwrap().to_owned() + "?code=x";
    b.get(&no_state).await.assert_error(400, "OAuth state parameter missing");
    let mut chars: Vec<char> = state.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let r = b.get(&with_state(&cb, &chars.into_iter().collect::<String>())).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json["msg"].as_str().unwrap().starts_with("OAuth state is invalid: "), "{}", r.text);
    // A state forged with another key.
    let mut claims = decode_hs256(&state, OPERATOR_TOKEN);
    claims["provider"] = "gitlab".into();
    let r = b.get(&with_state(&cb, &sign_hs256(&claims, "not-the-key"))).await;
    r.assert_error(400, "OAuth state is invalid: signature is invalid");
    // The untouched state still works.
    b.get(&cb).await.location();
    assert!(app.user("user@example.com").await.is_some());
}

#[tokio::test]
async fn expired_states_are_refused() {
    let app = TestApp::spawn().await;
    let b = Browser::default();
    let cb = until_callback(&app, &b, "gitlab").await;
    let mut claims = decode_hs256(&query(&cb)["state"], OPERATOR_TOKEN);
    let exp = claims["exp"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now + 540..=now + 600).contains(&exp), "expires in minutes: {}", exp - now);
    claims["exp"] = (now - 1).into();
    b.get(&with_state(&cb, &sign_hs256(&claims, OPERATOR_TOKEN))).await.assert_error(400, "OAuth state is invalid: token is expired");
}

#[tokio::test]
async fn a_state_is_used_once() {
    let app = TestApp::spawn().await;
    let b = Browser::default();
    let d = app.dance_with(&b, "provider=github").await;
    d.assert_tokens();
    b.get(&d.callback_url).await.assert_error(400, "OAuth state is invalid: already used");
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let app = TestApp::spawn().await;
    let victim = Browser::default();
    let attacker = Browser::default();
    // Login CSRF: the attacker completes their own provider login and hands the callback
    // URL to someone else.
    let cb = until_callback(&app, &attacker, "github").await;
    victim.get(&cb).await.assert_error(400, "OAuth state is invalid: issued to another browser");
    assert!(app.user("user@example.com").await.is_none());
    // The browser that started the flow finishes it.
    let r = attacker.get(&cb).await;
    assert!(fragment(&r.location()).contains_key("access_token"));
}

#[tokio::test]
async fn the_binding_cookie_is_httponly_lax_and_secure_unless_the_callback_is_plain_http() {
    let app = TestApp::spawn_with(&[("GOTRUE_EXTERNAL_GOOGLE_REDIRECT_URI", "https://id.example.com/.netlify/identity/callback")]).await;
    let r = app.authorize(&Browser::default(), "provider=github").await;
    let c = r.header("set-cookie").unwrap().to_owned();
    assert!(c.starts_with("gotrue-oauth-binding="), "{c}");
    assert!(c.contains("; Path=/;") && c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    assert!(!c.contains("Secure"), "{c}");
    let r = app.authorize(&Browser::default(), "provider=google").await;
    let c = r.header("set-cookie").unwrap().to_owned();
    assert!(c.contains("; Path=/.netlify/identity;") && c.ends_with("; Secure"), "{c}");
}

#[tokio::test]
async fn parallel_flows_in_one_browser_share_the_binding() {
    let app = TestApp::spawn().await;
    let b = Browser::default();
    let first = until_callback(&app, &b, "github").await;
    account(&app, "2", "Two", &[("two@example.com", true, true)]);
    let second = until_callback(&app, &b, "gitlab").await;
    assert!(fragment(&b.get(&second).await.location()).contains_key("access_token"));
    account(&app, "1", "One", &[("one@example.com", true, true)]);
    assert!(fragment(&b.get(&first).await.location()).contains_key("access_token"));
}

#[tokio::test]
async fn without_an_operator_token_states_are_signed_with_the_jwt_secret() {
    let app = TestApp::spawn_with(&[("GOTRUE_OPERATOR_TOKEN", "")]).await;
    let r = app.authorize(&Browser::default(), "provider=github").await;
    let state = decode_hs256(&query(&r.location())["state"], SECRET);
    assert_eq!(state["provider"], "github");
}

#[tokio::test]
async fn states_are_single_use_across_servers_sharing_a_database() {
    for engine in engines() {
        let a = TestApp::spawn_on(engine, &[]).await;
        let b = a.sibling().await;
        let browser = Browser::default();
        let cb = until_callback(&a, &browser, "github").await;
        // The load balancer sends the callback to the other server.
        let at_b = cb.replacen(&a.url, &b.url, 1);
        assert!(fragment(&browser.get(&at_b).await.location()).contains_key("access_token"), "{engine:?}");
        browser.get(&cb).await.assert_error(400, "OAuth state is invalid: already used");
    }
}

#[tokio::test]
async fn google_id_tokens_are_checked() {
    let app = TestApp::spawn().await;
    account(&app, "g-1", "Google Test", &[("google@example.com", true, true)]);
    let faults: Vec<(&str, fake::IdTokenFaults)> = vec![
        ("audience", fake::IdTokenFaults { audience: Some("someone-else".into()), ..Default::default() }),
        ("issuer", fake::IdTokenFaults { issuer: Some("https://evil.example".into()), ..Default::default() }),
        ("expiry", fake::IdTokenFaults { expired: true, ..Default::default() }),
        ("nonce", fake::IdTokenFaults { nonce: Some("replayed-nonce".into()), ..Default::default() }),
        ("signature", fake::IdTokenFaults { bad_signature: true, ..Default::default() }),
        ("missing", fake::IdTokenFaults { omit: true, ..Default::default() }),
    ];
    for (what, f) in faults {
        app.fake.script(|s| s.id_token = f);
        let d = app.dance("google").await;
        d.assert_failure("server_error", "Unable to exchange external code for google provider");
        assert!(app.user("google@example.com").await.is_none(), "{what}");
    }
    app.fake.script(|s| s.id_token = fake::IdTokenFaults::default());
    app.dance("google").await.assert_tokens();
    let u = app.user("google@example.com").await.unwrap();
    assert_eq!(u.user_metadata.unwrap()["full_name"], "Google Test");
    assert_eq!(app.identities(u.id).await[0].provider_id, "g-1");
    assert!(app.fake.seen().discovery_hits <= 2, "discovery is cached (once more after a bad signature at most)");
}

#[tokio::test]
async fn google_discovery_naming_another_issuer_is_refused() {
    // ASVS 10.5.3: metadata whose issuer differs from the configured one is not used.
    let app = TestApp::spawn().await;
    account(&app, "g-3", "Mixed Up", &[("mixup@example.com", true, true)]);
    app.fake.script(|s| s.id_token.metadata_issuer = Some("https://accounts.evil.example".into()));
    let r = app.authorize(&Browser::default(), "provider=google").await;
    assert!(r.status >= 400, "no redirect to the provider: {} {}", r.status, r.text);
    assert!(!r.text.contains("evil"), "{}", r.text);
    app.fake.script(|s| s.id_token.metadata_issuer = None);
    app.dance("google").await.assert_tokens();
}

#[tokio::test]
async fn google_unverified_email_is_not_trusted() {
    let app = TestApp::spawn().await;
    app.existing_user("owner@example.com", true).await;
    account(&app, "g-2", "Not Owner", &[("owner@example.com", false, true)]);
    app.dance("google").await.assert_failure("invalid_request", "A user with this email address has already been registered");
}
