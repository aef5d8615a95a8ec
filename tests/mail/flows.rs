//! Signup confirmation, recovery and email change over real SMTP, the failure modes of the
//! transport (authentication, certificate, outage), and what each leaves in the database.

use serde_json::json;

use crate::smtp_server::{ServerOptions, SmtpServer};
use crate::{tls_smtp, Mail, TestApp, SMTP_PASS, SMTP_USER};

const SITE: &str = "https://example.netlify.com";

#[tokio::test]
async fn signup_confirmation_over_starttls_with_auth_plain() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    let user = app.signup("ann@example.com", "secret-pw", json!({"full_name": "Ann"})).await.ok();
    assert!(user["confirmation_sent_at"].is_string());

    let mail = Mail::last_to(&smtp, "ann@example.com");
    mail.assert_well_formed("ann@example.com", "Confirm Your Signup");
    assert_eq!(mail.envelope.auth_mechanism.as_deref(), Some("PLAIN"));
    assert!(mail.html.contains("<h2>Confirm your signup</h2>"), "{}", mail.html);
    assert!(mail.html.contains("This link is valid for 24 hours."));
    assert!(mail.text.starts_with("Confirm your signup\n\nFollow this link to confirm your user:"), "{}", mail.text);
    let link = mail.link();
    assert!(link.starts_with("https://example.netlify.com/#confirmation_token="), "{link}");
    assert!(!mail.raw.contains(SMTP_PASS));

    // Not confirmed yet; following the link confirms and logs in.
    assert_eq!(app.login("ann@example.com", "secret-pw").await.json["error_description"], "Email not confirmed");
    let token = mail.link_token("confirmation_token");
    let r = app.post_json("/verify", json!({"type": "signup", "token": token})).await.ok();
    assert!(r["access_token"].is_string());
    app.login("ann@example.com", "secret-pw").await.ok();
    // Single use.
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(404, "User not found");
}

#[tokio::test]
async fn repeated_signup_resends_only_after_the_spacing() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_SMTP_MAX_FREQUENCY", "1s")]).await;
    app.signup("bo@example.com", "pw-bo", json!({})).await.ok();
    app.signup("bo@example.com", "pw-bo", json!({})).await.ok();
    assert_eq!(smtp.messages().len(), 1, "a second signup within SMTP_MAX_FREQUENCY sends nothing");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.signup("bo@example.com", "pw-bo", json!({})).await.ok();
    assert_eq!(smtp.messages().len(), 2);
    let first = Mail::parse(&smtp.messages()[0]).link_token("confirmation_token");
    let second = Mail::parse(&smtp.messages()[1]).link_token("confirmation_token");
    assert_ne!(first, second);
    app.post_json("/verify", json!({"type": "signup", "token": first})).await.assert_error(404, "User not found");
    app.post_json("/verify", json!({"type": "signup", "token": second})).await.ok();
}

#[tokio::test]
async fn auth_login_is_used_when_plain_is_not_offered() {
    let smtp = SmtpServer::start(ServerOptions {
        starttls: true,
        auth: Some((SMTP_USER.into(), SMTP_PASS.into())),
        mechanisms: Some("LOGIN".into()),
    })
    .await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    app.signup("lou@example.com", "pw-lou", json!({})).await.ok();
    let mail = Mail::last_to(&smtp, "lou@example.com");
    mail.assert_well_formed("lou@example.com", "Confirm Your Signup");
    assert_eq!(mail.envelope.auth_mechanism.as_deref(), Some("LOGIN"));
}

