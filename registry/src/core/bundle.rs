//! The minimal bundle compiler: the public bundle (what a browser may see)
//! and the private bundle (what API servers need), as canonical JSON with a
//! SHA-256 content hash.

use proto::{Revision, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::TenantDocuments;

/// Canonical JSON bytes (as text) and their SHA-256 in lowercase hex.
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
        let sha256 = proto::document::sha256_hex(json.as_bytes());
        Self { json, sha256 }
    }
}

/// Compiles both bundles of a tenant at `revision` (its configVersion).
///
/// The documents must be JSON objects (validated before); anything else is
/// treated as empty rather than panicking, since apply must never fail halfway.
pub fn compile_bundles(tenant: &TenantId, revision: Revision, documents: &TenantDocuments) -> (Bundle, Bundle) {
    let parse = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let config = parse(&documents.config);
    let theme = parse(&documents.theme);
    let integrations = parse(&documents.integrations);
    let config_public = match config.get("public") {
        Some(Value::Object(public)) => public.clone(),
        _ => Map::new(),
    };
    let public = json!({
        "tenant": tenant.as_str(),
        "configVersion": revision.get(),
        "config": config_public,
        "theme": theme,
    });
    let private = json!({
        "tenant": tenant.as_str(),
        "configVersion": revision.get(),
        "config": config,
        "theme": theme,
        "integrations": integrations,
    });
    (Bundle::from_value(&public), Bundle::from_value(&private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_bundle_holds_only_public_parts() {
        let tenant = TenantId::parse("acme").expect("valid");
        let documents = TenantDocuments {
            config: r#"{"public":{"apiBase":"https://api.acme.test"},"sla":"gold"}"#.to_owned(),
            theme: r##"{"colors":{"primary":"#112233"}}"##.to_owned(),
            integrations: r#"{"oauth":{"client_id":"x"}}"#.to_owned(),
        };
        let (public, private) = compile_bundles(&tenant, Revision(7), &documents);
        assert_eq!(
            public.json,
            r##"{"config":{"apiBase":"https://api.acme.test"},"configVersion":7,"tenant":"acme","theme":{"colors":{"primary":"#112233"}}}"##
        );
        assert!(!public.json.contains("sla"));
        assert!(private.json.contains(r#""sla":"gold""#));
        assert!(private.json.contains("client_id"));
        assert_eq!(public.sha256.len(), 64);
        let (again, _) = compile_bundles(&tenant, Revision(7), &documents);
        assert_eq!(public, again, "compilation is deterministic");
    }
}
