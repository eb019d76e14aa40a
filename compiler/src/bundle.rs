//! The bundles: the public bundle (what a browser may see: the tenant id,
//! `config.public` and the theme) and the private bundle (what API servers
//! need: the whole config, the theme and the integrations), as canonical
//! JSON with a SHA-256 content hash.
//!
//! Bundles are content-addressed: they depend on the documents only, never
//! on the revision that stored them, so the same documents always give the
//! same bytes and hash. A rollback therefore restores the old bundle byte
//! for byte, `regctl diff` compares hashes, and a re-run of a publish skips
//! what is already live. The version travels beside the bundle
//! (`X-Config-Version`, the agent's record).

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::document::Documents;

/// Canonical JSON text and its SHA-256 in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    pub json: String,
    pub sha256: String,
}

impl Bundle {
    fn from_value(value: &Value) -> Self {
        // serde_json's Map is a BTreeMap (no `preserve_order`), so keys come
        // out sorted and the same documents always give the same bytes.
        let mut json = value.to_string();
        // `to_string` grows its buffer by doubling: without this a 4 KiB
        // bundle would hold 8 KiB for as long as the registry keeps it.
        json.shrink_to_fit();
        let sha256 = crate::document::sha256_hex(json.as_bytes());
        Self { json, sha256 }
    }
}

/// Compiles the public and private bundles of `tenant`.
pub fn compile_bundles(tenant: &str, documents: &Documents) -> (Bundle, Bundle) {
    let public_config = match documents.config.get("public") {
        Some(Value::Object(public)) => public.clone(),
        _ => Map::new(),
    };
    let public = json!({ "tenant": tenant, "config": public_config, "theme": documents.theme });
    let private = json!({
        "tenant": tenant,
        "config": documents.config,
        "theme": documents.theme,
        "integrations": documents.integrations,
    });
    (Bundle::from_value(&public), Bundle::from_value(&private))
}

/// The three documents inside a private bundle of `tenant` made by
/// [`compile_bundles`]: its `config`, `integrations` and `theme` members,
/// given the byte lengths of the first two (the members are written in key
/// order, compact, so each is a slice of the bundle). `None` when `json` is
/// not laid out so. Lets a Raft entry carry a compiled tenant's documents
/// once, inside its private bundle.
pub fn private_documents<'a>(
    tenant: &str,
    json: &'a str,
    config_len: usize,
    integrations_len: usize,
) -> Option<(&'a str, &'a str, &'a str)> {
    let tenant = Value::from(tenant).to_string();
    let rest = json.strip_prefix(r#"{"config":"#)?;
    let (config, rest) = rest.split_at_checked(config_len)?;
    let (integrations, rest) = rest.strip_prefix(r#","integrations":"#)?.split_at_checked(integrations_len)?;
    let rest = rest.strip_prefix(r#","tenant":"#)?.strip_prefix(tenant.as_str())?;
    let theme = rest.strip_prefix(r#","theme":"#)?.strip_suffix('}')?;
    Some((config, integrations, theme))
}
