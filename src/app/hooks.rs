//! Webhooks from the use cases' side (HOOKS_AND_MAIL.md 1.1-1.2): which destinations an
//! event goes to, firing them in order, and applying what the receivers answer.
//!
//! Hooks run while no transaction is open (WEAKNESSES.md 28): a use case fires them on the
//! in-memory user, then writes the outcome with one store call. For `validate`, `signup` and
//! `login` a failure aborts the use case before anything is written; `usermodified` and
//! `userdeleted` are informative, so their failures are only logged.

use url::Url;

use super::error::AuthError;
use super::service::{Ctx, Service};
use crate::domain::user::User;
use crate::ports::hooks::{DeliveryPolicy, HookDestination, HookEvent};
use crate::ports::users::{Effects, Guard};

/// Resolves a hook URL: absolute URLs as they are; a URL without a scheme (such as
/// `/.netlify/functions/identity-signup`) takes scheme, host, port and user-info from
/// `SITE_URL`, keeping its own path, query and fragment, as upstream does.
///
/// # Errors
/// A message when either URL cannot be parsed.
pub fn resolve_hook_url(hook: &str, site_url: &str) -> Result<Url, String> {
    match Url::parse(hook) {
        Ok(u) => Ok(u),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let mut out = Url::parse(site_url).map_err(|e| format!("SITE_URL {site_url:?} cannot resolve the hook URL {hook:?}: {e}"))?;
            let relative = Url::parse("http://relative.invalid/")
                .and_then(|base| base.join(hook))
                .map_err(|e| format!("hook URL {hook:?} is not a valid URL: {e}"))?;
            out.set_path(relative.path());
            out.set_query(relative.query());
            out.set_fragment(relative.fragment());
            Ok(out)
        }
        Err(e) => Err(format!("hook URL {hook:?} is not a valid URL: {e}")),
    }
}

impl Service {
    /// Where `event` goes under this request's configuration: `WEBHOOK_URL` when set and the
    /// event is listed in `WEBHOOK_EVENTS` (exact names), signed with `WEBHOOK_SECRET`.
    ///
    /// # Errors
    /// [`AuthError::Internal`] (a generic 500) when the URL cannot be resolved.
    pub fn hook_destinations(ctx: &Ctx, event: HookEvent) -> Result<Vec<HookDestination>, AuthError> {
        let w = &ctx.config.webhook;
        if w.url.is_empty() {
            // Function hooks of multi-instance mode (the `function_hooks` claim of the
            // operator's signature or the OAuth state), signed with the instance's JWT
            // secret; `WEBHOOK_EVENTS` does not apply to them (HOOKS_AND_MAIL.md 1.2).
            let Some(urls) = ctx.function_hooks.get(event.as_str()) else {
                return Ok(Vec::new());
            };
            return urls
                .iter()
                .map(|u| {
                    let url = resolve_hook_url(u, &ctx.config.site_url).map_err(|e| AuthError::internal("Internal server error", e))?;
                    Ok(HookDestination { url, signing_key: ctx.config.jwt.secret.clone() })
                })
                .collect();
        }
        if !w.events.iter().any(|e| e == event.as_str()) {
            return Ok(Vec::new());
        }
        let url = resolve_hook_url(&w.url, &ctx.config.site_url).map_err(|e| AuthError::internal("Internal server error", e))?;
        Ok(vec![HookDestination { url, signing_key: w.secret.clone() }])
    }

    /// Fires `event` for `user` at its configured destinations and applies the replies'
    /// metadata to `user`. Returns whether the metadata changed.
    ///
    /// # Errors
    /// [`AuthError::Hook`] with the first failing delivery.
    pub async fn run_hooks(&self, ctx: &Ctx, event: HookEvent, user: &mut User) -> Result<bool, AuthError> {
        let destinations = Self::hook_destinations(ctx, event)?;
        self.fire_hooks(ctx, event, user, &destinations).await
    }

