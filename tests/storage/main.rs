//! The storage contract: one suite over the store ports (`UserStore`, `TokenStore`), run
//! against SQLite always and against MySQL/MariaDB when `GOTRUE_TEST_MYSQL_URL` is set
//! (`mysql://root@127.0.0.1:3306/test`). Every test gets a fresh, migrated database
//! (a file in a temporary directory; a `gt_<hex>` database dropped afterwards).
//!
//! Each contract is written once as `async fn name(s: Store)`; `contract!` instantiates
//! it as `sqlite::name` and `mysql::name` (`cargo test --test storage mysql::`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod external;
mod fixtures;
mod harness;
mod instances;
mod scratch_mysql;

use gotrue::domain::audit::{AuditAction, AuditEntry, AuditScope, AuditSearch};
use gotrue::domain::email::normalise;
use gotrue::domain::page::{Pagination, SortDirection};
use gotrue::domain::token::{digest, NewToken};
use gotrue::ports::audit::AuditListQuery;
use gotrue::ports::tokens::NewRefreshToken;
use gotrue::ports::users::{Effects, Guard, StoreError, TokenColumn, UserListQuery};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use external::{
    a_provider_account_links_to_one_user, auth_codes_are_taken_once, delete_removes_identities, identity_round_trips_with_its_user,
    linking_refreshes_or_inserts_under_the_users_guard, oauth_states_are_single_use_and_expired_ones_purged,
};
use fixtures::{as_read, assert_user, at, audit, full_user, next_in_session, obj, refresh_for, rich_audit, user, AUD};
use harness::Store;
use instances::{deleting_an_instance_takes_its_users_and_sessions, instances_round_trip_and_update};

/// Generates `sqlite::<name>` and `mysql::<name>` tests for each contract function.
macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    crate::$name(crate::harness::Store::sqlite().await).await;
                }
            )+
        }
        mod mysql {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(store) = crate::harness::Store::mysql().await else {
                        eprintln!(
                            "note: {} is not set; skipping mysql::{}",
                            crate::scratch_mysql::MYSQL_URL_VAR,
                            stringify!($name)
                        );
                        return;
                    };
                    crate::$name(store).await;
                }
            )+
        }
    };
}

contract!(
    migrations_are_recorded_per_namespace,
    user_round_trips_every_field,
    metadata_none_is_stored_as_json_null,
    rows_written_by_other_tools_read_with_defaults,
    find_by_email_uses_the_normalised_key,
    email_is_unique_per_instance_and_audience,
    accented_addresses_are_distinct,
    concurrent_signups_one_wins,
    find_by_token_per_column,
    guarded_update_is_single_use,
    concurrent_guarded_updates_one_wins,
    update_writes_its_effects_atomically,
    update_to_a_taken_email_changes_nothing,
    update_can_change_the_email_key,
    delete_removes_user_and_tokens,
    refresh_token_grant_find_rotate,
    concurrent_rotations_one_wins,
    revoke_user_tokens_deletes_them,
    sessions_rotate_within_their_chain,
    an_upstream_token_joins_the_session_of_its_rotation,
    revoke_session_deletes_only_its_tokens,
    revoke_sessions_keeps_the_named_session,
    twenty_parallel_rotations_leave_one_live_token,
    refresh_session_reads_token_and_user_at_once,
    record_login_writes_only_what_a_login_changes,
    audit_payload_round_trips,
    namespaces_are_isolated,
    identity_round_trips_with_its_user,
    a_provider_account_links_to_one_user,
    linking_refreshes_or_inserts_under_the_users_guard,
    delete_removes_identities,
    oauth_states_are_single_use_and_expired_ones_purged,
    auth_codes_are_taken_once,
    list_users_filters_orders_and_pages,
    list_users_search_keeps_up_with_updates,
    list_audit_searches_newest_first,
    retract_user_removes_the_user_and_its_audit,
    an_unreachable_database_is_unavailable_quickly,
    instances_round_trip_and_update,
    deleting_an_instance_takes_its_users_and_sessions,
);

fn is_taken(r: &Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::EmailTaken))
}

fn is_conflict(r: &Result<(), StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict))
}

// ---------------------------------------------------------------------------------------
// Migrations and namespaces

async fn migrations_are_recorded_per_namespace(s: Store) {
    // The harness already migrated twice; the default namespace keeps upstream's table.
    assert_eq!(s.tables().migrations, "schema_migration");
    assert!(s.table_exists("schema_migration").await);
    for t in [&s.tables().users, &s.tables().refresh_tokens, &s.tables().audit, &s.tables().instances] {
        assert!(s.table_exists(t).await, "{}: table {t} exists", s.kind());
    }
    let status = s.migrate().await;
    assert!(status.iter().all(|st| st.applied));
    for m in s.migrations() {
        assert_eq!(s.count("schema_migration", "version = ?", &[m.version]).await, 1, "{}: version {} recorded once", s.kind(), m.version);
    }
}

async fn namespaces_are_isolated(s: Store) {
    // Upstream kept one `schema_migration` for every namespace, so a second namespace on
    // the same database found the versions recorded and never got its tables
    // (WEAKNESSES.md 39). Each namespace now keeps `<ns>_schema_migration`.
    let ns1 = s.open("ns1").await;
    let ns2 = s.open("ns2").await;
    assert_eq!(ns1.tables().users, "ns1_users");
    assert_eq!(ns1.tables().migrations, "ns1_schema_migration");
    assert_eq!(ns2.tables().migrations, "ns2_schema_migration");
    for t in ["ns1_users", "ns1_refresh_tokens", "ns1_audit_log_entries", "ns1_instances"] {
        assert!(s.table_exists(t).await, "{}: {t}", s.kind());
    }
    for t in ["ns2_users", "ns2_refresh_tokens", "ns2_audit_log_entries", "ns2_instances"] {
        assert!(s.table_exists(t).await, "{}: {t}", s.kind());
    }
    let n = i64::try_from(s.migrations().len()).unwrap();
    assert_eq!(s.count("schema_migration", "1 = 1", &[]).await, n);
    assert_eq!(s.count("ns1_schema_migration", "1 = 1", &[]).await, n);
    assert_eq!(s.count("ns2_schema_migration", "1 = 1", &[]).await, n);

    // The same user (same id, same address) can live in each namespace.
    let u = user(Uuid::nil(), AUD, "shared@example.com");
    let grant = refresh_for(&u, 1);
    ns1.users
        .insert_user(
            &u,
            &Effects {
                grant: Some(grant.clone()),
                audit: vec![audit(&u, AuditAction::UserSignedUp)],
                revoke_sessions: false,
                keep_session: None,
            },
        )
        .await
        .unwrap();
    assert!(ns2.users.find_user_by_id(None, u.id).await.unwrap().is_none());
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_none());
    assert!(ns2.users.find_user_by_email(Uuid::nil(), AUD, "shared@example.com").await.unwrap().is_none());
    assert!(ns2.tokens.find_refresh_token(&grant.token).await.unwrap().is_none());
    assert_eq!(ns1.audit_rows().await.len(), 1);
    assert!(ns2.audit_rows().await.is_empty());
    assert!(s.audit_rows().await.is_empty());

    ns2.users.insert_user(&u, &Effects::default()).await.unwrap();
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    // The same id twice in one namespace fails.
    assert!(ns1.users.insert_user(&u, &Effects::default()).await.is_err());
    let mut changed = u.clone();
    changed.role = "ns2-only".into();
    ns2.users.update_user(&changed, &Guard::None, &Effects::default()).await.unwrap();
    assert_user(ns2.users.find_user_by_id(None, u.id).await.unwrap(), &changed);
    assert_user(ns1.users.find_user_by_id(None, u.id).await.unwrap(), &u);
    assert_user(s.users.find_user_by_id(None, u.id).await.unwrap(), &u);
    ns1.users.delete_user(&u, &Guard::None, &Effects::default()).await.unwrap();
    assert!(ns1.users.find_user_by_id(None, u.id).await.unwrap().is_none());
    assert!(ns2.users.find_user_by_id(None, u.id).await.unwrap().is_some());
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Users: round trips

