//! The invite mail through the SMTP adapter as wiring builds it (`POST /invite` itself
//! belongs to the admin API).

use gotrue::app::config::{Config, Env};
use gotrue::ports::mail::{Mail as OutMail, MailKind};
use serde_json::json;

use crate::{tls_smtp, Mail, SMTP_PASS, SMTP_USER};

/// A mail as the application hands it to the port.
pub fn sample(kind: MailKind, to: &str) -> OutMail {
    OutMail {
        kind,
        to: to.to_owned(),
        site_url: "https://example.netlify.com".into(),
        confirmation_url: "https://example.netlify.com/#invite_token=inv-tok_1".into(),
        email: to.to_owned(),
        new_email: String::new(),
        token: "inv-tok_1".into(),
        data: json!({"full_name": "Ivy"}).as_object().cloned().unwrap(),
        subject_template: String::new(),
        template_url: String::new(),
    }
}

#[tokio::test]
async fn the_invite_mail_renders_and_is_delivered() {
    let smtp = tls_smtp().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.ca_pem()).unwrap();
    let port = smtp.port.to_string();
    let env = Env::from_pairs([
        ("GOTRUE_SMTP_HOST", "localhost"),
        ("GOTRUE_SMTP_PORT", port.as_str()),
        ("GOTRUE_SMTP_USER", SMTP_USER),
        ("GOTRUE_SMTP_PASS", SMTP_PASS),
        ("GOTRUE_SMTP_ADMIN_EMAIL", "Site Admin <admin@example.com>"),
        ("GOTRUE_SMTP_CA_CERT", ca.to_str().unwrap()),
    ]);
    let mailer = gotrue::app::wiring::mailer(&Config::from_env(&env).unwrap()).unwrap();
    mailer.send(&sample(MailKind::Invite, "ivy@example.com")).await.unwrap();
    let m = Mail::last_to(&smtp, "ivy@example.com");
    m.assert_well_formed("ivy@example.com", "You have been invited");
    assert!(m.html.contains("<h2>You have been invited</h2>"));
    assert!(m.html.contains("create a user on https://example.netlify.com. Follow this link to accept the invite:"));
    assert!(m.html.contains("This link is valid for 7 days."));
    assert_eq!(m.link_token("invite_token"), "inv-tok_1");
    assert!(m.text.contains("Accept the invite (https://example.netlify.com/#invite_token=inv-tok_1)"), "{}", m.text);
}

#[tokio::test]
async fn start_up_refuses_unusable_smtp_settings() {
    let bad = |pairs: Vec<(&str, &str)>| {
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        gotrue::app::wiring::mailer(&config).err().unwrap_or_default()
    };
    assert!(bad(vec![("GOTRUE_SMTP_HOST", "localhost")]).contains("GOTRUE_SMTP_ADMIN_EMAIL"));
    assert!(bad(vec![
        ("GOTRUE_SMTP_HOST", "localhost"),
        ("GOTRUE_SMTP_ADMIN_EMAIL", "a@b.c"),
        ("GOTRUE_SMTP_CA_CERT", "/nonexistent/ca.pem")
    ])
    .contains("GOTRUE_SMTP_CA_CERT"));
    // No host: the log mailer, which always succeeds.
    let config = Config::from_env(&Env::from_pairs([("GOTRUE_SITE_URL", "https://x.example")])).unwrap();
    gotrue::app::wiring::mailer(&config).unwrap().send(&sample(MailKind::Invite, "log@example.com")).await.unwrap();
}
