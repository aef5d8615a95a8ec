//! Micro-benchmarks of the hot pure functions: password hash and verify (at the OWASP
//! minimum and at test cost), JWT sign and verify, token generation and digest, and the
//! Go-template renderer of mail subjects and bodies.
//! `cargo bench --bench hot`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods, missing_docs)]

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use gotrue::adapters::crypto::PooledHasher;
use gotrue::app::config::{HashScheme, PasswordConfig};
use gotrue::app::jwt;
use gotrue::domain::token::{digest, NewToken};
use gotrue::domain::user::User;
use gotrue::ports::hasher::PasswordHasher as _;
use secrecy::SecretString;

fn hasher(memory_kib: u32, iterations: u32) -> PooledHasher {
    PooledHasher::new(&PasswordConfig {
        scheme: HashScheme::Argon2id,
        argon2_memory_kib: memory_kib,
        argon2_iterations: iterations,
        argon2_parallelism: 1,
        bcrypt_cost: 10,
        hash_threads: 1,
        min_length: 1,
    })
    .unwrap()
}

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pw = || SecretString::from("correct horse battery staple".to_owned());
    let mut g = c.benchmark_group("password");
    g.sample_size(20);
    for (name, m, t) in [("owasp_m19456_t2", 19_456, 2), ("test_m64_t1", 64, 1)] {
        let h = hasher(m, t);
        let phc = rt.block_on(h.hash(pw())).unwrap();
        g.bench_function(format!("argon2id_hash_{name}"), |b| b.iter(|| rt.block_on(h.hash(pw())).unwrap()));
        g.bench_function(format!("argon2id_verify_{name}"), |b| b.iter(|| rt.block_on(h.verify(pw(), phc.clone())).unwrap()));
    }
    let h = hasher(64, 1);
    let bcrypt10 = bcrypt::hash("correct horse battery staple", 10).unwrap();
    g.bench_function("bcrypt_verify_cost10_upstream", |b| b.iter(|| rt.block_on(h.verify(pw(), bcrypt10.clone())).unwrap()));
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let mut user = User::new(uuid::Uuid::nil(), "api.netlify.com", "a@example.com", String::new(), None, Utc::now());
    user.merge_user_metadata(serde_json::json!({"full_name": "Ann Example"}).as_object().cloned().unwrap());
    let secret = b"a-secret-of-reasonable-length-for-hs256";
    let exp = Utc::now().timestamp() + 3600;
    let sid = Some(uuid::Uuid::new_v4());
    let token = jwt::sign(&user, exp, sid, secret).unwrap();
    let now = Utc::now().timestamp();
    c.bench_function("jwt_sign", |b| b.iter(|| jwt::sign(&user, exp, sid, secret).unwrap()));
    c.bench_function("jwt_verify", |b| b.iter(|| jwt::verify(&token, secret, now, None).unwrap()));
    c.bench_function("token_generate", |b| b.iter(NewToken::generate));
    c.bench_function("token_digest", |b| b.iter(|| digest("Zm9vYmFyYmF6cXV4cXV1eA")));
}

fn templates(c: &mut Criterion) {
    use gotrue::adapters::mail::template::Template;
    let body = "<h2>Confirm email address change</h2>\n\n<p>Follow this link to confirm the update of your email address from {{ .Email }} to {{ .NewEmail }}:</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Change email address</a></p>\n{{ if .Data.full_name }}<p>Hello {{ .Data.full_name }}</p>{{ else }}<p>Hello</p>{{ end }}";
    let data = serde_json::json!({
        "SiteURL": "https://example.netlify.com",
        "ConfirmationURL": "https://example.netlify.com/#email_change_token=Zm9vYmFyYmF6cXV4cXV1eA",
        "Email": "ann@example.com",
        "NewEmail": "ann+new@example.com",
        "Token": "Zm9vYmFyYmF6cXV4cXV1eA",
        "Data": {"full_name": "Ann <Example> & Co"}
    });
    c.bench_function("template_parse_email_change", |b| b.iter(|| Template::parse(body).unwrap()));
    let t = Template::parse(body).unwrap();
    c.bench_function("template_execute_email_change", |b| b.iter(|| t.execute(&data).unwrap()));
}

criterion_group!(benches, passwords, tokens, templates);
criterion_main!(benches);
