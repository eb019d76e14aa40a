//! The shape of a tenant's documents (documented in
//! `configs/schemas/*.schema.json`, which a test keeps in step with the
//! field lists here). [`crate::validate_documents`] runs it with every
//! other rule.
//!
//! `config.json` may carry application-specific keys beyond the known ones
//! (they still pass the secret and endpoint rules); `theme.json` is a fixed
//! contract with the UI, so an unknown key there is a typo and is refused.

use serde_json::{Map, Value};

use crate::document::{
    described, integration_file, is_email, is_host_pattern, is_reference, pointer_push, shown, Problem, CONFIG_FILE,
    REFERENCE_SCHEMES, THEME_FILE,
};
use crate::limits::{
    ALLOWED_HOSTS_MAX, CUSTOM_DOMAINS_MAX, DEMO_USERS_MAX, INTEGRATIONS_PER_TENANT_MAX, PBKDF2_ITERATIONS_MAX,
    TEXT_CHARS_MAX,
};

/// The known keys of `config.json`, of its `public` object, and of
/// `theme.json` (the schema files list the same).
pub const CONFIG_KEYS: &[&str] =
    &["public", "slaTier", "placement", "limits", "demoUsers", "allowedHosts", "customDomains", "secrets", "regions"];
pub const PUBLIC_KEYS: &[&str] = &["apiBase", "features", "supportEmail", "legalBanner"];
pub const THEME_KEYS: &[&str] = &["colors", "logoUrl", "logo", "texts"];

/// The SLA tiers a tenant may be on.
pub const SLA_TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];

fn problem(problems: &mut Vec<Problem>, file: &str, pointer: &str, rule: &'static str, message: String) {
    problems.push(Problem::new(file, pointer, rule, message));
}

fn object<'a>(
    value: &'a Value,
    file: &str,
    pointer: &str,
    problems: &mut Vec<Problem>,
) -> Option<&'a Map<String, Value>> {
    let object = value.as_object();
    if object.is_none() {
        problem(problems, file, pointer, "json-object", format!("{} is not a JSON object", shown(value)));
    }
    object
}

fn string<'a>(value: &'a Value, file: &str, pointer: &str, problems: &mut Vec<Problem>) -> Option<&'a str> {
    let text = value.as_str();
    if text.is_none() {
        problem(problems, file, pointer, "string", format!("{} is not a string", shown(value)));
    }
    text
}

/// A text shown to users: a string of at most [`TEXT_CHARS_MAX`] characters.
fn user_text(value: &Value, file: &str, pointer: &str, problems: &mut Vec<Problem>) {
    if let Some(text) = string(value, file, pointer, problems) {
        let chars = text.chars().count();
        if chars > TEXT_CHARS_MAX {
            let message = format!("{chars} characters is over the limit of {TEXT_CHARS_MAX}");
            problem(problems, file, pointer, "length", message);
        }
    }
}

