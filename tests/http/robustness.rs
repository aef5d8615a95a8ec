//! Server timeouts (WEAKNESSES.md 32) and field size limits.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::TestApp;

/// A server through `wiring::serve_on` (the binary's accept loop), header timeout 1 s.
async fn served() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db").to_str().unwrap().to_owned();
    let env = gotrue::app::config::Env::from_pairs([
        ("GOTRUE_JWT_SECRET", crate::SECRET),
        ("DATABASE_URL", db.as_str()),
        ("GOTRUE_API_HEADER_READ_TIMEOUT", "1"),
        ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
        ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
    ]);
    let config = gotrue::app::config::Config::from_env(&env).unwrap();
    let built = gotrue::app::wiring::build(config, Default::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let timeout = built.config.api.header_read_timeout;
    tokio::spawn(gotrue::app::wiring::serve_on(listener, built.router, timeout, async move {
        let _ = rx.await;
    }));
    (addr, tx, dir)
}

/// Reads until the server closes the connection; the time it took.
async fn until_closed(s: &mut tokio::net::TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after 5 s"),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let (addr, _stop, _dir) = served().await;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    assert!(until_closed(&mut slow).await < Duration::from_secs(4));
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(until_closed(&mut idle).await < Duration::from_secs(4));
    // A prompt request is answered, with the peer known to the limiter.
    let r = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (addr, stop, _dir) = served().await;
    let client = reqwest::Client::new();
    let pending = tokio::spawn(async move { client.get(format!("http://{addr}/settings")).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let _ = stop.send(());
    assert_eq!(pending.await.unwrap().unwrap(), 200);
}

/// Connections the kernel completed before the listener closed (still in the listen backlog
/// when the shutdown signal came) are served, not reset by the close.
#[tokio::test]
async fn connections_waiting_in_the_backlog_at_shutdown_are_answered() {
    for round in 0..3 {
        let (addr, stop, _dir) = served().await;
        // The server task has not run yet (this test's runtime has one thread and nothing
        // here yields): these connections wait in the backlog with their requests sent.
        let mut waiting = Vec::new();
        for _ in 0..4 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            std::io::Write::write_all(&mut s, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
            s.set_nonblocking(true).unwrap();
            waiting.push(tokio::net::TcpStream::from_std(s).unwrap());
        }
        let _ = stop.send(());
        for (i, s) in waiting.iter_mut().enumerate() {
            let mut got = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await.expect("answered in time");
            let text = String::from_utf8_lossy(&got);
            assert!(read.is_ok() && text.starts_with("HTTP/1.1 200"), "round {round}, connection {i}: {read:?} {text:?}");
        }
        // And once the server has let go of its listener, new connections are refused.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "round {round}: the listener is closed");
    }
}

fn big_map(bytes: usize) -> serde_json::Value {
    json!({"blob": "x".repeat(bytes)})
}

#[tokio::test]
async fn metadata_is_capped_at_64_kib() {
    let app = TestApp::spawn().await;
    let r = app.post_json("/signup", json!({"email": "big@example.com", "password": "pw", "data": big_map(70_000)})).await;
    r.assert_error(422, "Metadata is too large (at most 65536 bytes serialised)");
    let t = app.confirmed_user("m@example.com", "pw").await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let put = |data: serde_json::Value| app.send(app.put("/user").bearer_auth(&access).json(&json!({"data": data})));
    assert_eq!(put(json!({"a": "x".repeat(40_000)})).await.status, 200);
    // Each update is small enough; their merge is not.
    put(json!({"b": "x".repeat(40_000)})).await.assert_error(422, "Metadata is too large (at most 65536 bytes serialised)");
    let admin = app.super_admin().await;
    let r = app
        .send(app.post("/admin/users").bearer_auth(&admin).json(&json!({"email": "n@example.com", "user_metadata": big_map(70_000)})))
        .await;
    r.assert_error(422, "Metadata is too large (at most 65536 bytes serialised)");
    let r = app.send(app.post("/invite").bearer_auth(&admin).json(&json!({"email": "i@example.com", "data": big_map(70_000)}))).await;
    r.assert_error(422, "Metadata is too large (at most 65536 bytes serialised)");
}

#[tokio::test]
async fn oversize_email_password_and_body_are_refused() {
    let app = TestApp::spawn().await;
    let long_email = format!("{}@example.com", "a".repeat(250));
    assert_eq!(app.signup(&long_email, "password1").await.status, 422);
    assert_eq!(app.signup("p@example.com", &"p".repeat(1025)).await.status, 422);
    let r = app.send(app.post("/signup").header("content-type", "application/json").body(vec![b' '; 2 << 20])).await;
    assert_eq!(r.status, 413, "{}", r.text);
}
