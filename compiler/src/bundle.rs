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
        let json = value.to_string();
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
