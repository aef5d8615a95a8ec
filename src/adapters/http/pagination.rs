//! Query strings read and written the way Go's `net/url` does, and the pagination headers
//! built from them (API.md 3.13): `Link` (next, prev, last) and `X-Total-Count`.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderValue};

use crate::domain::page::Pagination;

/// A parsed query string: `(key, value)` pairs in order, decoded as Go's `url.ParseQuery`
/// does (`+` is a space; pairs with a bad escape or a `;` are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GoQuery(Vec<(String, String)>);

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    // Go keeps invalid UTF-8; a Rust string cannot, so such bytes become U+FFFD.
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `url.QueryEscape`: everything but `A-Z a-z 0-9 - _ . ~` is percent-encoded, and a
/// space becomes `+`.
#[must_use]
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(c)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{c:02X}")),
        }
    }
    out
}

impl GoQuery {
    /// Parses a raw query (without the `?`).
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (unescape(k), unescape(v)) {
                pairs.push((k, v));
            }
        }
        Self(pairs)
    }

    /// The first value of `key` (Go's `Values.Get`), `None` when absent.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    #[must_use]
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    /// Go's `Values.Encode` after `Values.Set` of each override: keys sorted, each key's
    /// values in their original order.
    fn encode_with(&self, overrides: &[(&str, String)]) -> String {
        let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &self.0 {
            map.entry(k.as_str()).or_default().push(v.as_str());
        }
        for (k, v) in overrides {
            map.insert(k, vec![v.as_str()]);
        }
        let mut out = String::new();
        for (k, values) in map {
            for v in values {
                if !out.is_empty() {
                    out.push('&');
                }
                out.push_str(&query_escape(k));
                out.push('=');
                out.push_str(&query_escape(v));
            }
        }
        out
    }
}

/// The `Link` header value for a page of `total` rows served at `path?query`.
#[must_use]
pub fn link_header(path: &str, query: &GoQuery, p: &Pagination, total: u64) -> String {
    let total_pages = p.total_pages(total);
    let url = |page: u64| {
        let mut overrides = vec![("page", page.to_string())];
        if p.capped {
            overrides.push(("per_page", p.per_page.to_string()));
        }
        format!("{path}?{}", query.encode_with(&overrides))
    };
    let mut header = String::new();
    if total_pages > p.page {
        header.push_str(&format!("<{}>; rel=\"next\", ", url(p.page.saturating_add(1))));
    }
    if p.page > 1 {
        header.push_str(&format!("<{}>; rel=\"prev\", ", url(p.page - 1)));
    }
    header.push_str(&format!("<{}>; rel=\"last\"", url(total_pages)));
    header
}

/// Adds `Link` and `X-Total-Count`.
pub fn add_headers(headers: &mut HeaderMap, path: &str, query: &GoQuery, p: &Pagination, total: u64) {
    if let Ok(v) = HeaderValue::from_str(&link_header(path, query, p, total)) {
        headers.insert("link", v);
    }
    headers.insert("x-total-count", HeaderValue::from(total));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(path_query: &str, per_page: Option<&str>, page: Option<&str>, total: u64) -> String {
        let (path, raw) = path_query.split_once('?').unwrap_or((path_query, ""));
        let q = GoQuery::parse(raw);
        let p = Pagination::parse(page, per_page).unwrap();
        link_header(path, &q, &p, total)
    }

    #[test]
    fn upstreams_tested_examples() {
        assert_eq!(link("/admin/users", None, None, 1), r#"</admin/users?page=1>; rel="last""#);
        assert_eq!(
            link("/admin/users?per_page=1", Some("1"), None, 3),
            r#"</admin/users?page=2&per_page=1>; rel="next", </admin/users?page=3&per_page=1>; rel="last""#
        );
    }

    #[test]
    fn middle_last_and_empty_pages() {
        assert_eq!(
            link("/admin/users?per_page=1&page=2", Some("1"), Some("2"), 3),
            r#"</admin/users?page=3&per_page=1>; rel="next", </admin/users?page=1&per_page=1>; rel="prev", </admin/users?page=3&per_page=1>; rel="last""#
        );
        assert_eq!(
            link("/admin/users?page=3&per_page=1", Some("1"), Some("3"), 3),
            r#"</admin/users?page=2&per_page=1>; rel="prev", </admin/users?page=3&per_page=1>; rel="last""#
        );
        assert_eq!(link("/admin/audit", None, None, 0), r#"</admin/audit?page=0>; rel="last""#);
    }

    #[test]
    fn query_is_re_encoded_sorted_like_go() {
        let q = GoQuery::parse("sort=created_at+asc&filter=a%20b~*&z=1&a=2&a=1&bad=%zz&x;y=1");
        assert_eq!(q.get("sort"), Some("created_at asc"));
        assert_eq!(q.get("filter"), Some("a b~*"));
        assert_eq!(q.all("a"), ["2", "1"]);
        assert_eq!(q.get("bad"), None);
        let p = Pagination::parse(None, Some("5000")).unwrap();
        assert_eq!(
            link_header("/admin/users", &q, &p, 0),
            r#"</admin/users?a=2&a=1&filter=a+b~%2A&page=0&per_page=1000&sort=created_at+asc&z=1>; rel="last""#
        );
    }
}