async fn user_round_trips_every_field(s: Store) {
    let inst = Uuid::new_v4();
    let u = full_user(inst);
    s.users.insert_user(&u, &Effects::default()).await.unwrap();

    assert_user(s.users.find_user_by_id(Some(inst), u.id).await.unwrap(), &u);
    assert_user(s.users.find_user_by_id(None, u.id).await.unwrap(), &u);
    assert!(s.users.find_user_by_id(Some(Uuid::new_v4()), u.id).await.unwrap().is_none());
    assert!(s.users.find_user_by_id(Some(Uuid::nil()), u.id).await.unwrap().is_none());
    assert!(s.users.find_user_by_id(None, Uuid::new_v4()).await.unwrap().is_none());
    assert_user(s.users.find_user_by_email(inst, "custom-aud", &normalise(&u.email)).await.unwrap(), &u);

    if let harness::Engine::MySql(_) = s.engine {
        // Stored as the UTC wall-clock literal, as upstream's Go driver writes it
        // (SCHEMA.md 4), whole seconds.
        let users = s.tables().users.clone();
        let id = u.id.to_string();
        assert_eq!(s.raw_text(&users, "created_at", &id).await.as_deref(), Some("2024-05-01 10:00:00"));
        assert_eq!(s.raw_text(&users, "updated_at", &id).await.as_deref(), Some("2024-05-01 10:00:30"));
    }

    // The empty / unset values of a fresh account survive too.
    let fresh = user(Uuid::nil(), AUD, "fresh@example.com");
    s.users.insert_user(&fresh, &Effects::default()).await.unwrap();
    let got = s.users.find_user_by_id(Some(Uuid::nil()), fresh.id).await.unwrap();
    assert_user(got.clone(), &fresh);
    let got = got.unwrap();
    assert_eq!(got.role, "");
    assert_eq!(got.confirmation_token, "");
    assert_eq!(got.confirmed_at, None);
    assert!(!got.is_super_admin);
    assert_eq!(got.app_metadata, Some(obj(json!({"provider": "email"}))), "{}", s.kind());
}

async fn metadata_none_is_stored_as_json_null(s: Store) {
    let mut u = user(Uuid::nil(), AUD, "nometa@example.com");
    u.app_metadata = None;
    u.user_metadata = None;
    u.encrypted_password = String::new();
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let got = s.users.find_user_by_id(None, u.id).await.unwrap().unwrap();
    assert_eq!(got.app_metadata, Some(Map::new()));
    assert_eq!(got.user_metadata, Some(Map::new()));
    assert_eq!(got.encrypted_password, "");
    assert_eq!(as_read(&got), as_read(&u));
    let (app, usr) = s.raw_metadata(u.id).await;
    assert_eq!(app.as_deref(), Some("null"), "{}", s.kind());
    assert_eq!(usr.as_deref(), Some("null"), "{}", s.kind());

    // An update writing an empty object stores `{}`.
    let mut v = got.clone();
    v.user_metadata = Some(Map::new());
    v.app_metadata = Some(obj(json!({"provider": "email"})));
    s.users.update_user(&v, &Guard::None, &Effects::default()).await.unwrap();
    let (app, usr) = s.raw_metadata(u.id).await;
    let app: Value = serde_json::from_str(&app.unwrap()).unwrap();
    let usr: Value = serde_json::from_str(&usr.unwrap()).unwrap();
    assert_eq!(app, json!({"provider": "email"}));
    assert_eq!(usr, json!({}));
}

