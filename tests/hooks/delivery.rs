//! The reqwest sender on its own: headers, signatures, retries, error classification, reply
//! decoding and redirects, against the loopback receiver.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use gotrue::adapters::hooks::ReqwestHookSender;
use gotrue::domain::user::User;
use gotrue::ports::clock::Clock;
use gotrue::ports::hooks::{DeliveryPolicy, HookDestination, HookError, HookEvent, HookReply, HookSender as _};
use secrecy::SecretString;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::{closed_port_url, Answer, Receiver, HOOK_SECRET};

/// A clock that moves one second forward at every reading, from now.
struct SteppingClock(AtomicI64);

impl SteppingClock {
    fn new() -> Self {
        Self(AtomicI64::new(Utc::now().timestamp()))
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0.fetch_add(1, Ordering::SeqCst), 0).unwrap()
    }
}

fn sender() -> ReqwestHookSender {
    ReqwestHookSender::new(true, Arc::new(SteppingClock::new())).unwrap()
}

fn dest(url: &str, signed: bool) -> HookDestination {
    HookDestination { url: Url::parse(url).unwrap(), signing_key: signed.then(|| SecretString::from(HOOK_SECRET)) }
}

fn policy(attempts: u32, secs: u64) -> DeliveryPolicy {
    DeliveryPolicy { attempts, timeout: Duration::from_secs(secs) }
}

fn user() -> User {
    User::new(Uuid::nil(), "api.netlify.com", "d@example.com", String::new(), None, Utc::now())
}

async fn send(url: &str, attempts: u32, event: HookEvent) -> Result<HookReply, HookError> {
    sender().send(&dest(url, true), policy(attempts, 1), event, Uuid::nil(), &user()).await
}

#[tokio::test]
async fn requests_carry_the_documented_headers_and_exact_body() {
    let rx = Receiver::start().await;
    let reply = send(&format!("{}/hook?x=1", rx.url), 1, HookEvent::Login).await.unwrap();
    assert_eq!(reply, HookReply::default(), "an empty 200 changes nothing");
    let calls = rx.calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!((c.method.as_str(), c.path.as_str()), ("POST", "/hook"));
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("x-netlify-event"), Some("identity_login"));
    let text = std::str::from_utf8(&c.body).unwrap();
    assert!(text.starts_with(r#"{"event":"login","instance_id":"00000000-0000-0000-0000-000000000000","user":{"id":"#), "{text}");
    c.verified_claims(HOOK_SECRET);
}

#[tokio::test]
async fn without_a_key_no_signature_is_sent() {
    let rx = Receiver::start().await;
    sender().send(&dest(&rx.url, false), policy(1, 1), HookEvent::Signup, Uuid::nil(), &user()).await.unwrap();
    assert!(rx.calls()[0].header("x-webhook-signature").is_none());
}

#[tokio::test]
async fn server_errors_are_retried_with_a_new_signature_each_time() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(500), Answer::status(503), Answer::ok()]);
    send(&rx.url, 3, HookEvent::Signup).await.unwrap();
    let calls = rx.calls();
    assert_eq!(calls.len(), 3);
    let claims: Vec<_> = calls.iter().map(|c| c.verified_claims(HOOK_SECRET)).collect();
    assert!(claims[0].iat < claims[1].iat && claims[1].iat < claims[2].iat, "each attempt is signed at its own time");
    assert!(claims.iter().all(|c| c.exp == c.iat + 300));
    assert_ne!(calls[0].header("x-webhook-signature"), calls[1].header("x-webhook-signature"));
    assert!(calls.iter().all(|c| c.body == calls[0].body), "the body is the same on every attempt");
}

#[tokio::test]
async fn only_200_202_and_204_are_success() {
    let rx = Receiver::start().await;
    rx.script([Answer::status(201), Answer::status(202)]);
    send(&rx.url, 3, HookEvent::Signup).await.unwrap();
    assert_eq!(rx.calls().len(), 2);
    let rx = Receiver::start().await;
    rx.always(Answer::status(204));
    send(&rx.url, 3, HookEvent::Signup).await.unwrap();
    assert_eq!(rx.calls().len(), 1);
}

