//! Validation in one place: documents and write metadata. Errors name the
//! field and the rule. The gRPC service parses documents before proposing;
//! `apply` parses them again and runs the config compiler's rules, so that
//! a replica never stores what a bad proposer let through.

use compiler::{compile_bundles, validate_documents, Bundle, Documents};
use proto::TenantId;
use serde_json::Value;

use super::{CommandError, Shard, TenantDocuments};
use crate::limits::{ACTOR_BYTES_MAX, REASON_BYTES_MAX, REQUEST_ID_BYTES_MAX};

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

/// Parses a document (a JSON object within the size limit) and returns its
/// canonical text (compact JSON, keys sorted). The content rules run on the
/// whole tenant in [`compile`].
pub fn canonical_document(kind: DocumentKind, text: &str, limits: DocumentLimits) -> Result<String, CommandError> {
    let map = compiler::document::parse_object(kind.field(), text, limits.document_bytes_max).map_err(|error| {
        CommandError::Invalid { field: error.field, rule_id: error.rule_id.to_owned(), message: error.rule }
    })?;
    let mut text = Value::Object(map).to_string();
    // Kept for the tenant's life: no spare capacity from the doubling buffer.
    text.shrink_to_fit();
    Ok(text)
}

/// Runs the config compiler's rules over a tenant's documents (canonical
/// texts) and compiles its bundles: the same verdict regctl gives before a
/// publish, so a client that skips regctl is refused alike.
pub fn compile(tenant: &TenantId, documents: &TenantDocuments) -> Result<(Bundle, Bundle), CommandError> {
    let parse = |kind: DocumentKind, text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(CommandError::invalid(kind.field(), "json-object", "must be a JSON object")),
    };
    let documents = Documents {
        config: parse(DocumentKind::Config, &documents.config)?,
        theme: parse(DocumentKind::Theme, &documents.theme)?,
        integrations: parse(DocumentKind::Integrations, &documents.integrations)?,
    };
    if let Some(problem) = validate_documents(&documents).into_iter().next() {
        return Err(CommandError::invalid(problem.registry_field(), problem.rule, problem.message));
    }
    Ok(compile_bundles(tenant.as_str(), &documents))
}

/// Checks a shard to add: its id is a label (it names directories and
/// database objects) and its endpoint is 1 to 255 bytes. Run by the service
/// and again in apply, so a replica never stores what a bad proposer sent.
pub fn check_shard(shard: &Shard) -> Result<(), CommandError> {
    proto::TenantId::parse(&shard.id).map_err(|error| {
        CommandError::invalid("shard.id", error.rule_id, format!("`{}`: {}", shard.id.escape_debug(), error.rule))
    })?;
    let endpoint = proto::ShardEndpoint::parse(&shard.endpoint)
        .map_err(|error| CommandError::invalid("shard.endpoint", error.rule_id, error.to_string()))?;
    if let Some(replica) = &shard.replica {
        let parsed = proto::ShardEndpoint::parse(replica).map_err(|error| {
            CommandError::invalid(
                "shard.replica_endpoint",
                error.rule_id,
                error.to_string().replacen("shard.endpoint", "shard.replica_endpoint", 1),
            )
        })?;
        let postgres = |endpoint: &proto::ShardEndpoint| matches!(endpoint, proto::ShardEndpoint::Postgres { .. });
        if !postgres(&endpoint) || !postgres(&parsed) || replica == &shard.endpoint {
            let message = "a replica is a PostgreSQL database other than the shard's own endpoint";
            return Err(CommandError::invalid("shard.replica_endpoint", "postgres-replica", message));
        }
    }
    Ok(())
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
