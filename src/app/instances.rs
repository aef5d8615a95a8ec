//! Multi-instance mode (`gotrue multi`, CONFIG.md 4.3, API.md 3.9 and 5): the operator's
//! instance API, and the per-request instance named by the operator's signed `x-nf-sign`
//! header (or, for `/callback`, by the OAuth state).
//!
//! Fixed weaknesses: the instance API never returns secrets (WEAKNESSES.md 24; they are
//! omitted, and a `PUT` that omits them keeps the stored ones); the operator token is
//! compared in constant time.

pub mod base_config;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use self::base_config::BaseConfig;
use super::config::InstanceConfig;
use super::external::state;
use super::service::Ctx;
use crate::domain::time::rfc3339_nano;
use crate::domain::token::constant_time_eq;
use crate::ports::clock::Clock;
use crate::ports::instances::{InstanceRow, InstanceStore};
use crate::ports::mail::{Mailer, MailerFactory, SmtpServer};
use crate::ports::users::StoreError;

/// Hook URLs by event name, from the `function_hooks` claim.
pub type FunctionHooks = BTreeMap<String, Vec<String>>;

/// How long a resolved instance configuration is reused (a `PUT`/`DELETE` in this
/// process drops it at once; other processes see a change after this long).
pub const CACHE_TTL_SECS: i64 = 10;

/// Entries kept at most; the cache is emptied when it grows past this.
const CACHE_MAX: usize = 10_000;

/// An error of multi-instance mode, as upstream words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct InstanceError {
    /// HTTP status.
    pub status: u16,
    /// Public message.
    pub msg: String,
    /// Logged cause of a 500.
    pub cause: Option<String>,
}

impl InstanceError {
    fn new(status: u16, msg: impl Into<String>) -> Self {
        Self { status, msg: msg.into(), cause: None }
    }

    fn internal(msg: &str, cause: impl std::fmt::Display) -> Self {
        Self { status: 500, msg: msg.to_owned(), cause: Some(cause.to_string()) }
    }
}

/// An instance loaded from the database, ready for requests.
pub struct Resolved {
    /// Instance id.
    pub id: Uuid,
    /// Netlify site id (nil when none).
    pub uuid: Uuid,
    /// The configuration requests run with.
    pub config: Arc<InstanceConfig>,
    /// Its mail delivery.
    pub mailer: Arc<dyn Mailer>,
}

/// The instance of one request with what the operator's signature says about it.
#[derive(Clone)]
pub struct RequestInstance {
    /// The instance.
    pub resolved: Arc<Resolved>,
    /// `netlify_id` claim.
    pub netlify_id: String,
    /// `function_hooks` claim.
    pub function_hooks: Arc<FunctionHooks>,
}

impl RequestInstance {
    /// The use-case context of this request.
    #[must_use]
    pub fn ctx(&self, aud_header: Option<String>, referrer: Option<String>) -> Ctx {
        Ctx {
            instance_id: self.resolved.id,
            config: Arc::clone(&self.resolved.config),
            aud_header,
            referrer,
            netlify_id: self.netlify_id.clone(),
            function_hooks: Arc::clone(&self.function_hooks),
            mailer: Some(crate::app::service::CtxMailer(Arc::clone(&self.resolved.mailer))),
        }
    }
}

/// Parses a `function_hooks` claim: `{"event": ["url", ...]}` or the legacy
/// `{"event": "url"}`; `null` is none.
///
/// # Errors
/// A message for any other shape.
pub fn parse_function_hooks(v: &Value) -> Result<FunctionHooks, String> {
    let mut out = FunctionHooks::new();
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (event, urls) in m {
                let list = match urls {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .map(|u| u.as_str().map(str::to_owned).ok_or_else(|| format!("function hook of {event:?} is not a string")))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(format!("function hooks of {event:?} are neither a URL nor a list of URLs")),
                };
                out.insert(event.clone(), list);
            }
        }
        _ => return Err("function_hooks is not an object".into()),
    }
    Ok(out)
}

/// The configuration of instance `id` as stored, with defaults and the global overlay
/// (the admin commands of a multi-instance database).
///
/// # Errors
/// A message for an unknown instance or an unreadable configuration.
pub async fn stored_config(store: &dyn InstanceStore, global: &InstanceConfig, id: Uuid) -> Result<InstanceConfig, String> {
    let row = store.find_instance(id).await.map_err(|e| format!("could not load instance {id}: {e}"))?;
    let row = row.ok_or_else(|| format!("instance {id} not found"))?;
    let base = BaseConfig::parse(row.raw_base_config.as_deref().unwrap_or(""))
        .map_err(|e| format!("the configuration of instance {id} cannot be read: {e}"))?;
    Ok(base.to_instance_config(global, ""))
}

