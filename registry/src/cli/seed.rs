//! Reads the example config repo (`configs/tenants/{id}/config.json`,
//! `theme.json`, `integrations/*.json`) into tenant documents, to seed an
//! empty cluster. The config pipeline's compiler will replace this minimal
//! reader; the registry validates every document again on write.

use std::fs;
use std::path::Path;

use proto::v1;
use serde_json::{Map, Value};

use super::Failure;

/// One tenant directory of the config repo.
pub(super) struct SeedTenant {
    pub(super) id: String,
    pub(super) documents: v1::Documents,
}

fn read_json(path: &Path) -> Result<Value, Failure> {
    let text = fs::read_to_string(path).map_err(|error| Failure(format!("{}: {error}", path.display())))?;
    serde_json::from_str(&text).map_err(|error| Failure(format!("{}: not valid JSON: {error}", path.display())))
}

/// Every tenant under `configs/tenants`, sorted by id.
pub(super) fn load(configs: &Path) -> Result<Vec<SeedTenant>, Failure> {
    let tenants_dir = configs.join("tenants");
    let entries = fs::read_dir(&tenants_dir).map_err(|error| Failure(format!("{}: {error}", tenants_dir.display())))?;
    let mut tenants = Vec::new();
    for entry in entries {
        let dir = entry.map_err(|error| Failure(format!("{}: {error}", tenants_dir.display())))?.path();
        if !dir.is_dir() {
            continue;
        }
        let id = dir.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_owned();
        let config = read_json(&dir.join("config.json"))?;
        let theme_path = dir.join("theme.json");
        let theme = if theme_path.exists() { Some(read_json(&theme_path)?) } else { None };
        let mut integrations = Map::new();
        let integrations_dir = dir.join("integrations");
        if integrations_dir.is_dir() {
            let mut files: Vec<_> = fs::read_dir(&integrations_dir)
                .map_err(|error| Failure(format!("{}: {error}", integrations_dir.display())))?
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
                .collect();
            files.sort();
            for file in files {
                let name = file.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_owned();
                integrations.insert(name, read_json(&file)?);
            }
        }
        tenants.push(SeedTenant {
            id,
            documents: v1::Documents {
                config_json: Some(config.to_string()),
                theme_json: theme.map(|theme| theme.to_string()),
                integrations_json: Some(Value::Object(integrations).to_string()),
            },
        });
    }
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tenants)
}
