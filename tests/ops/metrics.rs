//! `GOTRUE_METRICS_*`: off by default; when on, `/metrics` on its own listener (never on
//! the API port) in the Prometheus/OpenMetrics text format, and the counters move.

use std::collections::HashMap;

use crate::{free_port, Server};

/// `series -> value` of an exposition (comments skipped; every sample must parse).
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (series.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {l}")))
        })
        .collect()
}

async fn scrape(s: &Server, port: u16) -> HashMap<String, f64> {
    let r = s.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/openmetrics-text") || ct.starts_with("text/plain"), "{ct}");
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    parse(&text)
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_after_requests() {
    let port = free_port();
    let p = port.to_string();
    let s = Server::start(&[
        ("GOTRUE_METRICS_ENABLED", "true"),
        ("GOTRUE_METRICS_HOST", "127.0.0.1"),
        ("GOTRUE_METRICS_PORT", &p),
        ("GOTRUE_RATE_LIMIT_RECOVER", "1"),
    ])
    .await;
    let before = scrape(&s, port).await;
    s.signup_login_refresh("metrics@example.com", "pw-metrics").await;
    let r = s.token(&[("grant_type", "password"), ("username", "metrics@example.com"), ("password", "wrong")]).await;
    assert_eq!(r.status(), 400);
    let r = s.http.get(s.url("/admin/users/6f1d3b52-0000-4000-8000-000000000001")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for _ in 0..2 {
        s.http.post(s.url("/recover")).json(&serde_json::json!({"email": "metrics@example.com"})).send().await.unwrap();
    }
    // /metrics is not served on the API port.
    assert_eq!(s.http.get(s.url("/metrics")).send().await.unwrap().status(), 404);
    let after = scrape(&s, port).await;

    let delta = |series: &str| get(&after, series) - get(&before, series);
    assert_eq!(delta(r#"gotrue_signups_total{result="success"}"#), 1.0, "{after:?}");
    assert_eq!(delta(r#"gotrue_logins_total{result="success"}"#), 1.0);
    assert_eq!(delta(r#"gotrue_logins_total{result="failure"}"#), 1.0);
    assert_eq!(delta(r#"gotrue_refreshes_total{result="success"}"#), 1.0);
    assert_eq!(delta(r#"gotrue_http_requests_total{method="POST",route="/token",status="200"}"#), 2.0);
    assert_eq!(delta(r#"gotrue_http_requests_total{method="POST",route="/token",status="400"}"#), 1.0);
    // The route template, not the raw path.
    assert_eq!(delta(r#"gotrue_http_requests_total{method="GET",route="/admin/users/{user_id}",status="401"}"#), 1.0);
    assert!(after.keys().all(|k| !k.contains("6f1d3b52")));
    assert_eq!(delta(r#"gotrue_http_request_duration_seconds_count{method="POST",route="/signup",status="200"}"#), 1.0);
    assert!(get(&after, r#"gotrue_http_request_duration_seconds_sum{method="POST",route="/signup",status="200"}"#) > 0.0);
    assert_eq!(delta(r#"gotrue_rate_limit_hits_total{route="/recover"}"#), 1.0, "{after:?}");
    assert!(get(&after, r#"gotrue_db_pool_connections{pool="write"}"#) >= 1.0, "{after:?}");
    assert!(after.contains_key(r#"gotrue_db_pool_idle_connections{pool="read"}"#));
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let port = free_port();
    let s = Server::start(&[("GOTRUE_METRICS_PORT", &port.to_string())]).await;
    assert!(s.http.get(format!("http://127.0.0.1:{port}/metrics")).send().await.is_err());
    assert_eq!(s.http.get(s.url("/metrics")).send().await.unwrap().status(), 404);
}
