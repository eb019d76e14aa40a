//! Errors of the trust layer: each names the file or the field and the rule.

/// A certificate, key or identity that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// An identity that breaks a rule (a name, a region, a URI).
    #[error("{0}")]
    Identity(String),
    /// A file that is missing, unreadable or not what it should hold.
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// A certificate outside its validity period.
    #[error("{path}: {message}")]
    Validity { path: String, message: String },
    /// TLS set-up failed (keys that do not match, a bad CA).
    #[error("TLS: {0}")]
    Tls(String),
}

impl TrustError {
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Self {
        TrustError::File { path: path.display().to_string(), message: message.to_string() }
    }
}
