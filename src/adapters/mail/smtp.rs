//! SMTP delivery on lettre (tokio + rustls), as HOOKS_AND_MAIL.md 2.2-2.3 describes, with
//! a multipart/alternative body (HTML plus a plain-text part).
//!
//! One connection per mail: port 465 speaks TLS from the first byte; any other port starts
//! in plain text and upgrades with STARTTLS when the server offers it. The certificate is
//! verified for `SMTP_HOST` against the Mozilla roots plus an optional extra CA
//! (`GOTRUE_SMTP_CA_CERT`); there is no switch to accept any certificate. With `SMTP_USER`
//! set and AUTH offered, PLAIN is used (LOGIN when PLAIN is not offered); credentials are
//! never sent over an unencrypted connection except to a loopback host. Connecting and the
//! whole conversation are bounded by timeouts.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use secrecy::{ExposeSecret as _, SecretString};

use super::content::{Rendered, Renderer};
use crate::ports::mail::{Mail, MailError, Mailer};

/// What the SMTP adapter needs to know.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Server host name (also the name its certificate must carry).
    pub host: String,
    /// Port; 465 means implicit TLS.
    pub port: u16,
    /// AUTH user; empty for none.
    pub user: String,
    /// AUTH password.
    pub pass: Option<SecretString>,
    /// `From` address (`SMTP_ADMIN_EMAIL`).
    pub from: String,
    /// Extra trusted CA certificates, PEM (`GOTRUE_SMTP_CA_CERT`'s file contents).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Limit for establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Limit for the whole conversation, connection included.
    pub send_timeout: Duration,
}

