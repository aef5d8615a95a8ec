//! Webhook delivery over HTTP (HOOKS_AND_MAIL.md 1.3-1.6) with reqwest: the payload, the
//! headers, a fresh signature per attempt, retries, upstream's error classification, the
//! reply's metadata, and the outgoing-address guard.

pub mod guard;
pub mod signature;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::redirect;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::{Host, Url};
use uuid::Uuid;

use self::guard::{is_forbidden, ForbiddenAddress, GuardedResolver};
use crate::domain::user::{User, UserView};
use crate::ports::clock::Clock;
use crate::ports::hooks::{DeliveryPolicy, HookDestination, HookError, HookEvent, HookReply, HookSender};
use crate::ports::BoxError;

/// Time allowed to open a connection, within the per-attempt limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed, as Go's HTTP client does.
const MAX_REDIRECTS: usize = 10;
/// Largest reply body read; a receiver has no reason to send more than two small objects.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Sends webhooks with a shared HTTP client.
///
/// Unless built with `allow_private`, every connection is refused when its address is
/// private, loopback, link-local or otherwise special ([`guard`]): host names are resolved
/// through [`GuardedResolver`], and literal addresses are checked before each request and
/// at each redirect. No proxy from the environment is used, so the guard sees the real
/// destination.
#[derive(Clone)]
pub struct ReqwestHookSender {
    client: reqwest::Client,
    allow_private: bool,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ReqwestHookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReqwestHookSender").field("allow_private", &self.allow_private).finish_non_exhaustive()
    }
}

/// Too many redirects.
#[derive(Debug, thiserror::Error)]
#[error("stopped after {MAX_REDIRECTS} redirects")]
struct TooManyRedirects;

impl ReqwestHookSender {
    /// Builds the client. `allow_private` is `GOTRUE_WEBHOOK_ALLOW_PRIVATE`; `clock` dates the
    /// signatures.
    ///
    /// # Errors
    /// The TLS backend could not be initialised.
    pub fn new(allow_private: bool, clock: Arc<dyn Clock>) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gotrue-rs/", env!("CARGO_PKG_VERSION"), " webhook"))
            .redirect(redirect_policy(allow_private));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self { client: builder.build()?, allow_private, clock })
    }

    fn check_literal(&self, url: &Url) -> Result<(), ForbiddenAddress> {
        match literal_ip(url) {
            Some(ip) if !self.allow_private && is_forbidden(ip) => Err(ForbiddenAddress { target: ip.to_string() }),
            _ => Ok(()),
        }
    }
}

fn redirect_policy(allow_private: bool) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(TooManyRedirects);
        }
        match literal_ip(attempt.url()) {
            Some(ip) if !allow_private && is_forbidden(ip) => attempt.error(ForbiddenAddress { target: ip.to_string() }),
            _ => attempt.follow(),
        }
    })
}

/// The address of a URL whose host is an IP literal (an HTTP client connects to those
/// without asking the resolver). `http://2130706433/` and the like are normalised to
/// dotted IPv4 by the URL parser, so they are caught here too.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(a) => Some(IpAddr::V4(a)),
        Host::Ipv6(a) => Some(IpAddr::V6(a)),
        Host::Domain(_) => None,
    }
}

/// The URL as error messages show it: without user-info, which may hold a password.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// Whether the guard refused a connection somewhere in this error's chain.
fn refused_by_guard(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<ForbiddenAddress>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The request body, compact, keys in upstream's order; `instance_id` always present.
#[derive(Serialize)]
struct Payload<'a> {
    event: &'static str,
    instance_id: Uuid,
    user: UserView<'a>,
}

/// A successful reply's body, decoded leniently as upstream's Go decoder does.
#[derive(Default, Deserialize)]
#[serde(default)]
struct ReplyBody {
    app_metadata: Option<Map<String, Value>>,
    user_metadata: Option<Map<String, Value>>,
}

async fn read_reply(mut resp: reqwest::Response) -> Result<HookReply, HookError> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_REPLY_BYTES {
                    return Err(HookError::UnreadableReply(format!("reply body larger than {MAX_REPLY_BYTES} bytes")));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(HookError::UnreadableReply(e.to_string())),
        }
    }
    if buf.is_empty() {
        return Ok(HookReply::default());
    }
    let body: ReplyBody = crate::adapters::http::json::decode(&buf).map_err(HookError::MalformedReply)?;
    Ok(HookReply { app_metadata: body.app_metadata, user_metadata: body.user_metadata })
}

