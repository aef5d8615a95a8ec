//! `gotrue multi` as the built binary (CONFIG.md 8): it refuses to start without an
//! operator token, and tries the database three times.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), args, env)
}

fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("GOTRUE_") || k == "DATABASE_URL" || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir).env("GOTRUE_LOG_LEVEL", "warn").env("GOTRUE_API_PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn multi_refuses_to_start_without_an_operator_token() {
    for env in [&[][..], &[("GOTRUE_OPERATOR_TOKEN", "")][..]] {
        let out = run(&["multi"], env);
        assert!(!out.status.success());
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Operator token secret is required"), "{err}");
    }
}

#[test]
fn multi_tries_the_database_three_times() {
    // A database file in a directory that does not exist: every attempt fails at once.
    let out = run(
        &["multi"],
        &[("GOTRUE_OPERATOR_TOKEN", "op"), ("GOTRUE_DB_DRIVER", "sqlite"), ("DATABASE_URL", "/nonexistent-gotrue-dir/sub/multi.db")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("could not connect to the database").count(), 3, "{err}");
}

#[tokio::test]
async fn admin_commands_use_the_instance_configuration_in_multi_instance_mode() {
    use gotrue::ports::instances::{InstanceRow, InstanceStore as _};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("multi.db").to_str().unwrap().to_owned();
    let env = [
        ("GOTRUE_DB_DRIVER", "sqlite"),
        ("DATABASE_URL", db.as_str()),
        ("GOTRUE_MULTIINSTANCEMODE", "true"),
        ("GOTRUE_PASSWORD_MIN_LENGTH", "1"),
        ("GOTRUE_PASSWORD_ARGON2_MEMORY_KIB", "64"),
        ("GOTRUE_PASSWORD_ARGON2_ITERATIONS", "1"),
    ];
    let out = run(&["migrate"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let store = gotrue::adapters::db::SqliteStore::connect(&secrecy::SecretString::from(db.clone()), "", 1).await.unwrap();
    let id = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let config = r#"{"jwt":{"secret":"s","aud":"inst-aud","default_group_name":"member"},"mailer":{"autoconfirm":true}}"#;
    store
        .insert_instance(&InstanceRow {
            id,
            uuid: uuid::Uuid::nil(),
            raw_base_config: Some(config.into()),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let out = run(&["admin", "createuser", "-i", &id.to_string(), "ann@example.com", "pw"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use gotrue::ports::users::UserStore as _;
    let user = store.find_user_by_email(id, "inst-aud", "ann@example.com").await.unwrap().expect("created in the instance's audience");
    assert_eq!(user.role, "member");
    assert!(user.is_confirmed(), "the instance autoconfirms");
    // Without -i (the nil instance), or with an unknown one: refused.
    let out = run(&["admin", "createuser", "bob@example.com", "pw"], &env);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["admin", "deleteuser", "-i", &id.to_string(), "ann@example.com"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(store.find_user_by_email(id, "inst-aud", "ann@example.com").await.unwrap().is_none());
}