/// Sends mail through an SMTP server.
pub struct SmtpMailer {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    from: Mailbox,
    tls: TlsParameters,
    hello: ClientId,
    connect_timeout: Duration,
    send_timeout: Duration,
    renderer: Arc<Renderer>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.credentials.is_some())
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Whether the port means TLS from the start (SMTPS, RFC 8314 section 3.3).
#[must_use]
pub const fn implicit_tls(port: u16) -> bool {
    port == 465
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SmtpMailer {
    /// Builds the adapter; fails on settings that can never work, so start-up stops.
    ///
    /// # Errors
    /// An unusable `From` address or CA file, or TLS set-up failure.
    pub fn new(s: SmtpSettings, renderer: Arc<Renderer>) -> Result<Self, String> {
        if s.from.trim().is_empty() {
            return Err("GOTRUE_SMTP_ADMIN_EMAIL is required when GOTRUE_SMTP_HOST is set (it is the From address)".into());
        }
        let from: Mailbox = s.from.parse().map_err(|e| format!("GOTRUE_SMTP_ADMIN_EMAIL {:?} is not a mail address: {e}", s.from))?;
        let mut tls = TlsParameters::builder(s.host.clone());
        if let Some(pem) = &s.extra_ca_pem {
            if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err("GOTRUE_SMTP_CA_CERT holds no PEM certificate".into());
            }
            let cert = Certificate::from_pem(pem).map_err(|e| format!("GOTRUE_SMTP_CA_CERT holds no usable PEM certificate: {e}"))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls.build_rustls().map_err(|e| format!("could not set up TLS for SMTP: {e}"))?;
        let credentials = (!s.user.is_empty())
            .then(|| Credentials::new(s.user.clone(), s.pass.as_ref().map(|p| p.expose_secret().to_owned()).unwrap_or_default()));
        Ok(Self {
            host: s.host,
            port: s.port,
            credentials,
            from,
            tls,
            hello: ClientId::default(),
            connect_timeout: s.connect_timeout,
            send_timeout: s.send_timeout,
            renderer,
        })
    }

    /// Builds the MIME message for a rendered mail.
    ///
    /// # Errors
    /// A recipient that is not a mail address.
    pub fn message(&self, mail: &Mail, r: &Rendered) -> Result<Message, MailError> {
        let to: Mailbox = mail.to.parse().map_err(|e| MailError(format!("recipient is not a mail address: {e}")))?;
        // A Message-ID on the sender's domain (RFC 5322 3.6.4); spam filters expect one.
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.from.email.domain());
        Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(r.subject.clone())
            .multipart(MultiPart::alternative_plain_html(r.text.clone(), r.html.clone()))
            .map_err(|e| MailError(format!("could not build the message: {e}")))
    }

    async fn deliver(&self, msg: &Message) -> Result<(), MailError> {
        let err = |e: lettre::transport::smtp::Error| MailError(format!("SMTP {}:{}: {e}", self.host, self.port));
        let implicit = implicit_tls(self.port);
        let conversation = async {
            let connect = AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                implicit.then(|| self.tls.clone()),
                None,
            );
            let mut conn = connect.await.map_err(err)?;
            if !implicit && conn.can_starttls() {
                conn.starttls(self.tls.clone(), &self.hello).await.map_err(err)?;
            }
            if let Some(creds) = &self.credentials {
                let mechanisms = [Mechanism::Plain, Mechanism::Login];
                if mechanisms.iter().any(|m| conn.server_info().supports_auth_mechanism(*m)) {
                    if !conn.is_encrypted() && !is_loopback(&self.host) {
                        conn.abort().await;
                        return Err(MailError(format!(
                            "SMTP {}:{}: refusing to send credentials over an unencrypted connection (the server offers no STARTTLS)",
                            self.host, self.port
                        )));
                    }
                    conn.auth(&mechanisms, creds).await.map_err(err)?;
                }
            }
            conn.send(msg.envelope(), &msg.formatted()).await.map_err(err)?;
            let _ = conn.quit().await;
            Ok(())
        };
        match tokio::time::timeout(self.send_timeout, conversation).await {
            Ok(r) => r,
            Err(_) => Err(MailError(format!("SMTP {}:{}: timed out after {:?}", self.host, self.port, self.send_timeout))),
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let rendered = self.renderer.render(mail).await.map_err(|e| MailError(format!("mail template: {e}")))?;
        let msg = self.message(mail, &rendered)?;
        self.deliver(&msg).await?;
        tracing::info!(kind = mail.kind.as_str(), "mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::mail::content::FetchSettings;
    use crate::ports::mail::MailKind;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example".into(),
            port: 587,
            user: "u".into(),
            pass: Some(SecretString::from("hunter2hunter2")),
            from: "Admin <admin@example.com>".into(),
            extra_ca_pem: None,
            connect_timeout: Duration::from_secs(1),
            send_timeout: Duration::from_secs(1),
        }
    }

    fn renderer() -> Arc<Renderer> {
        Arc::new(Renderer::new(FetchSettings::default()).unwrap())
    }

    #[test]
    fn settings_are_checked_and_secrets_not_shown() {
        let m = SmtpMailer::new(settings(), renderer()).unwrap();
        assert!(!format!("{m:?}").contains("hunter2"));
        let mut s = settings();
        s.from = String::new();
        assert!(SmtpMailer::new(s, renderer()).unwrap_err().contains("GOTRUE_SMTP_ADMIN_EMAIL"));
        let mut s = settings();
        s.extra_ca_pem = Some(b"not a certificate".to_vec());
        assert!(SmtpMailer::new(s, renderer()).is_err());
        assert!(implicit_tls(465) && !implicit_tls(587) && !implicit_tls(25));
        assert!(is_loopback("localhost") && is_loopback("127.0.0.2") && is_loopback("[::1]") && !is_loopback("smtp.example"));
    }

    #[tokio::test]
    async fn message_is_multipart_alternative_with_both_parts() {
        let m = SmtpMailer::new(settings(), renderer()).unwrap();
        let mut mail = crate::adapters::mail::content::tests_support::mail(MailKind::Invite);
        mail.to = "Ann Example <ann@example.com>".into();
        let r = m.renderer.render(&mail).await.unwrap();
        let msg = String::from_utf8(m.message(&mail, &r).unwrap().formatted()).unwrap();
        assert!(msg.contains("From: Admin <admin@example.com>"), "{msg}");
        assert!(msg.contains("To: \"Ann Example\" <ann@example.com>") || msg.contains("To: Ann Example <ann@example.com>"), "{msg}");
        assert!(msg.contains("Subject: You have been invited"));
        assert!(msg.contains("multipart/alternative"));
        assert!(msg.contains("Message-ID: <") && msg.contains("@example.com>"), "{msg}");
        assert!(msg.contains("text/plain; charset=utf-8"));
        assert!(msg.contains("text/html; charset=utf-8"));
        let mut bad = mail.clone();
        bad.to = "not an address".into();
        assert!(m.message(&bad, &r).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_server_fails_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut s = settings();
        s.host = "127.0.0.1".into();
        s.port = port;
        let m = SmtpMailer::new(s, renderer()).unwrap();
        let mail = crate::adapters::mail::content::tests_support::mail(MailKind::Recovery);
        let e = m.send(&mail).await.unwrap_err();
        assert!(e.0.contains("127.0.0.1"), "{e}");
    }
}