#[tokio::test]
async fn wrong_credentials_fail_the_signup_and_leave_no_user() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_SMTP_PASS", "wrong-password")]).await;
    app.signup("wc@example.com", "pw", json!({})).await.assert_error(500, "Error sending confirmation mail");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn the_certificate_must_match_the_host_and_chain_to_a_trusted_ca() {
    let smtp = tls_smtp().await;
    // The certificate names `localhost`, not 127.0.0.1.
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_SMTP_HOST", "127.0.0.1")]).await;
    app.signup("ip@example.com", "pw", json!({})).await.assert_error(500, "Error sending confirmation mail");
    // Without the extra CA the chain is untrusted.
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_SMTP_CA_CERT", "")]).await;
    app.signup("ca@example.com", "pw", json!({})).await.assert_error(500, "Error sending confirmation mail");
    assert!(smtp.messages().is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_local_relay_without_tls_may_authenticate() {
    // A plain server (no STARTTLS) that offers AUTH: allowed on loopback only, as upstream.
    let smtp =
        SmtpServer::start(ServerOptions { starttls: false, auth: Some((SMTP_USER.into(), SMTP_PASS.into())), mechanisms: None }).await;
    let port = smtp.port.to_string();
    let env = gotrue::app::config::Env::from_pairs([
        ("GOTRUE_SMTP_HOST", "127.0.0.1"),
        ("GOTRUE_SMTP_PORT", port.as_str()),
        ("GOTRUE_SMTP_USER", SMTP_USER),
        ("GOTRUE_SMTP_PASS", SMTP_PASS),
        ("GOTRUE_SMTP_ADMIN_EMAIL", crate::ADMIN),
        ("GOTRUE_SITE_URL", SITE),
    ]);
    let config = gotrue::app::config::Config::from_env(&env).unwrap();
    let mailer = gotrue::app::wiring::mailer(&config).unwrap();
    mailer.send(&crate::invite::sample(gotrue::ports::mail::MailKind::Recovery, "plain@example.com")).await.unwrap();
    let m = Mail::last_to(&smtp, "plain@example.com");
    assert!(!m.envelope.tls);
    assert_eq!(m.envelope.auth_user.as_deref(), Some(SMTP_USER));
}

#[tokio::test]
async fn recovery_end_to_end() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    app.confirmed_user(&smtp, "rec@example.com", "old-password").await;
    assert_eq!(app.post_json("/recover", json!({"email": "rec@example.com"})).await.text, "{}");

    let mail = Mail::last_to(&smtp, "rec@example.com");
    mail.assert_well_formed("rec@example.com", "Reset Your Password");
    assert!(mail.html.contains("<h2>Reset password</h2>"));
    let token = mail.link_token("recovery_token");
    let session = app.post_json("/verify", json!({"type": "recovery", "token": token})).await.ok();
    let access = session["access_token"].as_str().unwrap();
    app.put_user(access, json!({"password": "new-password"})).await.ok();
    app.login("rec@example.com", "new-password").await.ok();
    assert_eq!(app.login("rec@example.com", "old-password").await.status, 400);
    app.post_json("/verify", json!({"type": "recovery", "token": token})).await.assert_error(404, "User not found");
    app.post_json("/recover", json!({"email": "rec@example.com"})).await.assert_error(429, "Rate limit exceeded, try again later");
}

#[tokio::test]
async fn email_change_end_to_end() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    let access = app.confirmed_user(&smtp, "old@example.com", "pw-change").await;
    let before = smtp.messages().len();
    let u = app.put_user(&access, json!({"email": "new@example.com"})).await.ok();
    assert_eq!((u["email"].as_str(), u["new_email"].as_str()), (Some("old@example.com"), Some("new@example.com")));
    assert_eq!(smtp.messages().len(), before + 1, "only the new address is asked by default");

    let mail = Mail::last_to(&smtp, "new@example.com");
    mail.assert_well_formed("new@example.com", "Confirm Email Change");
    assert!(mail.html.contains("from old@example.com to new@example.com:"), "{}", mail.html);
    let token = mail.link_token("email_change_token");
    app.put_user(&access, json!({"email_change_token": "not-the-token"}))
        .await
        .assert_error(401, "Email Change Token didn't match token on file");
    let u = app.put_user(&access, json!({"email_change_token": token})).await.ok();
    assert_eq!(u["email"], "new@example.com");
    assert!(u.get("new_email").is_none());
    app.login("new@example.com", "pw-change").await.ok();
    assert_eq!(app.login("old@example.com", "pw-change").await.status, 400);
    app.put_user(&access, json!({"email_change_token": token})).await.assert_error(401, "Email Change Token didn't match token on file");
}

#[tokio::test]
async fn email_change_rechecks_uniqueness_at_confirmation() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    let access = app.confirmed_user(&smtp, "first@example.com", "pw-first").await;
    app.put_user(&access, json!({"email": "wanted@example.com"})).await.ok();
    let token = Mail::last_to(&smtp, "wanted@example.com").link_token("email_change_token");
    // Someone else takes the address meanwhile.
    app.confirmed_user(&smtp, "Wanted@Example.com", "pw-other").await;
    app.put_user(&access, json!({"email_change_token": token})).await.assert_error(422, "Email address already registered by another user");
    let me = app.get_user(&access).await.ok();
    assert_eq!(me["email"], "first@example.com");
    assert_eq!(me["new_email"], "wanted@example.com", "nothing was changed by the refused confirmation");
}

async fn secure_email_change(app: &TestApp, smtp: &SmtpServer) {
    let access = app.confirmed_user(smtp, "cur@example.com", "pw-secure").await;
    let before = smtp.messages().len();
    app.put_user(&access, json!({"email": "next@example.com"})).await.ok();
    assert_eq!(smtp.messages().len(), before + 2, "both addresses are asked");
    let to_new = Mail::last_to(smtp, "next@example.com");
    let to_current = Mail::last_to(smtp, "cur@example.com");
    to_new.assert_well_formed("next@example.com", "Confirm Email Change");
    to_current.assert_well_formed("cur@example.com", "Confirm Email Change");
    assert!(to_current.html.contains("from cur@example.com to next@example.com:"));
    let new_token = to_new.link_token("email_change_token");
    let current_token = to_current.link_token("email_change_token");
    assert_ne!(new_token, current_token);

    // The current address agrees first: still pending.
    let u = app.put_user(&access, json!({"email_change_token": current_token})).await.ok();
    assert_eq!((u["email"].as_str(), u["new_email"].as_str()), (Some("cur@example.com"), Some("next@example.com")));
    app.put_user(&access, json!({"email_change_token": current_token}))
        .await
        .assert_error(401, "Email Change Token didn't match token on file");
    // Then the new one: done.
    let u = app.put_user(&access, json!({"email_change_token": new_token})).await.ok();
    assert_eq!(u["email"], "next@example.com");
    assert!(u.get("new_email").is_none());
    app.login("next@example.com", "pw-secure").await.ok();
}

