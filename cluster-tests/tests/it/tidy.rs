//! Tidy checks of the whole workspace, as ordinary tests (docs/STYLE.md): module
//! docs everywhere, no stubs or debug macros, stdout only from the output
//! layers (regctl's, the node binary's, the benchmark tables), and the crates' dependency rules
//! (ARCHITECTURE.md's invariants) read from `cargo metadata`.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's packages, as `cargo metadata` describes them.
fn packages() -> Vec<serde_json::Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata's JSON");
    metadata["packages"].as_array().expect("packages").clone()
}

/// Every `.rs` file under the workspace crates' `src/` directories.
fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for package in packages() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        walk(&manifest.parent().expect("a crate directory").join("src"), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let undocumented: Vec<_> = source_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).expect("read").starts_with("//!"))
        .collect();
    assert!(undocumented.is_empty(), "files without a `//!` module doc: {undocumented:?}");
}

#[test]
fn no_stubs_or_debug_macros_in_product_code() {
    let forbidden = ["todo!(", "unimplemented!(", "dbg!("];
    for path in source_files() {
        let text = std::fs::read_to_string(&path).expect("read");
        for macro_call in forbidden {
            assert!(!text.contains(macro_call), "{} contains {macro_call}", path.display());
        }
    }
}

/// Where stdout is written: regctl's output layer, the node binary's answer
/// to its offline commands, and the benchmark tables.
const PRINTERS: [&str; 3] = ["registry/regctl/src/output/", "registry/node/src/bin/", "cluster-tests/src/bin/bench/"];

#[test]
fn only_output_layers_print_to_stdout() {
    for path in source_files() {
        if PRINTERS.iter().any(|printer| path.to_string_lossy().contains(printer)) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let printing = text.lines().any(|line| {
            let line = line.trim_start();
            (line.starts_with("println!") || line.starts_with("print!")) && !line.starts_with("//")
        });
        assert!(!printing, "{} prints to stdout; only {PRINTERS:?} may", path.display());
    }
}

/// What each crate must never depend on (directly, outside its tests), as
/// ARCHITECTURE.md's invariants say and why.
const FORBIDDEN_DEPENDENCIES: [(&str, &[&str]); 12] = [
    // The bottom: wire types and generated stubs; process plumbing.
    ("proto", &["trust", "compiler", "registry-core", "registry", "registry-client", "regctl", "agent", "api-node"]),
    (
        "plumbing",
        &["proto", "trust", "compiler", "registry-core", "registry", "registry-client", "regctl", "agent", "api-node"],
    ),
    ("trust", &["compiler", "registry-core", "registry", "registry-client", "regctl", "agent", "api-node"]),
    // Pure: regctl, every node and every agent compile with it.
    ("compiler", &["tokio", "tonic", "trust", "registry-core", "registry", "registry-client", "agent", "api-node"]),
    // No IO: openraft, the stores and gRPC are adapters around it.
    (
        "registry-core",
        &["tokio", "tonic", "openraft", "raft-log", "sled", "plumbing", "trust", "registry", "agent", "api-node"],
    ),
    // The node serves the API; it links no client of it.
    ("registry", &["registry-client", "regctl", "agent", "api-node"]),
    // A client knows the API, never the node's insides.
    ("registry-client", &["registry", "registry-core", "openraft", "raft-log", "sled", "regctl", "agent", "api-node"]),
    // regctl: the API, the client and the compiler only (etcdctl's rule).
    ("regctl", &["registry", "registry-core", "openraft", "raft-log", "sled", "agent", "api-node"]),
    // Agents and api-nodes never link the registry node.
    // The agent library serves nothing: HTTP and flags are the sidecar's.
    (
        "agent",
        &["registry-core", "registry", "openraft", "raft-log", "sled", "api-node", "axum", "clap", "agent-sidecar"],
    ),
    ("agent-sidecar", &["registry-core", "registry", "openraft", "raft-log", "sled", "api-node"]),
    ("api-node", &["registry-core", "registry", "openraft", "raft-log"]),
    // The suites reach the node as users do: its binary and the client.
    ("cluster-tests", &["registry", "registry-core", "openraft", "raft-log", "sled"]),
];

#[test]
fn crates_depend_only_downwards() {
    let packages = packages();
    for (krate, forbidden) in FORBIDDEN_DEPENDENCIES {
        let package = packages.iter().find(|package| package["name"] == krate).unwrap_or_else(|| panic!("no {krate}"));
        let dependencies: Vec<&str> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|dependency| dependency["kind"] != "dev")
            .filter_map(|dependency| dependency["name"].as_str())
            .collect();
        let broken: Vec<_> = forbidden.iter().filter(|name| dependencies.contains(name)).collect();
        assert!(broken.is_empty(), "{krate} depends on {broken:?}, which ARCHITECTURE.md forbids");
    }
}
