//! The config repo as regctl uses it: compiled (every problem printed, and
//! nothing sent when there is one), turned into registry documents, and
//! compared with the registry.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use compiler::repo::{compile_repo, compile_tenant, CompiledRepo, CompiledTenant};
use proto::v1;
use proto::TenantId;
pub(super) use registry_client::workflows::publish::documents;
use registry_client::workflows::publish::is_live;
use serde_json::Value;

use super::output::{self, DiffRow, Format};
use super::Failure;

fn refused(problems: &[compiler::Problem], dir: &Path, format: Format) -> Failure {
    output::problems(problems, format);
    Failure(format!("{} problems in {}; nothing was sent to the registry", problems.len(), dir.display()))
}

/// Compiles the repo at `dir`.
pub(super) fn compile(dir: &Path, format: Format) -> Result<CompiledRepo, Failure> {
    compile_repo(dir).map_err(|problems| refused(&problems, dir, format))
}

/// Compiles one tenant of the repo at `dir`.
pub(super) fn compile_one(dir: &Path, tenant: &TenantId, format: Format) -> Result<CompiledTenant, Failure> {
    compile_tenant(dir, tenant).map_err(|problems| refused(&problems, dir, format))
}

/// Per tenant: added, changed (with each changed JSON path), unchanged, or
/// only in the registry.
pub(super) fn diff(repo: &CompiledRepo, live: &[v1::Tenant]) -> Vec<DiffRow> {
    let live_by_id: HashMap<&str, &v1::Tenant> = live.iter().map(|tenant| (tenant.id.as_str(), tenant)).collect();
    let mut rows: Vec<DiffRow> = repo
        .tenants
        .iter()
        .map(|compiled| match live_by_id.get(compiled.id.as_str()) {
            None => DiffRow { tenant: compiled.id.to_string(), state: "added", changes: Vec::new() },
            Some(tenant) if is_live(compiled, tenant) => {
                DiffRow { tenant: tenant.id.clone(), state: "unchanged", changes: Vec::new() }
            }
            Some(tenant) => {
                let mut changes = Vec::new();
                for (document, live_text, repo_text) in [
                    ("config", &tenant.config_json, &compiled.config),
                    ("theme", &tenant.theme_json, &compiled.theme),
                    ("integrations", &tenant.integrations_json, &compiled.integrations),
                ] {
                    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
                    json_changes(
                        document,
                        String::new(),
                        Some(&parse(live_text)),
                        Some(&parse(repo_text)),
                        &mut changes,
                    );
                }
                DiffRow { tenant: tenant.id.clone(), state: "changed", changes }
            }
        })
        .collect();
    let in_repo: HashSet<&str> = repo.tenants.iter().map(|compiled| compiled.id.as_str()).collect();
    for tenant in live.iter().filter(|tenant| !in_repo.contains(tenant.id.as_str())) {
        rows.push(DiffRow { tenant: tenant.id.clone(), state: "only in registry", changes: Vec::new() });
    }
    rows
}

type Changes = Vec<(&'static str, String, Option<Value>, Option<Value>)>;

/// The JSON paths where `live` and `repo` differ: objects are compared key by
/// key, anything else as a whole.
fn json_changes(
    document: &'static str,
    pointer: String,
    live: Option<&Value>,
    repo: Option<&Value>,
    out: &mut Changes,
) {
    match (live, repo) {
        (Some(Value::Object(live)), Some(Value::Object(repo))) => {
            let mut keys: Vec<&String> = live.keys().chain(repo.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                json_changes(document, child, live.get(key), repo.get(key), out);
            }
        }
        (live, repo) if live != repo => out.push((document, pointer, live.cloned(), repo.cloned())),
        _ => {}
    }
}
