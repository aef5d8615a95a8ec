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
