//! From a `Host` header to a tenant id, without allocating: normalize
//! (lowercase, no port, one trailing dot removed), then the tenant is the
//! single label left of a configured base domain.

use crate::limits::HOST_BYTES_MAX;

/// The tenant label of `host` under one of `base_domains`, normalized into
/// `buffer`. `None` for anything else: IP literals, deeper subdomains,
/// invalid or reserved labels, non-ASCII, over-long or empty hosts.
pub fn tenant_label<'a>(host: &str, base_domains: &[String], buffer: &'a mut [u8; HOST_BYTES_MAX]) -> Option<&'a str> {
    if host.starts_with('[') {
        return None; // an IPv6 literal
    }
    let host = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > HOST_BYTES_MAX || !host.is_ascii() {
        return None;
    }
    let normalized = &mut buffer[..host.len()];
    normalized.copy_from_slice(host.as_bytes());
    normalized.make_ascii_lowercase();
    // ASCII in, ASCII out: always UTF-8.
    let normalized = std::str::from_utf8(normalized).ok()?;
    base_domains.iter().find_map(|base| {
        let label = normalized.strip_suffix(base.as_str())?.strip_suffix('.')?;
        (!label.contains('.') && proto::TenantId::is_valid(label)).then_some(label)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(host: &str) -> Option<String> {
        let bases = ["example.com".to_owned(), "localhost".to_owned()];
        let mut buffer = [0u8; HOST_BYTES_MAX];
        tenant_label(host, &bases, &mut buffer).map(str::to_owned)
    }

    #[test]
    fn resolves_the_single_label_left_of_a_base_domain() {
        assert_eq!(resolve("acme.example.com").as_deref(), Some("acme"));
        assert_eq!(resolve("ACME.Example.COM.").as_deref(), Some("acme"));
        assert_eq!(resolve("acme.example.com:8443").as_deref(), Some("acme"));
        assert_eq!(resolve("acme.localhost:8080").as_deref(), Some("acme"));
        for hostile in [
            "",
            "example.com",
            "a.b.example.com",
            "www.example.com",
            "acme_1.example.com",
            "-acme.example.com",
            "127.0.0.1",
            "[::1]:80",
            "acme.example.com:",
            "acme.example.com:80x",
            "acme.evil.com",
            "acmeexample.com",
            "äcme.example.com",
            "acme.example.com..",
        ] {
            assert_eq!(resolve(hostile), None, "{hostile:?}");
        }
        assert_eq!(resolve(&format!("{}.example.com", "a".repeat(250))), None);
    }
}
