//! A small SMTP server on loopback for the tests: EHLO, STARTTLS (a certificate for
//! `localhost` issued by a CA generated at start), AUTH PLAIN and LOGIN, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT. It records every accepted message and can be stopped and restarted on
//! the same port to simulate an outage.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A certificate authority and a server certificate for `localhost` it issued.
pub struct TestPki {
    /// The CA certificate, PEM: what `GOTRUE_SMTP_CA_CERT` points at.
    pub ca_pem: String,
    acceptor: TlsAcceptor,
}

impl TestPki {
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "gotrue-rs test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        Self { ca_pem: ca_cert.pem(), acceptor: TlsAcceptor::from(Arc::new(config)) }
    }
}

/// How the server behaves.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Offer STARTTLS.
    pub starttls: bool,
    /// Require AUTH with these credentials before MAIL.
    pub auth: Option<(String, String)>,
    /// Mechanisms offered (default `PLAIN LOGIN`).
    pub mechanisms: Option<String>,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub auth_user: Option<String>,
    pub auth_mechanism: Option<String>,
}

struct Shared {
    opts: ServerOptions,
    pki: Option<TestPki>,
    messages: Mutex<Vec<Received>>,
}

pub struct SmtpServer {
    pub port: u16,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpServer {
    pub async fn start(opts: ServerOptions) -> Self {
        let pki = opts.starttls.then(TestPki::generate);
        let shared = Arc::new(Shared { opts, pki, messages: Mutex::new(Vec::new()) });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Self { port, shared, task: Mutex::new(None) };
        server.serve(listener);
        server
    }

    /// The CA to trust (STARTTLS servers only).
    pub fn ca_pem(&self) -> &str {
        &self.shared.pki.as_ref().expect("no TLS on this server").ca_pem
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = handle(tcp, shared).await;
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Closes the listening socket: connections are refused until [`Self::restart`].
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }
}

enum Outcome<S> {
    Done,
    StartTls(S),
}

async fn handle(mut tcp: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    tcp.write_all(b"220 localhost ESMTP gotrue-rs test server\r\n").await?;
    match session(tcp, false, &shared).await? {
        Outcome::Done => Ok(()),
        Outcome::StartTls(tcp) => {
            let Some(pki) = &shared.pki else { return Ok(()) };
            let tls = pki.acceptor.accept(tcp).await?;
            match session(tls, true, &shared).await? {
                Outcome::Done | Outcome::StartTls(_) => Ok(()),
            }
        }
    }
}

async fn read_line<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok().and_then(|v| String::from_utf8(v).ok()).unwrap_or_default()
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, tls: bool, shared: &Shared) -> std::io::Result<Outcome<S>> {
    let mut r = BufReader::new(stream);
    let mut authed: Option<(String, String)> = None;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let opts = &shared.opts;
    while let Some(line) = read_line(&mut r).await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let mut s = String::from("250-localhost\r\n");
            if opts.starttls && !tls {
                s.push_str("250-STARTTLS\r\n");
            }
            if opts.auth.is_some() && (tls || !opts.starttls) {
                s.push_str(&format!("250-AUTH {}\r\n", opts.mechanisms.as_deref().unwrap_or("PLAIN LOGIN")));
            }
            s.push_str("250 8BITMIME\r\n");
            s
        } else if upper == "STARTTLS" && opts.starttls && !tls {
            r.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            return Ok(Outcome::StartTls(r.into_inner()));
        } else if let Some(rest) = upper.strip_prefix("AUTH ") {
            let arg = line.get(5..).unwrap_or_default();
            let (user, pass, mech) = if rest.starts_with("PLAIN") {
                let initial = arg.get(5..).map(str::trim).unwrap_or_default().to_owned();
                let payload = if initial.is_empty() {
                    r.get_mut().write_all(b"334 \r\n").await?;
                    read_line(&mut r).await?.unwrap_or_default()
                } else {
                    initial
                };
                let decoded = b64(&payload);
                let mut parts = decoded.split('\0').skip(1);
                (parts.next().unwrap_or_default().to_owned(), parts.next().unwrap_or_default().to_owned(), "PLAIN")
            } else if rest.starts_with("LOGIN") {
                r.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                let user = b64(&read_line(&mut r).await?.unwrap_or_default());
                r.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                let pass = b64(&read_line(&mut r).await?.unwrap_or_default());
                (user, pass, "LOGIN")
            } else {
                (String::new(), String::new(), "")
            };
            match &opts.auth {
                Some((u, p)) if !mech.is_empty() && *u == user && *p == pass => {
                    authed = Some((user, mech.to_owned()));
                    "235 2.7.0 Authentication successful\r\n".into()
                }
                _ => "535 5.7.8 Authentication credentials invalid\r\n".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if opts.auth.is_some() && authed.is_none() {
                "530 5.7.0 Authentication required\r\n".into()
            } else {
                mail_from = line[10..].trim().trim_matches(['<', '>']).to_owned();
                rcpt_to.clear();
                "250 2.1.0 OK\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            rcpt_to.push(line[8..].trim().trim_matches(['<', '>']).to_owned());
            "250 2.1.5 OK\r\n".into()
        } else if upper == "DATA" {
            r.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                let Some(l) = read_line(&mut r).await? else { return Ok(Outcome::Done) };
                if l == "." {
                    break;
                }
                // RFC 5321 4.5.2: a leading dot was doubled by the client.
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            shared.messages.lock().unwrap().push(Received {
                mail_from: mail_from.clone(),
                rcpt_to: rcpt_to.clone(),
                data,
                tls,
                auth_user: authed.as_ref().map(|a| a.0.clone()),
                auth_mechanism: authed.as_ref().map(|a| a.1.clone()),
            });
            "250 2.0.0 OK queued\r\n".into()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 OK\r\n".into()
        } else if upper == "QUIT" {
            r.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(Outcome::Done);
        } else {
            "502 5.5.2 Command not recognized\r\n".into()
        };
        r.get_mut().write_all(reply.as_bytes()).await?;
    }
    Ok(Outcome::Done)
}
