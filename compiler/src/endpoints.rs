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

use crate::document::{is_host_pattern, is_secret_key, pointer_push, shown, Problem};

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

/// Whether `text` is meant as a URL, so that [`check_url`] judges it: it
/// starts with a scheme and `//` (in any case: `HTTPS://…`), with `//` or
/// `\\` alone (scheme-relative), or with a scheme a browser would run or
/// load (`javascript:`, `data:`, `file:`). Secret-store references
/// (`vault:…`) are not URLs.
pub fn is_url_like(text: &str) -> bool {
    const DANGEROUS_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "http", "https"];
    let text = text.trim_start();
    if text.starts_with("//") || text.starts_with("\\\\") {
        return true;
    }
    let Some((scheme, rest)) = text.split_once(':') else { return false };
    let is_scheme = scheme.len() <= 32
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"+.-".contains(&byte));
    is_scheme && (rest.starts_with("//") || DANGEROUS_SCHEMES.iter().any(|known| scheme.eq_ignore_ascii_case(known)))
}

/// Checks one URL, parsed as a browser would (WHATWG, the `url` crate):
/// https, no credentials, a host that is neither internal (however it is
/// written: `0x7f000001`, `127.1`, `[::ffff:7f00:1]`) nor outside the
/// allowlist, and no secret-named query parameter.
pub fn check_url(text: &str, allowlist: &Allowlist) -> Result<(), (&'static str, String)> {
    // Only a refusal shows the URL (cut, and never a secret-looking one).
    let shown = || shown(&Value::String(text.to_owned()));
    let url = url::Url::parse(text.trim()).map_err(|error| match error {
        url::ParseError::RelativeUrlWithoutBase => ("https", format!("{} must be an absolute https:// URL", shown())),
        error => ("url", format!("{} is not a URL: {error}", shown())),
    })?;
    if url.scheme() != "https" {
        return Err(("https", format!("{} must use https", shown())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(("credentials", "a URL carries no user name or password; use a secret reference".to_owned()));
    }
    match url.host() {
        None => return Err(("host-name", format!("{} has no host", shown()))),
        Some(url::Host::Domain(domain)) => check_host(domain, allowlist)?,
        Some(url::Host::Ipv4(ip)) => check_host(&ip.to_string(), allowlist)?,
        Some(url::Host::Ipv6(ip)) => check_host(&ip.to_string(), allowlist)?,
    }
    if let Some((name, _)) = url.query_pairs().find(|(name, _)| is_secret_key(name)) {
        return Err(("secret-in-url", format!("query parameter {name:?} names a secret: documents hold no secrets")));
    }
    Ok(())
}

/// Checks every string of `document` that is meant as a URL ([`is_url_like`]).
pub fn check_urls(file: &str, document: &Map<String, Value>, allowlist: &Allowlist, problems: &mut Vec<Problem>) {
    fn walk(file: &str, pointer: String, value: &Value, allowlist: &Allowlist, problems: &mut Vec<Problem>) {
        match value {
            Value::String(text) if is_url_like(text) => {
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