    /// Fires `event` at each destination in order, stopping at the first failure. Each
    /// reply's metadata is applied before the next destination is called, so that later
    /// receivers see what earlier ones set (upstream's order). `userdeleted` replies are
    /// ignored. Returns whether the metadata changed.
    ///
    /// # Errors
    /// [`AuthError::Hook`] with the first failing delivery.
    pub async fn fire_hooks(
        &self,
        ctx: &Ctx,
        event: HookEvent,
        user: &mut User,
        destinations: &[HookDestination],
    ) -> Result<bool, AuthError> {
        let policy = DeliveryPolicy { attempts: ctx.config.webhook.retries, timeout: ctx.config.webhook.timeout };
        let mut changed = false;
        for destination in destinations {
            let reply = self.hooks.send(destination, policy, event, ctx.instance_id, user).await?;
            if event != HookEvent::UserDeleted {
                changed |= user.apply_hook_metadata(reply.app_metadata, reply.user_metadata);
            }
        }
        Ok(changed)
    }

    /// Tells the receivers that an admin modified `user` (call it after the change is
    /// stored). Never fails: a failed delivery is logged. A reply's metadata is applied to
    /// `user` and stored, as upstream does, so answer the request with `user` afterwards.
    pub async fn notify_user_modified(&self, ctx: &Ctx, user: &mut User) {
        let before = user.clone();
        match self.run_hooks(ctx, HookEvent::UserModified, user).await {
            Ok(false) => {}
            Ok(true) => {
                if let Err(e) = self.users.update_user(user, &Guard::None, &Effects::default()).await {
                    tracing::error!(user_id = %user.id, error = %e, "could not store the metadata returned by the usermodified webhook");
                    *user = before;
                }
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "usermodified webhook failed");
                *user = before;
            }
        }
    }

    /// Tells the receivers that an admin deleted `user` (call it after the deletion).
    /// Never fails: a failed delivery is logged; the reply is ignored.
    pub async fn notify_user_deleted(&self, ctx: &Ctx, user: &User) {
        let mut copy = user.clone();
        if let Err(e) = self.run_hooks(ctx, HookEvent::UserDeleted, &mut copy).await {
            tracing::warn!(user_id = %user.id, error = %e, "userdeleted webhook failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, TimeZone as _, Utc};
    use secrecy::{ExposeSecret as _, SecretString};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::app::config::{Config, Env};
    use crate::app::signup::SignupParams;
    use crate::ports::clock::MockClock;
    use crate::ports::hasher::MockPasswordHasher;
    use crate::ports::hooks::{HookError, HookReply, MockHookSender};
    use crate::ports::mail::MockMailer;
    use crate::ports::tokens::MockTokenStore;
    use crate::ports::users::{MockUserStore, StoreError};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
    }

    fn ctx(extra: &[(&str, &str)]) -> Ctx {
        let mut pairs = vec![
            ("GOTRUE_JWT_SECRET", "testsecret"),
            ("GOTRUE_JWT_AUD", "api.netlify.com"),
            ("GOTRUE_SITE_URL", "https://site.example.com"),
            ("GOTRUE_DB_DRIVER", "sqlite"),
            ("DATABASE_URL", "unused.db"),
            ("GOTRUE_WEBHOOK_URL", "https://hooks.example.com/in"),
            ("GOTRUE_WEBHOOK_EVENTS", "validate,signup,login,usermodified,userdeleted"),
            ("GOTRUE_WEBHOOK_SECRET", "top-secret"),
        ];
        for (k, v) in extra {
            pairs.retain(|(pk, _)| pk != k);
            pairs.push((k, v));
        }
        let config = Config::from_env(&Env::from_pairs(pairs)).unwrap();
        Ctx::new(Uuid::nil(), Arc::new(config.instance))
    }

    fn service(users: MockUserStore, hasher: MockPasswordHasher, hooks: MockHookSender) -> Service {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        Service::new(crate::app::service::Ports {
            users: Arc::new(users),
            tokens: Arc::new(MockTokenStore::new()),
            audit: Arc::new(crate::ports::audit::MockAuditStore::new()),
            mailer: Arc::new(MockMailer::new()),
            hasher: Arc::new(hasher),
            clock: Arc::new(clock),
            hooks: Arc::new(hooks),
            providers: Arc::new(crate::ports::external::MockProviderRegistry::new()),
            identities: Arc::new(crate::ports::identities::MockIdentityStore::new()),
            flows: Arc::new(crate::ports::flows::MockFlowStore::new()),
        })
    }

    fn user() -> User {
        User::new(Uuid::nil(), "api.netlify.com", "a@example.com", "hash".into(), None, now())
    }

    fn obj(v: serde_json::Value) -> Option<serde_json::Map<String, serde_json::Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn relative_hook_urls_take_the_sites_origin() {
        let site = "https://u:p@site.example.com:8443/some/path";
        let r = |h: &str| resolve_hook_url(h, site).unwrap().to_string();
        assert_eq!(r("/.netlify/functions/identity-signup"), "https://u:p@site.example.com:8443/.netlify/functions/identity-signup");
        assert_eq!(r("hook?x=1"), "https://u:p@site.example.com:8443/hook?x=1");
        assert_eq!(r("//elsewhere.example.com/h"), "https://u:p@site.example.com:8443/h", "a relative URL never changes host");
        assert_eq!(r("http://hooks.example.com/x"), "http://hooks.example.com/x");
        assert!(resolve_hook_url("/x", "not a url").is_err());
        assert!(resolve_hook_url("http://[::1", site).is_err());
    }

    #[test]
    fn destinations_follow_url_events_and_secret() {
        let c = ctx(&[("GOTRUE_WEBHOOK_EVENTS", "signup"), ("GOTRUE_WEBHOOK_URL", "/hook")]);
        assert!(Service::hook_destinations(&c, HookEvent::Validate).unwrap().is_empty());
        let d = Service::hook_destinations(&c, HookEvent::Signup).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].url.as_str(), "https://site.example.com/hook");
        assert_eq!(d[0].signing_key.as_ref().map(|k| k.expose_secret().to_owned()).as_deref(), Some("top-secret"));
        let c = ctx(&[("GOTRUE_WEBHOOK_URL", "")]);
        assert!(Service::hook_destinations(&c, HookEvent::Signup).unwrap().is_empty());
        let c = ctx(&[("GOTRUE_WEBHOOK_SECRET", "")]);
        assert!(Service::hook_destinations(&c, HookEvent::Login).unwrap()[0].signing_key.is_none());
        let c = ctx(&[("GOTRUE_WEBHOOK_EVENTS", "Signup")]);
        assert!(Service::hook_destinations(&c, HookEvent::Signup).unwrap().is_empty(), "event names match exactly");
    }

    #[tokio::test]
    async fn user_modified_reply_is_applied_and_stored() {
        let mut hooks = MockHookSender::new();
        hooks
            .expect_send()
            .withf(|d, p, e, id, u| {
                d.url.as_str() == "https://hooks.example.com/in"
                    && p.attempts == 3
                    && *e == HookEvent::UserModified
                    && id.is_nil()
                    && u.email == "a@example.com"
            })
            .times(1)
            .returning(|_, _, _, _, _| Ok(HookReply { app_metadata: obj(json!({"roles": ["x"]})), user_metadata: None }));
        let mut users = MockUserStore::new();
        users
            .expect_update_user()
            .withf(|u, g, _| *g == Guard::None && u.app_metadata == obj(json!({"provider": "email", "roles": ["x"]})))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let s = service(users, MockPasswordHasher::new(), hooks);
        let mut u = user();
        s.notify_user_modified(&ctx(&[]), &mut u).await;
        assert_eq!(u.app_metadata, obj(json!({"provider": "email", "roles": ["x"]})));
    }

    #[tokio::test]
    async fn user_modified_failures_are_only_logged() {
        let mut hooks = MockHookSender::new();
        hooks.expect_send().times(1).returning(|_, _, _, _, _| Err(HookError::Refused));
        let mut users = MockUserStore::new();
        users.expect_update_user().never();
        let s = service(users, MockPasswordHasher::new(), hooks);
        let mut u = user();
        s.notify_user_modified(&ctx(&[]), &mut u).await;
        assert_eq!(u, user_with_id(u.id));

        // A reply that cannot be stored leaves the caller's user as it was.
        let mut hooks = MockHookSender::new();
        hooks.expect_send().returning(|_, _, _, _, _| Ok(HookReply { app_metadata: None, user_metadata: obj(json!({"a": 1})) }));
        let mut users = MockUserStore::new();
        users.expect_update_user().times(1).returning(|_, _, _| Err(StoreError::Conflict));
        let s = service(users, MockPasswordHasher::new(), hooks);
        let mut u = user();
        s.notify_user_modified(&ctx(&[]), &mut u).await;
        assert_eq!(u.user_metadata, None);
    }

    fn user_with_id(id: Uuid) -> User {
        let mut u = user();
        u.id = id;
        u
    }

    #[tokio::test]
    async fn user_modified_is_not_sent_unless_listed() {
        let mut hooks = MockHookSender::new();
        hooks.expect_send().never();
        let mut users = MockUserStore::new();
        users.expect_update_user().never();
        let s = service(users, MockPasswordHasher::new(), hooks);
        s.notify_user_modified(&ctx(&[("GOTRUE_WEBHOOK_EVENTS", "signup,userdeleted")]), &mut user()).await;
    }

    #[tokio::test]
    async fn user_deleted_ignores_the_reply_and_failures() {
        let mut hooks = MockHookSender::new();
        hooks
            .expect_send()
            .withf(|_, _, e, _, _| *e == HookEvent::UserDeleted)
            .times(1)
            .returning(|_, _, _, _, _| Ok(HookReply { app_metadata: obj(json!({})), user_metadata: obj(json!({})) }));
        let mut users = MockUserStore::new();
        users.expect_update_user().never();
        let s = service(users, MockPasswordHasher::new(), hooks);
        s.notify_user_deleted(&ctx(&[]), &user()).await;

        let mut hooks = MockHookSender::new();
        hooks.expect_send().times(1).returning(|_, _, _, _, _| Err(HookError::Timeout { seconds: 5 }));
        let s = service(MockUserStore::new(), MockPasswordHasher::new(), hooks);
        s.notify_user_deleted(&ctx(&[]), &user()).await;
    }

    #[tokio::test]
    async fn a_validate_veto_writes_nothing() {
        let mut hooks = MockHookSender::new();
        hooks
            .expect_send()
            .withf(|_, _, e, _, u| *e == HookEvent::Validate && u.confirmation_sent_at.is_none() && !u.is_confirmed())
            .times(1)
            .returning(|_, _, _, _, _| Err(HookError::Refused));
        let mut users = MockUserStore::new();
        users.expect_find_user_by_email().returning(|_, _, _| Ok(None));
        users.expect_insert_user().never();
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().returning(|_| Ok("hash".into()));
        let s = service(users, hasher, hooks);
        let p = SignupParams { email: "new@example.com".into(), password: SecretString::from("password1"), data: None };
        let err = s.signup(&ctx(&[]), p).await.unwrap_err();
        assert!(matches!(err, AuthError::Hook(HookError::Refused)), "{err:?}");
    }

    #[tokio::test]
    async fn validate_and_signup_replies_are_stored_with_the_new_user() {
        let mut hooks = MockHookSender::new();
        let mut seq = mockall::Sequence::new();
        hooks
            .expect_send()
            .withf(|_, _, e, _, _| *e == HookEvent::Validate)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _, _| Ok(HookReply { app_metadata: obj(json!({"roles": ["member"]})), user_metadata: None }));
        hooks
            .expect_send()
            .withf(|_, _, e, _, u| *e == HookEvent::Signup && u.app_metadata == obj(json!({"provider": "email", "roles": ["member"]})))
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _, _, _| Ok(HookReply { app_metadata: None, user_metadata: obj(json!({"plan": "gold"})) }));
        let mut users = MockUserStore::new();
        users.expect_find_user_by_email().returning(|_, _, _| Ok(None));
        users
            .expect_insert_user()
            .withf(|u, _| u.is_confirmed() && u.user_metadata == obj(json!({"plan": "gold"})))
            .times(1)
            .returning(|_, _| Ok(()));
        let mut hasher = MockPasswordHasher::new();
        hasher.expect_hash().returning(|_| Ok("hash".into()));
        let s = service(users, hasher, hooks);
        let p = SignupParams { email: "new@example.com".into(), password: SecretString::from("password1"), data: None };
        let u = s.signup(&ctx(&[("GOTRUE_MAILER_AUTOCONFIRM", "true")]), p).await.unwrap();
        assert_eq!(u.app_metadata, obj(json!({"provider": "email", "roles": ["member"]})));
    }

    #[tokio::test]
    async fn an_unresolvable_hook_url_is_a_generic_500() {
        let s = service(MockUserStore::new(), MockPasswordHasher::new(), MockHookSender::new());
        let err = s.run_hooks(&ctx(&[("GOTRUE_WEBHOOK_URL", "/x"), ("GOTRUE_SITE_URL", "nope")]), HookEvent::Login, &mut user()).await;
        assert!(matches!(err, Err(AuthError::Internal { msg: "Internal server error", .. })), "{err:?}");
    }
}
