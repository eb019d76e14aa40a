//! A config repo on disk, read and compiled:
//!
//! ```text
//! tenants/{id}/config.json          features, API base, SLA tier, placement request, allowedHosts
//! tenants/{id}/theme.json           colors, logo URL, texts
//! tenants/{id}/integrations/*.json  one object per integration, named by the file
//! tenants/{id}/regions/{region}.json a regional variant: {"public": {…}, "theme": {…}}
//!                                   merged over the public parts in that region
//! branding/{id}/logo.(svg|png|jpg|webp)
//! golden.txt                        tenants that get deep smoke tests, one per line
//! ```
//!
//! [`compile_repo`] reports every problem of every file at once, so one run
//! shows all that must be fixed; it returns bundles only for a clean repo.

use std::fs;
use std::io::Read;
use std::path::Path;

use proto::TenantId;
use serde_json::{Map, Value};

use crate::document::{CONFIG_FILE, REGIONS_KEY, THEME_FILE};
use crate::limits::{DOCUMENT_BYTES_MAX, LOGO_BYTES_MAX, REPO_TENANTS_MAX};
use crate::logo::LOGO_EXTENSIONS;
use crate::{compile_bundles, logo, validate_documents, Bundle, Documents, Problem};

/// The file that lists golden tenants.
pub const GOLDEN_FILE: &str = "golden.txt";

/// One tenant, compiled: canonical document texts (what the registry
/// stores) and the bundles they give.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledTenant {
    pub id: TenantId,
    pub config: String,
    pub theme: String,
    pub integrations: String,
    pub public: Bundle,
    pub private: Bundle,
}

impl CompiledTenant {
    pub fn compile(id: TenantId, documents: &Documents) -> Self {
        let (public, private) = compile_bundles(id.as_str(), documents);
        let text = |map: &Map<String, Value>| Value::Object(map.clone()).to_string();
        Self {
            config: text(&documents.config),
            theme: text(&documents.theme),
            integrations: text(&documents.integrations),
            id,
            public,
            private,
        }
    }
}

/// A compiled repo: tenants sorted by id, and the golden ones.
#[derive(Debug, Clone, Default)]
pub struct CompiledRepo {
    pub tenants: Vec<CompiledTenant>,
    pub golden: Vec<TenantId>,
}

/// Reads a regular file of at most `bytes_max` bytes. Symbolic links and
/// special files (a link to `/dev/zero`, a FIFO) are refused before they
/// are opened, and no more than `bytes_max + 1` bytes are ever read.
fn read(path: &Path, name: &str, bytes_max: usize, problems: &mut Vec<Problem>) -> Option<Vec<u8>> {
    let mut refuse = |rule: &'static str, message: String| {
        problems.push(Problem::new(name, "", rule, message));
        None
    };
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return refuse("symlink", "is a symbolic link: a config repo holds regular files only".to_owned())
        }
        Ok(metadata) if !metadata.is_file() => {
            return refuse("not-a-file", "is not a regular file: a config repo holds regular files only".to_owned())
        }
        Ok(_) => {}
        Err(error) => return refuse("read", error.to_string()),
    }
    let mut bytes = Vec::new();
    let read = fs::File::open(path).and_then(|file| file.take(bytes_max as u64 + 1).read_to_end(&mut bytes));
    match read {
        Err(error) => refuse("read", error.to_string()),
        Ok(_) if bytes.len() > bytes_max => refuse("size", format!("is over the limit of {bytes_max} bytes")),
        Ok(_) => Some(bytes),
    }
}

fn read_object(path: &Path, name: &str, problems: &mut Vec<Problem>) -> Option<Map<String, Value>> {
    let bytes = read(path, name, DOCUMENT_BYTES_MAX, problems)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Some(map),
        Ok(_) => {
            problems.push(Problem::new(name, "", "json-object", "is not a JSON object"));
            None
        }
        Err(error) => {
            problems.push(Problem::new(name, "", "json", format!("is not valid JSON: {error}")));
            None
        }
    }
}

