//! `LOG_LEVEL` (prefixed and not), `LOG_FILE`, the request id in log lines and the response
//! header (`REQUEST_ID_HEADER` honoured, else generated), and no secret in any log line.

use serde_json::Value;

use crate::{json_lines, Server};

fn completed(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["fields"]["message"] == "request completed").collect()
}

#[tokio::test]
async fn log_file_holds_json_lines_with_the_request_id_and_no_secret() {
    let jwt_secret = "ops-test-jwt-secret-0123456789-abcdefghijklmnop";
    let password = "Correct-Horse-Battery-Staple-42";
    let mut s = Server::start(&[
        ("LOG_LEVEL", "trace"),
        ("GOTRUE_LOG_FILE", "gotrue.log"),
        ("REQUEST_ID_HEADER", "X-Request-ID"),
        ("GOTRUE_JWT_SECRET", jwt_secret),
    ])
    .await;
    let (access, refresh1, refresh2) = s.signup_login_refresh("logs@example.com", password).await;

    // A given request id is honoured and echoed.
    let r = s.http.get(s.url("/user")).bearer_auth(&access).header("X-Request-ID", "ops-req-given-1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "ops-req-given-1");
    // Without one, a fresh id is generated and returned.
    let r = s.http.get(s.url("/settings")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    // A failed login carries the password too.
    let r = s.token(&[("grant_type", "password"), ("username", "logs@example.com"), ("password", "Wrong-Password-Never-Logged")]).await;
    assert_eq!(r.status(), 400);
    s.stop().await;

    let path = s.path("gotrue.log");
    let lines = json_lines(&path);
    assert!(!lines.is_empty(), "LOG_FILE was not written; stderr: {}", s.stderr());
    let done = completed(&lines);
    assert!(done.iter().any(|l| l["span"]["request_id"] == "ops-req-given-1" && l["span"]["path"] == "/user"), "{done:?}");
    assert!(done.iter().any(|l| l["span"]["request_id"] == generated.as_str() && l["span"]["path"] == "/settings"));
    assert!(done.iter().all(|l| l["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty())));
    assert!(lines.iter().any(|l| l["level"] == "DEBUG" || l["level"] == "TRACE") || done.len() >= 5, "LOG_LEVEL=trace is in force");

    let text = std::fs::read_to_string(&path).unwrap() + &s.stderr();
    for secret in [jwt_secret, password, "Wrong-Password-Never-Logged", access.as_str(), refresh1.as_str(), refresh2.as_str()] {
        assert!(!text.contains(secret), "a secret reached the log: {secret}");
    }
    // Not even a recognisable piece of the access token (its signature).
    let signature = access.rsplit('.').next().unwrap();
    assert!(!text.contains(signature));
}

#[tokio::test]
async fn unprefixed_log_level_applies_and_the_prefixed_one_wins() {
    // LOG_LEVEL=error: request lines (info) are not written.
    let mut quiet = Server::start(&[("LOG_LEVEL", "error"), ("GOTRUE_LOG_FILE", "gotrue.log")]).await;
    quiet.http.get(quiet.url("/settings")).send().await.unwrap();
    quiet.stop().await;
    let lines = json_lines(&quiet.path("gotrue.log"));
    assert!(completed(&lines).is_empty(), "{lines:?}");
    assert!(lines.iter().all(|l| l["level"] == "ERROR"), "{lines:?}");

    // GOTRUE_LOG_LEVEL=info beats LOG_LEVEL=error.
    let mut loud = Server::start(&[("LOG_LEVEL", "error"), ("GOTRUE_LOG_LEVEL", "info"), ("GOTRUE_LOG_FILE", "gotrue.log")]).await;
    loud.http.get(loud.url("/settings")).send().await.unwrap();
    loud.stop().await;
    let lines = json_lines(&loud.path("gotrue.log"));
    assert_eq!(completed(&lines).len(), 2, "the /health probe of the start-up and /settings: {lines:?}");
    // With LOG_FILE, stderr gets no log lines.
    assert!(!loud.stderr().contains("request completed"));
}

#[tokio::test]
async fn without_log_file_lines_go_to_stderr() {
    let mut s = Server::start(&[("GOTRUE_LOG_LEVEL", "info")]).await;
    s.http.get(s.url("/settings")).header("X-Request-ID", "ignored-without-setting").send().await.unwrap();
    s.stop().await;
    let err = s.stderr();
    let lines: Vec<Value> = err.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let done = completed(&lines);
    assert!(!done.is_empty(), "{err}");
    // REQUEST_ID_HEADER unset: a client's header is not trusted as the id.
    assert!(done.iter().all(|l| l["span"]["request_id"] != "ignored-without-setting"));
}
