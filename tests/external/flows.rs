//! Identities and account matching as issue 7 wants them: returning users by provider id,
//! several providers per user, linking only through verified addresses, unverified
//! addresses, provider errors, failed exchanges, webhooks and audit entries.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use serde_json::{json, Value};

use super::*;

#[tokio::test]
async fn a_returning_user_is_found_by_provider_id_even_with_a_new_address() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        account(&app, "555", "Ann", &[("ann@example.com", true, true)]);
        let first = app.dance("github").await.assert_tokens();
        let user = app.user("ann@example.com").await.unwrap();
        // The provider now reports another, unverified, address: the identity still finds
        // the account, and no second account appears.
        account(&app, "555", "Ann", &[("ann-new@example.com", false, true)]);
        let second = app.dance("github").await.assert_tokens();
        assert_ne!(first["refresh_token"], second["refresh_token"]);
        assert!(app.user("ann-new@example.com").await.is_none());
        let ids = app.identities(user.id).await;
        assert_eq!(ids.len(), 1);
        assert_eq!((ids[0].provider.as_str(), ids[0].provider_id.as_str()), ("github", "555"));
        assert_eq!(ids[0].email, "ann-new@example.com", "the identity keeps what the provider said last");
        assert!(!ids[0].email_verified);
        let claims = super::decode_hs256(&second["access_token"], SECRET);
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(claims["email"], "ann@example.com");
        assert_eq!(app.audit_actions().await, ["login", "user_signedup"]);
    }
}

#[tokio::test]
async fn one_user_signs_in_with_several_providers() {
    let app = TestApp::spawn().await;
    account(&app, "1", "Bo", &[("bo@example.com", true, true)]);
    app.dance("github").await.assert_tokens();
    account(&app, "google-sub-1", "Bo", &[("BO@example.com", true, true)]);
    app.dance("google").await.assert_tokens();
    account(&app, "9", "Bo", &[("bo@example.com", true, true)]);
    app.dance("gitlab").await.assert_tokens();
    let user = app.user("bo@example.com").await.unwrap();
    let mut providers: Vec<String> = app.identities(user.id).await.into_iter().map(|i| i.provider).collect();
    providers.sort();
    assert_eq!(providers, ["github", "gitlab", "google"]);
    assert_eq!(app.count("users").await, 1);
    assert_eq!(user.app_metadata.unwrap()["provider"], "github", "the provider that created the account");
}