pub(crate) fn check_config(config: &Map<String, Value>, problems: &mut Vec<Problem>) {
    const FILE: &str = CONFIG_FILE;
    if let Some(public) = config.get("public").and_then(|public| object(public, FILE, "/public", problems)) {
        if let Some(api_base) = public.get("apiBase") {
            string(api_base, FILE, "/public/apiBase", problems);
        }
        if let Some(features) =
            public.get("features").and_then(|value| object(value, FILE, "/public/features", problems))
        {
            for (name, flag) in features {
                if !flag.is_boolean() {
                    let pointer = pointer_push("/public/features", name);
                    problem(problems, FILE, &pointer, "boolean", format!("{} is not true or false", shown(flag)));
                }
            }
        }
        if let Some(banner) = public.get("legalBanner") {
            user_text(banner, FILE, "/public/legalBanner", problems);
        }
        if let Some(email) = public.get("supportEmail") {
            if let Some(text) = string(email, FILE, "/public/supportEmail", problems) {
                if !is_email(text) {
                    let message = format!("{} is not an e-mail address (local@domain)", shown(email));
                    problem(problems, FILE, "/public/supportEmail", "email", message);
                }
            }
        }
    }
    if let Some(tier) = config.get("slaTier") {
        if !tier.as_str().is_some_and(|tier| SLA_TIERS.contains(&tier)) {
            let message = format!("{} is not one of {}", shown(tier), SLA_TIERS.join(", "));
            problem(problems, FILE, "/slaTier", "enum", message);
        }
    }
    if let Some(limits) = config.get("limits").and_then(|value| object(value, FILE, "/limits", problems)) {
        for (name, limit) in limits {
            if limit.as_u64().is_none_or(|limit| limit > 1_000_000_000) {
                let pointer = pointer_push("/limits", name);
                let message = format!("{} is not a whole number from 0 to 1000000000", shown(limit));
                problem(problems, FILE, &pointer, "limit", message);
            }
        }
    }
    if let Some(users) = config.get("demoUsers").and_then(|value| object(value, FILE, "/demoUsers", problems)) {
        if users.len() > DEMO_USERS_MAX {
            let message = format!("{} users is over the limit of {DEMO_USERS_MAX}", users.len());
            problem(problems, FILE, "/demoUsers", "count", message);
        }
        for (user, hash) in users {
            let pointer = pointer_push("/demoUsers", user);
            if !is_user_name(user) {
                problem(problems, FILE, &pointer, "user-name", "a user name is 1 to 64 of a-z 0-9 . _ -".to_owned());
            }
            if !hash.as_str().is_some_and(is_password_hash) {
                let message = format!(
                    "{} is not a password hash (pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX, at most \
                     {PBKDF2_ITERATIONS_MAX} iterations); documents never hold passwords",
                    described(hash)
                );
                problem(problems, FILE, &pointer, "password-hash", message);
            }
        }
    }
    for (key, max) in [("allowedHosts", ALLOWED_HOSTS_MAX), ("customDomains", CUSTOM_DOMAINS_MAX)] {
        let Some(value) = config.get(key) else { continue };
        let pointer = format!("/{key}");
        let Some(entries) = value.as_array() else {
            problem(problems, FILE, &pointer, "array", format!("{} is not an array of host names", shown(value)));
            continue;
        };
        if entries.len() > max {
            problem(problems, FILE, &pointer, "count", format!("{} entries is over the limit of {max}", entries.len()));
        }
        for (index, entry) in entries.iter().enumerate() {
            let wildcard_allowed = key == "allowedHosts";
            let valid = entry.as_str().is_some_and(|host| is_host_pattern(host, wildcard_allowed));
            if !valid {
                let what = if wildcard_allowed { "a host name or *.domain.tld" } else { "a host name" };
                let message = format!("{} is not {what} (lowercase DNS labels)", shown(entry));
                problem(problems, FILE, &format!("{pointer}/{index}"), "host-name", message);
            }
        }
    }
    if let Some(references) = config.get("secrets").and_then(|value| object(value, FILE, "/secrets", problems)) {
        for (name, reference) in references {
            if !reference.as_str().is_some_and(is_reference) {
                let pointer = pointer_push("/secrets", name);
                let message = format!(
                    "{} is not a secret reference ({}…); the registry holds references, never values",
                    described(reference),
                    REFERENCE_SCHEMES.join("…, ")
                );
                problem(problems, FILE, &pointer, "secret-reference", message);
            }
        }
    }
}

pub(crate) fn check_theme(theme: &Map<String, Value>, problems: &mut Vec<Problem>) {
    const FILE: &str = THEME_FILE;
    for key in theme.keys().filter(|key| !THEME_KEYS.contains(&key.as_str())) {
        let message = format!("unknown field; theme.json holds {}", THEME_KEYS.join(", "));
        problem(problems, FILE, &pointer_push("", key), "unknown-field", message);
    }
    if let Some(colors) = theme.get("colors").and_then(|value| object(value, FILE, "/colors", problems)) {
        for (name, color) in colors {
            if !color.as_str().is_some_and(is_color) {
                let pointer = pointer_push("/colors", name);
                problem(problems, FILE, &pointer, "color", format!("{} is not a #rrggbb color", shown(color)));
            }
        }
    }
    if let Some(url) = theme.get("logoUrl") {
        string(url, FILE, "/logoUrl", problems);
    }
    if let Some(texts) = theme.get("texts").and_then(|value| object(value, FILE, "/texts", problems)) {
        for (name, text) in texts {
            user_text(text, FILE, &pointer_push("/texts", name), problems);
        }
    }
}

pub(crate) fn check_integrations(integrations: &Map<String, Value>, problems: &mut Vec<Problem>) {
    if integrations.len() > INTEGRATIONS_PER_TENANT_MAX {
        let message = format!("{} integrations is over the limit of {INTEGRATIONS_PER_TENANT_MAX}", integrations.len());
        problem(problems, "integrations", "", "count", message);
    }
    for (name, integration) in integrations {
        let file = integration_file(name);
        if !is_integration_name(name) {
            problem(problems, &file, "", "integration-name", "a name is 1 to 63 of a-z 0-9 _ -".to_owned());
        }
        object(integration, &file, "", problems);
    }
}

/// `#rrggbb`.
pub fn is_color(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn is_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"._-".contains(&byte))
}

fn is_integration_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-".contains(&byte))
}

/// `pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`: a verifier, not a secret.
pub fn is_password_hash(text: &str) -> bool {
    let parts: Vec<&str> = text.split('$').collect();
    let hex = |part: &str| {
        !part.is_empty() && part.len().is_multiple_of(2) && part.bytes().all(|byte| byte.is_ascii_hexdigit())
    };
    parts.len() == 4
        && parts[0] == "pbkdf2-sha256"
        && parts[1].parse::<u32>().is_ok_and(|iterations| (1..=PBKDF2_ITERATIONS_MAX).contains(&iterations))
        && hex(parts[2])
        && parts[3].len() == 64
        && hex(parts[3])
}
