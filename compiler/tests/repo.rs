//! Reading and compiling config repos: the example repo, generated repos,
//! a broken repo (every problem at once, with paths), and the schema files
//! in step with the rules.

// Tests may unwrap: a panic is how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use compiler::repo::compile_repo;
use compiler::schema::{CONFIG_KEYS, PUBLIC_KEYS, THEME_KEYS};
use serde_json::Value;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

#[test]
fn the_example_repo_compiles() {
    let repo = compile_repo(&configs()).unwrap_or_else(|problems| panic!("{problems:#?}"));
    assert!(repo.tenants.len() >= 12, "about a dozen example tenants");
    let ids: Vec<&str> = repo.tenants.iter().map(|tenant| tenant.id.as_str()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "sorted by id");
    assert!(!repo.golden.is_empty());
    let acme = repo.tenants.iter().find(|tenant| tenant.id.as_str() == "acme").expect("acme");
    assert!(acme.public.json.contains(r#""mediaType":"image/svg+xml""#), "the branding logo is embedded");
    assert!(!acme.public.json.contains("vault:"), "references stay private");
}

#[test]
fn a_generated_repo_of_500_compiles_and_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    compiler::generate::generate(dir.path(), 500).expect("generate");
    let repo = compile_repo(dir.path()).unwrap_or_else(|problems| panic!("{problems:#?}"));
    assert_eq!(repo.tenants.len(), 500);
    assert_eq!(repo.golden.len(), 20);
    let again = tempfile::tempdir().expect("tempdir");
    compiler::generate::generate(again.path(), 500).expect("generate");
    let second = compile_repo(again.path()).expect("compiles");
    assert_eq!(repo.tenants, second.tenants, "same size, same repo");
    assert!(compiler::generate::generate(dir.path(), 1).is_err(), "never overwrites a repo");
}

#[test]
fn a_broken_repo_reports_every_problem_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    compiler::generate::generate(dir.path(), 3).expect("generate");
    let root = dir.path();
    fs::write(root.join("tenants/tenant-000001/theme.json"), r##"{"colors":{"primary":"#12345"}}"##).expect("write");
    fs::remove_file(root.join("tenants/tenant-000002/config.json")).expect("remove");
    fs::write(root.join("tenants/tenant-000003/notes.txt"), "hi").expect("write");
    fs::create_dir_all(root.join("tenants/Bad_Id")).expect("mkdir");
    fs::create_dir_all(root.join("branding/tenant-000003")).expect("mkdir");
    fs::write(root.join("branding/tenant-000003/logo.png"), b"GIF89a").expect("write");
    fs::create_dir_all(root.join("branding/ghost")).expect("mkdir");
    fs::write(root.join("golden.txt"), "tenant-000001\nnobody\n").expect("write");
    let problems = compile_repo(root).expect_err("broken");
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "tenants/Bad_Id: the directory name is the tenant id: only a-z, 0-9 and '-' are allowed (found 'B')"
                .to_owned(),
            r##"tenants/tenant-000001/theme.json: /colors/primary: "#12345" is not a #rrggbb color"##.to_owned(),
            "tenants/tenant-000002/config.json: every tenant has a config.json".to_owned(),
            "tenants/tenant-000003/notes.txt: a tenant directory holds config.json, theme.json, integrations/ and \
             regions/"
                .to_owned(),
            "branding/tenant-000003/logo.png: declared image/png but the content is no known image format".to_owned(),
            "branding/ghost: no tenants/ directory has this name".to_owned(),
            r#"golden.txt: line 2: "nobody" is not a tenant of this repo"#.to_owned(),
        ]
    );
}

/// A repo is data from anywhere (a pull request): links are not followed
/// (a link to /dev/zero used to hang regctl), special files are not read,
/// and no file is read past its limit.
#[test]
fn a_hostile_repo_is_refused_without_reading_too_much() {
    let dir = tempfile::tempdir().expect("tempdir");
    compiler::generate::generate(dir.path(), 10).expect("generate");
    let root = dir.path();
    let theme = root.join("tenants/tenant-000001/theme.json");
    fs::remove_file(&theme).expect("remove");
    std::os::unix::fs::symlink("/dev/zero", &theme).expect("symlink");
    std::os::unix::fs::symlink(root.join("tenants/tenant-000002"), root.join("tenants/tenant-000099"))
        .expect("symlink");
    let big = vec![b' '; compiler::limits::DOCUMENT_BYTES_MAX + 1];
    fs::write(root.join("tenants/tenant-000002/theme.json"), big).expect("write");
    let logo = root.join("branding/tenant-000010/logo.svg");
    fs::remove_file(&logo).expect("remove");
    nix_mkfifo(&logo);
    let start = std::time::Instant::now();
    let problems = compile_repo(root).expect_err("hostile");
    assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "tenants/tenant-000099: is a symbolic link: a config repo holds regular files only".to_owned(),
            "tenants/tenant-000001/theme.json: is a symbolic link: a config repo holds regular files only".to_owned(),
            "tenants/tenant-000002/theme.json: is over the limit of 262144 bytes".to_owned(),
            "branding/tenant-000010/logo.svg: is not a regular file: a config repo holds regular files only".to_owned(),
        ]
    );
}