async fn rows_written_by_other_tools_read_with_defaults(s: Store) {
    // Upstream always writes "" and 0, but rows from other tools may hold SQL NULLs
    // (SCHEMA.md 4): read them as "", false, {} and the epoch.
    let id = Uuid::new_v4();
    let t = s.tables().clone();
    s.exec(
        &format!("INSERT INTO {} (id, instance_id, aud, email, email_key) VALUES (?, ?, ?, ?, ?)", t.users),
        &[Some(&id.to_string()), None, Some(AUD), Some("Legacy@Example.com"), Some("legacy@example.com")],
    )
    .await;
    let got = s.users.find_user_by_id(None, id).await.unwrap().expect("row with NULLs is readable");
    assert_eq!(got.instance_id, Uuid::nil());
    assert_eq!(got.email, "Legacy@Example.com");
    assert_eq!(got.role, "");
    assert_eq!(got.encrypted_password, "");
    assert_eq!(got.recovery_token, "");
    assert_eq!(got.email_change, "");
    assert_eq!(got.email_change_token_current, "");
    assert!(!got.email_change_half_confirmed);
    assert!(!got.is_super_admin);
    assert_eq!(got.app_metadata, Some(Map::new()));
    assert_eq!(got.user_metadata, Some(Map::new()));
    assert_eq!(got.created_at, chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
    assert_eq!(
        s.users.find_user_by_email(Uuid::nil(), AUD, "legacy@example.com").await.unwrap().map(|u| u.id),
        None,
        "{}: instance_id NULL is not the nil instance in SQL",
        s.kind()
    );

    let token = digest("legacy refresh");
    s.exec(&format!("INSERT INTO {} (token, user_id) VALUES (?, ?)", t.refresh_tokens), &[Some(&token), Some(&id.to_string())]).await;
    let rt = s.tokens.find_refresh_token(&token).await.unwrap().expect("token row with NULLs is readable");
    assert_eq!(rt.user_id, id);
    assert_eq!(rt.instance_id, Uuid::nil());
    assert!(!rt.revoked);
}

// ---------------------------------------------------------------------------------------
// Users: email lookups and uniqueness

async fn find_by_email_uses_the_normalised_key(s: Store) {
    let inst = Uuid::new_v4();
    let ann = user(inst, AUD, "ann@example.com");
    let bob = user(inst, AUD, "Bob@Example.COM");
    s.users.insert_user(&ann, &Effects::default()).await.unwrap();
    s.users.insert_user(&bob, &Effects::default()).await.unwrap();

    assert_user(s.users.find_user_by_email(inst, AUD, &normalise(" Ann@Example.COM ")).await.unwrap(), &ann);
    // The address keeps the case it was given; the key finds it.
    let got = s.users.find_user_by_email(inst, AUD, &normalise("bob@example.com")).await.unwrap().unwrap();
    assert_eq!(got.id, bob.id);
    assert_eq!(got.email, "Bob@Example.COM");
    // The store compares keys as given, byte for byte, on both engines.
    assert!(s.users.find_user_by_email(inst, AUD, "Bob@Example.COM").await.unwrap().is_none());
    // Scoped by instance and by audience.
    assert!(s.users.find_user_by_email(Uuid::new_v4(), AUD, "ann@example.com").await.unwrap().is_none());
    assert!(s.users.find_user_by_email(Uuid::nil(), AUD, "ann@example.com").await.unwrap().is_none());
    assert!(s.users.find_user_by_email(inst, "other-aud", "ann@example.com").await.unwrap().is_none());
    assert!(s.users.find_user_by_email(inst, AUD, "nobody@example.com").await.unwrap().is_none());
}

async fn email_is_unique_per_instance_and_audience(s: Store) {
    let inst = Uuid::new_v4();
    let first = user(inst, AUD, "ann@example.com");
    s.users.insert_user(&first, &Effects::default()).await.unwrap();

    for variant in ["ann@example.com", "Ann@Example.COM", " ANN@example.com ", "ann@EXAMPLE.com\t"] {
        let dup = user(inst, AUD, variant);
        let grant = refresh_for(&dup, 1);
        let r = s
            .users
            .insert_user(
                &dup,
                &Effects {
                    grant: Some(grant.clone()),
                    audit: vec![audit(&dup, AuditAction::UserSignedUp)],
                    revoke_sessions: false,
                    keep_session: None,
                },
            )
            .await;
        assert!(is_taken(&r), "{}: {variant:?} -> {r:?}", s.kind());
        // Nothing of the failed insert was written.
        assert!(s.users.find_user_by_id(None, dup.id).await.unwrap().is_none());
        assert!(s.tokens.find_refresh_token(&grant.token).await.unwrap().is_none());
    }
    assert!(s.audit_rows().await.is_empty());

    // Another audience or another instance is a different account.
    let other_aud = user(inst, "other-aud", "ann@example.com");
    s.users.insert_user(&other_aud, &Effects::default()).await.unwrap();
    let other_inst = user(Uuid::new_v4(), AUD, "Ann@Example.com");
    s.users.insert_user(&other_inst, &Effects::default()).await.unwrap();
    let nil_inst = user(Uuid::nil(), AUD, "ann@example.com");
    s.users.insert_user(&nil_inst, &Effects::default()).await.unwrap();

    assert_eq!(s.users.find_user_by_email(inst, AUD, "ann@example.com").await.unwrap().map(|u| u.id), Some(first.id));
    assert_eq!(s.users.find_user_by_email(inst, "other-aud", "ann@example.com").await.unwrap().map(|u| u.id), Some(other_aud.id));
    assert_eq!(
        s.users.find_user_by_email(other_inst.instance_id, AUD, "ann@example.com").await.unwrap().map(|u| u.id),
        Some(other_inst.id)
    );
    assert_eq!(s.users.find_user_by_email(Uuid::nil(), AUD, "ann@example.com").await.unwrap().map(|u| u.id), Some(nil_inst.id));
}

async fn concurrent_signups_one_wins(s: Store) {
    // No check-then-insert race: the unique key decides, inside the insert.
    for round in 0..3 {
        let email = format!("race{round}@example.com");
        let a = user(Uuid::nil(), AUD, &email);
        let b = user(Uuid::nil(), AUD, &email.to_uppercase());
        let ea = Effects {
            grant: Some(refresh_for(&a, 1)),
            audit: vec![audit(&a, AuditAction::UserSignedUp)],
            revoke_sessions: false,
            keep_session: None,
        };
        let eb = Effects {
            grant: Some(refresh_for(&b, 1)),
            audit: vec![audit(&b, AuditAction::UserSignedUp)],
            revoke_sessions: false,
            keep_session: None,
        };
        let (ra, rb) = tokio::join!(s.users.insert_user(&a, &ea), s.users.insert_user(&b, &eb));
        assert_eq!(usize::from(ra.is_ok()) + usize::from(rb.is_ok()), 1, "{}: exactly one wins: {ra:?} {rb:?}", s.kind());
        assert!(is_taken(&ra) || is_taken(&rb), "{}: the loser is EmailTaken: {ra:?} {rb:?}", s.kind());
        let winner = if ra.is_ok() { &a } else { &b };
        assert_eq!(s.users.find_user_by_email(Uuid::nil(), AUD, &email).await.unwrap().map(|u| u.id), Some(winner.id));
    }
    assert_eq!(s.audit_rows().await.len(), 3, "{}: only the winners' audit entries", s.kind());
}

async fn accented_addresses_are_distinct(s: Store) {
    // MySQL's utf8mb4_unicode_ci would call these equal; the key must not.
    let inst = Uuid::nil();
    let pairs = [("josé@x.y", "jose@x.y"), ("straße@x.y", "strasse@x.y"), ("ÅSA@x.y", "asa@x.y"), ("ﬁle@x.y", "file@x.y")];
    for (a, b) in pairs {
        let ua = user(inst, AUD, a);
        let ub = user(inst, AUD, b);
        s.users.insert_user(&ua, &Effects::default()).await.unwrap();
        let r = s.users.insert_user(&ub, &Effects::default()).await;
        assert!(r.is_ok(), "{}: {a} and {b} are different: {r:?}", s.kind());
        assert_eq!(s.users.find_user_by_email(inst, AUD, &normalise(a)).await.unwrap().map(|u| u.id), Some(ua.id), "{}: {a}", s.kind());
        assert_eq!(s.users.find_user_by_email(inst, AUD, &normalise(b)).await.unwrap().map(|u| u.id), Some(ub.id), "{}: {b}", s.kind());
    }
    // Unicode lower-casing still makes a case variant a duplicate.
    let upper = user(inst, AUD, "JOSÉ@X.Y");
    assert!(is_taken(&s.users.insert_user(&upper, &Effects::default()).await), "{}", s.kind());
    assert_eq!(s.users.find_user_by_email(inst, AUD, &normalise("JOSÉ@X.Y")).await.unwrap().map(|u| u.email), Some("josé@x.y".to_owned()));
}

// ---------------------------------------------------------------------------------------
// Users: tokens and guarded writes

async fn find_by_token_per_column(s: Store) {
    let inst = Uuid::new_v4();
    let mut u = user(inst, AUD, "tokens@example.com");
    u.confirmation_token = digest("confirm me");
    u.recovery_token = digest("recover me");
    u.email_change_token = digest("change me");
    u.email_change = "new@example.com".into();
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    // Users with no pending token (""): a blank lookup must not find them.
    let blank = user(inst, AUD, "blank@example.com");
    s.users.insert_user(&blank, &Effects::default()).await.unwrap();
    let blank_nil = user(Uuid::nil(), AUD, "blank@example.com");
    s.users.insert_user(&blank_nil, &Effects::default()).await.unwrap();

    let columns = [
        (TokenColumn::Confirmation, u.confirmation_token.clone()),
        (TokenColumn::Recovery, u.recovery_token.clone()),
        (TokenColumn::EmailChange, u.email_change_token.clone()),
    ];
    for (col, d) in &columns {
        let found = |i: Option<Uuid>, c: TokenColumn, d: String| {
            let users = s.users.clone();
            async move { users.find_user_by_token(i, c, &d).await.unwrap().map(|u| u.id) }
        };
        assert_eq!(found(None, *col, d.clone()).await, Some(u.id), "{col:?}");
        assert_eq!(found(Some(inst), *col, d.clone()).await, Some(u.id), "{col:?}");
        assert_eq!(found(Some(Uuid::new_v4()), *col, d.clone()).await, None);
        assert_eq!(found(Some(Uuid::nil()), *col, d.clone()).await, None);
        // A digest only matches its own column.
        for (other, _) in &columns {
            if other != col {
                assert_eq!(found(None, *other, d.clone()).await, None, "{col:?} in {other:?}");
            }
        }
        for b in ["", "   "] {
            assert_eq!(found(None, *col, b.to_owned()).await, None, "blank {b:?}");
            assert_eq!(found(Some(inst), *col, b.to_owned()).await, None);
            assert_eq!(found(Some(Uuid::nil()), *col, b.to_owned()).await, None);
        }
        assert_eq!(found(None, *col, digest("unknown")).await, None);
    }
}

async fn guarded_update_is_single_use(s: Store) {
    let mut u = user(Uuid::nil(), AUD, "recover@example.com");
    u.recovery_token = digest("recovery-secret");
    u.recovery_sent_at = Some(at(1));
    s.users.insert_user(&u, &Effects::default()).await.unwrap();

    let guard = Guard::Token(TokenColumn::Recovery, u.recovery_token.clone());
    let mut next = u.clone();
    next.recovery_token.clear();
    next.last_sign_in_at = Some(at(60));
    next.updated_at = at(60);
    let first_grant = refresh_for(&u, 60);
    s.users
        .update_user(
            &next,
            &guard,
            &Effects {
                grant: Some(first_grant.clone()),
                audit: vec![audit(&u, AuditAction::Login)],
                revoke_sessions: false,
                keep_session: None,
            },
        )
        .await
        .unwrap();
    assert_user(s.users.find_user_by_id(None, u.id).await.unwrap(), &next);
    assert!(s.tokens.find_refresh_token(&first_grant.token).await.unwrap().is_some());

    // The same token a second time: the guard no longer holds.
    let second_grant = refresh_for(&u, 61);
    let r = s
        .users
        .update_user(
            &next,
            &guard,
            &Effects {
                grant: Some(second_grant.clone()),
                audit: vec![audit(&u, AuditAction::Login)],
                revoke_sessions: false,
                keep_session: None,
            },
        )
        .await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    assert!(s.tokens.find_refresh_token(&second_grant.token).await.unwrap().is_none());
    assert_eq!(s.audit_rows().await.len(), 1);
    assert!(s.users.find_user_by_token(None, TokenColumn::Recovery, &u.recovery_token).await.unwrap().is_none());

    // A guard on the wrong digest or column fails; so does a missing row.
    let mut other = next.clone();
    other.role = "changed".into();
    for g in [
        Guard::Token(TokenColumn::Confirmation, digest("recovery-secret")),
        Guard::Token(TokenColumn::Recovery, digest("another")),
        Guard::Token(TokenColumn::EmailChange, digest("recovery-secret")),
    ] {
        let r = s.users.update_user(&other, &g, &Effects::default()).await;
        assert!(is_conflict(&r), "{}: {g:?} -> {r:?}", s.kind());
    }
    assert_user(s.users.find_user_by_id(None, u.id).await.unwrap(), &next);
    let ghost = user(Uuid::nil(), AUD, "ghost@example.com");
    let r = s.users.update_user(&ghost, &Guard::None, &Effects::default()).await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    assert!(s.users.find_user_by_id(None, ghost.id).await.unwrap().is_none());

    // An unguarded update of the same values still succeeds (rows matched, not changed).
    s.users.update_user(&next, &Guard::None, &Effects::default()).await.unwrap();
}

async fn concurrent_guarded_updates_one_wins(s: Store) {
    let mut u = user(Uuid::nil(), AUD, "race@example.com");
    u.confirmation_token = digest("confirm-race");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let guard = Guard::Token(TokenColumn::Confirmation, u.confirmation_token.clone());
    let mut confirmed = u.clone();
    confirmed.confirm(at(70));
    let (ga, gb) = (refresh_for(&u, 70), refresh_for(&u, 70));
    let ea = Effects { grant: Some(ga.clone()), ..Effects::default() };
    let eb = Effects { grant: Some(gb.clone()), ..Effects::default() };
    let (ra, rb) = tokio::join!(s.users.update_user(&confirmed, &guard, &ea), s.users.update_user(&confirmed, &guard, &eb),);
    assert_eq!(usize::from(ra.is_ok()) + usize::from(rb.is_ok()), 1, "{}: exactly one wins: {ra:?} {rb:?}", s.kind());
    assert!(is_conflict(&ra) || is_conflict(&rb));
    let a = s.tokens.find_refresh_token(&ga.token).await.unwrap();
    let b = s.tokens.find_refresh_token(&gb.token).await.unwrap();
    assert_eq!(a.is_some(), ra.is_ok());
    assert_eq!(b.is_some(), rb.is_ok());
}

async fn update_writes_its_effects_atomically(s: Store) {
    let inst = Uuid::new_v4();
    let u = user(inst, AUD, "effects@example.com");
    let signup_grant = refresh_for(&u, 1);
    let signup_audit = audit(&u, AuditAction::UserSignedUp);
    s.users
        .insert_user(
            &u,
            &Effects { grant: Some(signup_grant.clone()), audit: vec![signup_audit.clone()], revoke_sessions: false, keep_session: None },
        )
        .await
        .unwrap();
    let old = s.tokens.find_refresh_token(&signup_grant.token).await.unwrap().expect("insert_user writes its grant");
    assert!(!old.revoked);

    let mut next = u.clone();
    next.encrypted_password = "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA".into();
    next.updated_at = at(90);
    let grant = refresh_for(&u, 90);
    let entries = vec![audit(&u, AuditAction::UserModified), audit(&u, AuditAction::Login)];
    s.users
        .update_user(
            &next,
            &Guard::None,
            &Effects { grant: Some(grant.clone()), audit: entries.clone(), revoke_sessions: true, keep_session: None },
        )
        .await
        .unwrap();
    assert_user(s.users.find_user_by_id(Some(inst), u.id).await.unwrap(), &next);
    let new = s.tokens.find_refresh_token(&grant.token).await.unwrap().expect("update_user writes its grant");
    assert_eq!((new.instance_id, new.user_id, new.revoked, new.created_at.timestamp()), (inst, u.id, false, at(90).timestamp()));
    assert!(
        s.tokens.find_refresh_token(&signup_grant.token).await.unwrap().is_none(),
        "{}: revoke_sessions deletes the old session's token",
        s.kind()
    );

    let mut rows = s.audit_rows().await;
    rows.sort_by_key(|r| r.id);
    let mut want: Vec<_> =
        std::iter::once(&signup_audit).chain(&entries).map(|e| (e.id, e.instance_id, Value::Object(e.payload.clone()))).collect();
    want.sort_by_key(|w| w.0);
    let got: Vec<_> = rows.into_iter().map(|r| (r.id, r.instance_id, r.payload)).collect();
    assert_eq!(got, want, "{}", s.kind());
}

async fn update_to_a_taken_email_changes_nothing(s: Store) {
    let a = user(Uuid::nil(), AUD, "a@example.com");
    let b = user(Uuid::nil(), AUD, "b@example.com");
    s.users.insert_user(&a, &Effects::default()).await.unwrap();
    s.users.insert_user(&b, &Effects::default()).await.unwrap();
    let existing = refresh_for(&a, 1);
    s.tokens.grant_refresh_token(&existing, &[]).await.unwrap();

    let mut stolen = a.clone();
    stolen.email = " B@Example.COM".into();
    stolen.role = "changed".into();
    stolen.updated_at = at(99);
    let grant = refresh_for(&a, 99);
    let r = s
        .users
        .update_user(
            &stolen,
            &Guard::None,
            &Effects {
                grant: Some(grant.clone()),
                audit: vec![audit(&a, AuditAction::UserModified)],
                revoke_sessions: true,
                keep_session: None,
            },
        )
        .await;
    assert!(is_taken(&r), "{}: {r:?}", s.kind());
    assert_user(s.users.find_user_by_id(None, a.id).await.unwrap(), &a);
    assert_user(s.users.find_user_by_id(None, b.id).await.unwrap(), &b);
    assert!(s.tokens.find_refresh_token(&grant.token).await.unwrap().is_none());
    assert!(!s.tokens.find_refresh_token(&existing.token).await.unwrap().unwrap().revoked, "{}: revoke_sessions rolled back", s.kind());
    assert!(s.audit_rows().await.is_empty());
    assert_eq!(s.users.find_user_by_email(Uuid::nil(), AUD, "b@example.com").await.unwrap().map(|u| u.id), Some(b.id));
}

async fn update_can_change_the_email_key(s: Store) {
    let a = user(Uuid::nil(), AUD, "a@example.com");
    s.users.insert_user(&a, &Effects::default()).await.unwrap();
    // A case variant of one's own address is not a collision.
    let mut recased = a.clone();
    recased.email = "A@Example.com".into();
    s.users.update_user(&recased, &Guard::None, &Effects::default()).await.unwrap();
    assert_user(s.users.find_user_by_email(Uuid::nil(), AUD, "a@example.com").await.unwrap(), &recased);
    // A new address moves the key: the old one is free again.
    let mut moved = recased.clone();
    moved.email = "C@example.com".into();
    s.users.update_user(&moved, &Guard::None, &Effects::default()).await.unwrap();
    assert!(s.users.find_user_by_email(Uuid::nil(), AUD, "a@example.com").await.unwrap().is_none());
    assert_user(s.users.find_user_by_email(Uuid::nil(), AUD, "c@example.com").await.unwrap(), &moved);
    let again = user(Uuid::nil(), AUD, "a@example.com");
    s.users.insert_user(&again, &Effects::default()).await.unwrap();
}

async fn delete_removes_user_and_tokens(s: Store) {
    let u = user(Uuid::nil(), AUD, "gone@example.com");
    let keep = user(Uuid::nil(), AUD, "stays@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    s.users.insert_user(&keep, &Effects::default()).await.unwrap();
    let (t1, t2, t3) = (refresh_for(&u, 1), refresh_for(&u, 2), refresh_for(&keep, 3));
    for t in [&t1, &t2, &t3] {
        s.tokens.grant_refresh_token(t, &[]).await.unwrap();
    }

    // A failing guard deletes nothing.
    let r = s
        .users
        .delete_user(
            &u,
            &Guard::Token(TokenColumn::Confirmation, digest("nope")),
            &Effects::audit(vec![audit(&u, AuditAction::UserDeleted)]),
        )
        .await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_some());
    assert!(s.tokens.find_refresh_token(&t1.token).await.unwrap().is_some());
    assert!(s.audit_rows().await.is_empty());

    let entry = audit(&keep, AuditAction::UserDeleted);
    s.users.delete_user(&u, &Guard::None, &Effects::audit(vec![entry.clone()])).await.unwrap();
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_none());
    assert!(s.users.find_user_by_email(Uuid::nil(), AUD, "gone@example.com").await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&t1.token).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&t2.token).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&t3.token).await.unwrap().is_some());
    assert!(s.users.find_user_by_id(None, keep.id).await.unwrap().is_some());
    let rows = s.audit_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, entry.id);
    assert_eq!(rows[0].payload, Value::Object(entry.payload.clone()));

    // Deleting again: the row is gone.
    let r = s.users.delete_user(&u, &Guard::None, &Effects::default()).await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    // The address is free again.
    let again = user(Uuid::nil(), AUD, "Gone@Example.com");
    s.users.insert_user(&again, &Effects::default()).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Refresh tokens

