//! Outgoing webhooks (HOOKS_AND_MAIL.md 1): one signed event delivered to one destination.
//!
//! The caller decides *where* (the destinations: `WEBHOOK_URL` today, function hooks in
//! multi-instance mode later) and *what to do with the reply*; a sender only delivers, with
//! retries, and reports what happened in terms a use case can act on.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use super::BoxError;
use crate::domain::user::User;

/// The events a hook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// A new user is about to be created (may veto).
    Validate,
    /// A user is about to be confirmed (may veto).
    Signup,
    /// A password login is about to be granted (may veto).
    Login,
    /// An admin deleted a user (informative).
    UserDeleted,
    /// An admin modified a user (informative).
    UserModified,
}

impl HookEvent {
    /// Every event, in upstream's order.
    pub const ALL: [Self; 5] = [Self::Validate, Self::Signup, Self::Login, Self::UserDeleted, Self::UserModified];

    /// The name used in the payload's `event` and in `GOTRUE_WEBHOOK_EVENTS`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Signup => "signup",
            Self::Login => "login",
            Self::UserDeleted => "userdeleted",
            Self::UserModified => "usermodified",
        }
    }

    /// The `X-Netlify-Event` header value: `identity_<event>`.
    #[must_use]
    pub fn header_value(self) -> String {
        format!("identity_{}", self.as_str())
    }
}

/// Where an event goes and how it is signed.
#[derive(Clone)]
pub struct HookDestination {
    /// Absolute URL (relative ones are resolved against `SITE_URL` by the caller).
    pub url: Url,
    /// HMAC key of `x-webhook-signature`; `None`: the header is not sent.
    pub signing_key: Option<SecretString>,
}

impl std::fmt::Debug for HookDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookDestination").field("url", &self.url.as_str()).field("signed", &self.signing_key.is_some()).finish()
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Attempts in total (at least one is made).
    pub attempts: u32,
    /// Time limit of each attempt, connection included.
    pub timeout: Duration,
}

/// What a receiver asked to change, from a successful reply's body
/// (`{"app_metadata": {...}, "user_metadata": {...}}`). Absent or `null` fields mean "leave
/// as is".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookReply {
    /// Replacement `app_metadata`.
    pub app_metadata: Option<Map<String, Value>>,
    /// Replacement `user_metadata`.
    pub user_metadata: Option<Map<String, Value>>,
}

/// A delivery failed. Each variant is answered with upstream's status and message
/// (HOOKS_AND_MAIL.md 1.5-1.6).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The last attempt timed out (504).
    #[error("Failed to perform webhook in time frame ({seconds} seconds)")]
    Timeout {
        /// The per-attempt limit, in whole seconds.
        seconds: u64,
    },
    /// No connection could be made: DNS failure, refused, or a forbidden address (502).
    #[error("Failed to connect to {url}")]
    Unreachable {
        /// The destination.
        url: String,
        /// Why, for the log.
        #[source]
        source: BoxError,
    },
    /// The connection was made but the exchange failed (500).
    #[error("Failed to trigger webhook to {url}")]
    Failed {
        /// The destination.
        url: String,
        /// Why, for the log.
        #[source]
        source: BoxError,
    },
    /// Every attempt got a status other than 200, 202 or 204 (422).
    #[error("Failed to handle signup webhook")]
    Refused,
    /// A successful reply whose body is not the expected JSON (500).
    #[error("Webhook returned malformed JSON: {0}")]
    MalformedReply(String),
    /// A successful reply whose body could not be read (500).
    #[error("Webhook returned malformed BODY: {0}")]
    UnreadableReply(String),
}

/// Delivers signed events.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait HookSender: Send + Sync {
    /// POSTs `{"event", "instance_id", "user"}` to `destination`, signing each attempt anew,
    /// retrying on timeouts and unsuccessful statuses as `policy` allows. The reply body is
    /// read only for events other than [`HookEvent::UserDeleted`].
    ///
    /// # Errors
    /// A [`HookError`] saying how the delivery failed.
    async fn send(
        &self,
        destination: &HookDestination,
        policy: DeliveryPolicy,
        event: HookEvent,
        instance_id: Uuid,
        user: &User,
    ) -> Result<HookReply, HookError>;
}