/// The entries of a directory, sorted by name; none if it does not exist.
fn entries(dir: &Path, name: &str, problems: &mut Vec<Problem>) -> Vec<(String, std::path::PathBuf)> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut found: Vec<(String, std::path::PathBuf)> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry))
            .filter(|(file, _)| !file.starts_with('.'))
            .filter(|(file, entry)| {
                // A link could lead out of the repo or into /dev: not followed.
                let link = entry.file_type().is_ok_and(|kind| kind.is_symlink());
                if link {
                    let message = "is a symbolic link: a config repo holds regular files only";
                    problems.push(Problem::new(&format!("{name}/{file}"), "", "symlink", message));
                }
                !link
            })
            .map(|(file, entry)| (file, entry.path()))
            .collect(),
        Err(error) => {
            problems.push(Problem::new(name, "", "read", error.to_string()));
            Vec::new()
        }
    };
    found.sort();
    found
}

/// Reads one tenant directory (and its branding) into documents.
fn read_tenant(repo: &Path, id: &str, problems: &mut Vec<Problem>) -> Option<Documents> {
    let dir = repo.join("tenants").join(id);
    let prefix = format!("tenants/{id}");
    let before = problems.len();
    let mut documents = Documents::default();
    let mut variants = Map::new();
    for (file, path) in entries(&dir, &prefix, problems) {
        let name = format!("{prefix}/{file}");
        match file.as_str() {
            CONFIG_FILE => documents.config = read_object(&path, &name, problems).unwrap_or_default(),
            THEME_FILE => documents.theme = read_object(&path, &name, problems).unwrap_or_default(),
            "regions" => {
                for (file, path) in entries(&path, &name, problems) {
                    let name = format!("{prefix}/regions/{file}");
                    let region = file.strip_suffix(".json").filter(|region| proto::Region::parse(region).is_ok());
                    match region {
                        Some(region) => {
                            if let Some(object) = read_object(&path, &name, problems) {
                                variants.insert(region.to_owned(), Value::Object(object));
                            }
                        }
                        None => problems.push(Problem::new(
                            &name,
                            "",
                            "unknown-file",
                            "regional variants are {region}.json files, named by a region (e.g. eu-west.json)",
                        )),
                    }
                }
            }
            "integrations" => {
                for (file, path) in entries(&path, &name, problems) {
                    let name = format!("{prefix}/integrations/{file}");
                    match file.strip_suffix(".json") {
                        Some(integration) => {
                            if let Some(object) = read_object(&path, &name, problems) {
                                documents.integrations.insert(integration.to_owned(), Value::Object(object));
                            }
                        }
                        None => problems.push(Problem::new(&name, "", "unknown-file", "integrations are *.json files")),
                    }
                }
            }
            _ => problems.push(Problem::new(
                &name,
                "",
                "unknown-file",
                "a tenant directory holds config.json, theme.json, integrations/ and regions/",
            )),
        }
    }
    if documents.config.contains_key(REGIONS_KEY) {
        let message = format!("regional variants are files {prefix}/regions/{{region}}.json, not a key of config.json");
        problems.push(Problem::new(&format!("{prefix}/{CONFIG_FILE}"), "/regions", "variant-source", message));
    } else if !variants.is_empty() {
        documents.config.insert(REGIONS_KEY.to_owned(), Value::Object(variants));
    }
    if !dir.join(CONFIG_FILE).is_file() {
        problems.push(Problem::new(
            &format!("{prefix}/{CONFIG_FILE}"),
            "",
            "required",
            "every tenant has a config.json",
        ));
        return None;
    }
    let branding = repo.join("branding").join(id);
    let logos: Vec<_> = entries(&branding, &format!("branding/{id}"), problems);
    for (file, path) in &logos {
        let name = format!("branding/{id}/{file}");
        let extension = file.strip_prefix("logo.").filter(|_| logos.len() == 1);
        let Some(extension) = extension else {
            let message = format!("a tenant's branding is one file logo.({})", LOGO_EXTENSIONS.join("|"));
            problems.push(Problem::new(&name, "", "unknown-file", message));
            continue;
        };
        if documents.theme.contains_key("logo") {
            let message = format!("theme.json's logo comes from {name}; remove it from theme.json");
            problems.push(Problem::new(&format!("{prefix}/{THEME_FILE}"), "/logo", "logo-source", message));
            continue;
        }
        let Some(bytes) = read(path, &name, LOGO_BYTES_MAX, problems) else { continue };
        match logo::compile(extension, &bytes) {
            Ok(embedded) => {
                documents.theme.insert("logo".to_owned(), embedded);
            }
            Err((rule, message)) => problems.push(Problem::new(&name, "", rule, message)),
        }
    }
    // Integrations are stored as one document; its size counts too.
    let integrations_bytes = Value::Object(documents.integrations.clone()).to_string().len();
    if integrations_bytes > DOCUMENT_BYTES_MAX {
        let message = format!("{integrations_bytes} bytes together is over the limit of {DOCUMENT_BYTES_MAX} bytes");
        problems.push(Problem::new(&format!("{prefix}/integrations"), "", "size", message));
    }
    let theme_bytes = Value::Object(documents.theme.clone()).to_string().len();
    if theme_bytes > DOCUMENT_BYTES_MAX {
        let message = format!("{theme_bytes} bytes with the logo is over the limit of {DOCUMENT_BYTES_MAX} bytes");
        problems.push(Problem::new(&format!("{prefix}/{THEME_FILE}"), "", "size", message));
    }
    problems.extend(validate_documents(&documents).into_iter().map(|problem| {
        // A logo problem is the branding file's.
        match logos.first() {
            Some((file, _)) if problem.file == THEME_FILE && problem.pointer == "/logo" => {
                Problem { file: format!("branding/{id}/{file}"), pointer: String::new(), ..problem }
            }
            _ => problem.in_dir(&prefix),
        }
    }));
    (problems.len() == before).then_some(documents)
}

