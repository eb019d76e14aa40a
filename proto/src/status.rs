//! Errors on the wire: a gRPC status whose message says what was wrong and
//! what to do, with an `ErrorDetail` (field, rule, revisions, leader hint)
//! in its details for programs.

use prost::Message;
use tonic::{Code, Status};

use crate::v1::ErrorDetail;

/// A status with an `ErrorDetail` attached.
pub fn with_detail(code: Code, message: impl Into<String>, detail: ErrorDetail) -> Status {
    Status::with_details(code, message, detail.encode_to_vec().into())
}

/// The `ErrorDetail` of a status, if it carries one.
pub fn detail(status: &Status) -> Option<ErrorDetail> {
    ErrorDetail::decode(status.details()).ok()
}
