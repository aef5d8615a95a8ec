//! What a mail says: upstream's default subjects and bodies (HOOKS_AND_MAIL.md 2.4), custom
//! templates downloaded from the site (2.6) and cached for a bounded time, and the rendering
//! of subject, HTML body and plain-text alternative.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::template::{Template, TemplateError};
use super::text::html_to_text;
use crate::ports::mail::{Mail, MailKind};

/// Upstream's default subject of each mail.
#[must_use]
pub const fn default_subject(kind: MailKind) -> &'static str {
    match kind {
        MailKind::Confirmation => "Confirm Your Signup",
        MailKind::Invite => "You have been invited",
        MailKind::Recovery => "Reset Your Password",
        MailKind::EmailChange => "Confirm Email Change",
    }
}

/// Upstream's default body of each mail (what its code sends, HOOKS_AND_MAIL.md 2.4).
#[must_use]
pub const fn default_body(kind: MailKind) -> &'static str {
    match kind {
        MailKind::Invite => {
            "<h2>You have been invited</h2>\n\n<p>You have been invited to create a user on {{ .SiteURL }}. Follow this link to accept the invite:</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Accept the invite</a></p>\n<p>This link is valid for 7 days.</p>\n"
        }
        MailKind::Confirmation => {
            "<h2>Confirm your signup</h2>\n\n<p>Follow this link to confirm your user:</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Confirm your email address</a></p>\n<p>This link is valid for 24 hours.</p>\n"
        }
        MailKind::Recovery => {
            "<h2>Reset password</h2>\n\n<p>Follow this link to reset the password for your user:</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Reset password</a></p>\n<p>This link is valid for 24 hours.</p>\n"
        }
        MailKind::EmailChange => {
            "<h2>Confirm email address change</h2>\n\n<p>Follow this link to confirm the update of your email address from {{ .Email }} to {{ .NewEmail }}:</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Change email address</a></p>\n<p>This link is valid for 24 hours.</p>\n"
        }
    }
}

/// A template setting made relative: a leading `http://host` or `https://host` is removed,
/// so templates always come from the site itself (HOOKS_AND_MAIL.md 2.6).
#[must_use]
pub fn relative_url(setting: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = setting.strip_prefix(scheme) {
            if rest.is_empty() || rest.starts_with('/') {
                // `https:///x` has no host for the pattern `[^/]+` to eat.
                return setting;
            }
            return rest.find('/').map_or("", |i| &rest[i..]);
        }
    }
    setting
}

/// Where a template setting is downloaded from: `None` for the built-in body; the relative
/// value itself when it starts with `http`, else `SITE_URL` + value (string concatenation,
/// as upstream).
#[must_use]
pub fn download_url(site_url: &str, setting: &str) -> Option<String> {
    let rel = relative_url(setting);
    if rel.is_empty() {
        None
    } else if rel.starts_with("http") {
        Some(rel.to_owned())
    } else {
        Some(format!("{site_url}{rel}"))
    }
}

/// How custom templates are fetched.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// How long a downloaded template (or a failed download) is reused; zero fetches for
    /// every mail, as upstream did.
    pub cache_ttl: Duration,
    /// Limit of one attempt (connect and read).
    pub timeout: Duration,
    /// Attempts before falling back to the default body.
    pub attempts: u32,
    /// Largest template accepted, in bytes.
    pub max_bytes: usize,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self { cache_ttl: Duration::from_secs(300), timeout: Duration::from_secs(10), attempts: 4, max_bytes: 1 << 20 }
    }
}

/// A mail ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The rendered subject.
    pub subject: String,
    /// The rendered HTML body.
    pub html: String,
    /// The plain-text alternative derived from the HTML.
    pub text: String,
}

struct Cached {
    at: Instant,
    body: Option<Arc<str>>,
}

/// Renders mails, downloading and caching custom body templates.
pub struct Renderer {
    client: reqwest::Client,
    settings: FetchSettings,
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer with its own HTTP client.
    ///
    /// # Errors
    /// The HTTP client could not be built (TLS set-up).
    pub fn new(settings: FetchSettings) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("gotrue-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("could not build the template HTTP client: {e}"))?;
        Ok(Self { client, settings, cache: Mutex::new(HashMap::new()) })
    }

    /// Renders subject, HTML and text of `mail`.
    ///
    /// # Errors
    /// A subject or body template that does not parse or execute.
    pub async fn render(&self, mail: &Mail) -> Result<Rendered, TemplateError> {
        let body_src = match download_url(&mail.site_url, &mail.template_url) {
            Some(url) => self.template(&url).await,
            None => None,
        };
        let body_src = body_src.as_deref().unwrap_or(default_body(mail.kind));
        let subject_src = if mail.subject_template.is_empty() { default_subject(mail.kind) } else { mail.subject_template.as_str() };
        render_with(mail, subject_src, body_src)
    }

