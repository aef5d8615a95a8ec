//! The external-login store ports (`IdentityStore`, `FlowStore`) under the same contract
//! on both engines: an identity is written in its user's transaction, a provider account
//! links to one user, a user's deletion takes its identities along, states and codes are
//! single use.

use std::sync::Arc;

use gotrue::domain::identity::{Identity, ProviderEmail, ProviderUser};
use gotrue::ports::flows::{AuthCode, FlowStore};
use gotrue::ports::identities::IdentityStore;
use gotrue::ports::users::{Effects, Guard, StoreError, TokenColumn};
use serde_json::{json, Map};
use uuid::Uuid;

use crate::fixtures::{at, obj, user, AUD};
use crate::harness::{Engine, Store};

fn identities(s: &Store) -> Arc<dyn IdentityStore> {
    match &s.engine {
        Engine::Sqlite(e) => Arc::new(e.clone()),
        Engine::MySql(e) => Arc::new(e.clone()),
    }
}

fn flows(s: &Store) -> Arc<dyn FlowStore> {
    match &s.engine {
        Engine::Sqlite(e) => Arc::new(e.clone()),
        Engine::MySql(e) => Arc::new(e.clone()),
    }
}

fn account(id: &str, email: &str) -> ProviderUser {
    ProviderUser {
        id: id.into(),
        emails: vec![ProviderEmail { address: email.into(), verified: true, primary: true }],
        metadata: Map::new(),
        profile: obj(json!({"id": id, "login": "Ünïcode"})),
    }
}

/// Timestamps at whole seconds, as MySQL's `timestamp` columns keep them.
fn secs(i: &Identity) -> Identity {
    use chrono::Timelike as _;
    let w = |t: chrono::DateTime<chrono::Utc>| t.with_nanosecond(0).unwrap();
    Identity { created_at: w(i.created_at), updated_at: w(i.updated_at), last_sign_in_at: i.last_sign_in_at.map(w), ..i.clone() }
}

fn identity_of(user_id: Uuid, provider: &str, pu: &ProviderUser) -> Identity {
    Identity::new(Uuid::nil(), user_id, provider, pu, &pu.emails[0], at(0))
}

pub async fn identity_round_trips_with_its_user(s: Store) {
    let ids = identities(&s);
    let u = user(Uuid::nil(), AUD, "ann@example.com");
    let pu = account("Case-Sensitive-42", "ann@example.com");
    let i = identity_of(u.id, "github", &pu);
    ids.insert_user_with_identity(&u, &i, &Effects::default()).await.unwrap();
    let found = ids.find_identity(Uuid::nil(), "github", "Case-Sensitive-42").await.unwrap().unwrap();
    assert_eq!(secs(&found), secs(&i), "{}", s.kind());
    assert!(ids.find_identity(Uuid::nil(), "github", "case-sensitive-42").await.unwrap().is_none(), "{}: provider ids are exact", s.kind());
    assert!(ids.find_identity(Uuid::nil(), "gitlab", "Case-Sensitive-42").await.unwrap().is_none());
    assert!(ids.find_identity(Uuid::from_u128(7), "github", "Case-Sensitive-42").await.unwrap().is_none(), "per instance");
    assert_eq!(ids.user_identities(Uuid::nil(), u.id).await.unwrap().iter().map(secs).collect::<Vec<_>>(), vec![secs(&i)]);
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_some());
}

pub async fn a_provider_account_links_to_one_user(s: Store) {
    let ids = identities(&s);
    let first = user(Uuid::nil(), AUD, "first@example.com");
    let pu = account("1", "first@example.com");
    ids.insert_user_with_identity(&first, &identity_of(first.id, "github", &pu), &Effects::default()).await.unwrap();
    // A second user with the same provider account: nothing of it is written.
    let second = user(Uuid::nil(), AUD, "second@example.com");
    let r = ids.insert_user_with_identity(&second, &identity_of(second.id, "github", &pu), &Effects::default()).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{}: {r:?}", s.kind());
    assert!(s.users.find_user_by_id(None, second.id).await.unwrap().is_none(), "{}: the user insert was rolled back", s.kind());
    // The same for linking an existing user.
    s.users.insert_user(&second, &Effects::default()).await.unwrap();
    let mut changed = second.clone();
    changed.role = "changed".into();
    let r = ids.update_user_with_identity(&changed, &Guard::None, &identity_of(second.id, "github", &pu), &Effects::default()).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{}: {r:?}", s.kind());
    assert_eq!(s.users.find_user_by_id(None, second.id).await.unwrap().unwrap().role, "", "{}: rolled back", s.kind());
}