#[tokio::test]
async fn tokens_from_the_fragment_work() {
    let app = TestApp::spawn().await;
    account(&app, "2", "Cy", &[("cy@example.com", true, true)]);
    let f = app.dance("facebook").await.assert_tokens();
    let me = app.get_user(&f["access_token"]).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["email"], "cy@example.com");
    assert_eq!(me.json["app_metadata"]["provider"], "facebook");
    assert_eq!(me.json["user_metadata"]["slug"], "facebook.slug");
    let r = app.post_form("/token", &[("grant_type", "refresh_token"), ("refresh_token", &f["refresh_token"])]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn an_unverified_address_makes_an_unconfirmed_account_that_waits_for_its_mail() {
    let app = TestApp::spawn().await;
    account(&app, "3", "Di", &[("di@example.com", false, true)]);
    let d = app.dance("bitbucket").await;
    let loc = d.location();
    assert_eq!(loc, format!("{SITE}/admin"), "no fragment at all");
    let u = app.user("di@example.com").await.unwrap();
    assert!(!u.is_confirmed());
    assert!(app.outbox.last_to("di@example.com").is_some(), "a confirmation mail went out");
    assert_eq!(app.identities(u.id).await.len(), 1);
    // Back later, the provider has verified the address meanwhile: signed in.
    account(&app, "3", "Di", &[("di@example.com", true, true)]);
    app.dance("bitbucket").await.assert_tokens();
    assert!(app.user("di@example.com").await.unwrap().is_confirmed());
}

#[tokio::test]
async fn an_unverified_address_never_links_to_an_existing_account() {
    for autoconfirm in ["false", "true"] {
        let app = TestApp::spawn_with(&[("GOTRUE_MAILER_AUTOCONFIRM", autoconfirm)]).await;
        let victim = app.existing_user("victim@example.com", true).await;
        account(&app, "666", "Mallory", &[("victim@example.com", false, true)]);
        app.dance("gitlab").await.assert_failure("invalid_request", "A user with this email address has already been registered");
        assert!(app.identities(victim.id).await.is_empty(), "autoconfirm={autoconfirm}");
        assert_eq!(app.count("refresh_tokens").await, 0);
    }
}

#[tokio::test]
async fn invites_match_emails_case_insensitively_and_expire() {
    let app = TestApp::spawn().await;
    app.invited_user("Invitee@Example.com", "tok", 60).await;
    account(&app, "4", "Ed", &[("invitee@EXAMPLE.com", true, true)]);
    app.dance_with(&Browser::default(), "provider=github&invite_token=tok").await.assert_tokens();

    app.invited_user("late@example.com", "old", 8 * 86_400).await;
    app.authorize(&Browser::default(), "provider=github&invite_token=old").await.assert_error(422, "Confirmation token expired");
}

#[tokio::test]
async fn the_provider_name_is_case_insensitive_and_stored_lower_case() {
    let app = TestApp::spawn().await;
    account(&app, "5", "Fay", &[("fay@example.com", true, true)]);
    app.dance_with(&Browser::default(), "provider=GitHub").await.assert_tokens();
    let u = app.user("fay@example.com").await.unwrap();
    assert_eq!(u.app_metadata.unwrap()["provider"], "github");
    assert_eq!(app.identities(u.id).await[0].provider, "github");
}

#[tokio::test]
async fn provider_errors_are_passed_through() {
    let app = TestApp::spawn().await;
    app.fake.script(|s| s.authorize_error = Some(("access_denied".into(), "The user denied your request".into())));
    app.dance("github").await.assert_failure("access_denied", "The user denied your request");
    assert_eq!(app.fake.seen().token_hits(), 0);
}

#[tokio::test]
async fn a_failed_code_exchange_is_a_server_error() {
    let app = TestApp::spawn().await;
    for p in PROVIDERS {
        app.fake.script(|s| s.token_error = Some((400, r#"{"error":"bad_verification_code"}"#.into())));
        app.dance(p).await.assert_failure("server_error", &format!("Unable to exchange external code for {p} provider"));
    }
    assert_eq!(app.count("users").await, 0);
}

#[tokio::test]
async fn form_token_responses_and_body_client_authentication_work() {
    let app = TestApp::spawn().await;
    account(&app, "6", "Gus", &[("gus@example.com", true, true)]);
    app.fake.script(|s| {
        s.token_as_form = true;
        s.refuse_basic_auth = true;
    });
    app.dance("github").await.assert_tokens();
    assert_eq!(app.fake.seen().token_basic_auth, [true, false], "Basic first, then the body");
    app.dance("github").await.assert_tokens();
    assert_eq!(app.fake.seen().token_basic_auth, [true, false, false], "the body straight away, remembered");
}

#[tokio::test]
async fn pkce_is_sent_to_every_provider_that_accepts_it() {
    let app = TestApp::spawn().await;
    for p in PROVIDERS {
        account(&app, "7", "Hal", &[("hal@example.com", true, true)]);
        app.dance(p).await.assert_tokens();
    }
    let seen = app.fake.seen();
    for (p, q) in PROVIDERS.iter().zip(&seen.authorize) {
        if *p == "bitbucket" {
            assert!(!q.contains_key("code_challenge"), "{p}");
        } else {
            assert_eq!(q.get("code_challenge_method").map(String::as_str), Some("S256"), "{p}");
            assert_eq!(q["code_challenge"].len(), 43, "{p}");
        }
    }
    // The fake refuses a verifier that does not match; each exchange also carried one.
    assert!(seen.token.iter().zip(PROVIDERS).all(|(t, p)| p == "bitbucket" || t.get("code_verifier").is_some_and(|v| v.len() == 43)));
}

#[tokio::test]
async fn deleting_a_user_deletes_its_identities() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        account(&app, "8", "Ida", &[("ida@example.com", true, true)]);
        app.dance("github").await.assert_tokens();
        let u = app.user("ida@example.com").await.unwrap();
        assert_eq!(app.count("identities").await, 1);
        use gotrue::ports::users::{Guard, UserStore as _};
        match &app.store {
            Store::Sqlite(s) => s.delete_user(&u, &Guard::None, &Effects::default()).await.unwrap(),
            Store::MySql(s) => s.delete_user(&u, &Guard::None, &Effects::default()).await.unwrap(),
        }
        assert_eq!(app.count("identities").await, 0);
        // The same provider account signs up afresh.
        app.dance("github").await.assert_tokens();
        assert_ne!(app.user("ida@example.com").await.unwrap().id, u.id);
    }
}

#[tokio::test]
async fn an_identity_left_behind_by_another_program_is_taken_over() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        account(&app, "11", "Lu", &[("lu@example.com", true, true)]);
        app.dance("gitlab").await.assert_tokens();
        let gone = app.user("lu@example.com").await.unwrap();
        // The Go server deletes users without knowing about identities.
        match &app.store {
            Store::Sqlite(s) => {
                sqlx::query("DELETE FROM users").execute(s.pool()).await.unwrap();
            }
            Store::MySql(s) => {
                sqlx::query("DELETE FROM users").execute(s.pool()).await.unwrap();
            }
        }
        app.dance("gitlab").await.assert_tokens();
        let again = app.user("lu@example.com").await.unwrap();
        assert_ne!(again.id, gone.id);
        assert_eq!(app.identities(again.id).await.len(), 1, "{engine:?}");
        assert_eq!(app.count("identities").await, 1, "{engine:?}: the row was re-pointed, not duplicated");
    }
}

async fn hook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let s = Arc::clone(&s);
            async move {
                let v: Value = serde_json::from_str(&body).unwrap();
                s.lock().unwrap().push(v["event"].as_str().unwrap().to_owned());
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn webhooks_and_audit_entries_of_external_logins() {
    let (hook, events) = hook_receiver().await;
    let app = TestApp::spawn_with(&[
        ("GOTRUE_WEBHOOK_URL", &hook),
        ("GOTRUE_WEBHOOK_EVENTS", "validate,signup,login"),
        ("GOTRUE_WEBHOOK_ALLOW_PRIVATE", "true"),
    ])
    .await;
    account(&app, "9", "Jo", &[("jo@example.com", true, true)]);
    app.dance("google").await.assert_tokens();
    assert_eq!(*events.lock().unwrap(), ["validate", "signup"], "a new user: validate, then signup when confirmed");
    app.dance("google").await.assert_tokens();
    assert_eq!(events.lock().unwrap().last().map(String::as_str), Some("login"), "a returning user: login");
    app.invited_user("kim@example.com", "inv", 10).await;
    account(&app, "10", "Kim", &[("kim@example.com", true, true)]);
    app.dance_with(&Browser::default(), "provider=google&invite_token=inv").await.assert_tokens();
    assert_eq!(events.lock().unwrap().last().map(String::as_str), Some("signup"), "an invite: signup");
    assert_eq!(app.audit_actions().await, ["invite_accepted", "login", "user_signedup"]);
}
