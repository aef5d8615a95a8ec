//! The HaveIBeenPwned "Pwned Passwords" range API with k-anonymity: only the first five hex
//! characters of the password's SHA-1 leave the server; the answer lists every suffix of
//! that range with its count, padded with fake rows of count 0 (`Add-Padding: true`) so
//! that the answer's size does not tell the range either.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret as _, SecretString};
use sha1::{Digest as _, Sha1};

use crate::ports::breached::{BreachCheckError, BreachedPasswords};

/// Largest answer read; a real range is about 40 KiB with padding.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Asks the range API of `base_url` (`GOTRUE_PASSWORD_HIBP_URL`).
#[derive(Debug, Clone)]
pub struct HibpBreachedPasswords {
    client: reqwest::Client,
    base_url: String,
}

impl HibpBreachedPasswords {
    /// A client giving up after `timeout` for the whole request.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("gotrue-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("could not set up the breached-password client: {e}"))?;
        Ok(Self { client, base_url: base_url.trim_end_matches('/').to_owned() })
    }
}

/// The SHA-1 of `password` in upper-case hex, split into the 5-character prefix that is sent
/// and the 35-character suffix that is looked for in the answer.
#[must_use]
pub fn range_parts(password: &str) -> (String, String) {
    let hex = hex::encode_upper(Sha1::digest(password.as_bytes()));
    let (prefix, suffix) = hex.split_at(5);
    (prefix.to_owned(), suffix.to_owned())
}

/// The count of `suffix` in a range answer (`SUFFIX:COUNT` per line), compared
/// case-insensitively; padding rows (count 0) and lines that do not parse count as absent.
#[must_use]
pub fn count_in_range(answer: &str, suffix: &str) -> u64 {
    answer
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .filter(|(s, _)| s.trim().eq_ignore_ascii_case(suffix))
        .filter_map(|(_, n)| n.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

fn unavailable(e: impl Into<crate::ports::BoxError>) -> BreachCheckError {
    BreachCheckError::Unavailable(e.into())
}

/// A transport error without its URL: the URL holds the hash prefix, which a log line has no
/// use for.
fn transport(e: reqwest::Error) -> BreachCheckError {
    unavailable(e.without_url())
}

#[async_trait]
impl BreachedPasswords for HibpBreachedPasswords {
    async fn times_seen(&self, password: &SecretString) -> Result<u64, BreachCheckError> {
        let (prefix, suffix) = range_parts(password.expose_secret());
        let url = format!("{}/range/{prefix}", self.base_url);
        let mut r = self.client.get(url).header("Add-Padding", "true").send().await.map_err(transport)?;
        if !r.status().is_success() {
            return Err(unavailable(format!("range API answered {}", r.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(unavailable("range answer too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(unavailable)?;
        Ok(count_in_range(&text, &suffix))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::routing::get;

    use super::*;

    // SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
    const PREFIX: &str = "5BAA6";
    const SUFFIX: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

    /// A request the fake saw: the prefix and the `Add-Padding` header.
    type Request = (String, Option<String>);

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<Request>>>);

    async fn fake(body: &'static str, delay: Duration) -> (String, Seen) {
        let seen = Seen::default();
        let app = axum::Router::new()
            .route(
                "/range/{prefix}",
                get(move |State(seen): State<Seen>, Path(prefix): Path<String>, h: HeaderMap| async move {
                    let padding = h.get("add-padding").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    seen.0.lock().unwrap().push((prefix, padding));
                    tokio::time::sleep(delay).await;
                    body
                }),
            )
            .with_state(seen.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        (format!("http://{addr}/"), seen)
    }

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn only_the_prefix_is_sent_and_suffixes_compare_case_insensitively() {
        assert_eq!(range_parts("password"), (PREFIX.to_owned(), SUFFIX.to_owned()));
        let answer = format!("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{}:3861493\r\n", SUFFIX.to_ascii_lowercase());
        assert_eq!(count_in_range(&answer, SUFFIX), 3_861_493);
        assert_eq!(count_in_range("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n", SUFFIX), 0);
        assert_eq!(count_in_range(&format!("{SUFFIX}:0\r\n"), SUFFIX), 0, "padding rows are not hits");
        assert_eq!(count_in_range(&format!("{SUFFIX}:many\r\ngarbage\r\n"), SUFFIX), 0);
    }

    #[tokio::test]
    async fn hit_miss_and_padding_against_a_fake_range_server() {
        let body =
            "0018A45C4D1DEF81644B54AB7F969B88D65:0\r\n1E4C9B93F3F0682250B6CF8331B7EE68FD8:42\r\nFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0";
        let (url, seen) = fake(body, Duration::ZERO).await;
        let hibp = HibpBreachedPasswords::new(&url, Duration::from_secs(2)).unwrap();
        assert_eq!(hibp.times_seen(&pw("password")).await.unwrap(), 42);
        assert_eq!(hibp.times_seen(&pw("correct horse battery staple 7")).await.unwrap(), 0);
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen[0], (PREFIX.to_owned(), Some("true".to_owned())), "five hex characters and Add-Padding only");
        assert!(seen.iter().all(|(p, _)| p.len() == 5));
    }

    #[tokio::test]
    async fn padding_row_with_the_suffix_and_count_zero_is_not_a_hit() {
        let (url, _) = fake("1E4C9B93F3F0682250B6CF8331B7EE68FD8:0\r\n", Duration::ZERO).await;
        let hibp = HibpBreachedPasswords::new(&url, Duration::from_secs(2)).unwrap();
        assert_eq!(hibp.times_seen(&pw("password")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn outage_and_timeout_are_errors_for_the_caller_to_fail_open_on() {
        // Nothing listens on a port just released.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let hibp = HibpBreachedPasswords::new(&dead, Duration::from_secs(2)).unwrap();
        assert!(hibp.times_seen(&pw("password")).await.is_err());

        let (url, _) = fake("1E4C9B93F3F0682250B6CF8331B7EE68FD8:42\r\n", Duration::from_secs(5)).await;
        let hibp = HibpBreachedPasswords::new(&url, Duration::from_millis(200)).unwrap();
        let started = std::time::Instant::now();
        assert!(hibp.times_seen(&pw("password")).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2), "gave up after {:?}", started.elapsed());
    }
}