pub async fn linking_refreshes_or_inserts_under_the_users_guard(s: Store) {
    let ids = identities(&s);
    let mut u = user(Uuid::nil(), AUD, "bo@example.com");
    u.confirmation_token = "h1:invite".into();
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let pu = account("9", "bo@example.com");
    let mut i = identity_of(u.id, "gitlab", &pu);
    let guard = Guard::Token(TokenColumn::Confirmation, "h1:other".into());
    let r = ids.update_user_with_identity(&u, &guard, &i, &Effects::default()).await;
    assert!(matches!(r, Err(StoreError::Conflict)), "{}: {r:?}", s.kind());
    assert!(ids.user_identities(Uuid::nil(), u.id).await.unwrap().is_empty(), "{}: a failed guard writes no identity", s.kind());
    u.confirm(at(1));
    ids.update_user_with_identity(&u, &Guard::Token(TokenColumn::Confirmation, "h1:invite".into()), &i, &Effects::default()).await.unwrap();
    let mut pu2 = pu.clone();
    pu2.emails[0].verified = false;
    pu2.profile = obj(json!({"id": "9", "name": "new"}));
    i.refresh(&pu2, at(5));
    ids.update_user_with_identity(&u, &Guard::None, &i, &Effects::default()).await.unwrap();
    let stored = ids.user_identities(Uuid::nil(), u.id).await.unwrap();
    assert_eq!(stored.iter().map(secs).collect::<Vec<_>>(), vec![secs(&i)], "{}: refreshed in place", s.kind());
    assert!(!stored[0].email_verified);
}

pub async fn delete_removes_identities(s: Store) {
    let ids = identities(&s);
    let u = user(Uuid::nil(), AUD, "cy@example.com");
    ids.insert_user_with_identity(&u, &identity_of(u.id, "github", &account("1", "cy@example.com")), &Effects::default()).await.unwrap();
    ids.update_user_with_identity(&u, &Guard::None, &identity_of(u.id, "google", &account("g", "cy@example.com")), &Effects::default())
        .await
        .unwrap();
    let other = user(Uuid::nil(), AUD, "other@example.com");
    ids.insert_user_with_identity(&other, &identity_of(other.id, "github", &account("2", "other@example.com")), &Effects::default())
        .await
        .unwrap();
    assert_eq!(ids.user_identities(Uuid::nil(), u.id).await.unwrap().len(), 2);
    s.users.delete_user(&u, &Guard::None, &Effects::default()).await.unwrap();
    assert!(ids.user_identities(Uuid::nil(), u.id).await.unwrap().is_empty(), "{}", s.kind());
    assert!(ids.find_identity(Uuid::nil(), "github", "1").await.unwrap().is_none());
    assert_eq!(ids.user_identities(Uuid::nil(), other.id).await.unwrap().len(), 1, "{}: others keep theirs", s.kind());
}

pub async fn oauth_states_are_single_use_and_expired_ones_purged(s: Store) {
    let f = flows(&s);
    assert!(f.use_state(Uuid::nil(), "jti-1", at(600), at(0)).await.unwrap());
    assert!(!f.use_state(Uuid::nil(), "jti-1", at(600), at(1)).await.unwrap(), "{}", s.kind());
    assert!(f.use_state(Uuid::nil(), "jti-2", at(600), at(2)).await.unwrap());
    assert_eq!(s.count(&format!("{}oauth_states", s.tables().prefix), "1 = 1", &[]).await, 2);
    assert!(f.use_state(Uuid::nil(), "jti-3", at(1200), at(700)).await.unwrap());
    assert_eq!(s.count(&format!("{}oauth_states", s.tables().prefix), "1 = 1", &[]).await, 1, "{}: past their expiry", s.kind());
}

pub async fn auth_codes_are_taken_once(s: Store) {
    let f = flows(&s);
    let code = AuthCode {
        instance_id: Uuid::nil(),
        digest: "h1:code".into(),
        user_id: Uuid::new_v4(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        created_at: at(0),
        expires_at: at(300),
    };
    f.insert_auth_code(&code, at(0)).await.unwrap();
    let taken = f.take_auth_code("h1:code").await.unwrap().unwrap();
    assert_eq!((taken.user_id, taken.code_challenge.as_str()), (code.user_id, code.code_challenge.as_str()));
    assert!((taken.expires_at - at(300)).num_seconds().abs() < 1, "{}", s.kind());
    assert!(f.take_auth_code("h1:code").await.unwrap().is_none(), "{}", s.kind());
    // Concurrent takers: one gets it.
    f.insert_auth_code(&AuthCode { digest: "h1:race".into(), ..code.clone() }, at(1)).await.unwrap();
    let (a, b) = tokio::join!(f.take_auth_code("h1:race"), f.take_auth_code("h1:race"));
    assert_eq!(u8::from(a.unwrap().is_some()) + u8::from(b.unwrap().is_some()), 1, "{}", s.kind());
}
