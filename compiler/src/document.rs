//! The bottom of the document rules: JSON objects within a size and
//! bundles that match their content hash. The registry (on write) and the
//! agents (on apply) use the same functions, so both refuse the same
//! things; every other rule module builds on these, and on what they
//! share: [`Problem`] and its pointers, values shown safely in messages,
//! and the names and predicates (the files, host patterns, e-mail
//! addresses, secret key names and references, region names, and whether a
//! string looks random, in [`entropy`]), so that no rule module imports
//! another.

mod entropy;

use std::fmt;

use proto::{DomainError, Region};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use entropy::{
    entropy_bits, entropy_shown, is_reference, is_url, looks_random, ENTROPY_ONE_BIT, REFERENCE_SCHEMES,
};

/// Parses `text` as the JSON object that `field` must hold, at most
/// `bytes_max` bytes long.
pub fn parse_object(field: &str, text: &str, bytes_max: usize) -> Result<Map<String, Value>, DomainError> {
    // The value in errors is a size or a short reason: documents can be
    // large, and an error message must not echo them.
    if text.len() > bytes_max {
        let rule = format!("{} bytes is over the limit of {bytes_max} bytes", text.len());
        return Err(DomainError::new(field, "…", "size", rule));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DomainError::new(field, "…", "json-object", "must be a JSON object")),
        Err(error) => Err(DomainError::new(field, "…", "json", format!("is not valid JSON: {error}"))),
    }
}

/// Checks that `text` is a JSON object within `bytes_max` bytes, with the
/// same rules and errors as [`parse_object`], without building it: for hot
/// paths that only verify (an agent checks every record it applies).
pub fn check_object(field: &str, text: &str, bytes_max: usize) -> Result<(), DomainError> {
    if text.len() > bytes_max {
        let rule = format!("{} bytes is over the limit of {bytes_max} bytes", text.len());
        return Err(DomainError::new(field, "…", "size", rule));
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(DomainError::new(field, "…", "json", format!("is not valid JSON: {error}")));
    }
    if !text.trim_start().starts_with('{') {
        return Err(DomainError::new(field, "…", "json-object", "must be a JSON object"));
    }
    Ok(())
}

/// SHA-256 of `bytes` in lowercase hex: a bundle's content hash.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a compiled bundle: UTF-8 JSON object within `bytes_max`, whose
/// SHA-256 is `sha256`.
pub fn verify_bundle(field: &str, json: &[u8], sha256: &str, bytes_max: usize) -> Result<(), DomainError> {
    let text = std::str::from_utf8(json).map_err(|_| DomainError::new(field, "…", "utf8", "must be UTF-8"))?;
    check_object(field, text, bytes_max)?;
    let actual = sha256_hex(json);
    if actual != sha256 {
        let rule = format!("content hashes to {actual}, not to the declared sha256 {sha256}");
        return Err(DomainError::new(field, "…", "sha256", rule));
    }
    Ok(())
}

/// The files of a tenant directory, as problems name them.
pub const CONFIG_FILE: &str = "config.json";
pub const THEME_FILE: &str = "theme.json";

/// The file an integration comes from.
pub fn integration_file(name: &str) -> String {
    format!("integrations/{name}.json")
}

/// A lowercase DNS name (`a.b.c`, labels of a-z 0-9 -), or `*.name` when
/// `wildcard_allowed` and `name` has at least two labels.
pub fn is_host_pattern(text: &str, wildcard_allowed: bool) -> bool {
    let name = match text.strip_prefix("*.") {
        // A wildcard covers names under a registered domain, never a whole
        // top-level domain (`*.com`).
        Some(rest) if wildcard_allowed && rest.contains('.') => rest,
        _ => text,
    };
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `local@domain`, with a dotted lowercase domain.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else { return false };
    text.len() <= 254
        && !local.is_empty()
        && local.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".+_-".contains(&byte))
        && domain.contains('.')
        && is_host_pattern(domain, false)
}

/// Words that make a key name a secret's name, compared after lowercasing
/// and removing `_`, `-` and `.`.
pub const SECRET_KEY_WORDS: &[&str] = &[
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "apikey",
    "privatekey",
    "accesskey",
    "credential",
    "signingkey",
    "sessionkey",
];

/// Whether a key names a secret.
pub fn is_secret_key(key: &str) -> bool {
    let normalized: String =
        key.chars().filter(|c| !matches!(c, '_' | '-' | '.')).flat_map(char::to_lowercase).collect();
    SECRET_KEY_WORDS.iter().any(|word| normalized.contains(word))
}

/// The key of `config.json` that holds the regional variants, one per
/// region (`{"eu-west": {"public": {…}, "theme": {…}}}`); a config repo
/// gives each as its own file, [`region_file`].
pub const REGIONS_KEY: &str = "regions";

/// The file of a regional variant, relative to the tenant directory.
pub fn region_file(region: &str) -> String {
    format!("regions/{region}.json")
}

/// Applies an RFC 7386 merge patch: objects merge key by key, `null`
/// removes a key, anything else replaces. Linear in the patch's size.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (value, target.get_mut(key)) {
            (Value::Null, _) => {
                target.remove(key);
            }
            (Value::Object(patch), Some(Value::Object(target))) => merge_patch(target, patch),
            (Value::Object(patch), _) => {
                let mut merged = Map::new();
                merge_patch(&mut merged, patch);
                target.insert(key.clone(), Value::Object(merged));
            }
            (value, _) => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// A region name in a document, as the placement rules read it.
