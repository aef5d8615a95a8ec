//! The `InstanceStore` port under the same contract on both engines: upstream's
//! `instances` rows (JSON text kept byte for byte, NULL configurations, the nil `uuid`),
//! updates, and deletion with the instance's users and sessions (audit entries stay).

use std::sync::Arc;

use chrono::SubsecRound as _;

use gotrue::domain::audit::AuditAction;
use gotrue::ports::instances::{InstanceRow, InstanceStore};
use gotrue::ports::users::{Effects, StoreError};
use uuid::Uuid;

use crate::fixtures::{at, audit, refresh_for, user, AUD};
use crate::harness::{Engine, Store};

fn instances(s: &Store) -> Arc<dyn InstanceStore> {
    match &s.engine {
        Engine::Sqlite(e) => Arc::new(e.clone()),
        Engine::MySql(e) => Arc::new(e.clone()),
    }
}

/// Whole seconds: upstream's `timestamp` columns keep no fraction.
fn row(uuid: Uuid, config: Option<&str>) -> InstanceRow {
    let t = at(0).trunc_subsecs(0);
    InstanceRow { id: Uuid::new_v4(), uuid, raw_base_config: config.map(str::to_owned), created_at: t, updated_at: t }
}

pub async fn instances_round_trip_and_update(s: Store) {
    let store = instances(&s);
    let site = Uuid::new_v4();
    let text = r#"{"site_url":"https://a.example","jwt":{"secret":"ü-secret","exp":0},"smtp":{"host":"h"}}"#;
    let a = row(site, Some(text));
    store.insert_instance(&a).await.unwrap();
    assert_eq!(store.find_instance(a.id).await.unwrap().as_ref(), Some(&a), "{}", s.kind());
    assert_eq!(store.find_instance_by_uuid(site).await.unwrap().as_ref(), Some(&a));
    assert!(store.find_instance(Uuid::new_v4()).await.unwrap().is_none());
    assert!(store.find_instance_by_uuid(Uuid::new_v4()).await.unwrap().is_none());
    assert!(matches!(store.insert_instance(&a).await, Err(StoreError::Conflict)), "same id twice");
    // NULL configuration and the nil uuid (a POST without one).
    let b = row(Uuid::nil(), None);
    store.insert_instance(&b).await.unwrap();
    assert_eq!(store.find_instance_by_uuid(Uuid::nil()).await.unwrap().unwrap().raw_base_config, None);
    // Update: new text and time; an identical update is no error; a missing row is.
    let mut changed = a.clone();
    changed.raw_base_config = Some("{}".into());
    changed.updated_at = at(60).trunc_subsecs(0);
    store.update_instance(&changed).await.unwrap();
    store.update_instance(&changed).await.unwrap();
    assert_eq!(store.find_instance(a.id).await.unwrap().unwrap(), changed);
    assert!(matches!(store.update_instance(&row(site, Some("{}"))).await, Err(StoreError::Conflict)));
}

pub async fn deleting_an_instance_takes_its_users_and_sessions(s: Store) {
    let store = instances(&s);
    let (a, b) = (row(Uuid::new_v4(), Some("{}")), row(Uuid::new_v4(), Some("{}")));
    store.insert_instance(&a).await.unwrap();
    store.insert_instance(&b).await.unwrap();
    let ua = user(a.id, AUD, "ann@example.com");
    let ub = user(b.id, AUD, "ann@example.com");
    for u in [&ua, &ub] {
        let effects = Effects { audit: vec![audit(u, AuditAction::Login)], grant: Some(refresh_for(u, 1)), ..Effects::default() };
        s.users.insert_user(u, &effects).await.unwrap();
    }
    store.delete_instance(a.id).await.unwrap();
    assert!(store.find_instance(a.id).await.unwrap().is_none());
    assert!(store.find_instance(b.id).await.unwrap().is_some());
    let t = s.tables().clone();
    assert_eq!(s.count(&t.users, "instance_id = ?", &[&a.id.to_string()]).await, 0);
    assert_eq!(s.count(&t.refresh_tokens, "instance_id = ?", &[&a.id.to_string()]).await, 0);
    assert_eq!(s.count(&t.audit, "instance_id = ?", &[&a.id.to_string()]).await, 1, "audit entries are kept");
    assert_eq!(s.count(&t.users, "instance_id = ?", &[&b.id.to_string()]).await, 1);
    assert_eq!(s.count(&t.refresh_tokens, "instance_id = ?", &[&b.id.to_string()]).await, 1);
}
