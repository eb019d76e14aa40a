//! From a request's `Host` (or, behind a trusted proxy, `X-Forwarded-Host`)
//! to a tenant id. Pure: no sockets, no lookups.
//!
//! The tenant is the single label left of a configured base domain, after
//! normalizing (lowercase, port stripped, one trailing dot removed). A
//! malformed header is a client error (400); anything well-formed that does
//! not name a tenant (IP literals, other domains, deeper subdomains, invalid
//! or reserved labels) is answered exactly like an unknown tenant (404), so
//! responses reveal nothing about which tenants exist.

use std::net::IpAddr;

use agent::limits::HOST_BYTES_MAX;

use crate::limits::FORWARDED_FOR_HOPS_MAX;

/// How hosts map to tenants on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRules {
    /// `{tenant}.{base}` hosts resolve; e.g. `example.com`, and `localhost`
    /// in dev mode.
    pub base_domains: Vec<String>,
    /// Peers whose `X-Forwarded-Host` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

/// An address range, `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("trusted proxy `{text}`: expected an address or CIDR, e.g. 10.0.0.0/8 or ::1");
        let (addr, prefix_len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len.parse::<u8>().map_err(|_| usage())?)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| usage())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(max);
        if prefix_len > max {
            return Err(usage());
        }
        Ok(Self { addr, prefix_len })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let ((net, width), (candidate, candidate_width)) = (bits(self.addr), bits(ip));
        if width != candidate_width {
            return false;
        }
        let shift = width - u32::from(self.prefix_len);
        shift >= width || (net >> shift) == (candidate >> shift)
    }
}

/// Why a request names no tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// 400: no Host header.
    Missing,
    /// 400: the header is not a host name (non-ASCII, over-long, bad port, empty).
    Malformed(&'static str),
    /// 404, identical to an unknown tenant: a well-formed host that is not
    /// `{tenant}.{base domain}`.
    NotATenant,
}

/// The host the client asked for: `X-Forwarded-Host` (its first value) when
/// the peer is a trusted proxy, else `Host`.
pub fn requested_host<'a>(
    host: Option<&'a str>,
    forwarded_host: Option<&'a str>,
    peer: IpAddr,
    rules: &HostRules,
) -> Option<&'a str> {
    let trusted = rules.trusted_proxies.iter().any(|net| net.contains(peer));
    match forwarded_host {
        Some(forwarded) if trusted => forwarded.split(',').next().map(str::trim),
        _ => host,
    }
}

/// The client a request came from: the peer, or behind trusted proxies the
/// nearest `X-Forwarded-For` address that is not a trusted proxy. Each
/// proxy appends the address it saw, so the list is read from its right
/// end; entries left of the first untrusted hop are the client's own claims
/// and never believed. `forwarded_for` holds the header's values in order
/// of arrival. An entry that is not an address (or with a port, as some
/// proxies write) stops the walk at the last address believed.
pub fn client_ip(forwarded_for: &[&str], peer: IpAddr, rules: &HostRules) -> IpAddr {
    let trusted = |ip: IpAddr| rules.trusted_proxies.iter().any(|net| net.contains(ip));
    let hops = forwarded_for.iter().rev().flat_map(|value| value.rsplit(',')).take(FORWARDED_FOR_HOPS_MAX);
    let mut client = peer;
    for hop in hops {
        if !trusted(client) {
            break;
        }
        let hop = hop.trim();
        let parsed = hop.parse::<IpAddr>().or_else(|_| hop.parse::<std::net::SocketAddr>().map(|addr| addr.ip()));
        match parsed {
            Ok(ip) => client = ip,
            Err(_) => break,
        }
    }
    client
}

/// Checks that `host` is a syntactically valid Host header value.
fn check_syntax(host: &str) -> Result<(), HostError> {
    if host.is_empty() {
        return Err(HostError::Malformed("empty"));
    }
    if host.len() > HOST_BYTES_MAX + 6 {
        return Err(HostError::Malformed("longer than a host name and port can be"));
    }
    if !host.is_ascii() {
        return Err(HostError::Malformed("not ASCII (IDNs arrive punycoded)"));
    }
    if host.bytes().any(|byte| byte.is_ascii_control() || byte == b' ' || byte == b'/' || byte == b'@') {
        return Err(HostError::Malformed("contains characters a host cannot have"));
    }
    Ok(())
}

