//! Custom subjects and body templates (HOOKS_AND_MAIL.md 2.6): downloaded from the site,
//! rendered with Go's html/template escaping, cached, and replaced by the default when they
//! cannot be had.

use serde_json::json;

use crate::site::Site;
use crate::{tls_smtp, Mail, TestApp};

const CONFIRM: &str = r#"<html><head><style>p { margin: 0 }</style></head><body>
<!-- internal note: {{ .Token }} -->
<h1>{{ if .Data.full_name -}} Welcome, {{ .Data.full_name }}! {{- else -}} Welcome! {{- end }}</h1>
<p>You signed up on {{ .SiteURL }} as {{ .Email }}.</p>
<p><a href="{{ .ConfirmationURL }}">Confirm</a> or enter the code {{ .Token }}.</p>
</body></html>"#;

#[tokio::test]
async fn a_custom_template_from_the_site_renders_with_escaping() {
    let site = Site::start().await;
    site.set("/templates/confirm.html", CONFIRM);
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(
        &smtp,
        &site.url,
        &[
            // Made relative: always fetched from SITE_URL whatever host is written here.
            ("GOTRUE_MAILER_TEMPLATES_CONFIRMATION", "https://elsewhere.example/templates/confirm.html"),
            ("GOTRUE_MAILER_SUBJECTS_CONFIRMATION", "Hello {{ .Data.full_name }}, confirm {{ .Email }}"),
        ],
    )
    .await;
    let evil = "<script>alert('x')</script> & Co";
    app.signup("tpl@example.com", "pw-tpl", json!({"full_name": evil})).await.ok();
    let m = Mail::last_to(&smtp, "tpl@example.com");
    assert_eq!(m.subject, "Hello &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co, confirm tpl@example.com");
    assert!(m.html.contains("<h1>Welcome, &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co!</h1>"), "{}", m.html);
    assert!(!m.html.contains("<script>"), "{}", m.html);
    assert!(!m.html.contains("internal note"), "comments are removed as Go does");
    assert!(m.html.contains(&format!("<p>You signed up on {} as tpl@example.com.</p>", site.url)));
    let token = m.link_token("confirmation_token");
    assert!(m.html.contains(&format!("enter the code {token}.")));
    assert!(m.link().starts_with(&format!("{}/#confirmation_token=", site.url)));
    // The text part shows the name as written (it is not HTML), without the style sheet.
    assert!(m.text.starts_with(&format!("Welcome, {evil}!")), "{}", m.text);
    assert!(m.text.contains(&format!("Confirm ({}/#confirmation_token={token})", site.url)), "{}", m.text);
    assert!(!m.text.contains("margin"));
    app.post_json("/verify", json!({"type": "signup", "token": token})).await.ok();

    // Cached: a second mail does not download the template again.
    app.signup("tpl2@example.com", "pw-tpl", json!({})).await.ok();
    let m = Mail::last_to(&smtp, "tpl2@example.com");
    assert!(m.html.contains("<h1>Welcome!</h1>"), "{}", m.html);
    assert_eq!(m.subject, "Hello , confirm tpl2@example.com");
    assert_eq!(site.hits("/templates/confirm.html"), 1);
}

#[tokio::test]
async fn without_the_cache_the_template_is_fetched_for_each_mail() {
    let site = Site::start().await;
    site.set("/t/recover.html", r#"<p><a href="{{ .ConfirmationURL }}">Reset</a></p>"#);
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(
        &smtp,
        &site.url,
        &[("GOTRUE_MAILER_TEMPLATES_RECOVERY", "/t/recover.html"), ("GOTRUE_MAILER_TEMPLATE_CACHE_TTL", "0")],
    )
    .await;
    app.confirmed_user(&smtp, "nc1@example.com", "pw").await;
    app.confirmed_user(&smtp, "nc2@example.com", "pw").await;
    app.post_json("/recover", json!({"email": "nc1@example.com"})).await.ok();
    site.set("/t/recover.html", r#"<p>changed <a href="{{ .ConfirmationURL }}">Reset</a></p>"#);
    app.post_json("/recover", json!({"email": "nc2@example.com"})).await.ok();
    assert_eq!(site.hits("/t/recover.html"), 2);
    assert!(Mail::last_to(&smtp, "nc2@example.com").html.starts_with("<p>changed"));
}

#[tokio::test]
async fn a_template_that_cannot_be_downloaded_falls_back_to_the_default() {
    let site = Site::start().await;
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, &site.url, &[("GOTRUE_MAILER_TEMPLATES_RECOVERY", "/missing.html")]).await;
    app.confirmed_user(&smtp, "fb@example.com", "pw-fb").await;
    app.post_json("/recover", json!({"email": "fb@example.com"})).await.ok();
    assert_eq!(site.hits("/missing.html"), 4, "four attempts, then the default");
    let m = Mail::last_to(&smtp, "fb@example.com");
    m.assert_well_formed("fb@example.com", "Reset Your Password");
    assert!(m.html.contains("<h2>Reset password</h2>"));
    let token = m.link_token("recovery_token");
    app.post_json("/verify", json!({"type": "recovery", "token": token})).await.ok();
}

#[tokio::test]
async fn a_template_that_does_not_parse_fails_the_request_and_rolls_back() {
    let site = Site::start().await;
    site.set("/broken.html", "<p>{{ if .Data.full_name }}unclosed</p>");
    let smtp = tls_smtp().await;
    let app = TestApp::with_smtp(&smtp, &site.url, &[("GOTRUE_MAILER_TEMPLATES_CONFIRMATION", "/broken.html")]).await;
    app.signup("br@example.com", "pw-br", json!({})).await.assert_error(500, "Error sending confirmation mail");
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
    assert!(smtp.messages().is_empty());
    // A broken subject too.
    let app = TestApp::with_smtp(&smtp, &site.url, &[("GOTRUE_MAILER_SUBJECTS_CONFIRMATION", "{{ .Nope ")]).await;
    app.signup("br@example.com", "pw-br", json!({})).await.assert_error(500, "Error sending confirmation mail");
}
