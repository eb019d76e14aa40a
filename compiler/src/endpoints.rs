//! Endpoints: every URL in any document (API base, webhooks, issuers, the
//! logo URL) and every custom domain must
//!
//! * use `https` and carry no credentials (no `user:pass@`, no secret-named
//!   query parameter);
//! * not be an IP literal in a loopback, private, link-local, shared or
//!   otherwise internal range, nor `localhost` (the SSRF guard: an api-node
//!   calls webhooks from inside the fleet's network);
//! * match the tenant's allowlist, `config.allowedHosts`: exact host names,
//!   or `*.domain` for any name below `domain`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::{pointer_push, secrets, Problem};

/// A tenant's allowed hosts, from `config.allowedHosts` (invalid entries
/// are reported by the schema and ignored here).
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    patterns: Vec<String>,
}

impl Allowlist {
    pub fn from_config(config: &Map<String, Value>) -> Self {
        let patterns = config
            .get("allowedHosts")
            .and_then(Value::as_array)
            .map(|hosts| {
                hosts
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|host| is_host_pattern(host, true))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self { patterns }
    }

    pub fn allows(&self, host: &str) -> bool {
        self.patterns.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => host.strip_suffix(domain).is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
            None => host == pattern,
        })
    }

    fn describe(&self) -> String {
        if self.patterns.is_empty() {
            "config.allowedHosts is empty".to_owned()
        } else {
            format!("config.allowedHosts is {}", self.patterns.join(", "))
        }
    }
}

/// A lowercase DNS name (`a.b.c`, labels of a-z 0-9 -), or `*.name` when
/// `wildcard_allowed`.
pub fn is_host_pattern(text: &str, wildcard_allowed: bool) -> bool {
    let name = match text.strip_prefix("*.") {
        Some(rest) if wildcard_allowed => rest,
        _ => text,
    };
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `ip` is an address the fleet must never be made to call.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return is_internal_v4(mapped);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || ip == Ipv6Addr::LOCALHOST
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || a >= 240 // reserved
}

/// Checks a host name or IP literal (no port) against the SSRF guard and the
/// allowlist.
pub fn check_host(host: &str, allowlist: &Allowlist) -> Result<(), (&'static str, String)> {
    let literal = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if is_internal(ip) {
            return Err(("ssrf", format!("{ip} is an internal address (loopback, private, link-local or reserved)")));
        }
    } else if host.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        return Err(("ssrf", format!("{host} is an ambiguous numeric host; write a host name")));
    } else if host == "localhost" || host.ends_with(".localhost") {
        return Err(("ssrf", format!("{host} names this machine")));
    } else if !is_host_pattern(host, false) {
        return Err(("host-name", format!("{host:?} is not a lowercase host name")));
    }
    if !allowlist.allows(literal) {
        return Err(("allowlist", format!("{host} is not in the tenant's allowlist ({})", allowlist.describe())));
    }
    Ok(())
}

/// Checks one URL: https, no credentials, host allowed.
pub fn check_url(url: &str, allowlist: &Allowlist) -> Result<(), (&'static str, String)> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(("https", format!("{url:?} must use https")));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(("credentials", "a URL carries no user name or password; use a secret reference".to_owned()));
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => {
            if port.parse::<u16>().map_or(true, |port| port == 0) {
                return Err(("port", format!("{port:?} is not a port from 1 to 65535")));
            }
            host
        }
        _ => authority,
    };
    let host = host.to_ascii_lowercase();
    if host.is_empty() {
        return Err(("host-name", format!("{url:?} has no host")));
    }
    check_host(&host, allowlist)?;
    if let Some((_, query)) = tail.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        if let Some(name) =
            query.split('&').filter_map(|pair| pair.split('=').next()).find(|name| secrets::is_secret_key(name))
        {
            return Err((
                "secret-in-url",
                format!("query parameter {name:?} names a secret: documents hold no secrets"),
            ));
        }
    }
    Ok(())
}

/// Checks every string of `document` that is a URL (starts with `http://`
/// or `https://`).
pub fn check_urls(file: &str, document: &Map<String, Value>, allowlist: &Allowlist, problems: &mut Vec<Problem>) {
    fn walk(file: &str, pointer: String, value: &Value, allowlist: &Allowlist, problems: &mut Vec<Problem>) {
        match value {
            Value::String(text) if text.starts_with("https://") || text.starts_with("http://") => {
                if let Err((rule, message)) = check_url(text, allowlist) {
                    problems.push(Problem::new(file, pointer, rule, message));
                }
            }
            Value::Object(map) => {
                for (key, value) in map {
                    walk(file, pointer_push(&pointer, key), value, allowlist, problems);
                }
            }
            Value::Array(items) => {
                for (index, value) in items.iter().enumerate() {
                    walk(file, format!("{pointer}/{index}"), value, allowlist, problems);
                }
            }
            _ => {}
        }
    }
    for (key, value) in document {
        walk(file, pointer_push("", key), value, allowlist, problems);
    }
}
