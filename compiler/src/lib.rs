//! The config compiler: one library for every place that judges tenant
//! documents. regctl runs it over the config repo before anything is
//! published, the registry runs it again on every write (so a client that
//! skips regctl gets the same refusals), and agents run its public-bundle
//! check on apply.
//!
//! [`validate_documents`] runs every rule over a tenant's documents:
//!
//! * [`document`]: the bottom every rule module builds on: JSON objects and
//!   bundles, and the names and predicates the rules share;
//! * [`schema`]: the shape of `config.json`, `theme.json` and each
//!   integration, with JSON-pointer paths in errors;
//! * [`secrets`]: no secrets anywhere: secret-looking key names and
//!   high-entropy values are refused; private config may hold references;
//! * [`endpoints`]: every URL and custom domain matches the tenant's
//!   `allowedHosts` and is never an internal address (SSRF guard);
//! * [`logo`]: logos by magic bytes, size and dimensions; [`svg`]: an XML
//!   tokenizer and allowlists, so no scripts or external references;
//! * [`bundle`]: the deterministic, content-hashed public and private bundles;
//! * [`repo`]: reading and compiling a config repo directory;
//! * [`generate`]: valid repos of any size, for tests and benchmarks.
//!
//! Architecture Invariant: pure functions of their input (no clock, no
//! network); the same documents always give the same verdict and the same
//! bundle bytes.

pub mod bundle;
pub mod document;
pub mod endpoints;
pub mod generate;
pub mod limits;
pub mod logo;
pub mod placement;
pub mod repo;
pub mod schema;
pub mod secrets;
pub mod svg;

use std::fmt;

use serde_json::Value;

pub use bundle::{compile_bundles, Bundle};
pub use schema::Documents;

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
    /// integration's pointer starts with its name).
    pub fn registry_field(&self) -> String {
        let (document, prefix) = match self.file.rsplit_once("integrations/") {
            Some((_, name)) => ("integrations", format!("/{}", name.trim_end_matches(".json"))),
            None if self.file.ends_with("theme.json") || self.file.contains("branding/") => ("theme", String::new()),
            None => ("config", String::new()),
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

/// Every problem of a tenant's documents, in file order; empty when they
/// may be published.
pub fn validate_documents(documents: &Documents) -> Vec<Problem> {
    let mut problems = Vec::new();
    schema::check_config(&documents.config, &mut problems);
    schema::check_theme(&documents.theme, &mut problems);
    schema::check_integrations(&documents.integrations, &mut problems);

    secrets::check(document::CONFIG_FILE, &documents.config, &mut problems);
    secrets::check(document::THEME_FILE, &documents.theme, &mut problems);
    for (name, integration) in &documents.integrations {
        if let Value::Object(integration) = integration {
            secrets::check(&document::integration_file(name), integration, &mut problems);
        }
    }

    let allowlist = endpoints::Allowlist::from_config(&documents.config);
    endpoints::check_urls(document::CONFIG_FILE, &documents.config, &allowlist, &mut problems);
    endpoints::check_urls(document::THEME_FILE, &documents.theme, &allowlist, &mut problems);
    for (name, integration) in &documents.integrations {
        if let Value::Object(integration) = integration {
            endpoints::check_urls(&document::integration_file(name), integration, &allowlist, &mut problems);
        }
    }
    if let Some(Value::Array(domains)) = documents.config.get("customDomains") {
        for (index, domain) in domains.iter().enumerate() {
            // A malformed name is the schema's problem, reported once.
            if let Some(domain) = domain.as_str().filter(|domain| document::is_host_pattern(domain, false)) {
                if let Err((rule, message)) = endpoints::check_host(domain, &allowlist) {
                    problems.push(Problem::new(
                        document::CONFIG_FILE,
                        format!("/customDomains/{index}"),
                        rule,
                        message,
                    ));
                }
            }
        }
    }
    if let Some(embedded) = documents.theme.get("logo") {
        if let Err(problem) = logo::check_embedded(embedded) {
            problems.push(problem);
        }
    }
    problems
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
            serde_json::Value::String(text) => !secrets::looks_random(text),
            serde_json::Value::Array(items) => items.iter().all(no_key),
            serde_json::Value::Object(map) => {
                map.iter().all(|(key, value)| !secrets::looks_random(key) && no_key(value))
            }
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
