//! `gotrue multi` as the built binary (CONFIG.md 8): it refuses to start without an
//! operator token, and tries the database three times.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gotrue");

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("GOTRUE_") || k == "DATABASE_URL" || k == "PORT" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir.path()).env("GOTRUE_LOG_LEVEL", "warn").env("GOTRUE_API_PORT", "0");
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