#[tokio::test]
async fn unsuccessful_statuses_on_every_attempt_are_a_refusal() {
    let rx = Receiver::start().await;
    rx.always(Answer::status(500));
    let err = send(&rx.url, 4, HookEvent::Validate).await.unwrap_err();
    assert!(matches!(err, HookError::Refused), "{err:?}");
    assert_eq!(err.to_string(), "Failed to handle signup webhook");
    assert_eq!(rx.calls().len(), 4);
}

#[tokio::test]
async fn a_timeout_is_retried_and_a_later_success_counts() {
    let rx = Receiver::start().await;
    rx.script([Answer::ok().after(Duration::from_secs(3)), Answer::ok()]);
    send(&rx.url, 2, HookEvent::Signup).await.unwrap();
    assert_eq!(rx.calls().len(), 2);
}

#[tokio::test]
async fn nothing_listening_is_unreachable_without_retry() {
    let url = closed_port_url().await;
    let start = std::time::Instant::now();
    let err = send(&url, 5, HookEvent::Signup).await.unwrap_err();
    assert!(matches!(err, HookError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("Failed to connect to {url}/"));
    assert!(start.elapsed() < Duration::from_secs(3), "a refused connection is not retried until a timeout");
}

#[tokio::test]
async fn a_connection_dropped_after_accepting_is_a_failed_trigger() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicI64::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    let url = format!("http://{addr}");
    let err = send(&url, 3, HookEvent::Signup).await.unwrap_err();
    assert!(matches!(err, HookError::Failed { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("Failed to trigger webhook to {url}/"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test]
async fn replies_are_decoded_leniently() {
    let rx = Receiver::start().await;
    rx.always(Answer::body(r#"{"User_Metadata": {"a": 1}, "app_metadata": null, "other": true} and then garbage"#));
    let reply = send(&rx.url, 1, HookEvent::Login).await.unwrap();
    assert_eq!(reply.user_metadata, json!({"a": 1}).as_object().cloned());
    assert_eq!(reply.app_metadata, None);
}

#[tokio::test]
async fn malformed_replies_are_errors_except_for_userdeleted() {
    let rx = Receiver::start().await;
    rx.always(Answer::body("<html>oops</html>"));
    let err = send(&rx.url, 3, HookEvent::Login).await.unwrap_err();
    assert!(matches!(err, HookError::MalformedReply(_)), "{err:?}");
    assert!(err.to_string().starts_with("Webhook returned malformed JSON: "), "{err}");
    assert_eq!(rx.calls().len(), 1, "a delivered hook is not retried");
    rx.always(Answer::body(r#"{"app_metadata": "admin"}"#));
    assert!(matches!(send(&rx.url, 1, HookEvent::Signup).await, Err(HookError::MalformedReply(_))));
    rx.always(Answer::body("<html>oops</html>"));
    assert_eq!(send(&rx.url, 1, HookEvent::UserDeleted).await.unwrap(), HookReply::default());
}

#[tokio::test]
async fn redirects_are_followed() {
    let rx = Receiver::start().await;
    rx.script([Answer::redirect(307, "/moved"), Answer::body(r#"{"user_metadata": {"m": 1}}"#)]);
    let reply = send(&rx.url, 1, HookEvent::Login).await.unwrap();
    assert_eq!(reply.user_metadata, json!({"m": 1}).as_object().cloned());
    let calls = rx.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[1].method.as_str(), calls[1].path.as_str()), ("POST", "/moved"));
    assert_eq!(calls[1].body, calls[0].body);
    calls[1].verified_claims(HOOK_SECRET);
}

#[tokio::test]
async fn only_http_and_https_are_delivered() {
    let err = send("ftp://127.0.0.1/x", 1, HookEvent::Signup).await.unwrap_err();
    assert!(matches!(err, HookError::Unreachable { .. }), "{err:?}");
}
