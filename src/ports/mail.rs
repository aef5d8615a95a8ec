//! Outgoing mail.

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Which of the four mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// Signup confirmation.
    Confirmation,
    /// Invitation.
    Invite,
    /// Password recovery.
    Recovery,
    /// Email change, sent to the new address.
    EmailChange,
}

impl MailKind {
    /// Lower-case name, as used in logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Invite => "invite",
            Self::Recovery => "recovery",
            Self::EmailChange => "email_change",
        }
    }
}

/// A mail to send, with the data upstream's templates can use (HOOKS_AND_MAIL.md 2.4).
#[derive(Clone, PartialEq)]
pub struct Mail {
    /// Which mail.
    pub kind: MailKind,
    /// Recipient address.
    pub to: String,
    /// `{{ .SiteURL }}`.
    pub site_url: String,
    /// `{{ .ConfirmationURL }}`: the link with the token in its fragment.
    pub confirmation_url: String,
    /// `{{ .Email }}`: the user's current address.
    pub email: String,
    /// `{{ .NewEmail }}`: the pending address (email change only).
    pub new_email: String,
    /// `{{ .Token }}`: the raw token.
    pub token: String,
    /// `{{ .Data }}`: the user's metadata.
    pub data: Map<String, Value>,
    /// The subject template (`MAILER_SUBJECTS_*`); empty for upstream's default subject.
    pub subject_template: String,
    /// The body template setting (`MAILER_TEMPLATES_*`), downloaded from `site_url`; empty
    /// for the built-in body.
    pub template_url: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("kind", &self.kind).field("to", &self.to).finish_non_exhaustive()
    }
}

/// Sending failed; the caller undoes what it stored for this mail.
#[derive(Debug, thiserror::Error)]
#[error("sending mail failed: {0}")]
pub struct MailError(pub String);

/// Delivers mail.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one mail.
    ///
    /// # Errors
    /// [`MailError`] when the mail could not be handed to the server.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The SMTP server of one instance (multi-instance mode), after the global overlay.
#[derive(Clone, Default)]
pub struct SmtpServer {
    /// Host; empty for no SMTP (the default mailer is used).
    pub host: String,
    /// Port (465: implicit TLS).
    pub port: u16,
    /// AUTH user.
    pub user: String,
    /// AUTH password.
    pub pass: Option<secrecy::SecretString>,
    /// `From` address.
    pub admin_email: String,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer").field("host", &self.host).field("port", &self.port).field("user", &self.user).finish_non_exhaustive()
    }
}

/// Builds (and may cache) the mailer of an instance's SMTP server.
#[cfg_attr(test, mockall::automock)]
pub trait MailerFactory: Send + Sync {
    /// The mailer delivering through `server`.
    ///
    /// # Errors
    /// [`MailError`] for settings that can never work (no From address).
    fn mailer_for(&self, server: &SmtpServer) -> Result<std::sync::Arc<dyn Mailer>, MailError>;
}
