//! The client's error: why a call failed, by what the caller can do about
//! it, with the server's message (which names the field or the rule and
//! says what to do) kept whole.

use proto::v1::ErrorDetail;
use tonic::{Code, Status};

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request broke a rule: `field` and `rule` say which. Retrying the
    /// same request fails the same way.
    #[error("{message}")]
    Invalid { field: String, rule: String, message: String },
    /// The tenant (or member, or shard) does not exist.
    #[error("{message}")]
    NotFound { message: String },
    /// It exists already, at `current_revision` where it has one.
    #[error("{message}")]
    AlreadyExists { current_revision: Option<u64>, message: String },
    /// The state is not what the request needs: a revision mismatch
    /// (`current_revision`, `expected_revision`), a lease not yet expired,
    /// no canary staged, another cluster. `rule` names which, when the
    /// server says.
    #[error("{message}")]
    Precondition { rule: String, current_revision: Option<u64>, expected_revision: Option<u64>, message: String },
    /// The certificate's identity or role may not do this, or there is no
    /// (valid) certificate.
    #[error("{message}")]
    Denied { message: String },
    /// No endpoint answered within the retry budget (every one is named), or
    /// the node is too busy for this request now: worth retrying later.
    #[error("{message}")]
    Unavailable { message: String },
    /// What the server said otherwise (an internal error, a cut stream).
    #[error("{}", .0.message())]
    Other(Status),
}

impl Error {
    /// The gRPC code this error came as.
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Precondition { .. } => Code::FailedPrecondition,
            Self::Denied { .. } => Code::PermissionDenied,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Other(status) => status.code(),
        }
    }

    /// The revision the tenant is at, where the server said.
    pub fn current_revision(&self) -> Option<u64> {
        match self {
            Self::AlreadyExists { current_revision, .. } | Self::Precondition { current_revision, .. } => {
                *current_revision
            }
            _ => None,
        }
    }

    /// An error of the client's own (a bad endpoint, a broken backup).
    pub(crate) fn invalid(field: &str, rule: &str, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.to_owned(), rule: rule.to_owned(), message: message.into() }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        let detail = proto::status::detail(&status).unwrap_or_default();
        let ErrorDetail { field, rule, current_revision, expected_revision, .. } = detail;
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::Invalid { field, rule, message },
            Code::NotFound => Self::NotFound { message },
            Code::AlreadyExists => Self::AlreadyExists { current_revision, message },
            Code::FailedPrecondition => Self::Precondition { rule, current_revision, expected_revision, message },
            Code::PermissionDenied | Code::Unauthenticated => Self::Denied { message },
            Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => Self::Unavailable { message },
            _ => Self::Other(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_mismatch_keeps_both_revisions_and_the_message() {
        let status = proto::status::with_detail(
            Code::FailedPrecondition,
            "tenant acme is at revision 7, not 5",
            ErrorDetail {
                field: "meta.expected_revision".to_owned(),
                rule: "revision-mismatch".to_owned(),
                current_revision: Some(7),
                expected_revision: Some(5),
                ..Default::default()
            },
        );
        let error = Error::from(status);
        assert_eq!(error.code(), Code::FailedPrecondition);
        assert_eq!(error.current_revision(), Some(7));
        assert!(
            matches!(&error, Error::Precondition { rule, expected_revision: Some(5), .. } if rule == "revision-mismatch")
        );
        assert_eq!(error.to_string(), "tenant acme is at revision 7, not 5");
    }

    #[test]
    fn codes_map_to_what_the_caller_can_do() {
        let cases = [
            (Status::invalid_argument("x"), Code::InvalidArgument),
            (Status::not_found("x"), Code::NotFound),
            (Status::unauthenticated("x"), Code::PermissionDenied),
            (Status::deadline_exceeded("x"), Code::Unavailable),
            (Status::internal("x"), Code::Internal),
        ];
        for (status, code) in cases {
            assert_eq!(Error::from(status).code(), code);
        }
    }
}
