//! Measures one argon2id verify at the given parameters on one thread (the password-grant
//! ceiling is cores / this time) and, with `threads` > 1, the verifies per second that many
//! threads reach together (every core hashing, as under a login load: a shared host may run
//! cores slower when all are busy). Prints a hash of "password" for seeding benchmarks.
//!
//! `cargo run --release --example hash_ceiling -- <memory_kib> <iterations> <parallelism> <rounds> [threads]`
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
    let threads = args.get(4).copied().unwrap_or(1).max(1);
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
    // Every thread busy: `threads` verifies at a time on a pool of that size, `rounds` times.
    let pool = std::sync::Arc::new(PooledHasher::new(&PasswordConfig { hash_threads: threads as usize, ..cfg }).unwrap());
    let start = Instant::now();
    for _ in 0..rounds {
        let batch: Vec<_> = (0..threads)
            .map(|_| {
                let (pool, hash) = (std::sync::Arc::clone(&pool), hash.clone());
                tokio::spawn(async move { pool.verify(SecretString::from("password".to_owned()), hash).await.unwrap().matches })
            })
            .collect();
        for b in batch {
            assert!(b.await.unwrap());
        }
    }
    let all_per_s = f64::from(rounds * threads) / start.elapsed().as_secs_f64();
    println!("{{\"verify_ms\": {median:.3}, \"threads\": {threads}, \"all_threads_per_s\": {all_per_s:.2}, \"hash\": \"{hash}\"}}");
}