    /// The downloaded template at `url`, from the cache when fresh; `None` when it cannot
    /// be had (the default body is used then).
    async fn template(&self, url: &str) -> Option<Arc<str>> {
        let ttl = self.settings.cache_ttl;
        if !ttl.is_zero() {
            if let Ok(cache) = self.cache.lock() {
                if let Some(c) = cache.get(url).filter(|c| c.at.elapsed() < ttl) {
                    return c.body.clone();
                }
            }
        }
        let body = match self.fetch(url).await {
            Ok(b) => Some(Arc::<str>::from(b)),
            Err(e) => {
                tracing::warn!(url, error = %e, "could not download the mail template; using the default body");
                None
            }
        };
        if !ttl.is_zero() {
            if let Ok(mut cache) = self.cache.lock() {
                cache.retain(|_, c| c.at.elapsed() < ttl);
                cache.insert(url.to_owned(), Cached { at: Instant::now(), body: body.clone() });
            }
        }
        body
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let mut last = String::new();
        for attempt in 1..=self.settings.attempts.max(1) {
            match self.fetch_once(url).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    tracing::debug!(url, attempt, error = %e, "mail template download failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn fetch_once(&self, url: &str) -> Result<String, String> {
        let mut resp = self.client.get(url).send().await.map_err(|e| e.to_string())?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("status {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > self.settings.max_bytes as u64) {
            return Err(format!("template larger than {} bytes", self.settings.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > self.settings.max_bytes {
                return Err(format!("template larger than {} bytes", self.settings.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| "template is not UTF-8".to_owned())
    }
}

/// The data upstream's templates see (HOOKS_AND_MAIL.md 2.4); `NewEmail` only in the
/// email-change mail, as upstream.
#[must_use]
pub fn template_data(mail: &Mail) -> Value {
    let mut m = Map::new();
    m.insert("SiteURL".into(), Value::String(mail.site_url.clone()));
    m.insert("ConfirmationURL".into(), Value::String(mail.confirmation_url.clone()));
    m.insert("Email".into(), Value::String(mail.email.clone()));
    m.insert("Token".into(), Value::String(mail.token.clone()));
    m.insert("Data".into(), Value::Object(mail.data.clone()));
    if mail.kind == MailKind::EmailChange {
        m.insert("NewEmail".into(), Value::String(mail.new_email.clone()));
    }
    Value::Object(m)
}

/// Renders `mail` with the given subject and body templates.
///
/// # Errors
/// Either template fails to parse or execute.
pub fn render_with(mail: &Mail, subject_src: &str, body_src: &str) -> Result<Rendered, TemplateError> {
    let data = template_data(mail);
    let subject = Template::parse(subject_src)?.execute(&data)?;
    // A header holds one line.
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let html = Template::parse(body_src)?.execute(&data)?;
    let text = html_to_text(&html);
    Ok(Rendered { subject, html, text })
}

/// A sample mail for the adapter's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use serde_json::json;

    use crate::ports::mail::{Mail, MailKind};

    pub(crate) fn mail(kind: MailKind) -> Mail {
        Mail {
            kind,
            to: "new@example.com".into(),
            site_url: "https://site.example".into(),
            confirmation_url: "https://site.example/#email_change_token=tok".into(),
            email: "old@example.com".into(),
            new_email: "new@example.com".into(),
            token: "tok".into(),
            data: json!({"full_name": "Ann"}).as_object().cloned().unwrap_or_default(),
            subject_template: String::new(),
            template_url: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::mail;
    use super::*;
    use serde_json::json;

    /// SCENARIOS.md 27.2 `TestRelativeURL`.
    #[test]
    fn relative_url_strips_scheme_and_host() {
        assert_eq!(relative_url("https://test.example.com"), "");
        assert_eq!(relative_url("http://test.example.com"), "");
        assert_eq!(relative_url("test.example.com"), "test.example.com");
        assert_eq!(relative_url("/some/path#fragment"), "/some/path#fragment");
        assert_eq!(relative_url("https://evil.example/templates/x.html"), "/templates/x.html");
    }

    #[test]
    fn download_url_is_on_the_site() {
        assert_eq!(download_url("https://site.example", ""), None);
        assert_eq!(download_url("https://site.example", "https://other.example"), None);
        assert_eq!(download_url("https://site.example", "/t/confirm.html").as_deref(), Some("https://site.example/t/confirm.html"));
        assert_eq!(download_url("https://site.example/", "/t.html").as_deref(), Some("https://site.example//t.html"));
        assert_eq!(download_url("https://site.example", "https://evil.example/t.html").as_deref(), Some("https://site.example/t.html"));
        assert_eq!(download_url("https://site.example", "t.html").as_deref(), Some("https://site.examplet.html"));
    }

    #[test]
    fn every_default_renders_with_its_subject() {
        for kind in [MailKind::Confirmation, MailKind::Invite, MailKind::Recovery, MailKind::EmailChange] {
            let r = render_with(&mail(kind), default_subject(kind), default_body(kind)).unwrap();
            assert_eq!(r.subject, default_subject(kind));
            assert!(r.html.contains("href=\"https://site.example/#email_change_token=tok\""), "{kind:?}: {}", r.html);
            assert!(r.text.contains("(https://site.example/#email_change_token=tok)"), "{kind:?}: {}", r.text);
        }
        let r = render_with(&mail(MailKind::EmailChange), "x", default_body(MailKind::EmailChange)).unwrap();
        assert!(r.html.contains("from old@example.com to new@example.com:"));
        let r = render_with(&mail(MailKind::Invite), "x", default_body(MailKind::Invite)).unwrap();
        assert!(r.html.contains("create a user on https://site.example. Follow"));
        assert!(r.text.starts_with("You have been invited\n\nYou have been invited to create a user on https://site.example."));
    }

    #[test]
    fn subjects_are_templates_escaped_like_html() {
        let mut m = mail(MailKind::Confirmation);
        m.data.insert("full_name".into(), json!("Tom & Jerry"));
        let r = render_with(&m, "Welcome {{ .Data.full_name }}\n to {{ .SiteURL }}", "x").unwrap();
        assert_eq!(r.subject, "Welcome Tom &amp; Jerry to https://site.example");
        assert!(render_with(&m, "{{ if }}", "x").is_err());
        assert!(render_with(&m, "ok", "{{ .Token ").is_err());
    }

    #[test]
    fn new_email_only_in_the_email_change_mail() {
        let m = mail(MailKind::Recovery);
        assert_eq!(render_with(&m, "[{{ .NewEmail }}]", "").unwrap().subject, "[]");
    }
}
