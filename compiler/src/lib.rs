//! The config compiler: one library for every place that judges tenant
//! documents. regctl runs it over the config repo before anything is
//! published, the registry runs it again on every write (so a client that
//! skips regctl gets the same refusals), and agents run its public-bundle
//! check on apply.
//!
//! [`validate_documents`] runs every rule over a tenant's documents:
//!
//! * [`document`]: the bottom every rule module builds on and the only one
//!   they import (with [`limits`]): JSON objects and bundles, [`Problem`],
//!   and the names and predicates the rules share;
//! * [`placement`]: the placement a tenant asks for (regions, pins);
//! * [`regions`]: regional variants of the public parts, each region's
//!   merge judged by every rule;
//! * [`schema`]: the shape of `config.json`, `theme.json` and each
//!   integration, with JSON-pointer paths in errors;
//! * [`secrets`]: no secrets anywhere: secret-looking key names and
//!   high-entropy values are refused; private config may hold references;
//! * [`endpoints`]: every URL and custom domain matches the tenant's
//!   `allowedHosts` and is never an internal address (SSRF guard);
//! * [`logo`]: logos by magic bytes, size and dimensions; its child
//!   [`logo::svg`]: an XML tokenizer and allowlists, so no scripts or
//!   external references;
//! * [`bundle`]: the deterministic, content-hashed public and private
//!   bundles; [`check_public_bundle`] is the agents' check of one;
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
pub mod regions;
pub mod repo;
pub mod schema;
pub mod secrets;

use serde_json::{Map, Value};

pub use bundle::{compile_bundles, Bundle};
pub use document::{Documents, Problem};

/// Every problem of a tenant's documents, in file order; empty when they
/// may be published. Each regional variant is judged merged (by every rule,
/// as its region serves it); a problem the merge shares with the documents
/// themselves is reported once, for the documents.
pub fn validate_documents(documents: &Documents) -> Vec<Problem> {
    let mut problems = document_rules(documents);
    regions::check_shape(&documents.config, &mut problems);
    for (region, variant) in regions::variants(&documents.config) {
        let (config, theme) = regions::merged(&documents.config, &documents.theme, variant);
        let merged = Documents { config, theme, integrations: Map::new() };
        let file = document::region_file(region);
        let found: Vec<Problem> = document_rules(&merged)
            .into_iter()
            .filter(|problem| {
                !problems.iter().any(|known| {
                    (&known.file, &known.pointer, known.rule) == (&problem.file, &problem.pointer, problem.rule)
                })
            })
            .map(|problem| {
                // The variant's file mirrors the merged documents: `/public/…`
                // as in config.json, `/theme/…` for theme.json's keys.
                let pointer = match problem.file.as_str() {
                    document::THEME_FILE => format!("/theme{}", problem.pointer),
                    _ => problem.pointer,
                };
                Problem { file: file.clone(), pointer, ..problem }
            })
            .collect();
        problems.extend(found);
    }
    problems
}

/// The rules over one set of documents.
fn document_rules(documents: &Documents) -> Vec<Problem> {
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
    if let Some(request) = documents.config.get("placement") {
        if let Err(error) = placement::requested(request) {
            problems.push(error);
        }
    }
    if let Some(embedded) = documents.theme.get("logo") {
        if let Err(problem) = logo::check_embedded(embedded) {
            problems.push(problem);
        }
    }
    problems
}

/// An agent's check of a public bundle it is about to serve: exactly the
/// public parts (tenant, config, theme, regional variants), and no secrets
/// in them as any region serves them.
pub fn check_public_bundle(json: &[u8]) -> Result<(), Problem> {
    let refuse = |rule: &'static str, message: &str| Problem::new("public_bundle", "", rule, message);
    let Ok(Value::Object(bundle)) = serde_json::from_slice::<Value>(json) else {
        return Err(refuse("json-object", "is not a JSON object"));
    };
    const KEYS: &[&str] = &["tenant", "config", "theme", document::REGIONS_KEY];
    if let Some(key) = bundle.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(Problem::new(
            "public_bundle",
            document::pointer_push("", key),
            "public-scope",
            "a public bundle holds tenant, config, theme and regions only",
        ));
    }
    let mut problems = Vec::new();
    let mut check = |(public, theme): (Value, Value)| {
        let mut config = Map::new();
        config.insert("public".to_owned(), public);
        secrets::check(document::CONFIG_FILE, &config, &mut problems);
        if let Value::Object(theme) = theme {
            secrets::check(document::THEME_FILE, &theme, &mut problems);
        }
    };
    // As served where no variant applies (no region is named ""), then as
    // each region with a variant serves it.
    check(regions::merged_public(&bundle, ""));
    for region in bundle.get(document::REGIONS_KEY).and_then(Value::as_object).into_iter().flat_map(Map::keys) {
        check(regions::merged_public(&bundle, region));
    }
    match problems.into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}
