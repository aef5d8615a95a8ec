//! The outgoing-address guard (WEAKNESSES.md 27): which IP addresses a webhook may reach,
//! and a DNS resolver that hands the HTTP client only those.
//!
//! Upstream refused a short list of private ranges; this list also covers "this network"
//! (`0.0.0.0/8`, which reaches the local host on Linux), `::`, CGNAT, benchmarking,
//! documentation, reserved and multicast ranges, and IPv6 forms that embed an IPv4 address
//! (mapped, compatible, NAT64, 6to4). The check runs on the resolved address of every
//! connection, redirects included: host names go through [`GuardedResolver`]; literal
//! addresses, which an HTTP client connects to without resolving, are checked by the sender
//! before each request and by its redirect policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// IPv4 ranges never reached (the RFC 6890 special-purpose registry, and multicast).
const V4_FORBIDDEN: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network" (0.0.0.0 reaches the local host)
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 carrier-grade NAT
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link-local (cloud metadata services)
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 documentation
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 documentation
    (0xCB00_7100, 24), // 203.0.113.0/24 documentation
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, and 255.255.255.255 broadcast
];

/// IPv6 ranges never reached. Forms embedding an IPv4 address are handled separately.
const V6_FORBIDDEN: [(u128, u8); 11] = [
    (0, 96),                      // ::/96: unspecified, loopback, IPv4-compatible
    (0x0064_ff9b_0001 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100 << 112, 64),          // 100::/64 discard-only
    (0x2001 << 112, 23),          // 2001::/23 IETF protocol assignments (Teredo, ...)
    (0x2001_0db8 << 96, 32),      // 2001:db8::/32 documentation
    (0x3fff << 112, 20),          // 3fff::/20 documentation
    (0x5f00 << 112, 16),          // 5f00::/16 segment routing
    (0xfc00 << 112, 7),           // fc00::/7 unique local
    (0xfe80 << 112, 10),          // fe80::/10 link-local
    (0xfec0 << 112, 10),          // fec0::/10 site-local (deprecated)
    (0xff00 << 112, 8),           // ff00::/8 multicast
];

fn in_v4(ip: u32, (net, len): (u32, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    ip & mask == net & mask
}

fn in_v6(ip: u128, (net, len): (u128, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
    ip & mask == net & mask
}

/// Whether a webhook may connect to `ip` when private targets are not allowed.
#[must_use]
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4),
        IpAddr::V6(v6) => v6_forbidden(v6),
    }
}

fn v4_forbidden(ip: Ipv4Addr) -> bool {
    let n = u32::from(ip);
    V4_FORBIDDEN.iter().any(|r| in_v4(n, *r))
}

fn v6_forbidden(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_forbidden(v4);
    }
    let n = u128::from(ip);
    V6_FORBIDDEN.iter().any(|r| in_v6(n, *r))
}

/// The IPv4 address an IPv6 address stands for, where traffic to it would reach that IPv4
/// host: IPv4-mapped (`::ffff:a.b.c.d`), the NAT64 well-known prefix (`64:ff9b::/96`) and
/// 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let n = u128::from(ip);
    if in_v6(n, (0x0064_ff9b << 96, 96)) {
        return Some(Ipv4Addr::from(u32::try_from(n & 0xFFFF_FFFF).unwrap_or(0)));
    }
    if in_v6(n, (0x2002 << 112, 16)) {
        return Some(Ipv4Addr::from(u32::try_from((n >> 80) & 0xFFFF_FFFF).unwrap_or(0)));
    }
    None
}

/// The resolver refused every address of a name, or a literal address is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("refusing to connect to {target}: private, loopback or reserved address (set GOTRUE_WEBHOOK_ALLOW_PRIVATE=true to allow)")]
pub struct ForbiddenAddress {
    /// The name or address.
    pub target: String,
}

/// Resolves with the system resolver and drops forbidden addresses; fails when none is left.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved.iter().copied().filter(|a| !is_forbidden(a.ip())).collect();
            if allowed.is_empty() && !resolved.is_empty() {
                tracing::warn!(host = %host, "webhook host resolves only to forbidden addresses");
                return Err(Box::new(ForbiddenAddress { target: host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(s: &str) -> bool {
        is_forbidden(s.parse().unwrap())
    }

    #[test]
    fn private_loopback_and_link_local_v4_are_refused() {
        for a in [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
        ] {
            assert!(forbidden(a), "{a}");
        }
    }

    #[test]
    fn ranges_upstream_missed_are_refused() {
        for a in [
            "0.0.0.0",
            "0.1.2.3",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
        ] {
            assert!(forbidden(a), "{a}");
        }
    }

    #[test]
    fn edges_of_ranges_are_exact() {
        for a in [
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "1.0.0.0",
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
        ] {
            assert!(!forbidden(a), "{a}");
        }
    }

    #[test]
    fn ipv6_special_ranges_are_refused() {
        for a in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "2001::1",
            "fec0::1",
            "64:ff9b:1::1",
            "3fff::1",
        ] {
            assert!(forbidden(a), "{a}");
        }
        for a in ["2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "fe7f:ffff::1", "fe00::1"] {
            assert!(!forbidden(a), "{a}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_follow_the_ipv4_rule() {
        for a in [
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(forbidden(a), "{a}");
        }
        for a in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"] {
            assert!(!forbidden(a), "{a}");
        }
    }

    #[tokio::test]
    async fn resolver_refuses_names_of_local_addresses() {
        let r = GuardedResolver.resolve("localhost".parse().unwrap()).await;
        let err = r.err().expect("localhost must be refused");
        assert!(err.downcast_ref::<ForbiddenAddress>().is_some(), "{err}");
    }
}
