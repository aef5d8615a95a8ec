//! Measures one argon2id verify at the given parameters on one thread (the password-grant
//! ceiling is cores / this time) and prints a hash of "password" for seeding benchmarks.
//!
//! `cargo run --release --example hash_ceiling -- <memory_kib> <iterations> <parallelism> <rounds>`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

use std::time::Instant;

use gotrue::adapters::crypto::PooledHasher;
use gotrue::app::config::{HashScheme, PasswordConfig};
use gotrue::ports::hasher::PasswordHasher as _;
use secrecy::SecretString;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u32> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (m, t, p, rounds) = (
        args.first().copied().unwrap_or(19_456),
        args.get(1).copied().unwrap_or(2),
        args.get(2).copied().unwrap_or(1),
        args.get(3).copied().unwrap_or(20),
    );
    let cfg = PasswordConfig {
        scheme: HashScheme::Argon2id,
        argon2_memory_kib: m,
        argon2_iterations: t,
        argon2_parallelism: p,
        bcrypt_cost: 10,
        hash_threads: 1,
        min_length: 1,
    };
    let h = PooledHasher::new(&cfg).unwrap();
    let pw = || SecretString::from("password".to_owned());
    let hash = h.hash(pw()).await.unwrap();
    h.verify(pw(), hash.clone()).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        assert!(h.verify(pw(), hash.clone()).await.unwrap().matches);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("{{\"verify_ms\": {median:.3}, \"hash\": \"{hash}\"}}");
}
