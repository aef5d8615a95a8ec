//! Mail adapters. [`SmtpMailer`] delivers over SMTP with upstream's templates; without
//! SMTP the [`LogMailer`] prints each mail's link (the one deliberate exception to "no token
//! in logs", for local development); tests read the [`MemoryOutbox`].
//!
//! - `content`: default subjects and bodies, custom templates (download, cache), rendering;
//! - `template` and `escape`: the Go `html/template` subset and its contextual escaping;
//! - `text`: the plain-text alternative;
//! - `smtp`: the lettre transport.

pub mod content;
pub mod escape;
pub mod smtp;
pub mod template;
pub mod text;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

pub use content::{FetchSettings, Renderer};
pub use smtp::{SmtpMailer, SmtpSettings};

use crate::ports::mail::{Mail, MailError, Mailer};

/// Logs every mail with its link instead of sending it.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::warn!(kind = mail.kind.as_str(), to = %mail.to, link = %mail.confirmation_url, "mail not sent (no SMTP configured); its link follows");
        Ok(())
    }
}

/// Drops every mail with a warning that names neither the link nor the token: the mailer
/// of instances without SMTP in multi-instance mode, a production mode where the log is
/// no place for tokens (GoTrue used a silent no-op mailer there).
#[derive(Debug, Clone, Copy, Default)]
pub struct DropMailer;

#[async_trait]
impl Mailer for DropMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::warn!(
            kind = mail.kind.as_str(),
            "mail not sent: this instance has no SMTP server (smtp.host) and GOTRUE_SMTP_HOST is not set"
        );
        Ok(())
    }
}

/// Keeps mails in memory (tests and embedding).
#[derive(Debug, Clone, Default)]
pub struct MemoryOutbox {
    mails: Arc<Mutex<Vec<Mail>>>,
    fail: Arc<Mutex<bool>>,
}

impl MemoryOutbox {
    /// Everything sent so far.
    #[must_use]
    pub fn sent(&self) -> Vec<Mail> {
        self.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The last mail sent to `to`.
    #[must_use]
    pub fn last_to(&self, to: &str) -> Option<Mail> {
        self.sent().into_iter().rev().find(|m| m.to == to)
    }

    /// Makes every following send fail (or succeed again).
    pub fn set_failing(&self, fail: bool) {
        if let Ok(mut f) = self.fail.lock() {
            *f = fail;
        }
    }
}

#[async_trait]
impl Mailer for MemoryOutbox {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if self.fail.lock().map(|f| *f).unwrap_or(false) {
            return Err(MailError("outbox set to fail".into()));
        }
        self.mails.lock().map_err(|_| MailError("outbox poisoned".into()))?.push(mail.clone());
        Ok(())
    }
}

/// Builds the SMTP mailer of each instance's server in multi-instance mode and keeps it
/// (one per distinct server, user, password and From address); instances without an SMTP
/// host get the fallback mailer.
pub struct SmtpMailerFactory {
    renderer: Arc<Renderer>,
    extra_ca_pem: Option<Vec<u8>>,
    connect_timeout: std::time::Duration,
    send_timeout: std::time::Duration,
    fallback: Arc<dyn Mailer>,
    built: Mutex<std::collections::HashMap<String, Arc<dyn Mailer>>>,
}

impl std::fmt::Debug for SmtpMailerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailerFactory").finish_non_exhaustive()
    }
}

/// Distinct mailers kept at most; the set is emptied when it grows past this.
const MAILERS_MAX: usize = 1_000;

impl SmtpMailerFactory {
    /// A factory sharing one template renderer, CA and timeouts.
    #[must_use]
    pub fn new(
        renderer: Arc<Renderer>,
        extra_ca_pem: Option<Vec<u8>>,
        connect_timeout: std::time::Duration,
        send_timeout: std::time::Duration,
        fallback: Arc<dyn Mailer>,
    ) -> Self {
        Self { renderer, extra_ca_pem, connect_timeout, send_timeout, fallback, built: Mutex::new(std::collections::HashMap::new()) }
    }
}

impl crate::ports::mail::MailerFactory for SmtpMailerFactory {
    fn mailer_for(&self, server: &crate::ports::mail::SmtpServer) -> Result<Arc<dyn Mailer>, MailError> {
        use secrecy::ExposeSecret as _;
        use sha2::Digest as _;
        if server.host.is_empty() {
            return Ok(Arc::clone(&self.fallback));
        }
        let pass = server.pass.as_ref().map(|p| hex::encode(sha2::Sha256::digest(p.expose_secret().as_bytes()))).unwrap_or_default();
        let key = format!("{}\n{}\n{}\n{pass}\n{}", server.host, server.port, server.user, server.admin_email);
        if let Some(m) = self.built.lock().ok().and_then(|b| b.get(&key).cloned()) {
            return Ok(m);
        }
        let settings = SmtpSettings {
            host: server.host.clone(),
            port: server.port,
            user: server.user.clone(),
            pass: server.pass.clone(),
            from: server.admin_email.clone(),
            extra_ca_pem: self.extra_ca_pem.clone(),
            connect_timeout: self.connect_timeout,
            send_timeout: self.send_timeout,
        };
        let mailer: Arc<dyn Mailer> = Arc::new(SmtpMailer::new(settings, Arc::clone(&self.renderer)).map_err(MailError)?);
        if let Ok(mut b) = self.built.lock() {
            if b.len() >= MAILERS_MAX {
                b.clear();
            }
            b.insert(key, Arc::clone(&mailer));
        }
        Ok(mailer)
    }
}