pub(crate) fn region(value: &Value, pointer: &str) -> Result<Region, Problem> {
    let text = value.as_str().ok_or_else(|| {
        Problem::new(CONFIG_FILE, pointer, "region-name", format!("{} is not a region name", shown(value)))
    })?;
    Region::parse(text).map_err(|error| Problem::new(CONFIG_FILE, pointer, error.rule_id, error.rule))
}

/// One broken rule: the file, the JSON pointer inside it, the rule's id and
/// a message that says what is allowed. Displays as
/// `tenants/acme/theme.json: /colors/primary: "#12345" is not a #rrggbb color`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the tenant directory (`config.json`,
    /// `theme.json`, `integrations/{name}.json`, `branding/logo.svg`) until
    /// [`Problem::in_dir`] prefixes it.
    pub file: String,
    /// RFC 6901 pointer into the file; empty for the whole file.
    pub pointer: String,
    /// A short machine-readable name of the rule, e.g. `color`.
    pub rule: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(file: &str, pointer: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        Self { file: file.to_owned(), pointer: pointer.into(), rule, message: message.into() }
    }

    /// The same problem with its file under `dir` (e.g. `tenants/acme`).
    pub fn in_dir(mut self, dir: &str) -> Self {
        self.file = format!("{dir}/{}", self.file);
        self
    }

    /// The registry's name of the request field at fault: `documents.config`,
    /// `documents.theme` or `documents.integrations`, then the pointer (an
    /// integration's pointer starts with its name, a regional variant's
    /// with `/regions/{region}`).
    pub fn registry_field(&self) -> String {
        let (document, prefix) = if let Some((_, name)) = self.file.rsplit_once("integrations/") {
            ("integrations", format!("/{}", name.trim_end_matches(".json")))
        } else if let Some((_, region)) = self.file.rsplit_once("regions/") {
            ("config", format!("/{REGIONS_KEY}/{}", region.trim_end_matches(".json")))
        } else if self.file.ends_with("theme.json") || self.file.contains("branding/") {
            ("theme", String::new())
        } else {
            ("config", String::new())
        };
        format!("documents.{document}{prefix}{}", self.pointer)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.pointer, self.message)
        }
    }
}

/// Appends a key to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub(crate) fn pointer_push(pointer: &str, key: &str) -> String {
    format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// A value shown in an error message, so that an error never echoes a
/// large document or a secret: as JSON text when that is short and holds no
/// string that looks like a key, else by its kind and size.
pub(crate) fn shown(value: &serde_json::Value) -> String {
    const SHOWN_CHARS_MAX: usize = 60;
    fn no_key(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(text) => !looks_random(text),
            serde_json::Value::Array(items) => items.iter().all(no_key),
            serde_json::Value::Object(map) => map.iter().all(|(key, value)| !looks_random(key) && no_key(value)),
            _ => true,
        }
    }
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS_MAX && no_key(value) {
        text
    } else {
        described(value)
    }
}

/// A value described without its content, for fields that may hold a
/// secret by mistake (a password where its hash belongs).
pub(crate) fn described(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(text) => format!("a string of {} characters", text.chars().count()),
        Value::Object(map) => format!("an object of {} keys", map.len()),
        Value::Array(items) => format!("an array of {} items", items.len()),
        _ => value.to_string(),
    }
}

/// A tenant's three documents, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Documents {
    pub config: Map<String, Value>,
    pub theme: Map<String, Value>,
    /// Integration name → its object (one file `integrations/{name}.json` each).
    pub integrations: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_only_within_the_limit() {
        assert!(parse_object("doc", r#"{"a":1}"#, 100).is_ok());
        assert_eq!(parse_object("doc", "[1]", 100).expect_err("array").rule_id, "json-object");
        assert_eq!(parse_object("doc", "{", 100).expect_err("broken").rule_id, "json");
        let error = parse_object("doc", r#"{"a":"long"}"#, 5).expect_err("big");
        assert_eq!(error.rule_id, "size");
        assert_eq!(error.to_string(), "doc `…`: 12 bytes is over the limit of 5 bytes");
    }

    #[test]
    fn check_object_agrees_with_parse_object() {
        for text in [r#"{"a":[1,{"b":null}]}"#, " {} ", "[1]", "{", "3", r#""{}""#, r#"{"a":1} x"#, ""] {
            let parsed = parse_object("doc", text, 100).map(drop).map_err(|error| error.rule_id);
            let checked = check_object("doc", text, 100).map_err(|error| error.rule_id);
            assert_eq!(parsed, checked, "{text:?}");
        }
    }

    #[test]
    fn bundles_must_match_their_hash() {
        let json = br#"{"tenant":"acme"}"#;
        let sha = sha256_hex(json);
        assert!(verify_bundle("public_bundle", json, &sha, 1024).is_ok());
        assert_eq!(verify_bundle("public_bundle", json, &"0".repeat(64), 1024).expect_err("hash").rule_id, "sha256");
        assert_eq!(verify_bundle("public_bundle", b"\xff", &sha, 1024).expect_err("utf8").rule_id, "utf8");
    }
}