/// Reads and compiles one tenant of the repo at `dir` (for a canary).
pub fn compile_tenant(dir: &Path, id: &TenantId) -> Result<CompiledTenant, Vec<Problem>> {
    let mut problems = Vec::new();
    if !dir.join("tenants").join(id.as_str()).is_dir() {
        let message = format!("{} has no tenants/{id} directory", dir.display());
        return Err(vec![Problem::new(&format!("tenants/{id}"), "", "required", message)]);
    }
    match read_tenant(dir, id.as_str(), &mut problems) {
        Some(documents) if problems.is_empty() => Ok(CompiledTenant::compile(id.clone(), &documents)),
        _ => Err(problems),
    }
}

/// Reads and compiles the repo at `dir`; every problem, or the compiled repo.
pub fn compile_repo(dir: &Path) -> Result<CompiledRepo, Vec<Problem>> {
    let mut problems = Vec::new();
    let tenants_dir = dir.join("tenants");
    if !tenants_dir.is_dir() {
        return Err(vec![Problem::new(
            "tenants",
            "",
            "required",
            format!("{} has no tenants/ directory", dir.display()),
        )]);
    }
    let ids = entries(&tenants_dir, "tenants", &mut problems);
    if ids.len() > REPO_TENANTS_MAX {
        let message = format!("{} tenants is over the limit of {REPO_TENANTS_MAX}", ids.len());
        return Err(vec![Problem::new("tenants", "", "count", message)]);
    }
    let mut repo = CompiledRepo::default();
    for (name, path) in &ids {
        if !path.is_dir() {
            problems.push(Problem::new(
                &format!("tenants/{name}"),
                "",
                "unknown-file",
                "tenants/ holds one directory per tenant",
            ));
            continue;
        }
        let id = match TenantId::parse(name) {
            Ok(id) => id,
            Err(error) => {
                problems.push(Problem::new(
                    &format!("tenants/{name}"),
                    "",
                    error.rule_id,
                    format!("the directory name is the tenant id: {}", error.rule),
                ));
                continue;
            }
        };
        if let Some(documents) = read_tenant(dir, name, &mut problems) {
            repo.tenants.push(CompiledTenant::compile(id, &documents));
        }
    }
    for (name, _) in entries(&dir.join("branding"), "branding", &mut problems) {
        if !ids.iter().any(|(id, _)| *id == name) {
            problems.push(Problem::new(
                &format!("branding/{name}"),
                "",
                "unknown-tenant",
                "no tenants/ directory has this name",
            ));
        }
    }
    let golden_path = dir.join(GOLDEN_FILE);
    if golden_path.is_file() {
        let text = read(&golden_path, GOLDEN_FILE, DOCUMENT_BYTES_MAX, &mut problems)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        for (number, line) in text.unwrap_or_default().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match TenantId::parse(line) {
                Ok(id) if ids.iter().any(|(name, _)| name == id.as_str()) => repo.golden.push(id),
                _ => problems.push(Problem::new(
                    GOLDEN_FILE,
                    format!("line {}", number + 1),
                    "unknown-tenant",
                    format!("{line:?} is not a tenant of this repo"),
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(repo)
    } else {
        Err(problems)
    }
}
