//! Mail, end to end: the real server (SMTP adapter included, as wiring builds it) against a
//! test SMTP server on loopback with STARTTLS and AUTH, and a local site serving custom
//! templates. Each flow follows the link found in the received message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

mod flows;
mod invite;
#[path = "../storage/scratch_mysql.rs"]
mod scratch_mysql;
mod site;
mod smtp_server;
mod templates;

use gotrue::app::config::{Config, Env};
use gotrue::app::wiring::{self, Overrides, Store};
use serde_json::{json, Value};

use smtp_server::{Received, ServerOptions, SmtpServer};

pub const SECRET: &str = "testsecret";
pub const AUD: &str = "api.netlify.com";
pub const SMTP_USER: &str = "mailer";
pub const SMTP_PASS: &str = "s3cret-smtp-pass";
pub const ADMIN: &str = "admin@example.com";

/// A running server with its database.
pub struct TestApp {
    pub url: String,
    pub store: Store,
    pub client: reqwest::Client,
    pub site_url: String,
    dir: tempfile::TempDir,
    _mysql: Option<scratch_mysql::ScratchDb>,
}

/// A response: status and body.
pub struct Reply {
    pub status: u16,
    pub text: String,
    pub json: Value,
}

impl Reply {
    #[track_caller]
    pub fn assert_error(&self, status: u16, msg: &str) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(self.json["code"], status, "body: {}", self.text);
        assert_eq!(self.json["msg"], msg, "body: {}", self.text);
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "body: {}", self.text);
        self.json
    }
}

/// A STARTTLS server with AUTH, and the settings that reach it.
pub async fn tls_smtp() -> SmtpServer {
    SmtpServer::start(ServerOptions { starttls: true, auth: Some((SMTP_USER.into(), SMTP_PASS.into())), mechanisms: None }).await
}

impl TestApp {
    /// SMTP settings for `smtp` (host `localhost`, trusting its CA) plus `extra`.
    pub async fn with_smtp(smtp: &SmtpServer, site_url: &str, extra: &[(&str, &str)]) -> Self {
        Self::spawn(smtp, site_url, extra, false).await
    }

    pub async fn spawn(smtp: &SmtpServer, site_url: &str, extra: &[(&str, &str)], mysql: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("smtp-ca.pem");
        std::fs::write(&ca, smtp.ca_pem()).unwrap();
        let port = smtp.port.to_string();
        let mut pairs: Vec<(String, String)> = [
            ("GOTRUE_JWT_SECRET", SECRET),
            ("GOTRUE_JWT_AUD", AUD),
            ("GOTRUE_SITE_URL", site_url),
            ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
            // Upstream accepts any non-empty password; these scenarios use short ones.
            ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
            ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
            ("GOTRUE_SMTP_HOST", "localhost"),
            ("GOTRUE_SMTP_PORT", &port),
            ("GOTRUE_SMTP_USER", SMTP_USER),
            ("GOTRUE_SMTP_PASS", SMTP_PASS),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "Site Admin <admin@example.com>"),
            ("GOTRUE_SMTP_CA_CERT", ca.to_str().unwrap()),
            ("GOTRUE_SMTP_CONNECT_TIMEOUT", "3s"),
            ("GOTRUE_SMTP_SEND_TIMEOUT", "10s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let scratch = if mysql {
            let server = scratch_mysql::server_url().expect("GOTRUE_TEST_MYSQL_URL");
            let db = scratch_mysql::ScratchDb::create(&server, "gotrue_mail_").await;
            pairs.push(("GOTRUE_DB_DRIVER".into(), "mysql".into()));
            pairs.push(("DATABASE_URL".into(), db.url().to_string()));
            pairs.push(("GOTRUE_DB_AUTOMIGRATE".into(), "true".into()));
            Some(db)
        } else {
            pairs.push(("GOTRUE_DB_DRIVER".into(), "sqlite".into()));
            pairs.push(("DATABASE_URL".into(), dir.path().join("test.db").to_str().unwrap().to_owned()));
            None
        };
        for (k, v) in extra {
            pairs.retain(|(pk, _)| pk != k);
            if !v.is_empty() || !k.starts_with("GOTRUE_SMTP_") {
                pairs.push(((*k).to_owned(), (*v).to_owned()));
            }
        }
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        let built = wiring::build(config, Overrides::default()).await.unwrap();
        let store = built.store.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, built.router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap();
        });
        Self { url: format!("http://{addr}"), store, client: reqwest::Client::new(), site_url: site_url.to_owned(), dir, _mysql: scratch }
    }

    /// A directory that lives as long as the app.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, text, json }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn put_user(&self, access_token: &str, body: Value) -> Reply {
        self.send(self.client.put(format!("{}/user", self.url)).bearer_auth(access_token).json(&body)).await
    }

    pub async fn get_user(&self, access_token: &str) -> Reply {
        self.send(self.client.get(format!("{}/user", self.url)).bearer_auth(access_token)).await
    }

    pub async fn signup(&self, email: &str, password: &str, data: Value) -> Reply {
        self.post_json("/signup", json!({"email": email, "password": password, "data": data})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.send(self.client.post(format!("{}/token", self.url)).form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ]))
        .await
    }

    /// Signs up, confirms through the mailed link, and returns the access token.
    pub async fn confirmed_user(&self, smtp: &SmtpServer, email: &str, password: &str) -> String {
        self.signup(email, password, json!({})).await.ok();
        let mail = Mail::last_to(smtp, email);
        let token = mail.link_token("confirmation_token");
        let r = self.post_json("/verify", json!({"type": "signup", "token": token})).await.ok();
        r["access_token"].as_str().unwrap().to_owned()
    }

    /// Number of rows a `SELECT COUNT(*) ...` finds.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar(sql).fetch_one(s.pool()).await.unwrap(),
        }
    }

    /// One text column of the user with this id.
    pub async fn user_column(&self, id: &str, column: &str) -> Option<String> {
        let sql = format!("SELECT {column} FROM users WHERE id = ?");
        match &self.store {
            Store::Sqlite(s) => sqlx::query_scalar(&sql).bind(id).fetch_one(s.pool()).await.unwrap(),
            Store::MySql(s) => sqlx::query_scalar(&sql).bind(id).fetch_one(s.pool()).await.unwrap(),
        }
    }
}