#[tokio::test]
async fn secure_email_change_needs_both_addresses() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED", "true")]).await;
    secure_email_change(&app, &smtp).await;
}

#[tokio::test]
async fn secure_email_change_on_mysql_when_configured() {
    if crate::scratch_mysql::server_url().is_none() {
        eprintln!("note: GOTRUE_TEST_MYSQL_URL not set; skipping the MySQL run");
        return;
    }
    let smtp = tls_smtp().await;
    let app = TestApp::spawn(&smtp, SITE, &[("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED", "true")], true).await;
    secure_email_change(&app, &smtp).await;
}

#[tokio::test]
async fn an_smtp_outage_fails_cleanly_and_a_retry_after_it_works() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[]).await;
    let access = app.confirmed_user(&smtp, "out@example.com", "pw-out").await;
    let id = app.get_user(&access).await.ok()["id"].as_str().unwrap().to_owned();
    let sent = smtp.messages().len();
    smtp.stop().await;

    // Signup: no user is left behind.
    app.signup("down@example.com", "pw-down", json!({})).await.assert_error(500, "Error sending confirmation mail");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE email = 'down@example.com'").await, 0);
    // Recovery: nothing counts as sent.
    app.post_json("/recover", json!({"email": "out@example.com"})).await.assert_error(500, "Error recovering user");
    assert_eq!(app.user_column(&id, "recovery_token").await.unwrap_or_default(), "");
    assert_eq!(app.user_column(&id, "recovery_sent_at").await, None);
    // Email change: nothing pending.
    app.put_user(&access, json!({"email": "moved@example.com"})).await.assert_error(500, "Error sending change email");
    let me = app.get_user(&access).await.ok();
    assert!(me.get("new_email").is_none(), "{me}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1, "no row lost or added");

    smtp.restart().await;
    app.signup("down@example.com", "pw-down", json!({})).await.ok();
    let token = Mail::last_to(&smtp, "down@example.com").link_token("confirmation_token");
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.ok();
    app.post_json("/recover", json!({"email": "out@example.com"})).await.ok();
    let token = Mail::last_to(&smtp, "out@example.com").link_token("recovery_token");
    app.post_json("/verify", json!({"type": "recovery", "token": token})).await.ok();
    app.put_user(&access, json!({"email": "moved@example.com"})).await.ok();
    let token = Mail::last_to(&smtp, "moved@example.com").link_token("email_change_token");
    assert_eq!(app.put_user(&access, json!({"email_change_token": token})).await.ok()["email"], "moved@example.com");
    assert_eq!(smtp.messages().len(), sent + 3);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 2);
}

/// `POST /invite` (admin) over real SMTP: the mail arrives with upstream's subject, its
/// link's token accepts the invite through `/verify` with a password, and only once.
#[tokio::test]
async fn invite_end_to_end() {
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, SITE, &[("GOTRUE_OPERATOR_TOKEN", "mail-test-operator")]).await;
    let invited = app
        .send(
            app.client
                .post(format!("{}/invite", app.url))
                .bearer_auth("mail-test-operator")
                .json(&json!({"email": "guest@example.com", "data": {"full_name": "Guest"}})),
        )
        .await
        .ok();
    assert!(invited.get("invited_at").is_some());

    let mail = Mail::last_to(&smtp, "guest@example.com");
    mail.assert_well_formed("guest@example.com", "You have been invited");
    assert!(mail.html.contains("<h2>You have been invited</h2>"));
    assert!(mail.link().starts_with(&format!("{SITE}/#invite_token=")));
    let token = mail.link_token("invite_token");
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.assert_error(422, "Invited users must specify a password");
    let session = app.post_json("/verify", json!({"type": "signup", "token": token, "password": "chosen-password"})).await.ok();
    let me = app.get_user(session["access_token"].as_str().unwrap()).await.ok();
    assert_eq!(me["email"], "guest@example.com");
    assert!(me.get("confirmed_at").is_some());
    app.login("guest@example.com", "chosen-password").await.ok();
    app.post_json("/verify", json!({"type": "signup", "token": token, "password": "again"})).await.assert_error(404, "User not found");
}
