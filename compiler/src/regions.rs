//! Regional variants: the same tenant's public config may differ by region
//! (a country's legal banner, a regional API base). A variant is a merge
//! patch (RFC 7386) over the public parts, `{"public": {…}, "theme": {…}}`,
//! kept under `config.json`'s `regions` key (a config repo gives each as
//! `tenants/{id}/regions/{region}.json`), so it is stored, diffed,
//! published, audited and rolled back as part of the tenant.
//!
//! [`crate::validate_documents`] judges each region's merged documents by
//! every rule; agents serve their own region's merge ([`merged_public`]).

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::document::{merge_patch, pointer_push, region_file, shown, Problem, CONFIG_FILE, REGIONS_KEY};
use crate::limits::REGIONAL_VARIANTS_MAX;

/// The parts of the public documents a variant may patch.
pub const VARIANT_KEYS: &[&str] = &["public", "theme"];

/// Checks the shape of `config.regions`: at most
/// [`REGIONAL_VARIANTS_MAX`] region names, each an object of
/// [`VARIANT_KEYS`] objects.
pub(crate) fn check_shape(config: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let Some(regions) = config.get(REGIONS_KEY) else { return };
    let pointer = format!("/{REGIONS_KEY}");
    let Some(regions) = regions.as_object() else {
        let message = format!("{} is not an object of regional variants", shown(regions));
        problems.push(Problem::new(CONFIG_FILE, pointer, "json-object", message));
        return;
    };
    if regions.len() > REGIONAL_VARIANTS_MAX {
        let message = format!("{} regional variants is over the limit of {REGIONAL_VARIANTS_MAX}", regions.len());
        problems.push(Problem::new(CONFIG_FILE, pointer, "count", message));
    }
    for (region, variant) in regions {
        let file = region_file(region);
        if let Err(error) = proto::Region::parse(region) {
            problems.push(Problem::new(&file, "", error.rule_id, format!("{region:?}: {}", error.rule)));
            continue;
        }
        let Some(variant) = variant.as_object() else {
            let message = format!("{} is not a JSON object", shown(variant));
            problems.push(Problem::new(&file, "", "json-object", message));
            continue;
        };
        for (key, part) in variant {
            if !VARIANT_KEYS.contains(&key.as_str()) {
                let message = format!("unknown field; a regional variant holds {}", VARIANT_KEYS.join(", "));
                problems.push(Problem::new(&file, pointer_push("", key), "unknown-field", message));
            } else if !part.is_object() {
                let message = format!("{} is not a JSON object", shown(part));
                problems.push(Problem::new(&file, pointer_push("", key), "json-object", message));
            }
        }
    }
}

/// The well-formed variants of `config`, by region name in order.
pub(crate) fn variants(config: &Map<String, Value>) -> impl Iterator<Item = (&str, &Map<String, Value>)> {
    let regions = config.get(REGIONS_KEY).and_then(Value::as_object);
    regions
        .into_iter()
        .flatten()
        .filter(|(region, _)| proto::Region::parse(region).is_ok())
        .filter_map(|(region, variant)| Some((region.as_str(), variant.as_object()?)))
}

/// A variant's patch of `part` (`public` or `theme`), if it has one.
fn patch<'a>(variant: &'a Map<String, Value>, part: &str) -> Option<&'a Map<String, Value>> {
    variant.get(part).and_then(Value::as_object)
}

/// `config` and `theme` as `variant` makes them for its region: the public
/// object and the theme patched, the variants themselves left out.
pub(crate) fn merged(
    config: &Map<String, Value>,
    theme: &Map<String, Value>,
    variant: &Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut config = config.clone();
    config.remove(REGIONS_KEY);
    if let Some(public) = patch(variant, "public") {
        let mut merged = match config.remove("public") {
            Some(Value::Object(public)) => public,
            _ => Map::new(),
        };
        merge_patch(&mut merged, public);
        config.insert("public".to_owned(), Value::Object(merged));
    }
    let mut theme = theme.clone();
    if let Some(patch) = patch(variant, "theme") {
        merge_patch(&mut theme, patch);
    }
    (config, theme)
}

/// A public bundle's `config` and `theme` as served in `region`: its
/// variant for `region` (under the bundle's `regions`) merged in, if any.
pub fn merged_public(bundle: &Map<String, Value>, region: &str) -> (Value, Value) {
    let config = bundle.get("config").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let theme = bundle.get("theme").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let variant = bundle.get(REGIONS_KEY).and_then(|regions| regions.get(region)).and_then(Value::as_object);
    let Some(variant) = variant else { return (config, theme) };
    let apply = |mut value: Value, part: &str| {
        if let (Value::Object(target), Some(patch)) = (&mut value, patch(variant, part)) {
            merge_patch(target, patch);
        }
        value
    };
    (apply(config, "public"), apply(theme, "theme"))
}

