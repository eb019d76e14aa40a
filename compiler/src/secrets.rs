//! No secrets in any document. Two rules, run over every key and string:
//!
//! * a key whose name says "secret" (`secret`, `password`, `token`,
//!   `api_key`, `private_key`, …) may hold only a URL (an endpoint such as
//!   `token_url`) or, in private documents, a reference to a secret store
//!   (`vault:kv/acme/stripe`): never a value;
//! * a string that looks random (high Shannon entropy, like a key or a
//!   token) is refused wherever it is, except in the fields that hold
//!   hashes by design (a logo's content hash and data, demo users'
//!   password verifiers).
//!
//! Public documents (`config.public`, `theme.json`) hold no references
//! either: a vault path is an internal detail.

use serde_json::{Map, Value};

use crate::document::{
    entropy_bits, entropy_shown, is_reference, is_secret_key, is_url, looks_random, pointer_push, Problem, CONFIG_FILE,
    THEME_FILE,
};

/// Pointers (in `file`) whose values are hashes or encoded data by design.
const HASH_FIELDS: &[(&str, &str)] = &[(THEME_FILE, "/logo/data"), (THEME_FILE, "/logo/sha256")];

/// Runs both rules over one document (`file` says which, and so whether it
/// is public).
pub fn check(file: &str, document: &Map<String, Value>, problems: &mut Vec<Problem>) {
    for (key, value) in document {
        // In config.json only `public` is public. The schema holds `demoUsers`
        // to password verifiers and `secrets` to references.
        let public = file == THEME_FILE || (file == CONFIG_FILE && key == "public");
        if file == CONFIG_FILE && (key == "demoUsers" || key == "secrets") {
            continue;
        }
        walk(file, public, &pointer_push("", key), key, value, false, problems);
    }
}

fn walk(
    file: &str,
    public: bool,
    pointer: &str,
    key: &str,
    value: &Value,
    under_secret: bool,
    problems: &mut Vec<Problem>,
) {
    let secret_named = under_secret || is_secret_key(key);
    match value {
        Value::Object(map) => {
            for (child, value) in map {
                walk(file, public, &pointer_push(pointer, child), child, value, secret_named, problems);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                walk(file, public, &format!("{pointer}/{index}"), key, value, secret_named, problems);
            }
        }
        Value::String(text) => {
            if HASH_FIELDS.contains(&(file, pointer)) {
                return;
            }
            let reference = is_reference(text);
            if reference && public {
                let message = "a public document holds no secret references: they are for private config";
                problems.push(Problem::new(file, pointer, "secret-reference", message));
            } else if secret_named && !is_url(text) && !reference {
                let message = format!(
                    "{key:?} names a secret: documents hold no secrets{}",
                    if public { "" } else { "; private config may hold a reference such as \"vault:kv/acme/stripe\"" }
                );
                problems.push(Problem::new(file, pointer, "secret-key", message));
            } else if looks_random(text) {
                let message = format!(
                    "looks like a key or token ({} bits of entropy per character): documents hold no secrets",
                    entropy_shown(entropy_bits(text))
                );
                problems.push(Problem::new(file, pointer, "high-entropy", message));
            }
        }
        Value::Number(_) | Value::Bool(_) if secret_named => {
            let message = format!("{key:?} names a secret: documents hold no secrets, not even as a number or flag");
            problems.push(Problem::new(file, pointer, "secret-key", message));
        }
        _ => {}
    }
}
