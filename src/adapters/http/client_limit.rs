//! Per-client limits on `/token`, `/signup`, `/recover`, `/verify`, `/invite`, `PUT /user`
//! and the admin API (`GOTRUE_RATE_LIMIT_<ENDPOINT>` requests per 5 minutes), on top of upstream's `/token`
//! header bucket. The client is the TCP peer, or the address a trusted proxy
//! (`GOTRUE_TRUSTED_PROXIES`) forwarded in `X-Forwarded-For` / `X-Real-IP`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::error::ApiError;
use super::HttpState;
use crate::app::config::RATE_LIMIT_WINDOW;

/// A limited endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// `POST /token`.
    Token,
    /// `POST /signup`.
    Signup,
    /// `POST /recover`.
    Recover,
    /// `POST /verify`.
    Verify,
    /// `POST /invite`.
    Invite,
    /// `PUT /user`.
    User,
    /// `/admin/*`: every method, one budget.
    Admin,
}

impl Limited {
    const fn name(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Signup => "signup",
            Self::Recover => "recover",
            Self::Verify => "verify",
            Self::Invite => "invite",
            Self::User => "user",
            Self::Admin => "admin",
        }
    }

    fn limit(self, state: &HttpState) -> u32 {
        let l = &state.rate_limit;
        match self {
            Self::Token => l.token,
            Self::Signup => l.signup,
            Self::Recover => l.recover,
            Self::Verify => l.verify,
            Self::Invite => l.invite,
            Self::User => l.user,
            Self::Admin => l.admin,
        }
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy (else
/// `X-Real-IP`). IPv4-mapped IPv6 addresses count as IPv4.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    if let Some(ip) = forwarded.iter().rev().find(|ip| !is_trusted(ip)).or(forwarded.first()) {
        return *ip;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .map_or(peer, |ip| ip.to_canonical())
}

/// The counter key of a client: the IPv4 address, or the /64 of an IPv6 address (one
/// subscriber usually holds a whole /64).
#[must_use]
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Counts the request against its endpoint's budget; 429 with `Retry-After` beyond it.
pub async fn limit(State((state, which)): State<(Arc<HttpState>, Limited)>, req: Request, next: Next) -> Response {
    let max = which.limit(&state);
    if max == 0 {
        return next.run(req).await;
    }
    // Servers started without connect info (embedding tests) count every client as one.
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| client_key(client_ip(c.0.ip(), req.headers(), &state.rate_limit.trusted_proxies)));
    let instance_id = req.extensions().get::<crate::app::instances::RequestInstance>().map_or(state.instance_id, |r| r.resolved.id);
    let key = format!("client:{}:{}:{client}", which.name(), instance_id);
    let d = state.limiter.hit(&key, max, RATE_LIMIT_WINDOW).await;
    if d.allowed {
        return next.run(req).await;
    }
    tracing::warn!(endpoint = which.name(), client = %client, "per-client rate limit exceeded");
    too_many(d.retry_after_secs)
}

/// 429 `Rate limit exceeded` (shape A) with `Retry-After` in seconds.
#[must_use]
pub fn too_many(retry_after_secs: u64) -> Response {
    let mut r = ApiError::http(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded").into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn forwarded_headers_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = vec!["10.0.0.0/8".parse::<IpNet>().unwrap()];
        let xff = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.9")]);
        assert_eq!(client_ip(proxy, &xff, &trusted), "1.2.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &xff, &[]), proxy);
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(client_ip(stranger, &xff, &trusted), stranger);
        let real = h(&[("x-real-ip", "5.5.5.5")]);
        assert_eq!(client_ip(proxy, &real, &trusted), "5.5.5.5".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        let junk = h(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(client_ip(proxy, &junk, &trusted), proxy);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(client_key(client_ip(mapped, &HeaderMap::new(), &[])), "1.2.3.4");
    }
}
