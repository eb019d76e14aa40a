//! Tenant ids: DNS labels, because each tenant lives on its own subdomain.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The longest DNS label (RFC 1035).
pub const TENANT_ID_LEN_MAX: usize = 63;

/// Names that are subdomains of the product itself and can never be tenants.
pub const RESERVED_TENANT_IDS: &[&str] = &[
    "admin",
    "api",
    "app",
    "assets",
    "auth",
    "cdn",
    "config",
    "dashboard",
    "docs",
    "internal",
    "localhost",
    "login",
    "mail",
    "metrics",
    "registry",
    "static",
    "status",
    "support",
    "www",
];

/// A validated tenant id: a lowercase DNS label of 1 to 63 characters from
/// `a-z`, `0-9` and `-`, not starting or ending with `-`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Validates `value` as a tenant id.
    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match Self::broken_rule(value) {
            Some((rule_id, rule)) => Err(DomainError::new("tenant_id", value, rule_id, rule)),
            None => Ok(Self(value.to_owned())),
        }
    }

    /// Whether `value` is a valid tenant id; allocates nothing (for hot
    /// paths such as resolving a Host header).
    pub fn is_valid(value: &str) -> bool {
        Self::broken_rule(value).is_none()
    }

    /// The first rule `value` breaks, as (rule id, words); allocates only
    /// when a rule is broken.
    fn broken_rule(value: &str) -> Option<(&'static str, String)> {
        if value.is_empty() {
            return Some(("required", "must not be empty".to_owned()));
        }
        if value.len() > TENANT_ID_LEN_MAX {
            return Some(("dns-label", "must be at most 63 characters (a DNS label)".to_owned()));
        }
        if let Some(bad) = value.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Some(("dns-label", format!("only a-z, 0-9 and '-' are allowed (found {bad:?})")));
        }
        if value.starts_with('-') || value.ends_with('-') {
            return Some(("dns-label", "must not start or end with '-'".to_owned()));
        }
        if RESERVED_TENANT_IDS.contains(&value) {
            return Some(("reserved", "is a reserved name".to_owned()));
        }
        None
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantId {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "acme", "acme-1", "9lives", &"x".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_with_the_rule() {
        let cases = [
            ("", "required"),
            ("Acme", "dns-label"),
            ("acme_1", "dns-label"),
            ("-acme", "dns-label"),
            ("acme-", "dns-label"),
            ("acmé", "dns-label"),
            ("a.b", "dns-label"),
            ("www", "reserved"),
            ("api", "reserved"),
        ];
        for (value, rule_id) in cases {
            assert!(!TenantId::is_valid(value), "{value}");
            let error = TenantId::parse(value).expect_err(value);
            assert_eq!(error.rule_id, rule_id, "{value}");
            assert_eq!(error.field, "tenant_id");
        }
        let long = "x".repeat(64);
        assert_eq!(TenantId::parse(&long).expect_err("64 chars").rule_id, "dns-label");
        let message = TenantId::parse("Acme_1").expect_err("bad").to_string();
        assert_eq!(message, "tenant_id `Acme_1`: only a-z, 0-9 and '-' are allowed (found 'A')");
    }
}