/// The tenant id a request names, written into `buffer`.
pub fn tenant_id<'a>(
    host: Option<&str>,
    forwarded_host: Option<&str>,
    peer: IpAddr,
    rules: &HostRules,
    buffer: &'a mut [u8; HOST_BYTES_MAX],
) -> Result<&'a str, HostError> {
    let host = requested_host(host, forwarded_host, peer, rules).ok_or(HostError::Missing)?;
    check_syntax(host)?;
    agent::host::tenant_label(host, &rules.base_domains, buffer).ok_or(HostError::NotATenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> HostRules {
        HostRules {
            base_domains: vec!["example.com".to_owned(), "localhost".to_owned()],
            trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr"), "::1".parse().expect("ip")],
        }
    }

    fn resolve(host: Option<&str>, forwarded: Option<&str>, peer: &str) -> Result<String, HostError> {
        let mut buffer = [0u8; HOST_BYTES_MAX];
        let peer: IpAddr = peer.parse().expect("peer");
        tenant_id(host, forwarded, peer, &rules(), &mut buffer).map(str::to_owned)
    }

    const CLIENT: &str = "203.0.113.9";

    /// Hostile or odd Host values and what each must resolve to.
    #[test]
    fn hostile_hosts_table() {
        use HostError::{Malformed, Missing, NotATenant};
        let ok = |id: &str| Ok(id.to_owned());
        let long_label = format!("{}.example.com", "a".repeat(64));
        let long_host = format!("{}.example.com", "a".repeat(300));
        let cases: Vec<(Option<&str>, Result<String, HostError>)> = vec![
            (Some("acme.example.com"), ok("acme")),
            (Some("ACME.EXAMPLE.COM"), ok("acme")),
            (Some("acme.example.com."), ok("acme")),
            (Some("acme.example.com:443"), ok("acme")),
            (Some("acme.localhost:8080"), ok("acme")),
            (Some("a-1.example.com"), ok("a-1")),
            (None, Err(Missing)),
            (Some(""), Err(Malformed("empty"))),
            (Some("acmé.example.com"), Err(Malformed("not ASCII (IDNs arrive punycoded)"))),
            (Some("аcme.example.com"), Err(Malformed("not ASCII (IDNs arrive punycoded)"))),
            (Some(&long_host), Err(Malformed("longer than a host name and port can be"))),
            (Some("acme.example.com\r\nX-Evil: 1"), Err(Malformed("contains characters a host cannot have"))),
            (Some("acme.example.com\0"), Err(Malformed("contains characters a host cannot have"))),
            (Some("acme example.com"), Err(Malformed("contains characters a host cannot have"))),
            (Some("acme.example.com/../admin"), Err(Malformed("contains characters a host cannot have"))),
            (Some("user@acme.example.com"), Err(Malformed("contains characters a host cannot have"))),
            (Some("example.com"), Err(NotATenant)),
            (Some("localhost"), Err(NotATenant)),
            (Some("localhost:8080"), Err(NotATenant)),
            (Some(".example.com"), Err(NotATenant)),
            (Some("a.b.example.com"), Err(NotATenant)),
            (Some("x.acme.example.com"), Err(NotATenant)),
            (Some("www.example.com"), Err(NotATenant)),
            (Some("api.example.com"), Err(NotATenant)),
            (Some("admin.example.com"), Err(NotATenant)),
            (Some("acme_1.example.com"), Err(NotATenant)),
            (Some("-acme.example.com"), Err(NotATenant)),
            (Some("acme-.example.com"), Err(NotATenant)),
            (Some(&long_label), Err(NotATenant)),
            (Some("acme.evil.com"), Err(NotATenant)),
            (Some("acme.example.com.evil.com"), Err(NotATenant)),
            (Some("acmeexample.com"), Err(NotATenant)),
            (Some("acme.example.co"), Err(NotATenant)),
            (Some("acme.example.com.."), Err(NotATenant)),
            (Some("127.0.0.1"), Err(NotATenant)),
            (Some("127.0.0.1:8080"), Err(NotATenant)),
            (Some("10.1.2.3"), Err(NotATenant)),
            (Some("[::1]"), Err(NotATenant)),
            (Some("[::1]:8080"), Err(NotATenant)),
            (Some("[2001:db8::1]:443"), Err(NotATenant)),
            (Some("0x7f.0.0.1"), Err(NotATenant)),
            (Some("acme.example.com:"), Err(NotATenant)),
            (Some("acme.example.com:abc"), Err(NotATenant)),
            (Some("acme.example.com:80:80"), Err(NotATenant)),
            (Some("*.example.com"), Err(NotATenant)),
            (Some("acme.*"), Err(NotATenant)),
        ];
        assert!(cases.len() >= 40, "{} cases", cases.len());
        for (host, expected) in cases {
            assert_eq!(resolve(host, None, CLIENT), expected, "Host: {host:?}");
        }
    }

    #[test]
    fn forwarded_host_counts_only_from_trusted_proxies() {
        let spoofed = Some("victim.example.com");
        assert_eq!(resolve(Some("acme.example.com"), spoofed, CLIENT), Ok("acme".to_owned()), "untrusted: ignored");
        assert_eq!(resolve(Some("lb.internal"), spoofed, "10.2.3.4"), Ok("victim".to_owned()), "trusted proxy");
        assert_eq!(resolve(Some("lb.internal"), spoofed, "::1"), Ok("victim".to_owned()));
        assert_eq!(resolve(Some("lb.internal"), spoofed, "::ffff:10.2.3.4"), Ok("victim".to_owned()), "mapped v4");
        let chained = Some("acme.example.com, lb.internal");
        assert_eq!(resolve(Some("lb.internal"), chained, "10.0.0.1"), Ok("acme".to_owned()), "the first value");
        assert_eq!(resolve(None, None, "10.0.0.1"), Err(HostError::Missing));
    }

    #[test]
    fn the_client_behind_trusted_proxies_is_the_nearest_untrusted_hop() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("ip");
        let client = |forwarded: &[&str], peer: &str| client_ip(forwarded, ip(peer), &rules());
        assert_eq!(client(&[], CLIENT), ip(CLIENT), "no header: the peer");
        assert_eq!(client(&["198.51.100.1"], CLIENT), ip(CLIENT), "an untrusted peer's header is ignored");
        assert_eq!(client(&["198.51.100.1"], "10.0.0.1"), ip("198.51.100.1"), "one trusted proxy");
        assert_eq!(client(&["1.2.3.4, 198.51.100.1, 10.9.9.9"], "10.0.0.1"), ip("198.51.100.1"), "two proxies");
        assert_eq!(client(&["1.2.3.4, 198.51.100.1", "10.9.9.9"], "10.0.0.1"), ip("198.51.100.1"), "two headers");
        assert_eq!(client(&["spoofed, 198.51.100.1"], "10.0.0.1"), ip("198.51.100.1"), "left of the client: ignored");
        assert_eq!(client(&["198.51.100.1, junk"], "10.0.0.1"), ip("10.0.0.1"), "junk stops at the last believed");
        assert_eq!(client(&["198.51.100.1:4711"], "::1"), ip("198.51.100.1"), "with a port");
        assert_eq!(client(&["[2001:db8::7]:443"], "::1"), ip("2001:db8::7"));
        let all_trusted = vec!["10.0.0.9"; 100].join(",");
        assert_eq!(client(&[&all_trusted], "10.0.0.1"), ip("10.0.0.9"), "a bounded walk");
    }

    #[test]
    fn trusted_proxy_ranges() {
        let net: IpNet = "192.168.0.0/16".parse().expect("cidr");
        assert!(net.contains("192.168.7.1".parse().expect("ip")));
        assert!(!net.contains("192.169.0.1".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        let any: IpNet = "0.0.0.0/0".parse().expect("cidr");
        assert!(any.contains("8.8.8.8".parse().expect("ip")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0.0/x", "::1/129"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad}");
        }
    }
}
