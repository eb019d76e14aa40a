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

use crate::document::{is_email, is_host_pattern, is_secret_key, CONFIG_FILE, THEME_FILE};
use crate::limits::{ENTROPY_BITS_MAX, ENTROPY_CHECK_CHARS_MIN, HEX_CHECK_CHARS_MIN, HEX_ENTROPY_BITS_MAX};
use crate::{pointer_push, Problem};

/// Secret stores a reference may point into.
pub const REFERENCE_SCHEMES: &[&str] = &["vault:", "env:", "aws-sm:", "gcp-sm:", "azure-kv:"];

/// Pointers (in `file`) whose values are hashes or encoded data by design.
const HASH_FIELDS: &[(&str, &str)] = &[(THEME_FILE, "/logo/data"), (THEME_FILE, "/logo/sha256")];

/// `vault:kv/acme/stripe` and the like: a scheme from [`REFERENCE_SCHEMES`]
/// and a path of `A-Za-z0-9 _ . / -`.
pub fn is_reference(text: &str) -> bool {
    REFERENCE_SCHEMES.iter().any(|scheme| {
        text.strip_prefix(scheme).is_some_and(|path| {
            (1..=256).contains(&path.len())
                && path.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"_./-".contains(&byte))
        })
    })
}

fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// Shannon entropy of `text` in bits per character, in fixed point
/// ([`ENTROPY_ONE_BIT`] is one bit). Integer arithmetic only, so every
/// replica and every build computes the same value: the verdict is part of
/// apply.
pub fn entropy_bits(text: &str) -> u64 {
    // Counts per character, in a sorted map (a fixed order; the sum is exact
    // anyway in integers). ASCII, the common case, without a map.
    let counts: Vec<u64> = if text.is_ascii() {
        let mut counts = [0u64; 128];
        for byte in text.bytes() {
            counts[usize::from(byte)] += 1;
        }
        counts.into_iter().filter(|count| *count > 0).collect()
    } else {
        let mut counts = std::collections::BTreeMap::<char, u64>::new();
        for c in text.chars() {
            *counts.entry(c).or_default() += 1;
        }
        counts.into_values().collect()
    };
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0;
    }
    // H = log2(N) - (1/N) * sum(c * log2(c))
    let weighted: u128 = counts.iter().map(|&count| u128::from(count) * u128::from(log2_fixed(count))).sum();
    log2_fixed(total).saturating_sub((weighted / u128::from(total)) as u64)
}

/// One bit in the fixed point of [`entropy_bits`].
pub const ENTROPY_ONE_BIT: u64 = 1 << 32;

/// log2(x) with 32 fractional bits, by repeated squaring of the mantissa.
fn log2_fixed(x: u64) -> u64 {
    if x <= 1 {
        return 0;
    }
    let integer = 63 - u64::from(x.leading_zeros());
    // The mantissa in [1, 2) with 62 fractional bits.
    let mut mantissa: u128 = (u128::from(x) << 62) >> integer;
    let one: u128 = 1 << 62;
    let mut fraction = 0u64;
    for bit in (0..32).rev() {
        mantissa = (mantissa * mantissa) >> 62;
        if mantissa >= 2 * one {
            mantissa >>= 1;
            fraction |= 1 << bit;
        }
    }
    (integer << 32) | fraction
}

/// Bits per character with one decimal, for messages.
pub fn entropy_shown(bits: u64) -> String {
    let tenths = (bits * 10 + ENTROPY_ONE_BIT / 2) / ENTROPY_ONE_BIT;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Whether `text` looks like a key or token: long, without whitespace, not
/// a URL, reference, e-mail address or host name, and as random as one.
pub fn looks_random(text: &str) -> bool {
    let chars = text.chars().count();
    if chars < ENTROPY_CHECK_CHARS_MIN
        || text.chars().any(char::is_whitespace)
        || is_url(text)
        || is_reference(text)
        || is_email(text)
        || is_host_pattern(text, true)
    {
        return false;
    }
    let entropy = entropy_bits(text);
    if text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return chars >= HEX_CHECK_CHARS_MIN && entropy >= HEX_ENTROPY_BITS_MAX * ENTROPY_ONE_BIT;
    }
    entropy >= ENTROPY_BITS_MAX * ENTROPY_ONE_BIT
}

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
