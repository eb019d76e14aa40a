//! Validation in one place: documents and write metadata. Errors name the
//! field and the rule. The gRPC service runs these before proposing, and
//! `apply` runs them again so that a replica never stores what a bad
//! proposer let through.

use serde_json::Value;

use super::CommandError;
use crate::limits::{ACTOR_BYTES_MAX, INTEGRATIONS_PER_TENANT_MAX, REASON_BYTES_MAX, REQUEST_ID_BYTES_MAX};

/// Which document a text is, for error messages and per-kind rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    Config,
    Theme,
    Integrations,
}

impl DocumentKind {
    pub fn field(self) -> &'static str {
        match self {
            DocumentKind::Config => "documents.config",
            DocumentKind::Theme => "documents.theme",
            DocumentKind::Integrations => "documents.integrations",
        }
    }
}

/// Size limits for documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    pub document_bytes_max: usize,
}

/// Parses a document, checks it against the rules, and returns its
/// canonical text (compact JSON, keys sorted).
pub fn canonical_document(kind: DocumentKind, text: &str, limits: DocumentLimits) -> Result<String, CommandError> {
    let field = kind.field();
    let map = proto::document::parse_object(field, text, limits.document_bytes_max).map_err(|error| {
        CommandError::Invalid { field: error.field, rule_id: error.rule_id.to_owned(), message: error.rule }
    })?;
    if kind == DocumentKind::Integrations {
        if map.len() > INTEGRATIONS_PER_TENANT_MAX {
            return Err(CommandError::invalid(
                field,
                "count",
                format!("{} integrations is over the limit of {INTEGRATIONS_PER_TENANT_MAX}", map.len()),
            ));
        }
        if let Some((name, _)) = map.iter().find(|(_, integration)| !integration.is_object()) {
            return Err(CommandError::invalid(
                format!("{field}.{name}"),
                "json-object",
                "each integration must be a JSON object",
            ));
        }
    }
    if kind == DocumentKind::Config {
        if let Some(public) = map.get("public") {
            if !public.is_object() {
                return Err(CommandError::invalid(format!("{field}.public"), "json-object", "must be a JSON object"));
            }
        }
    }
    Ok(Value::Object(map).to_string())
}

/// Checks request id, actor and reason.
pub fn validate_meta(request_id: Option<&str>, actor: &str, reason: &str) -> Result<(), CommandError> {
    if let Some(request_id) = request_id {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            return Err(CommandError::invalid(
                "meta.request_id",
                "length",
                format!("must be 1 to {REQUEST_ID_BYTES_MAX} bytes"),
            ));
        }
        if !request_id.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(CommandError::invalid("meta.request_id", "printable", "only printable ASCII is allowed"));
        }
    }
    if actor.len() > ACTOR_BYTES_MAX {
        return Err(CommandError::invalid("meta.actor", "length", format!("must be at most {ACTOR_BYTES_MAX} bytes")));
    }
    if reason.len() > REASON_BYTES_MAX {
        return Err(CommandError::invalid(
            "meta.reason",
            "length",
            format!("must be at most {REASON_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}
