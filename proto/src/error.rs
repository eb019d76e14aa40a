//! Errors of the domain types: each names the field and the rule it broke.

/// A value that broke a domain rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} `{value}`: {rule}")]
pub struct DomainError {
    /// The field that holds the value, e.g. `tenant_id` or
    /// `documents.integrations.oauth`.
    pub field: String,
    /// The offending value, cut to a printable length.
    pub value: String,
    /// The rule, in words that say what is allowed.
    pub rule: String,
    /// A short machine-readable name of the rule, e.g. `dns-label`.
    pub rule_id: &'static str,
}

impl DomainError {
    pub fn new(field: impl Into<String>, value: &str, rule_id: &'static str, rule: impl Into<String>) -> Self {
        // Cut hostile input so an error message never carries megabytes.
        const SHOWN_CHARS_MAX: usize = 80;
        let mut shown: String = value.chars().take(SHOWN_CHARS_MAX).collect();
        if value.chars().count() > SHOWN_CHARS_MAX {
            shown.push('…');
        }
        Self { field: field.into(), value: shown, rule: rule.into(), rule_id }
    }
}