/// A FIFO at `path` (a read of it would block forever).
fn nix_mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// The documented schemas list exactly the keys the rules know.
#[test]
fn the_schema_files_match_the_rules() {
    let read = |name: &str| -> Value {
        let text = fs::read_to_string(configs().join("schemas").join(name)).expect("schema file");
        serde_json::from_str(&text).expect("schema JSON")
    };
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().map(|map| map.keys().cloned().collect()).unwrap_or_default();
        keys.sort();
        keys
    };
    let sorted = |keys: &[&str]| -> Vec<String> {
        let mut keys: Vec<String> = keys.iter().map(|key| (*key).to_owned()).collect();
        keys.sort();
        keys
    };
    let config = read("config.schema.json");
    assert_eq!(keys(&config["properties"]), sorted(CONFIG_KEYS));
    assert_eq!(keys(&config["properties"]["public"]["properties"]), sorted(PUBLIC_KEYS));
    assert_eq!(keys(&read("theme.schema.json")["properties"]), sorted(THEME_KEYS));
    assert_eq!(config["properties"]["slaTier"]["enum"], serde_json::json!(compiler::schema::SLA_TIERS));
}

/// A regional variant is compiled into the tenant (its public bundle and
/// hash change), each region serves its own merge, and a broken variant is
/// reported in its own file, judged as its region would serve it.
#[test]
fn regional_variants_are_compiled_and_judged_as_their_region_serves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    compiler::generate::generate(dir.path(), 2).expect("generate");
    let root = dir.path();
    let before = compile_repo(root).expect("compiles");
    let regions = root.join("tenants/tenant-000001/regions");
    fs::create_dir_all(&regions).expect("mkdir");
    let variant =
        r#"{"public": {"legalBanner": "Cookies: see our notice"}, "theme": {"texts": {"welcome": "Willkommen"}}}"#;
    fs::write(regions.join("eu-west.json"), variant).expect("write");
    let after = compile_repo(root).expect("compiles");
    let (old, new) = (&before.tenants[0], &after.tenants[0]);
    assert_ne!(old.public.sha256, new.public.sha256, "the variant is part of the tenant");
    assert_eq!(before.tenants[1], after.tenants[1], "other tenants keep their bytes");
    let served = |region: &str| -> serde_json::Value {
        let json = compiler::regions::served_json(new.public.json.as_bytes(), region, 9).expect("served");
        serde_json::from_str(&json).expect("json")
    };
    let eu = served("eu-west");
    assert_eq!(eu["config"]["legalBanner"], "Cookies: see our notice");
    assert_eq!(eu["theme"]["texts"]["welcome"], "Willkommen");
    assert_eq!((eu["region"].as_str(), eu["configVersion"].as_u64()), (Some("eu-west"), Some(9)));
    assert!(eu.get("regions").is_none(), "a region serves its merge, not the variants");
    let us = served("us-east");
    assert!(us["config"].get("legalBanner").is_none(), "{us}");
    assert_ne!(us["theme"]["texts"]["welcome"], "Willkommen");

    let broken =
        r#"{"public": {"apiBase": "https://10.0.0.1/api"}, "theme": {"colors": {"primary": "red"}}, "private": {}}"#;
    fs::write(regions.join("eu-west.json"), broken).expect("write");
    fs::write(regions.join("EU.json"), "{}").expect("write");
    let problems = compile_repo(root).expect_err("broken");
    let shown: Vec<(String, String, &str)> =
        problems.into_iter().map(|problem| (problem.file, problem.pointer, problem.rule)).collect();
    let file = "tenants/tenant-000001/regions/eu-west.json".to_owned();
    assert!(
        shown.iter().any(|(name, _, rule)| name.ends_with("regions/EU.json") && *rule == "unknown-file"),
        "{shown:?}"
    );
    assert!(shown.contains(&(file.clone(), "/private".to_owned(), "unknown-field")), "{shown:?}");
    assert!(shown.contains(&(file.clone(), "/theme/colors/primary".to_owned(), "color")), "{shown:?}");
    assert!(shown.iter().any(|(name, pointer, _)| name == &file && pointer == "/public/apiBase"), "{shown:?}");

    fs::remove_dir_all(&regions).expect("rm");
    let config = root.join("tenants/tenant-000001/config.json");
    let mut document: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config).expect("read")).expect("json");
    document["regions"] = serde_json::json!({"eu-west": {}});
    fs::write(&config, document.to_string()).expect("write");
    let problems = compile_repo(root).expect_err("a variant inside config.json");
    assert_eq!(problems[0].rule, "variant-source", "{problems:?}");
}
