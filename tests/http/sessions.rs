//! Refresh-token sessions (issue 9): the reuse window, revocation of a replayed session,
//! the revocation triggers of ASVS 7.4, absolute and idle lifetimes, and the concurrency
//! proofs (parallel refreshes, parallel signups), on SQLite and, when
//! `GOTRUE_TEST_MYSQL_URL` is set, MariaDB.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::{engines, jwt_part, Engine, Reply, Seed, TestApp, TestClock};

const INVALID: &str = "Invalid Refresh Token";

async fn refresh(app: &TestApp, rt: &str) -> Reply {
    app.send(app.post("/token").form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])).await
}

/// A refresh that must succeed: its new refresh token.
#[track_caller]
fn rt_of(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["refresh_token"].as_str().unwrap().to_owned()
}

fn session_of(r: &Reply) -> Value {
    jwt_part(r.json["access_token"].as_str().unwrap(), 1)["session_id"].clone()
}

/// A confirmed user `email` (password `password`) and a login of theirs.
async fn user_and_login(app: &TestApp, email: &str) -> (gotrue::domain::user::User, Reply) {
    let u = app.seed(Seed { email, ..Seed::default() }).await;
    let r = app.login(email, "password").await;
    assert_eq!(r.status, 200, "{}", r.text);
    (u, r)
}

async fn live_tokens(app: &TestApp, user_id: uuid::Uuid) -> i64 {
    app.count(&format!("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = '{user_id}' AND revoked = 0")).await
}

async fn all_tokens(app: &TestApp, user_id: uuid::Uuid) -> i64 {
    app.count(&format!("SELECT COUNT(*) FROM refresh_tokens WHERE user_id = '{user_id}'")).await
}

#[tokio::test]
async fn a_rotated_token_within_the_window_gets_the_sessions_current_token() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        let (u, login) = user_and_login(&app, "tabs@example.com").await;
        let sid = session_of(&login);
        assert!(sid.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()), "{engine:?}: a session_id claim: {sid}");
        let r0 = rt_of(&login);
        let first = refresh(&app, &r0).await;
        let r1 = rt_of(&first);
        assert_eq!(session_of(&first), sid, "the session goes on");
        // The second tab presents the same token a moment later: same answer as the first.
        let second = refresh(&app, &r0).await;
        assert_eq!(rt_of(&second), r1, "{engine:?}: the winner's refresh token");
        assert_eq!(session_of(&second), sid);
        let claims = jwt_part(second.json["access_token"].as_str().unwrap(), 1);
        assert_eq!(claims["sub"], json!(u.id.to_string()));
        // The chain goes on from the current token, and the old one now gets the newest.
        let r2 = rt_of(&refresh(&app, &r1).await);
        assert_ne!(r2, r1);
        assert_eq!(rt_of(&refresh(&app, &r0).await), r2);
        assert_eq!(live_tokens(&app, u.id).await, 1, "{engine:?}");
        // No token is stored in the clear: digests, and one sealed value.
        let clear = app.count(&format!("SELECT COUNT(*) FROM refresh_tokens WHERE token = '{r2}' OR sealed_token LIKE '%{r2}%'")).await;
        assert_eq!(clear, 0);
    }
}

#[tokio::test]
async fn a_replay_after_the_window_revokes_the_whole_session_and_is_audited() {
    for engine in engines() {
        let clock = Arc::new(TestClock::default());
        let app = TestApp::spawn_clocked(engine, &[], Arc::clone(&clock)).await;
        let (u, login) = user_and_login(&app, "stolen@example.com").await;
        let other = rt_of(&app.login("stolen@example.com", "password").await);
        let r0 = rt_of(&login);
        let r1 = rt_of(&refresh(&app, &r0).await);
        clock.advance(12);
        refresh(&app, &r0).await.assert_oauth("invalid_grant", Some(INVALID));
        // The current token dies with its session; the user's other session lives.
        refresh(&app, &r1).await.assert_oauth("invalid_grant", Some(INVALID));
        assert_eq!(live_tokens(&app, u.id).await, 1, "{engine:?}: only the other session's token");
        rt_of(&refresh(&app, &other).await);
        let audited = app
            .count("SELECT COUNT(*) FROM audit_log_entries WHERE payload LIKE '%token_revoked%' AND payload LIKE '%refresh_token_reused%'")
            .await;
        assert_eq!(audited, 1, "{engine:?}");
        // A later replay finds nothing more to revoke.
        refresh(&app, &r0).await.assert_oauth("invalid_grant", Some(INVALID));
    }
}

