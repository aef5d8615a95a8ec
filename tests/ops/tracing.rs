//! `GOTRUE_TRACING_*`: spans reach an OTLP/HTTP receiver started here (protobuf over
//! `POST /v1/traces`), through the configured host and port: the request span (route,
//! method, status, request id), a database span as its child, and the configured tags and
//! service name on the resource.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use serde_json::json;

use crate::Server;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

async fn receive(State(store): State<Received>, body: Bytes) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    store.lock().unwrap().push(req);
    ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
}

/// An OTLP/HTTP receiver on 127.0.0.1; returns its port and what it received.
async fn receiver() -> (u16, Received) {
    let store: Received = Arc::default();
    let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(Arc::clone(&store));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, store)
}

fn attrs(kv: &[KeyValue]) -> HashMap<String, String> {
    kv.iter()
        .map(|a| {
            let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Any::StringValue(s)) => s.clone(),
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (a.key.clone(), v)
        })
        .collect()
}

#[tokio::test]
async fn spans_reach_the_collector_with_tags() {
    let (port, received) = receiver().await;
    let port = port.to_string();
    let mut s = Server::start(&[
        ("GOTRUE_TRACING_ENABLED", "true"),
        ("GOTRUE_TRACING_HOST", "127.0.0.1"),
        ("GOTRUE_TRACING_PORT", &port),
        ("GOTRUE_TRACING_SERVICE_NAME", "gotrue-ops-test"),
        ("GOTRUE_TRACING_TAGS", "env:test,team:ops"),
        ("GOTRUE_API_REQUEST_ID_HEADER", "X-Request-ID"),
    ])
    .await;
    let r = s
        .http
        .post(s.url("/signup"))
        .header("X-Request-ID", "ops-trace-1")
        .json(&json!({"email": "trace@example.com", "password": "secret-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // SIGTERM flushes the batch.
    s.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let exports = received.lock().unwrap().clone();
    assert!(!exports.is_empty(), "no span arrived; stderr: {}", s.stderr());
    let mut spans = Vec::new();
    for e in &exports {
        for rs in &e.resource_spans {
            let resource = attrs(&rs.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default());
            assert_eq!(resource.get("service.name").map(String::as_str), Some("gotrue-ops-test"), "{resource:?}");
            assert_eq!(resource.get("env").map(String::as_str), Some("test"), "{resource:?}");
            assert_eq!(resource.get("team").map(String::as_str), Some("ops"), "{resource:?}");
            for ss in &rs.scope_spans {
                spans.extend(ss.spans.iter().cloned());
            }
        }
    }
    let request = spans
        .iter()
        .find(|sp| attrs(&sp.attributes).get("request_id").map(String::as_str) == Some("ops-trace-1"))
        .unwrap_or_else(|| panic!("no request span: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(request.name, "POST /signup");
    let a = attrs(&request.attributes);
    assert_eq!(a.get("http.route").map(String::as_str), Some("/signup"), "{a:?}");
    assert_eq!(a.get("method").map(String::as_str), Some("POST"));
    assert_eq!(a.get("http.response.status_code").map(String::as_str), Some("200"), "{a:?}");
    let children: Vec<_> = spans.iter().filter(|sp| sp.parent_span_id == request.span_id && sp.trace_id == request.trace_id).collect();
    let db = children
        .iter()
        .find(|sp| sp.name == "insert_user" || sp.name == "find_user_by_email")
        .unwrap_or_else(|| panic!("no database child span: {:?}", children.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(attrs(&db.attributes).get("db.system").map(String::as_str), Some("SQLite"));
    // No span carries the password.
    for sp in &spans {
        assert!(attrs(&sp.attributes).values().all(|v| !v.contains("secret-pw")));
    }
}

#[tokio::test]
async fn tracing_off_sends_nothing() {
    let (port, received) = receiver().await;
    let port = port.to_string();
    let mut s = Server::start(&[("GOTRUE_TRACING_HOST", "127.0.0.1"), ("GOTRUE_TRACING_PORT", &port)]).await;
    s.http.get(s.url("/settings")).send().await.unwrap();
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.lock().unwrap().is_empty());
}