/// The multi-instance use cases.
pub struct Instances {
    store: Arc<dyn InstanceStore>,
    clock: Arc<dyn Clock>,
    global: Arc<InstanceConfig>,
    operator_token: SecretString,
    mailers: Arc<dyn MailerFactory>,
    endpoint: String,
    cache: Mutex<Cache>,
}

/// Resolved instances by id and the `site_url` claim they were resolved with, with the
/// time they were loaded.
type Cache = HashMap<(Uuid, String), (DateTime<Utc>, Arc<Resolved>)>;

impl std::fmt::Debug for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instances").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

fn sha(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

impl Instances {
    /// The use cases over `store`; `global` is the environment's configuration (the
    /// `SMTP`/`External` overlay and our process-wide settings), `endpoint` is
    /// `API_ENDPOINT`.
    ///
    /// # Errors
    /// An empty operator token (`Operator token secret is required`).
    pub fn new(
        store: Arc<dyn InstanceStore>,
        clock: Arc<dyn Clock>,
        global: Arc<InstanceConfig>,
        operator_token: Option<SecretString>,
        mailers: Arc<dyn MailerFactory>,
        endpoint: String,
    ) -> Result<Self, String> {
        let operator_token =
            operator_token.filter(|t| !t.expose_secret().is_empty()).ok_or_else(|| "Operator token secret is required".to_owned())?;
        Ok(Self { store, clock, global, operator_token, mailers, endpoint, cache: Mutex::new(HashMap::new()) })
    }

    /// Checks the operator's bearer token (API.md 5), in constant time.
    ///
    /// # Errors
    /// 401 for a missing or wrong token.
    pub fn check_operator(&self, bearer: Option<&str>) -> Result<(), InstanceError> {
        let token = bearer.ok_or_else(|| InstanceError::new(401, "This endpoint requires a Bearer token"))?;
        if constant_time_eq(&sha(token.as_bytes()), &sha(self.operator_token.expose_secret().as_bytes())) {
            Ok(())
        } else {
            Err(InstanceError::new(401, "Request does not include an Operator token"))
        }
    }

    /// The instance an `x-nf-sign` header names (API.md 3.9).
    ///
    /// # Errors
    /// Upstream's 400/404/500 for a missing or bad signature, an unknown instance or an
    /// unreadable configuration.
    pub async fn from_signature(&self, header: Option<&str>) -> Result<RequestInstance, InstanceError> {
        let header = header.filter(|h| !h.is_empty()).ok_or_else(|| InstanceError::new(400, "Operator microservice headers missing"))?;
        let invalid = |e: String| InstanceError::new(400, format!("Operator microservice signature is invalid: {e}"));
        let claims = self.verify_signature(header).map_err(invalid)?;
        let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let function_hooks = parse_function_hooks(claims.get("function_hooks").unwrap_or(&Value::Null)).map_err(invalid)?;
        let id = s("id");
        if id.is_empty() {
            return Err(InstanceError::new(400, "Instance ID is missing"));
        }
        let id = Uuid::parse_str(&id).map_err(|_| InstanceError::new(400, "Instance ID is not a valid UUID"))?;
        let resolved = self.resolve(id, &s("site_url")).await?;
        Ok(RequestInstance { resolved, netlify_id: s("netlify_id"), function_hooks: Arc::new(function_hooks) })
    }

    /// HS256 under the operator token; `exp`, `nbf` and `iat` checked when present.
    fn verify_signature(&self, token: &str) -> Result<serde_json::Map<String, Value>, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        // OAuth states are signed with the same key and name an instance too; they travel
        // through browsers and providers, so one must never pass for the operator's header.
        if jsonwebtoken::decode_header(token).is_ok_and(|h| h.typ.as_deref() == Some(state::STATE_TYP)) {
            return Err("an OAuth state is not an operator signature".into());
        }
        let key = DecodingKey::from_secret(self.operator_token.expose_secret().as_bytes());
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => "signature is invalid".to_owned(),
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "signing method is invalid".to_owned(),
            _ => e.to_string(),
        })?;
        let now = self.clock.now().timestamp();
        #[allow(clippy::cast_precision_loss)]
        let now_f = now as f64;
        let num = |k: &str| data.claims.get(k).and_then(Value::as_f64);
        if num("exp").is_some_and(|exp| now_f > exp) {
            return Err("token is expired".into());
        }
        if num("nbf").is_some_and(|nbf| now_f < nbf) {
            return Err("token is not valid yet".into());
        }
        if num("iat").is_some_and(|iat| now_f < iat) {
            return Err("token used before issued".into());
        }
        Ok(data.claims)
    }

    /// The instance an OAuth state names (`GET /callback` in multi-instance mode): the
    /// state is verified here with the operator token, and again by the callback.
    ///
    /// # Errors
    /// 400 for a missing or invalid state; the errors of [`Self::from_signature`]'s
    /// instance loading.
    pub async fn from_oauth_state(&self, state_param: &str) -> Result<RequestInstance, InstanceError> {
        if state_param.is_empty() {
            return Err(InstanceError::new(400, "OAuth state parameter missing"));
        }
        let claims = state::verify(state_param, self.operator_token.expose_secret().as_bytes(), self.clock.now().timestamp())
            .map_err(|e| InstanceError::new(400, format!("OAuth state is invalid: {e}")))?;
        let id = Uuid::parse_str(&claims.id).map_err(|_| InstanceError::new(400, "Instance ID is not a valid UUID"))?;
        let function_hooks = parse_function_hooks(&Value::Object(claims.function_hooks.clone()))
            .map_err(|e| InstanceError::new(400, format!("OAuth state is invalid: {e}")))?;
        // The state's site URL is the one the instance had at /authorize (claim or stored).
        let resolved = self.resolve(id, &claims.site_url).await?;
        Ok(RequestInstance { resolved, netlify_id: claims.netlify_id, function_hooks: Arc::new(function_hooks) })
    }

    /// Loads (or reuses) the configuration of instance `id`, with `site_url` (when not
    /// empty) replacing the stored site URL.
    ///
    /// # Errors
    /// 404 `Unable to locate site configuration`, 500s.
    pub async fn resolve(&self, id: Uuid, site_url: &str) -> Result<Arc<Resolved>, InstanceError> {
        let now = self.clock.now();
        let key = (id, site_url.to_owned());
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, r)) = cache.get(&key) {
                if (now - *at).num_seconds() < CACHE_TTL_SECS && now >= *at {
                    return Ok(Arc::clone(r));
                }
            }
        }
        let row = match self.store.find_instance(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(InstanceError::new(404, "Unable to locate site configuration")),
            Err(e) => return Err(InstanceError::internal("Database error loading instance", e)),
        };
        let raw = row.raw_base_config.as_deref().ok_or_else(|| InstanceError::internal("Error loading environment config", "NULL"))?;
        let base = BaseConfig::parse(raw).map_err(|e| InstanceError::internal("Error loading environment config", e))?;
        let config = base.to_instance_config(&self.global, site_url);
        let s = &config.smtp;
        let server = SmtpServer {
            host: s.host.clone(),
            port: s.port,
            user: s.user.clone(),
            pass: s.pass.clone(),
            admin_email: s.admin_email.clone(),
        };
        let mailer = self.mailers.mailer_for(&server).map_err(|e| InstanceError::internal("Error loading environment config", e))?;
        let resolved = Arc::new(Resolved { id, uuid: row.uuid, config: Arc::new(config), mailer });
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(key, (now, Arc::clone(&resolved)));
        }
        Ok(resolved)
    }

    fn forget(&self, id: Uuid) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(i, _), _| *i != id);
        }
    }

    fn answer(row: &InstanceRow) -> Result<Value, InstanceError> {
        let base = BaseConfig::parse(row.raw_base_config.as_deref().unwrap_or(""))
            .map_err(|e| InstanceError::internal("Error loading environment config", e))?;
        Ok(json!({
            "id": row.id,
            "uuid": row.uuid,
            "config": base.public_value(),
            "created_at": rfc3339_nano(&row.created_at),
            "updated_at": rfc3339_nano(&row.updated_at),
        }))
    }

    /// `POST /instances` with the decoded body: 201 with the new instance.
    ///
    /// # Errors
    /// 400 for a bad body or a taken `uuid`, 500s.
    pub async fn create(&self, body: Value) -> Result<Value, InstanceError> {
        let decode_err = |e: String| InstanceError::new(400, format!("Error decoding params: {e}"));
        let (uuid, config) = match body {
            Value::Object(mut m) => (m.remove("uuid").unwrap_or(Value::Null), m.remove("config").unwrap_or(Value::Null)),
            Value::Null => (Value::Null, Value::Null),
            _ => return Err(decode_err("the body is not a JSON object".into())),
        };
        let uuid = match uuid {
            Value::Null => Uuid::nil(),
            Value::String(s) if s.is_empty() => Uuid::nil(),
            Value::String(s) => Uuid::parse_str(&s).map_err(|e| decode_err(e.to_string()))?,
            _ => return Err(decode_err("uuid is not a string".into())),
        };
        let base = BaseConfig::from_value(config).map_err(decode_err)?;
        match self.store.find_instance_by_uuid(uuid).await {
            Ok(Some(_)) => return Err(InstanceError::new(400, "An instance with that UUID already exists")),
            Ok(None) => {}
            Err(e) => return Err(InstanceError::internal("Database error looking up instance", e)),
        }
        let now = self.clock.now();
        let row = InstanceRow { id: Uuid::new_v4(), uuid, raw_base_config: Some(base.to_json()), created_at: now, updated_at: now };
        self.store.insert_instance(&row).await.map_err(|e| InstanceError::internal("Database error creating instance", e))?;
        let mut v = Self::answer(&row)?;
        if let Value::Object(m) = &mut v {
            m.insert("endpoint".into(), Value::String(self.endpoint.clone()));
            m.insert("state".into(), Value::String("active".into()));
        }
        Ok(v)
    }

    async fn load(&self, id: &str) -> Result<InstanceRow, InstanceError> {
        let id = Uuid::parse_str(id).map_err(|_| InstanceError::new(400, "Invalid instance ID"))?;
        match self.store.find_instance(id).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(InstanceError::new(404, "Instance not found")),
            Err(e) => Err(InstanceError::internal("Database error loading instance", e)),
        }
    }

    /// `GET /instances/{id}`.
    ///
    /// # Errors
    /// 400 for a bad id, 404, 500s.
    pub async fn get(&self, id: &str) -> Result<Value, InstanceError> {
        Self::answer(&self.load(id).await?)
    }

    /// `PUT /instances/{id}`: the body's `config` decoded on top of the stored one.
    ///
    /// # Errors
    /// 400 for a bad id or body, 404, 500s.
    pub async fn update(&self, id: &str, body: Value) -> Result<Value, InstanceError> {
        let mut row = self.load(id).await?;
        let decode_err = |e: String| InstanceError::new(400, format!("Error decoding params: {e}"));
        let patch = match body {
            Value::Object(mut m) => m.remove("config").unwrap_or(Value::Null),
            Value::Null => Value::Null,
            _ => return Err(decode_err("the body is not a JSON object".into())),
        };
        let stored = BaseConfig::parse(row.raw_base_config.as_deref().unwrap_or(""))
            .map_err(|e| InstanceError::internal("Database error updating instance", e))?;
        let mut merged = serde_json::to_value(&stored).unwrap_or(Value::Null);
        if !patch.is_null() {
            base_config::merge(&mut merged, base_config::fold_keys(patch));
        }
        let base = BaseConfig::from_value(merged).map_err(decode_err)?;
        row.raw_base_config = Some(base.to_json());
        row.updated_at = self.clock.now();
        let saved = self.store.update_instance(&row).await;
        self.forget(row.id);
        saved.map_err(|e| match e {
            StoreError::Conflict => InstanceError::new(404, "Instance not found"),
            e => InstanceError::internal("Database error updating instance", e),
        })?;
        Self::answer(&row)
    }

    /// `DELETE /instances/{id}`: the instance with its users and sessions.
    ///
    /// # Errors
    /// 400 for a bad id, 404, 500s.
    pub async fn delete(&self, id: &str) -> Result<(), InstanceError> {
        let row = self.load(id).await?;
        let done = self.store.delete_instance(row.id).await;
        self.forget(row.id);
        done.map_err(|e| InstanceError::internal("Database error deleting instance", e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicI64, Ordering};

    use chrono::TimeZone as _;

    use super::*;
    use crate::adapters::mail::MemoryOutbox;
    use crate::app::config::{Config, Env};
    use crate::ports::instances::MockInstanceStore;
    use crate::ports::mail::MockMailerFactory;

    /// A clock the test moves.
    #[derive(Default)]
    struct Ticking(AtomicI64);

    impl Clock for Ticking {
        fn now(&self) -> DateTime<Utc> {
            Utc.timestamp_opt(1_700_000_000 + self.0.load(Ordering::SeqCst), 0).unwrap()
        }
    }

    fn row(id: Uuid) -> InstanceRow {
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        InstanceRow {
            id,
            uuid: Uuid::nil(),
            raw_base_config: Some(r#"{"site_url":"https://a.example","jwt":{"secret":"s"}}"#.into()),
            created_at: t,
            updated_at: t,
        }
    }

    fn instances(store: MockInstanceStore, clock: Arc<Ticking>) -> Instances {
        let global = Config::from_env(&Env::from_pairs([("GOTRUE_SITE_URL", "https://global.example")])).unwrap().instance;
        let mut mailers = MockMailerFactory::new();
        mailers.expect_mailer_for().returning(|_| Ok(Arc::new(MemoryOutbox::default())));
        Instances::new(Arc::new(store), clock, Arc::new(global), Some(SecretString::from("op")), Arc::new(mailers), String::new()).unwrap()
    }

    #[test]
    fn an_operator_token_is_required_and_compared() {
        let make = |t: Option<&str>| {
            Instances::new(
                Arc::new(MockInstanceStore::new()),
                Arc::new(Ticking::default()),
                Arc::new(Config::from_env(&Env::default()).unwrap().instance),
                t.map(|t| SecretString::from(t.to_owned())),
                Arc::new(MockMailerFactory::new()),
                String::new(),
            )
        };
        assert_eq!(make(None).unwrap_err(), "Operator token secret is required");
        assert_eq!(make(Some("")).unwrap_err(), "Operator token secret is required");
        let i = make(Some("op")).unwrap();
        assert_eq!(i.check_operator(None).unwrap_err().msg, "This endpoint requires a Bearer token");
        assert_eq!(i.check_operator(Some("oq")).unwrap_err().msg, "Request does not include an Operator token");
        assert_eq!(i.check_operator(Some("op ")).unwrap_err().status, 401);
        assert!(i.check_operator(Some("op")).is_ok());
    }

    #[tokio::test]
    async fn resolved_configurations_are_reused_briefly_and_dropped_on_update() {
        let id = Uuid::new_v4();
        let mut store = MockInstanceStore::new();
        // Loads: first use, another site_url claim, after the TTL, the update's own, after it.
        store.expect_find_instance().times(5).returning(move |_| Ok(Some(row(id))));
        store.expect_update_instance().times(1).returning(|_| Ok(()));
        let clock = Arc::new(Ticking::default());
        let i = instances(store, Arc::clone(&clock));
        let first = i.resolve(id, "").await.unwrap();
        assert_eq!(first.config.site_url, "https://a.example");
        let again = i.resolve(id, "").await.unwrap();
        assert!(Arc::ptr_eq(&first, &again), "reused within the TTL");
        let claimed = i.resolve(id, "https://claim.example").await;
        assert_eq!(claimed.unwrap().config.site_url, "https://claim.example", "another site_url claim is another entry");
        clock.0.store(CACHE_TTL_SECS, Ordering::SeqCst);
        let later = i.resolve(id, "").await.unwrap();
        assert!(!Arc::ptr_eq(&first, &later), "loaded again after the TTL");
        i.update(&id.to_string(), json!({"config": {"disable_signup": true}})).await.unwrap();
        let after = i.resolve(id, "").await.unwrap();
        assert!(!Arc::ptr_eq(&later, &after), "an update drops the cached configuration");
    }

    #[tokio::test]
    async fn unknown_instances_and_database_errors() {
        let mut store = MockInstanceStore::new();
        store.expect_find_instance().times(1).returning(|_| Ok(None));
        let i = instances(store, Arc::default());
        let e = i.resolve(Uuid::new_v4(), "").await.err().unwrap();
        assert_eq!((e.status, e.msg.as_str()), (404, "Unable to locate site configuration"));
        let mut store = MockInstanceStore::new();
        store.expect_find_instance().times(1).returning(|_| Err(StoreError::Conflict));
        let i = instances(store, Arc::default());
        let e = i.resolve(Uuid::new_v4(), "").await.err().unwrap();
        assert_eq!((e.status, e.msg.as_str()), (500, "Database error loading instance"));
        let e = i.get("nope").await.unwrap_err();
        assert_eq!((e.status, e.msg.as_str()), (400, "Invalid instance ID"));
    }

    #[test]
    fn function_hooks_take_both_forms() {
        // SCENARIOS.md 14: TestFunctionHooksUnmarshalJSON.
        let want: FunctionHooks = [("signup".to_owned(), vec!["identity-signup".to_owned()])].into();
        assert_eq!(parse_function_hooks(&json!({"signup": "identity-signup"})).unwrap(), want);
        assert_eq!(parse_function_hooks(&json!({"signup": ["identity-signup"]})).unwrap(), want);
        assert!(parse_function_hooks(&json!({"signup": {"foo": "bar"}})).is_err());
        assert!(parse_function_hooks(&json!(null)).unwrap().is_empty());
    }
}