#[tokio::test]
async fn with_interval_zero_any_replay_revokes_the_session() {
    let app = TestApp::spawn_with(&[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await;
    let (u, login) = user_and_login(&app, "strict@example.com").await;
    let r0 = rt_of(&login);
    let r1 = rt_of(&refresh(&app, &r0).await);
    refresh(&app, &r0).await.assert_oauth("invalid_grant", Some(INVALID));
    refresh(&app, &r1).await.assert_oauth("invalid_grant", Some(INVALID));
    assert_eq!(all_tokens(&app, u.id).await, 0);
}

#[tokio::test]
async fn an_upstream_token_starts_a_session_at_its_first_refresh() {
    let app = TestApp::spawn().await;
    let u = app.seed(Seed { email: "legacy@example.com", ..Seed::default() }).await;
    // A row as upstream's migration leaves it: a digest, no session.
    let legacy = "an-upstream-refresh-tok";
    app.sql(&format!(
        "INSERT INTO refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at) VALUES ('{}', '{}', '{}', 0, '{}', '{}')",
        uuid::Uuid::nil(),
        gotrue::domain::token::digest(legacy),
        u.id,
        TestApp::ago(86_400),
        TestApp::ago(86_400)
    ))
    .await;
    let first = refresh(&app, legacy).await;
    let r1 = rt_of(&first);
    assert!(session_of(&first).is_string());
    assert_eq!(rt_of(&refresh(&app, legacy).await), r1, "the window works for it too");
    assert_eq!(session_of(&refresh(&app, &r1).await), session_of(&first));
}

#[tokio::test]
async fn sessions_end_at_the_timebox() {
    for engine in engines() {
        let clock = Arc::new(TestClock::default());
        let app = TestApp::spawn_clocked(engine, &[("GOTRUE_SESSIONS_TIMEBOX", "1h")], Arc::clone(&clock)).await;
        let (u, login) = user_and_login(&app, "timebox@example.com").await;
        clock.advance(50 * 60);
        let r1 = rt_of(&refresh(&app, login.json["refresh_token"].as_str().unwrap()).await);
        clock.advance(15 * 60);
        refresh(&app, &r1).await.assert_oauth("invalid_grant", Some(INVALID));
        assert_eq!(all_tokens(&app, u.id).await, 0, "{engine:?}: the session is revoked");
        // A new login starts a new session.
        rt_of(&refresh(&app, &rt_of(&app.login("timebox@example.com", "password").await)).await);
    }
}

#[tokio::test]
async fn sessions_end_after_inactivity() {
    let clock = Arc::new(TestClock::default());
    let app = TestApp::spawn_clocked(Engine::Sqlite, &[("GOTRUE_SESSIONS_INACTIVITY_TIMEOUT", "10m")], Arc::clone(&clock)).await;
    let (u, login) = user_and_login(&app, "idle@example.com").await;
    clock.advance(9 * 60);
    let r1 = rt_of(&refresh(&app, login.json["refresh_token"].as_str().unwrap()).await);
    clock.advance(9 * 60);
    let r2 = rt_of(&refresh(&app, &r1).await);
    clock.advance(11 * 60);
    refresh(&app, &r2).await.assert_oauth("invalid_grant", Some(INVALID));
    assert_eq!(all_tokens(&app, u.id).await, 0);
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_but_not_the_callers() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        let (u, mine) = user_and_login(&app, "changer@example.com").await;
        let theirs = rt_of(&app.login("changer@example.com", "password").await);
        let access = mine.json["access_token"].as_str().unwrap();
        // Changing only the metadata ends nothing.
        let r = app.send(app.put("/user").bearer_auth(access).json(&json!({"data": {"a": 1}}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(live_tokens(&app, u.id).await, 2);
        let r = app.send(app.put("/user").bearer_auth(access).json(&json!({"password": "a new password"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        refresh(&app, &theirs).await.assert_oauth("invalid_grant", Some(INVALID));
        rt_of(&refresh(&app, &rt_of(&mine)).await);
        assert_eq!(live_tokens(&app, u.id).await, 1, "{engine:?}");
    }
}

#[tokio::test]
async fn verifying_a_recovery_token_ends_every_existing_session() {
    let app = TestApp::spawn().await;
    let (_, before) = user_and_login(&app, "forgot@example.com").await;
    assert_eq!(app.post_json("/recover", json!({"email": "forgot@example.com"})).await.status, 200);
    let token = app.mailed_token("forgot@example.com", "recovery_token");
    let r = app.post_json("/verify", json!({"type": "recovery", "token": token})).await;
    let fresh = rt_of(&r);
    refresh(&app, &rt_of(&before)).await.assert_oauth("invalid_grant", Some(INVALID));
    rt_of(&refresh(&app, &fresh).await);
}

#[tokio::test]
async fn an_admin_change_of_password_or_email_ends_every_session() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        let admin = app.super_admin().await;
        let (u, login) = user_and_login(&app, "managed@example.com").await;
        let path = format!("/admin/users/{}", u.id);
        let r = app.send(app.put(&path).bearer_auth(&admin).json(&json!({"role": "editor"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rt = rt_of(&refresh(&app, &rt_of(&login)).await);
        let r = app.send(app.put(&path).bearer_auth(&admin).json(&json!({"password": "reset by admin"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        refresh(&app, &rt).await.assert_oauth("invalid_grant", Some(INVALID));
        let rt = rt_of(&app.login("managed@example.com", "reset by admin").await);
        let r = app.send(app.put(&path).bearer_auth(&admin).json(&json!({"email": "moved@example.com"}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        refresh(&app, &rt).await.assert_oauth("invalid_grant", Some(INVALID));
        assert_eq!(all_tokens(&app, u.id).await, 0, "{engine:?}");
    }
}

#[tokio::test]
async fn deleting_a_user_deletes_their_sessions() {
    for engine in engines() {
        let app = TestApp::spawn_on(engine, &[]).await;
        let admin = app.super_admin().await;
        let (u, _) = user_and_login(&app, "leaving@example.com").await;
        app.login("leaving@example.com", "password").await;
        assert_eq!(all_tokens(&app, u.id).await, 2);
        let r = app.send(app.delete(&format!("/admin/users/{}", u.id)).bearer_auth(&admin)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(all_tokens(&app, u.id).await, 0, "{engine:?}");
    }
}

/// Issue 9: 20 parallel refreshes of one token leave exactly one live session chain; with
/// the window every answer is 200 with the same refresh token.
#[tokio::test]
async fn twenty_parallel_refreshes_get_one_token_and_leave_one_chain() {
    for engine in engines() {
        let app = Arc::new(TestApp::spawn_on(engine, &[]).await);
        let (u, login) = user_and_login(&app, "twenty@example.com").await;
        let rt = rt_of(&login);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (app, rt) = (Arc::clone(&app), rt.clone());
                tokio::spawn(async move {
                    let r = refresh(&app, &rt).await;
                    (r.status, r.json["refresh_token"].as_str().map(str::to_owned), r.text)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.unwrap());
        }
        assert!(answers.iter().all(|(s, _, _)| *s == 200), "{engine:?}: {answers:?}");
        let first = answers[0].1.clone().unwrap();
        assert!(answers.iter().all(|(_, rt, _)| rt.as_deref() == Some(first.as_str())), "{engine:?}: one token for all");
        assert_eq!(live_tokens(&app, u.id).await, 1, "{engine:?}: one live chain");
        rt_of(&refresh(&app, &first).await);
    }
}

/// Issue 9, without a window: one refresh wins, the others are refused, nothing forks. (A
/// loser that reads the token after the winner's commit cannot be told from a replay and
/// revokes the session; one that lost the race in the database is only refused.)
#[tokio::test]
async fn twenty_parallel_refreshes_with_interval_zero_fork_nothing() {
    for engine in engines() {
        let app = Arc::new(TestApp::spawn_on(engine, &[("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")]).await);
        let (u, login) = user_and_login(&app, "twenty-strict@example.com").await;
        let rt = rt_of(&login);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (app, rt) = (Arc::clone(&app), rt.clone());
                tokio::spawn(async move { refresh(&app, &rt).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            let r = t.await.unwrap();
            if r.status == 200 {
                ok += 1;
            } else {
                r.assert_oauth("invalid_grant", Some(INVALID));
            }
        }
        assert_eq!(ok, 1, "{engine:?}: exactly one refresh wins");
        assert!(live_tokens(&app, u.id).await <= 1, "{engine:?}: no fork");
    }
}

/// Issue 9: 50 parallel signups of one address create exactly one user.
#[tokio::test]
async fn fifty_parallel_signups_of_one_address_create_one_user() {
    for engine in engines() {
        let app = Arc::new(TestApp::spawn_on(engine, &[]).await);
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let app = Arc::clone(&app);
                // Case and spacing variants are one address.
                let email = if i % 2 == 0 { "race@example.com" } else { "Race@Example.com" };
                tokio::spawn(async move { app.signup(email, "password").await })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            statuses.push((r.status, r.text));
        }
        assert!(statuses.iter().all(|(s, _)| *s < 500), "{engine:?}: {statuses:?}");
        assert!(statuses.iter().any(|(s, _)| *s == 200));
        let users = app.count("SELECT COUNT(*) FROM users WHERE email_key = 'race@example.com'").await;
        assert_eq!(users, 1, "{engine:?}: {statuses:?}");
    }
}

#[tokio::test]
async fn every_login_starts_a_new_session() {
    // ASVS 7.2.4: a new session and new tokens on every authentication.
    let app = TestApp::spawn().await;
    let (_, first) = user_and_login(&app, "again@example.com").await;
    let second = app.login("again@example.com", "password").await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_ne!(rt_of(&first), rt_of(&second));
    assert_ne!(first.json["access_token"], second.json["access_token"]);
    let (a, b) = (session_of(&first), session_of(&second));
    assert!(a.is_string() && b.is_string() && a != b, "{a} {b}");
}
