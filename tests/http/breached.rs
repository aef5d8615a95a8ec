//! The breached-password check (`GOTRUE_PASSWORD_HIBP_*`) against a fake range server on
//! loopback: every place a new password is set refuses a known one with 422, misses and
//! padding rows pass, and an outage or a slow service lets the password through with a
//! warning that does not contain it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::get;
use gotrue::adapters::breached::range_parts;
use serde_json::json;

use crate::TestApp;

const BREACHED: &str = "hunter2hunter2";
const PADDED: &str = "only a padding row";
const FRESH: &str = "an unbreached passphrase";
const MSG: &str = "This password has appeared in a data breach and cannot be used; please choose a different one";

#[derive(Clone, Default)]
struct Fake {
    delay: Duration,
    prefixes: Arc<Mutex<Vec<String>>>,
}

/// A range server knowing [`BREACHED`] (count 7, lower-case suffix) and [`PADDED`] (count 0).
async fn fake_range_server(delay: Duration) -> (String, Fake) {
    let fake = Fake { delay, ..Fake::default() };
    let app = axum::Router::new()
        .route(
            "/range/{prefix}",
            get(|State(f): State<Fake>, Path(prefix): Path<String>| async move {
                f.prefixes.lock().unwrap().push(prefix.clone());
                tokio::time::sleep(f.delay).await;
                let mut body = String::from("0000000000000000000000000000000000A:3\r\n");
                for (pw, count) in [(BREACHED, 7), (PADDED, 0)] {
                    let (p, s) = range_parts(pw);
                    if p == prefix {
                        body.push_str(&format!("{}:{count}\r\n", s.to_ascii_lowercase()));
                    }
                }
                body
            }),
        )
        .with_state(fake.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}"), fake)
}

async fn app_with(url: &str, timeout: &str) -> TestApp {
    TestApp::spawn_with(&[
        ("GOTRUE_PASSWORD_HIBP_ENABLED", "true"),
        ("GOTRUE_PASSWORD_HIBP_URL", url),
        ("GOTRUE_PASSWORD_HIBP_TIMEOUT", timeout),
        ("GOTRUE_MAILER_AUTOCONFIRM", "true"),
    ])
    .await
}

/// Everything logged by this test binary (a global subscriber installed once).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || SharedWriter(Arc::clone(&sink)))
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn known_passwords_are_refused_wherever_a_password_is_set() {
    let (url, fake) = fake_range_server(Duration::ZERO).await;
    let app = app_with(&url, "2s").await;
    let admin = app.super_admin().await;

    app.signup("a@example.com", BREACHED).await.assert_error(422, MSG);
    assert_eq!(app.signup("b@example.com", PADDED).await.status, 200, "a padding row (count 0) is not a hit");
    let r = app.signup("c@example.com", FRESH).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent: Vec<String> = fake.prefixes.lock().unwrap().clone();
    assert!(sent.iter().all(|p| p.len() == 5), "only five-character prefixes leave the server: {sent:?}");

    // PUT /user (also the second step of a recovery).
    let token = app.login("c@example.com", FRESH).await.json["access_token"].as_str().unwrap().to_owned();
    let put = |pw: &str| app.put("/user").bearer_auth(&token).json(&json!({"password": pw}));
    app.send(put(BREACHED)).await.assert_error(422, MSG);
    assert_eq!(app.send(put("another fresh passphrase")).await.status, 200);

    // Admin create and update.
    let create = |email: &str, pw: &str| app.post("/admin/users").bearer_auth(&admin).json(&json!({"email": email, "password": pw}));
    app.send(create("d@example.com", BREACHED)).await.assert_error(422, MSG);
    let r = app.send(create("d@example.com", FRESH)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = app.send(app.put(&format!("/admin/users/{id}")).bearer_auth(&admin).json(&json!({"password": BREACHED}))).await;
    r.assert_error(422, MSG);

    // Invite acceptance.
    let r = app.send(app.post("/invite").bearer_auth(&admin).json(&json!({"email": "e@example.com"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let invite = app.mailed_token("e@example.com", "invite_token");
    let verify = |pw: &str| app.post("/verify").json(&json!({"type": "signup", "token": invite, "password": pw}));
    app.send(verify(BREACHED)).await.assert_error(422, MSG);
    assert_eq!(app.send(verify(FRESH)).await.status, 200);
}

#[tokio::test]
async fn off_by_default() {
    let (url, fake) = fake_range_server(Duration::ZERO).await;
    let app = TestApp::spawn_with(&[("GOTRUE_PASSWORD_HIBP_URL", url.as_str()), ("GOTRUE_MAILER_AUTOCONFIRM", "true")]).await;
    assert_eq!(app.signup("a@example.com", BREACHED).await.status, 200);
    assert!(fake.prefixes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_outage_or_a_slow_service_fails_open_with_a_warning() {
    let logs = logs();
    // Nothing listens on a port just released.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let app = app_with(&dead, "2s").await;
    let r = app.signup("down@example.com", BREACHED).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (slow, _) = fake_range_server(Duration::from_secs(5)).await;
    let app = app_with(&slow, "300ms").await;
    let started = std::time::Instant::now();
    let r = app.signup("slow@example.com", BREACHED).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(3), "waited {:?}", started.elapsed());

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.matches("breached-password check skipped").count() >= 2, "logs: {text}");
    assert!(!text.contains(BREACHED), "the password must not be logged: {text}");
    let (prefix, _) = range_parts(BREACHED);
    assert!(!text.contains(&prefix), "nor its hash prefix: {text}");
}