#[async_trait]
impl HookSender for ReqwestHookSender {
    #[tracing::instrument(skip_all, fields(event = event.as_str(), url = %shown(&destination.url)))]
    async fn send(
        &self,
        destination: &HookDestination,
        policy: DeliveryPolicy,
        event: HookEvent,
        instance_id: Uuid,
        user: &User,
    ) -> Result<HookReply, HookError> {
        let url = &destination.url;
        let unreachable = |source: BoxError| HookError::Unreachable { url: shown(url), source };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unreachable(format!("unsupported protocol scheme {:?}", url.scheme()).into()));
        }
        if let Err(e) = self.check_literal(url) {
            tracing::warn!(error = %e, "webhook refused");
            return Err(unreachable(Box::new(e)));
        }
        let body = serde_json::to_vec(&Payload { event: event.as_str(), instance_id, user: user.view() })
            .map_err(|e| HookError::Failed { url: shown(url), source: Box::new(e) })?;
        let header =
            HeaderValue::from_str(&event.header_value()).map_err(|e| HookError::Failed { url: shown(url), source: Box::new(e) })?;
        let attempts = policy.attempts.max(1);
        for attempt in 1..=attempts {
            let mut req = self
                .client
                .post(url.clone())
                .timeout(policy.timeout)
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header("X-Netlify-Event", header.clone())
                .body(body.clone());
            if let Some(key) = &destination.signing_key {
                // A new signature per attempt, so that `iat`/`exp` are those of this request.
                let jws = signature::sign(&body, instance_id, self.clock.now().timestamp(), key)
                    .map_err(|e| HookError::Failed { url: shown(url), source: Box::new(e) })?;
                req = req.header("x-webhook-signature", jws);
            }
            match req.send().await {
                Err(e) if e.is_timeout() => {
                    tracing::warn!(attempt, attempts, "webhook attempt timed out");
                    if attempt == attempts {
                        return Err(HookError::Timeout { seconds: policy.timeout.as_secs() });
                    }
                }
                Err(e) if refused_by_guard(&e) || e.is_connect() => {
                    tracing::warn!(attempt, error = %error_chain(&e), "webhook receiver unreachable");
                    return Err(unreachable(Box::new(e)));
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %error_chain(&e), "webhook request failed");
                    return Err(HookError::Failed { url: shown(url), source: Box::new(e) });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if matches!(status, 200 | 202 | 204) {
                        tracing::debug!(attempt, status, "webhook delivered");
                        if event == HookEvent::UserDeleted {
                            return Ok(HookReply::default());
                        }
                        return read_reply(resp).await;
                    }
                    tracing::warn!(attempt, attempts, status, "webhook receiver answered with an unsuccessful status");
                }
            }
        }
        Err(HookError::Refused)
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_are_found_in_every_spelling() {
        let ip = |s: &str| literal_ip(&Url::parse(s).unwrap());
        assert_eq!(ip("http://127.0.0.1:8080/x"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("http://2130706433/"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("http://0x7f.1/"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("http://[::ffff:127.0.0.1]/"), Some("::ffff:127.0.0.1".parse().unwrap()));
        assert_eq!(ip("http://example.com/"), None);
    }

    #[test]
    fn shown_urls_hide_credentials() {
        assert_eq!(shown(&Url::parse("https://user:pw@hooks.example.com/h?x=1").unwrap()), "https://hooks.example.com/h?x=1");
    }

    #[test]
    fn payload_has_exactly_three_keys_in_order() {
        let u = User::new(Uuid::nil(), "api.netlify.com", "a@example.com", String::new(), None, chrono::DateTime::UNIX_EPOCH);
        let body = serde_json::to_string(&Payload { event: "validate", instance_id: Uuid::nil(), user: u.view() }).unwrap();
        assert!(body.starts_with(r#"{"event":"validate","instance_id":"00000000-0000-0000-0000-000000000000","user":{"id":"#), "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 3);
        assert_eq!(v["user"].as_object().unwrap().len(), 8);
    }
}
