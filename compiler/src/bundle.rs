//! The bundles: the public bundle (what a browser may see: the tenant id,
//! `config.public`, the theme and the regional variants of both) and the private bundle (what API servers
//! need: the whole config, the theme and the integrations), as canonical
//! JSON with a SHA-256 content hash.
//!
//! Bundles are content-addressed: they depend on the documents only, never
//! on the revision that stored them, so the same documents always give the
//! same bytes and hash. A rollback therefore restores the old bundle byte
//! for byte, `regctl diff` compares hashes, and a re-run of a publish skips
//! what is already live. The version travels beside the bundle (the
//! agent's record) and is added, with the region, to what is served
//! ([`crate::regions::served_json`]).

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
    let mut public = json!({ "tenant": tenant, "config": public_config, "theme": documents.theme });
    // The regional variants travel with the public parts (each region's
    // agents merge their own); absent when there are none, so a tenant
    // without variants keeps the bytes and hash it always had.
    if let Some(Value::Object(regions)) = documents.config.get(crate::document::REGIONS_KEY) {
        if !regions.is_empty() {
            public[crate::document::REGIONS_KEY] = Value::Object(regions.clone());
        }
    }
    // Writing a map of JSON values cannot fail (its keys are strings).
    let text = |map: &Map<String, Value>| serde_json::to_string(map).unwrap_or_default();
    let private =
        private_json(tenant, &text(&documents.config), &text(&documents.integrations), &text(&documents.theme));
    let sha256 = crate::document::sha256_hex(private.as_bytes());
    (Bundle::from_value(&public), Bundle { json: private, sha256 })
}

/// The private bundle of `tenant` from its documents' canonical texts
/// (compact JSON, keys sorted): `{"config":…,"integrations":…,"tenant":…,
/// "theme":…}`, what `serde_json` writes for that object. So a holder of
/// the documents needs no second copy of the bundle: it rebuilds the bytes
/// when it sends them (the registry keeps only the hash).
pub fn private_json(tenant: &str, config: &str, integrations: &str, theme: &str) -> String {
    let tenant = Value::from(tenant).to_string();
    let parts = [
        r#"{"config":"#,
        config,
        r#","integrations":"#,
        integrations,
        r#","tenant":"#,
        &tenant,
        r#","theme":"#,
        theme,
        "}",
    ];
    let mut json = String::with_capacity(parts.iter().map(|part| part.len()).sum());
    for part in parts {
        json.push_str(part);
    }
    json
}