/// What `/config/{tenant}.json` serves in `region` (by the api-nodes and
/// the frontend sidecars alike), from a checked public bundle: the tenant,
/// its config and theme as [`merged_public`] makes them, `configVersion`
/// and `region`, as canonical JSON (keys sorted). Deterministic, so every
/// node of a region serves the same bytes and the same ETag.
pub fn served_json(public_bundle: &[u8], region: &str, config_version: u64) -> Result<String, Problem> {
    // Without variants, the bundle's parts go out as they are (a compiled
    // bundle is canonical JSON, so the bytes equal the merge's), without
    // building the document.
    if let Ok(parts) = serde_json::from_slice::<BTreeMap<&str, &RawValue>>(public_bundle) {
        if !parts.contains_key(REGIONS_KEY) {
            let part = |key: &str, absent: &'static str| parts.get(key).map_or(absent, |raw| raw.get());
            return Ok(format!(
                r#"{{"config":{},"configVersion":{config_version},"region":{},"tenant":{},"theme":{}}}"#,
                part("config", "{}"),
                Value::from(region),
                part("tenant", "null"),
                part("theme", "{}"),
            ));
        }
    }
    let Ok(Value::Object(bundle)) = serde_json::from_slice::<Value>(public_bundle) else {
        return Err(Problem::new("public_bundle", "", "json-object", "is not a JSON object"));
    };
    Ok(merged_json(&bundle, region, config_version))
}

/// [`served_json`] of a bundle, its variant for `region` merged in.
fn merged_json(bundle: &Map<String, Value>, region: &str, config_version: u64) -> String {
    let (config, theme) = merged_public(bundle, region);
    let mut served = Map::new();
    served.insert("config".to_owned(), config);
    served.insert("configVersion".to_owned(), Value::from(config_version));
    served.insert("region".to_owned(), Value::from(region));
    served.insert("tenant".to_owned(), bundle.get("tenant").cloned().unwrap_or(Value::Null));
    served.insert("theme".to_owned(), theme);
    Value::Object(served).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_variant_patches_the_public_parts_and_null_removes() {
        let config = object(json!({"public": {"apiBase": "https://a", "features": {"x": true, "y": true}},
            "slaTier": "gold", "regions": {"eu-west": {}}}));
        let theme = object(json!({"texts": {"welcome": "Hi"}}));
        let variant = object(json!({"public": {"legalBanner": "GDPR", "features": {"y": null}},
            "theme": {"texts": {"welcome": "Hallo"}}}));
        let (config, theme) = merged(&config, &theme, &variant);
        assert_eq!(
            Value::Object(config),
            json!({"public": {"apiBase": "https://a", "features": {"x": true}, "legalBanner": "GDPR"}, "slaTier": "gold"})
        );
        assert_eq!(Value::Object(theme), json!({"texts": {"welcome": "Hallo"}}));
    }

    #[test]
    fn each_region_serves_its_own_merge_with_version_and_region() {
        let bundle = json!({"config": {"apiBase": "https://a"}, "tenant": "acme", "theme": {},
            "regions": {"eu-west": {"public": {"legalBanner": "GDPR"}}}})
        .to_string();
        let eu = served_json(bundle.as_bytes(), "eu-west", 7).expect("served");
        assert_eq!(
            eu,
            r#"{"config":{"apiBase":"https://a","legalBanner":"GDPR"},"configVersion":7,"region":"eu-west","tenant":"acme","theme":{}}"#
        );
        let us = served_json(bundle.as_bytes(), "us-east", 7).expect("served");
        assert_eq!(
            us,
            r#"{"config":{"apiBase":"https://a"},"configVersion":7,"region":"us-east","tenant":"acme","theme":{}}"#
        );
    }

    /// The shortcut for bundles without variants gives the merge's bytes.
    #[test]
    fn without_variants_the_bundle_parts_go_out_as_the_merge_would_write_them() {
        let bundle =
            json!({"config": {"a": [1, {"b": "c\"d"}]}, "tenant": "acme", "theme": {"colors": {"x": "#000000"}}});
        let text = bundle.to_string();
        let fast = served_json(text.as_bytes(), "ap-south", 42).expect("served");
        assert_eq!(fast, merged_json(&object(bundle), "ap-south", 42));
        assert_eq!(served_json(b"{}", "eu-west", 1).expect("served"), merged_json(&Map::new(), "eu-west", 1));
        assert!(served_json(b"[1]", "eu-west", 1).is_err());
    }

    #[test]
    fn shapes_are_checked_with_the_variants_file() {
        let config = object(json!({"regions": {"EU": {}, "eu-west": {"private": {}, "theme": []}}}));
        let mut problems = Vec::new();
        check_shape(&config, &mut problems);
        let found: Vec<(String, String, &str)> =
            problems.into_iter().map(|problem| (problem.file, problem.pointer, problem.rule)).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, "regions/EU.json");
        assert_eq!(found[1], ("regions/eu-west.json".to_owned(), "/private".to_owned(), "unknown-field"));
        assert_eq!(found[2], ("regions/eu-west.json".to_owned(), "/theme".to_owned(), "json-object"));
    }
}
