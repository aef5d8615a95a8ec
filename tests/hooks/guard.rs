//! The outgoing-address guard end to end: without `GOTRUE_WEBHOOK_ALLOW_PRIVATE` a receiver
//! on loopback is never reached, whichever way its address is spelled.

use std::sync::Arc;
use std::time::Duration;

use gotrue::adapters::clock::SystemClock;
use gotrue::adapters::hooks::ReqwestHookSender;
use gotrue::domain::user::User;
use gotrue::ports::hooks::{DeliveryPolicy, HookDestination, HookError, HookEvent, HookSender as _};
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::{Receiver, TestApp};

fn port(rx: &Receiver) -> u16 {
    Url::parse(&rx.url).unwrap().port().unwrap()
}

async fn signup_with_hook_at(url: &str) -> (crate::Reply, TestApp) {
    let app = TestApp::spawn_with(&[
        ("GOTRUE_WEBHOOK_URL", url),
        ("GOTRUE_WEBHOOK_EVENTS", "validate,signup,login"),
        ("GOTRUE_WEBHOOK_RETRIES", "2"),
        ("GOTRUE_WEBHOOK_TIMEOUT_SEC", "1"),
    ])
    .await;
    let r = app.post_json("/signup", json!({"email": "g@example.com", "password": "pw"})).await;
    (r, app)
}

#[tokio::test]
async fn loopback_receivers_are_refused_unless_allowed() {
    let rx = Receiver::start().await;
    let p = port(&rx);
    for url in [
        format!("http://127.0.0.1:{p}/hook"),
        format!("http://localhost:{p}/hook"),
        format!("http://[::ffff:127.0.0.1]:{p}/hook"),
        format!("http://0.0.0.0:{p}/hook"),
        format!("http://2130706433:{p}/hook"),
    ] {
        let (r, app) = signup_with_hook_at(&url).await;
        assert_eq!(r.status, 502, "{url}: {}", r.text);
        assert!(r.json["msg"].as_str().unwrap().starts_with("Failed to connect to http://"), "{}", r.text);
        assert_eq!(app.users().await, 0, "{url}");
    }
    assert!(rx.calls().is_empty(), "the receiver was never called");

    let app = TestApp::with_hook(&rx, "validate", &[]).await;
    app.signup("g@example.com", "pw").await.assert_ok();
    assert_eq!(rx.calls().len(), 1, "allowed with GOTRUE_WEBHOOK_ALLOW_PRIVATE=true");
}

#[tokio::test]
async fn the_guarded_sender_refuses_before_connecting() {
    let rx = Receiver::start().await;
    let sender = ReqwestHookSender::new(false, Arc::new(SystemClock)).unwrap();
    let user = User::new(Uuid::nil(), "", "g@example.com", String::new(), None, chrono::Utc::now());
    let policy = DeliveryPolicy { attempts: 3, timeout: Duration::from_secs(1) };
    for host in ["127.0.0.1", "localhost", "[::1]", "127.1"] {
        let url = rx.url.replace("127.0.0.1", host);
        let dest = HookDestination { url: Url::parse(&url).unwrap(), signing_key: None };
        let err = sender.send(&dest, policy, HookEvent::Login, Uuid::nil(), &user).await.unwrap_err();
        assert!(matches!(err, HookError::Unreachable { .. }), "{url}: {err:?}");
    }
    assert!(rx.calls().is_empty());
}