/// A received message, parsed.
pub struct Mail {
    pub envelope: Received,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub html: String,
    pub text: String,
    pub content_type: String,
    pub raw: String,
}

impl Mail {
    pub fn parse(r: &Received) -> Self {
        use mail_parser::MimeHeaders as _;
        let msg = mail_parser::MessageParser::default().parse(r.data.as_bytes()).expect("a MIME message");
        let addr = |a: Option<&mail_parser::Address>| a.and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned();
        let ct = msg.content_type().map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default())).unwrap_or_default();
        Self {
            envelope: r.clone(),
            subject: msg.subject().unwrap_or_default().to_owned(),
            from: addr(msg.from()),
            to: addr(msg.to()),
            html: msg.body_html(0).map(|b| b.replace("\r\n", "\n")).unwrap_or_default(),
            text: msg.body_text(0).map(|b| b.replace("\r\n", "\n")).unwrap_or_default(),
            content_type: ct,
            raw: r.data.clone(),
        }
    }

    /// The last message whose envelope goes to `to`.
    #[track_caller]
    pub fn last_to(smtp: &SmtpServer, to: &str) -> Self {
        let all = smtp.messages();
        let r = all.iter().rev().find(|m| m.rcpt_to.iter().any(|t| t == to)).unwrap_or_else(|| panic!("no mail to {to}"));
        Self::parse(r)
    }

    /// The first link in the HTML part.
    pub fn link(&self) -> String {
        let start = self.html.find("href=\"").expect("a link") + 6;
        let end = self.html[start..].find('"').unwrap() + start;
        self.html[start..end].replace("&amp;", "&")
    }

    /// The token in the link's fragment under `key`.
    #[track_caller]
    pub fn link_token(&self, key: &str) -> String {
        let link = self.link();
        let frag = link.split_once('#').map(|(_, f)| f).unwrap_or_default();
        frag.strip_prefix(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {link}")).to_owned()
    }

    /// Headers, checks common to every mail.
    #[track_caller]
    pub fn assert_well_formed(&self, to: &str, subject: &str) {
        assert_eq!(self.subject, subject);
        assert_eq!(self.from, ADMIN);
        assert_eq!(self.to, to);
        assert_eq!(self.envelope.mail_from, ADMIN);
        assert_eq!(self.envelope.rcpt_to, vec![to.to_owned()]);
        assert!(self.envelope.tls, "sent over STARTTLS");
        assert_eq!(self.envelope.auth_user.as_deref(), Some(SMTP_USER));
        assert_eq!(self.content_type, "multipart/alternative");
        for h in ["MIME-Version: 1.0", "Date: ", "Message-ID: ", "From: \"Site Admin\" <admin@example.com>"] {
            assert!(self.raw.contains(h), "missing {h:?} in\n{}", self.raw);
        }
        let link = self.link();
        assert!(self.text.contains(&link), "text part lacks the link {link}:\n{}", self.text);
        assert!(!self.text.contains('<'), "text part has markup:\n{}", self.text);
    }
}