async fn refresh_token_grant_find_rotate(s: Store) {
    let inst = Uuid::new_v4();
    let u = user(inst, AUD, "refresh@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let first = refresh_for(&u, 10);
    let login = audit(&u, AuditAction::Login);
    s.tokens.grant_refresh_token(&first, std::slice::from_ref(&login)).await.unwrap();
    assert!(s.tokens.find_refresh_token(&digest("never issued")).await.unwrap().is_none());
    let old = s.tokens.find_refresh_token(&first.token).await.unwrap().expect("granted token is found");
    assert_eq!(
        (old.instance_id, old.user_id, old.token.as_str(), old.revoked, old.created_at.timestamp()),
        (inst, u.id, first.token.as_str(), false, at(10).timestamp())
    );

    let second = refresh_for(&u, 20);
    let refreshed = audit(&u, AuditAction::TokenRefreshed);
    s.tokens.rotate_refresh_token(&old, &second, std::slice::from_ref(&refreshed)).await.unwrap();
    let old_now = s.tokens.find_refresh_token(&first.token).await.unwrap().unwrap();
    assert!(old_now.revoked, "{}: rotated token is revoked", s.kind());
    assert_eq!(old_now.id, old.id);
    let new = s.tokens.find_refresh_token(&second.token).await.unwrap().expect("new token is found");
    assert!(!new.revoked);
    assert_ne!(new.id, old.id);
    assert_eq!((new.user_id, new.instance_id), (u.id, inst));

    // Rotating the same old token again (a replay, or a request that read it before the
    // first rotation committed) is a conflict and writes nothing.
    let third = refresh_for(&u, 30);
    let r = s.tokens.rotate_refresh_token(&old, &third, &[audit(&u, AuditAction::TokenRefreshed)]).await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    assert!(s.tokens.find_refresh_token(&third.token).await.unwrap().is_none());
    let r = s.tokens.rotate_refresh_token(&old_now, &third, &[]).await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    let mut ids: Vec<Uuid> = s.audit_rows().await.into_iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let mut want = vec![login.id, refreshed.id];
    want.sort_unstable();
    assert_eq!(ids, want);

    // The new token rotates in turn.
    s.tokens.rotate_refresh_token(&new, &third, &[]).await.unwrap();
    assert!(s.tokens.find_refresh_token(&third.token).await.unwrap().is_some());
}

async fn concurrent_rotations_one_wins(s: Store) {
    let u = user(Uuid::nil(), AUD, "tabs@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let first = refresh_for(&u, 1);
    s.tokens.grant_refresh_token(&first, &[]).await.unwrap();
    let old = s.tokens.find_refresh_token(&first.token).await.unwrap().unwrap();
    for round in 0..3 {
        let (na, nb) = (refresh_for(&u, 2), refresh_for(&u, 2));
        let aa = [audit(&u, AuditAction::TokenRefreshed)];
        let ab = [audit(&u, AuditAction::TokenRefreshed)];
        let (ra, rb) = tokio::join!(s.tokens.rotate_refresh_token(&old, &na, &aa), s.tokens.rotate_refresh_token(&old, &nb, &ab),);
        let wins = usize::from(ra.is_ok()) + usize::from(rb.is_ok());
        if round == 0 {
            assert_eq!(wins, 1, "{}: exactly one wins: {ra:?} {rb:?}", s.kind());
            assert!(is_conflict(&ra) || is_conflict(&rb));
        } else {
            // Already rotated: both lose.
            assert_eq!(wins, 0, "{}: {ra:?} {rb:?}", s.kind());
            assert!(is_conflict(&ra) && is_conflict(&rb));
        }
        let a = s.tokens.find_refresh_token(&na.token).await.unwrap();
        let b = s.tokens.find_refresh_token(&nb.token).await.unwrap();
        assert_eq!(a.is_some(), ra.is_ok());
        assert_eq!(b.is_some(), rb.is_ok());
    }
    assert_eq!(s.audit_rows().await.len(), 1, "{}: only the winner's audit", s.kind());
}

async fn revoke_user_tokens_deletes_them(s: Store) {
    let inst = Uuid::new_v4();
    let u = user(inst, AUD, "logout@example.com");
    let other = user(inst, AUD, "other@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    s.users.insert_user(&other, &Effects::default()).await.unwrap();
    let mine = [refresh_for(&u, 1), refresh_for(&u, 2)];
    let theirs = refresh_for(&other, 3);
    // Same user id under another instance (a token row copied with its tenant).
    let elsewhere = NewRefreshToken { instance_id: Uuid::new_v4(), ..refresh_for(&u, 4) };
    for t in mine.iter().chain([&theirs, &elsewhere]) {
        s.tokens.grant_refresh_token(t, &[]).await.unwrap();
    }
    let logout = audit(&u, AuditAction::Logout);
    s.tokens.revoke_user_tokens(inst, u.id, std::slice::from_ref(&logout)).await.unwrap();
    for t in &mine {
        assert!(s.tokens.find_refresh_token(&t.token).await.unwrap().is_none());
    }
    assert!(s.tokens.find_refresh_token(&theirs.token).await.unwrap().is_some());
    assert!(s.tokens.find_refresh_token(&elsewhere.token).await.unwrap().is_some());
    let rows = s.audit_rows().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, logout.id);
    // Nothing left to revoke is not an error.
    s.tokens.revoke_user_tokens(inst, u.id, &[]).await.unwrap();
    assert_eq!(s.count(&s.tables().refresh_tokens.clone(), "user_id = ?", &[&u.id.to_string()]).await, 1);
}

async fn audit_payload_round_trips(s: Store) {
    let inst = Uuid::new_v4();
    let u = user(inst, AUD, "audit@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let entries = vec![rich_audit(inst), rich_audit(Uuid::nil()), audit(&u, AuditAction::Login)];
    s.tokens.grant_refresh_token(&refresh_for(&u, 1), &entries).await.unwrap();
    let rows = s.audit_rows().await;
    assert_eq!(rows.len(), entries.len());
    for e in &entries {
        let row = rows.iter().find(|r| r.id == e.id).unwrap_or_else(|| panic!("{}: audit row {} missing", s.kind(), e.id));
        assert_eq!(row.instance_id, e.instance_id);
        assert_eq!(row.payload, Value::Object(e.payload.clone()), "{}", s.kind());
    }
    // A user with non-BMP characters in the name (full_name becomes actor_name).
    let mut crab = user(inst, AUD, "crab@example.com");
    crab.user_metadata = Some(obj(json!({"full_name": "Ferris 🦀"})));
    let e = audit(&crab, AuditAction::UserSignedUp);
    s.users.insert_user(&crab, &Effects::audit(vec![e.clone()])).await.unwrap();
    let rows = s.audit_rows().await;
    let row = rows.iter().find(|r| r.id == e.id).unwrap();
    assert_eq!(row.payload["actor_name"], json!("Ferris 🦀"));
}

// ---------------------------------------------------------------------------------------
// Admin lists

fn page(page: u64, per_page: u64) -> Pagination {
    Pagination { page, per_page, capped: false }
}

fn users_query(aud: Option<&str>, filter: Option<&str>, order: SortDirection, p: Pagination) -> UserListQuery {
    UserListQuery { aud: aud.map(str::to_owned), filter: filter.map(str::to_owned), order, page: p }
}

async fn list_users_filters_orders_and_pages(s: Store) {
    let inst = Uuid::new_v4();
    let mut expected = Vec::new();
    for (i, (email, name, secs)) in [
        ("ann@example.com", "Ann Lee", 1),
        ("bob@example.com", "Zoë QUUX", 2),
        ("cy@example.org", "100% Cy", 2),
        ("dee_x@example.org", "Dee", 2),
        ("eve@example.net", "Eve", 3),
    ]
    .into_iter()
    .enumerate()
    {
        let mut u = user(inst, AUD, email);
        u.user_metadata = Some(obj(json!({"full_name": name, "n": i})));
        u.created_at = at(secs);
        s.users.insert_user(&u, &Effects::default()).await.unwrap();
        expected.push((u.created_at, u.id));
    }
    s.users.insert_user(&user(inst, "other-aud", "far@example.com"), &Effects::default()).await.unwrap();
    s.users.insert_user(&user(Uuid::new_v4(), AUD, "elsewhere@example.com"), &Effects::default()).await.unwrap();
    expected.sort_by_key(|(t, id)| (t.timestamp(), id.to_string()));
    let asc: Vec<Uuid> = expected.iter().map(|(_, id)| *id).collect();
    let desc: Vec<Uuid> = asc.iter().rev().copied().collect();
    let ids = |p: &gotrue::domain::page::Page<gotrue::domain::user::User>| p.items.iter().map(|u| u.id).collect::<Vec<_>>();

    // Pages in both orders: ties broken by id, no overlap, totals exact.
    for (order, want) in [(SortDirection::Desc, &desc), (SortDirection::Asc, &asc)] {
        let mut seen = Vec::new();
        for n in 1..=3 {
            let got = s.users.list_users(inst, &users_query(Some(AUD), None, order, page(n, 2))).await.unwrap();
            assert_eq!(got.total, 5, "{}", s.kind());
            seen.extend(ids(&got));
        }
        assert_eq!(&seen, want, "{}: {order:?}", s.kind());
    }
    let past = s.users.list_users(inst, &users_query(Some(AUD), None, SortDirection::Desc, page(9, 2))).await.unwrap();
    assert_eq!((past.items.len(), past.total), (0, 5));
    let all = s.users.list_users(inst, &users_query(None, None, SortDirection::Asc, page(1, 50))).await.unwrap();
    assert_eq!(all.total, 6, "{}: every audience of the instance, no other instance", s.kind());

    // Searches: email or full name, any case (Unicode too), `%` and `_` literal; in the
    // list's order.
    let listed = s.users.list_users(inst, &users_query(Some(AUD), None, SortDirection::Desc, page(1, 50))).await.unwrap();
    for (filter, emails) in [
        ("EXAMPLE.ORG", vec!["cy@example.org", "dee_x@example.org"]),
        ("zoë quux", vec!["bob@example.com"]),
        ("ZOË", vec!["bob@example.com"]),
        ("ann", vec!["ann@example.com"]),
        ("%", vec!["cy@example.org"]),
        ("_", vec!["dee_x@example.org"]),
        ("nobody", vec![]),
    ] {
        let got = s.users.list_users(inst, &users_query(Some(AUD), Some(filter), SortDirection::Desc, page(1, 50))).await.unwrap();
        let want: Vec<Uuid> = listed.items.iter().filter(|u| emails.contains(&u.email.as_str())).map(|u| u.id).collect();
        assert_eq!(ids(&got), want, "{}: {filter:?}", s.kind());
        assert_eq!(got.total, emails.len() as u64);
    }
    let got = s.users.list_users(inst, &users_query(Some(AUD), Some("example"), SortDirection::Asc, page(2, 2))).await.unwrap();
    assert_eq!((ids(&got), got.total), (asc[2..4].to_vec(), 5), "{}: a search pages like the list", s.kind());
}

async fn list_users_search_keeps_up_with_updates(s: Store) {
    let mut u = user(Uuid::nil(), AUD, "renamed@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let find = |f: &'static str| users_query(Some(AUD), Some(f), SortDirection::Desc, page(1, 10));
    assert_eq!(s.users.list_users(Uuid::nil(), &find("test user")).await.unwrap().total, 1);
    u.user_metadata = Some(obj(json!({"full_name": "Ada Lovelace"})));
    s.users.update_user(&u, &Guard::None, &Effects::default()).await.unwrap();
    assert_eq!(s.users.list_users(Uuid::nil(), &find("test user")).await.unwrap().total, 0, "{}", s.kind());
    assert_eq!(s.users.list_users(Uuid::nil(), &find("LOVELACE")).await.unwrap().total, 1, "{}", s.kind());
    // A row whose name key was never computed (another program wrote it) matches on its JSON.
    s.exec(&format!("UPDATE {} SET name_key = NULL", s.tables().users), &[]).await;
    assert_eq!(s.users.list_users(Uuid::nil(), &find("lovelace")).await.unwrap().total, 1, "{}", s.kind());
}

async fn list_audit_searches_newest_first(s: Store) {
    let inst = Uuid::new_v4();
    let u = user(inst, AUD, "actor@example.com");
    let mut entries = Vec::new();
    for (i, action) in [AuditAction::Login, AuditAction::UserModified, AuditAction::Logout, AuditAction::Login].into_iter().enumerate() {
        let mut e = audit(&u, action);
        e.created_at = at(i64::try_from(i).unwrap() * 10);
        entries.push(e);
    }
    let mut tie = audit(&u, AuditAction::Logout);
    tie.created_at = at(30);
    entries.push(tie);
    s.tokens.grant_refresh_token(&refresh_for(&u, 1), &entries).await.unwrap();
    s.tokens
        .grant_refresh_token(&refresh_for(&u, 1), &[audit(&user(Uuid::new_v4(), AUD, "x@example.com"), AuditAction::Login)])
        .await
        .unwrap();
    let mut want = entries.clone();
    want.sort_by_key(|e: &AuditEntry| (e.created_at.timestamp(), e.id.to_string()));
    want.reverse();
    let want: Vec<Uuid> = want.iter().map(|e| e.id).collect();
    let q = |search: Option<AuditSearch>, p| AuditListQuery { search, page: p };
    let mut seen = Vec::new();
    for n in 1..=3 {
        let got = s.audit.list_audit(inst, &q(None, page(n, 2))).await.unwrap();
        assert_eq!(got.total, 5, "{}: this instance only", s.kind());
        seen.extend(got.items.iter().map(|e| e.id));
    }
    assert_eq!(seen, want, "{}: newest first, ties by id", s.kind());
    let search = |scope, value: &str| Some(AuditSearch { scope, value: value.to_owned() });
    for (sq, n) in [
        (search(AuditScope::Action, "LOGIN"), 2),
        (search(AuditScope::Type, "account"), 4),
        (search(AuditScope::Author, "Test User"), 5),
        (search(AuditScope::Author, "ACTOR@"), 5),
        (search(AuditScope::Author, "%"), 0),
    ] {
        let got = s.audit.list_audit(inst, &q(sq.clone(), page(1, 50))).await.unwrap();
        assert_eq!((got.items.len() as u64, got.total), (n, n), "{}: {sq:?}", s.kind());
    }
    let got = s.audit.list_audit(inst, &q(None, page(1, 1))).await.unwrap();
    let newest = entries.iter().find(|e| e.id == want[0]).unwrap();
    assert_eq!((got.items[0].id, &got.items[0].payload, got.items[0].instance_id), (newest.id, &newest.payload, inst));
}

async fn retract_user_removes_the_user_and_its_audit(s: Store) {
    let mut u = user(Uuid::nil(), AUD, "invited@example.com");
    let token = NewToken::generate();
    u.confirmation_token.clone_from(&token.digest);
    let invited = audit(&u, AuditAction::UserInvited);
    let other = audit(&u, AuditAction::Login);
    s.users.insert_user(&u, &Effects::audit(vec![invited.clone(), other.clone()])).await.unwrap();
    let r = s.users.retract_user(&u, &Guard::Token(TokenColumn::Confirmation, digest("wrong")), &[invited.id]).await;
    assert!(is_conflict(&r), "{}: {r:?}", s.kind());
    assert_eq!(s.audit_rows().await.len(), 2, "{}: a failed guard retracts nothing", s.kind());
    s.users.retract_user(&u, &Guard::Token(TokenColumn::Confirmation, token.digest), &[invited.id]).await.unwrap();
    assert!(s.users.find_user_by_id(None, u.id).await.unwrap().is_none());
    let rows = s.audit_rows().await;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [other.id], "{}", s.kind());
}

#[test]
fn token_digests_are_what_the_store_keeps() {
    // The suite stores digests the way the app does; a sanity check of the fixture.
    let t = NewToken::generate();
    assert!(t.digest.starts_with("h1:"));
    assert_eq!(t.digest, digest(&t.secret));
}

/// `GOTRUE_DB_MAX_CONNECTIONS=1` is a valid setting: migrating (and then using) the store
/// must work with a single connection.
mod one_connection {
    use super::*;

    async fn works(s: Store) {
        let u = user(Uuid::nil(), AUD, "single@example.com");
        let grant = refresh_for(&u, 1);
        s.users
            .insert_user(
                &u,
                &Effects {
                    grant: Some(grant.clone()),
                    audit: vec![audit(&u, AuditAction::UserSignedUp)],
                    revoke_sessions: false,
                    keep_session: None,
                },
            )
            .await
            .unwrap();
        assert!(s.users.find_user_by_email(Uuid::nil(), AUD, "single@example.com").await.unwrap().is_some());
        let old = s.tokens.find_refresh_token(&grant.token).await.unwrap().unwrap();
        s.tokens.rotate_refresh_token(&old, &refresh_for(&u, 2), &[]).await.unwrap();
    }

    #[tokio::test]
    async fn sqlite() {
        works(Store::sqlite_with_pool(1).await).await;
    }

    #[tokio::test]
    async fn mysql() {
        let Some(s) = Store::mysql_with_pool(1).await else {
            eprintln!("note: {} is not set; skipping", scratch_mysql::MYSQL_URL_VAR);
            return;
        };
        works(s).await;
    }
}

/// A store call whose future is dropped part-way (the client went away, a request timed
/// out) must leave the store usable, and the call all-or-nothing.
mod cancellation {
    use std::time::Duration;

    use super::*;

    async fn cancelled_rotation_leaves_the_store_usable(s: Store) {
        let u = user(Uuid::nil(), AUD, "cancel@example.com");
        s.users.insert_user(&u, &Effects::default()).await.unwrap();
        let mut cancelled = 0;
        // Growing deadlines (four sweeps), so that rotations are dropped at each stage of their work.
        for i in 0..600u64 {
            let deadline = Duration::from_micros((i % 150) * 3);
            let first = refresh_for(&u, 1);
            s.tokens.grant_refresh_token(&first, &[]).await.unwrap();
            let old = s.tokens.find_refresh_token(&first.token).await.unwrap().unwrap();
            let new = refresh_for(&u, 2);
            let entry = [audit(&u, AuditAction::TokenRefreshed)];
            let r = tokio::time::timeout(deadline, s.tokens.rotate_refresh_token(&old, &new, &entry)).await;
            if r.is_err() {
                cancelled += 1;
            }
            // Whatever happened, the next write works...
            let next = refresh_for(&u, 3);
            let g = s.tokens.grant_refresh_token(&next, &[]).await;
            assert!(g.is_ok(), "{}: a write after a rotation cancelled after {deadline:?}: {g:?}", s.kind());
            // ...and is read back (a pooled connection left inside a transaction would read
            // from a stale snapshot)...
            assert!(s.tokens.find_refresh_token(&next.token).await.unwrap().is_some(), "{}: read after write", s.kind());
            // ...and the rotation happened entirely or not at all (a store may let a
            // cancelled write finish in the background: give it a moment to settle).
            let mut settled = false;
            for _ in 0..200 {
                let revoked = s.tokens.find_refresh_token(&first.token).await.unwrap().unwrap().revoked;
                let issued = s.tokens.find_refresh_token(&new.token).await.unwrap().is_some();
                let logged = s.audit_rows().await.iter().any(|r| r.id == entry[0].id);
                if revoked == issued && issued == logged {
                    settled = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(settled, "{}: rotation {i} (cancelled after {deadline:?}) is all or nothing", s.kind());
        }
        assert!(cancelled > 0, "{}: some rotations were cancelled", s.kind());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        cancelled_rotation_leaves_the_store_usable(Store::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        let Some(s) = Store::mysql().await else {
            eprintln!("note: {} is not set; skipping", scratch_mysql::MYSQL_URL_VAR);
            return;
        };
        cancelled_rotation_leaves_the_store_usable(s).await;
    }
}

async fn refresh_session_reads_token_and_user_at_once(s: Store) {
    let inst = Uuid::new_v4();
    let mut u = user(inst, AUD, "session@example.com");
    u.merge_user_metadata(serde_json::json!({"full_name": "Séance"}).as_object().cloned().unwrap());
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let t = refresh_for(&u, 1);
    s.tokens.grant_refresh_token(&t, &[]).await.unwrap();
    let (row, found) = s.tokens.find_refresh_session(&t.token).await.unwrap().unwrap();
    assert_eq!(row, s.tokens.find_refresh_token(&t.token).await.unwrap().unwrap());
    let found = found.expect("the user is joined");
    assert_eq!(found.id, u.id);
    assert_eq!(found.email, u.email);
    assert_eq!(found.full_name(), Some("Séance"));
    assert!(s.tokens.find_refresh_session("h1:unknown").await.unwrap().is_none());
    // A token whose user is gone (a row another program left) still reads, without a user.
    let orphan = NewRefreshToken { user_id: Uuid::new_v4(), ..refresh_for(&u, 2) };
    s.tokens.grant_refresh_token(&orphan, &[]).await.unwrap();
    let (row, found) = s.tokens.find_refresh_session(&orphan.token).await.unwrap().unwrap();
    assert_eq!(row.user_id, orphan.user_id);
    assert!(found.is_none());
}

async fn record_login_writes_only_what_a_login_changes(s: Store) {
    let inst = Uuid::new_v4();
    let mut u = user(inst, AUD, "login@example.com");
    u.recovery_token = "h1:pending-recovery".into();
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let mut changed = u.clone();
    changed.encrypted_password = "$argon2id$new".into();
    // A login ends a pending recovery.
    changed.recovery_token.clear();
    changed.last_sign_in_at = Some(u.created_at + chrono::Duration::seconds(5));
    changed.updated_at = u.created_at + chrono::Duration::seconds(5);
    // A field a login never changes is not written even when the value differs.
    changed.role = "not-written".into();
    let grant = refresh_for(&u, 1);
    let login = audit(&u, AuditAction::Login);
    let effects = Effects { audit: vec![login.clone()], grant: Some(grant.clone()), revoke_sessions: false, keep_session: None };
    s.users.record_login(&changed, &effects).await.unwrap();
    let stored = s.users.find_user_by_id(Some(inst), u.id).await.unwrap().unwrap();
    assert_eq!(stored.encrypted_password, "$argon2id$new");
    assert_eq!(stored.recovery_token, "");
    assert_eq!(stored.last_sign_in_at.map(|t| t.timestamp()), changed.last_sign_in_at.map(|t| t.timestamp()));
    assert_eq!(stored.role, u.role);
    assert!(s.tokens.find_refresh_token(&grant.token).await.unwrap().is_some());
    assert_eq!(s.audit_rows().await.len(), 1);
    u.id = Uuid::new_v4();
    assert!(matches!(s.users.record_login(&u, &Effects::default()).await, Err(StoreError::Conflict)));
}

// ---------------------------------------------------------------------------------------
// Sessions (issue 9)
// ---------------------------------------------------------------------------------------

async fn sessions_rotate_within_their_chain(s: Store) {
    let u = user(Uuid::nil(), AUD, "chain@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let login = refresh_for(&u, 10);
    s.tokens.grant_refresh_token(&login, &[]).await.unwrap();
    let first = s.tokens.find_refresh_token(&login.token).await.unwrap().unwrap();
    assert_eq!(first.session_id, Some(login.session_id));
    assert_eq!(first.session_started_at.map(|t| t.timestamp()), Some(at(10).timestamp()));
    assert_eq!(first.sealed, None);
    assert_eq!(s.tokens.current_session_token(login.session_id).await.unwrap().map(|t| t.id), Some(first.id));

    let second = next_in_session(&login, 20, "c1:sealed-two");
    s.tokens.rotate_refresh_token(&first, &second, &[]).await.unwrap();
    let old = s.tokens.find_refresh_token(&login.token).await.unwrap().unwrap();
    assert!(old.revoked);
    assert_eq!(old.updated_at.map(|t| t.timestamp()), Some(at(20).timestamp()), "{}: the rotation time is kept", s.kind());
    let current = s.tokens.current_session_token(login.session_id).await.unwrap().expect("a current token");
    assert_eq!(current.token, second.token);
    assert_eq!(current.sealed.as_deref(), Some("c1:sealed-two"));
    assert_eq!(current.session_started_at.map(|t| t.timestamp()), Some(at(10).timestamp()));

    // The rotated-out token loses its sealed secret: only the current one keeps it.
    let third = next_in_session(&login, 30, "c1:sealed-three");
    s.tokens.rotate_refresh_token(&current, &third, &[]).await.unwrap();
    let was_current = s.tokens.find_refresh_token(&second.token).await.unwrap().unwrap();
    assert!(was_current.revoked);
    assert_eq!(was_current.sealed, None, "{}: a rotated token keeps no sealed secret", s.kind());
    let now_current = s.tokens.current_session_token(login.session_id).await.unwrap().unwrap();
    assert_eq!(now_current.token, third.token);
    assert!(s.tokens.current_session_token(Uuid::new_v4()).await.unwrap().is_none());
}

async fn an_upstream_token_joins_the_session_of_its_rotation(s: Store) {
    let u = user(Uuid::nil(), AUD, "legacy@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let t = s.tables().clone();
    let token = digest("an upstream refresh token");
    s.exec(
        &format!(
            "INSERT INTO {} (instance_id, token, user_id, revoked, created_at, updated_at) VALUES (?, ?, ?, 0, ?, ?)",
            t.refresh_tokens
        ),
        &[Some(&Uuid::nil().to_string()), Some(&token), Some(&u.id.to_string()), Some("2018-01-01 00:00:00"), Some("2018-01-01 00:00:00")],
    )
    .await;
    let (legacy, _) = s.tokens.find_refresh_session(&token).await.unwrap().unwrap();
    assert_eq!((legacy.session_id, legacy.session_started_at, legacy.sealed.clone()), (None, None, None), "{}", s.kind());
    let new = next_in_session(&refresh_for(&u, 50), 50, "c1:x");
    s.tokens.rotate_refresh_token(&legacy, &new, &[]).await.unwrap();
    let rotated = s.tokens.find_refresh_token(&token).await.unwrap().unwrap();
    assert!(rotated.revoked);
    assert_eq!(rotated.session_id, Some(new.session_id), "{}: a replay of it is traced to the chain", s.kind());
    s.tokens.revoke_session(new.session_id, &[]).await.unwrap();
    assert!(s.tokens.find_refresh_token(&token).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&new.token).await.unwrap().is_none());
}

async fn revoke_session_deletes_only_its_tokens(s: Store) {
    let u = user(Uuid::nil(), AUD, "two-devices@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let (a, b) = (refresh_for(&u, 1), refresh_for(&u, 2));
    for t in [&a, &b] {
        s.tokens.grant_refresh_token(t, &[]).await.unwrap();
    }
    let a_row = s.tokens.find_refresh_token(&a.token).await.unwrap().unwrap();
    let a2 = next_in_session(&a, 3, "c1:a2");
    s.tokens.rotate_refresh_token(&a_row, &a2, &[]).await.unwrap();
    let entry = audit(&u, AuditAction::TokenRevoked);
    s.tokens.revoke_session(a.session_id, std::slice::from_ref(&entry)).await.unwrap();
    assert!(s.tokens.find_refresh_token(&a.token).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&a2.token).await.unwrap().is_none(), "{}: the current token goes too", s.kind());
    assert!(s.tokens.current_session_token(a.session_id).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&b.token).await.unwrap().is_some(), "{}: another session stays", s.kind());
    assert_eq!(s.audit_rows().await.into_iter().map(|r| r.id).collect::<Vec<_>>(), vec![entry.id]);
}

async fn revoke_sessions_keeps_the_named_session(s: Store) {
    let u = user(Uuid::nil(), AUD, "password-change@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let (mine, other) = (refresh_for(&u, 1), refresh_for(&u, 2));
    for t in [&mine, &other] {
        s.tokens.grant_refresh_token(t, &[]).await.unwrap();
    }
    let legacy = digest("an upstream token of the same user");
    s.exec(
        &format!("INSERT INTO {} (instance_id, token, user_id, revoked) VALUES (?, ?, ?, 0)", s.tables().refresh_tokens),
        &[Some(&Uuid::nil().to_string()), Some(&legacy), Some(&u.id.to_string())],
    )
    .await;
    let mut next = u.clone();
    next.updated_at = at(9);
    let effects = Effects { revoke_sessions: true, keep_session: Some(mine.session_id), ..Effects::default() };
    s.users.update_user(&next, &Guard::None, &effects).await.unwrap();
    assert!(s.tokens.find_refresh_token(&mine.token).await.unwrap().is_some(), "{}: the caller's session stays", s.kind());
    assert!(s.tokens.find_refresh_token(&other.token).await.unwrap().is_none());
    assert!(s.tokens.find_refresh_token(&legacy).await.unwrap().is_none(), "{}: a session-less token is another session", s.kind());
}

/// Issue 9: 20 parallel refreshes of one token leave exactly one live session chain.
async fn twenty_parallel_rotations_leave_one_live_token(s: Store) {
    let u = user(Uuid::nil(), AUD, "twenty-tabs@example.com");
    s.users.insert_user(&u, &Effects::default()).await.unwrap();
    let login = refresh_for(&u, 1);
    s.tokens.grant_refresh_token(&login, &[]).await.unwrap();
    let old = s.tokens.find_refresh_token(&login.token).await.unwrap().unwrap();
    let news: Vec<NewRefreshToken> = (0..20).map(|i| next_in_session(&login, 2, &format!("c1:{i}"))).collect();
    let tasks = news.iter().map(|n| {
        let (tokens, old, n) = (s.tokens.clone(), old.clone(), n.clone());
        tokio::spawn(async move { tokens.rotate_refresh_token(&old, &n, &[audit(&u_of(&n), AuditAction::TokenRefreshed)]).await })
    });
    let results: Vec<_> = futures_join_all(tasks).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{}: exactly one rotation wins", s.kind());
    assert!(results.iter().filter(|r| r.is_err()).all(is_conflict), "{}: the others are conflicts", s.kind());
    let mut live = Vec::new();
    for n in &news {
        if let Some(t) = s.tokens.find_refresh_token(&n.token).await.unwrap() {
            assert!(!t.revoked);
            live.push(t);
        }
    }
    assert_eq!(live.len(), 1, "{}: one live token in the session", s.kind());
    assert_eq!(s.tokens.current_session_token(login.session_id).await.unwrap().map(|t| t.id), Some(live[0].id));
    assert_eq!(s.audit_rows().await.len(), 1, "{}: only the winner's audit", s.kind());
}

fn u_of(n: &NewRefreshToken) -> gotrue::domain::user::User {
    let mut u = user(n.instance_id, AUD, "twenty-tabs@example.com");
    u.id = n.user_id;
    u
}

async fn futures_join_all<T: 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let handles: Vec<_> = tasks.collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Unavailability (the fault suite stops a real MariaDB; here the pool is exhausted or closed)

async fn an_unreachable_database_is_unavailable_quickly(s: Store) {
    let short = s.reopen_with(1, std::time::Duration::from_millis(300)).await;
    let inst = Uuid::new_v4();
    let before = user(inst, AUD, "before@example.com");
    short.users.insert_user(&before, &Effects::default()).await.unwrap();
    // No connection to be had within the acquire timeout: Unavailable, not a hang.
    let held = short.hold_write_connection().await;
    let started = std::time::Instant::now();
    let during = user(inst, AUD, "during@example.com");
    let r = short.users.insert_user(&during, &Effects::default()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{}: {r:?}", s.kind());
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{}: answered after {:?}", s.kind(), started.elapsed());
    drop(held);
    // The same pool serves again once a connection is free; nothing half-written.
    assert!(short.users.find_user_by_email(inst, AUD, &normalise("during@example.com")).await.unwrap().is_none());
    short.users.insert_user(&during, &Effects::default()).await.unwrap();
    assert!(short.users.find_user_by_email(inst, AUD, &normalise("before@example.com")).await.unwrap().is_some());
    // A closed pool is unavailable too.
    short.close().await;
    let r = short.users.find_user_by_email(inst, AUD, &normalise("before@example.com")).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{}: {r:?}", s.kind());
}
