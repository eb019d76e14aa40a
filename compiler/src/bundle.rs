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

use crate::document::{CONFIG_FILE, THEME_FILE};
use crate::{secrets, Documents, Problem};

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

/// An agent's check of a public bundle it is about to serve: exactly the
/// public parts (tenant, config, theme), and no secrets in them.
pub fn check_public_bundle(json: &[u8]) -> Result<(), Problem> {
    let refuse = |rule: &'static str, message: &str| Problem::new("public_bundle", "", rule, message);
    let Ok(Value::Object(bundle)) = serde_json::from_slice::<Value>(json) else {
        return Err(refuse("json-object", "is not a JSON object"));
    };
    if let Some(key) = bundle.keys().find(|key| !["tenant", "config", "theme"].contains(&key.as_str())) {
        return Err(Problem::new(
            "public_bundle",
            crate::pointer_push("", key),
            "public-scope",
            "a public bundle holds tenant, config and theme only",
        ));
    }
    let mut problems = Vec::new();
    let mut config = Map::new();
    config.insert("public".to_owned(), bundle.get("config").cloned().unwrap_or(Value::Null));
    secrets::check(CONFIG_FILE, &config, &mut problems);
    if let Some(Value::Object(theme)) = bundle.get("theme") {
        secrets::check(THEME_FILE, theme, &mut problems);
    }
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}
