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

/// Every `.rs` file under `dir`, recursively.
fn walk_rs(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk_rs(&path, files);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
}

/// Every `.rs` file under the workspace crates' `src/` directories.
fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for package in packages() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        walk_rs(&manifest.parent().expect("a crate directory").join("src"), &mut files);
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
        &[
            "tokio",
            "tonic",
            "openraft",
            "raft-log",
            "tokio-postgres",
            "rusqlite",
            "plumbing",
            "trust",
            "registry",
            "agent",
            "api-node",
        ],
    ),
    // The node serves the API; it links no client of it.
    ("registry", &["registry-client", "regctl", "agent", "api-node"]),
    // A client knows the API, never the node's insides.
    (
        "registry-client",
        &[
            "registry",
            "registry-core",
            "openraft",
            "raft-log",
            "tokio-postgres",
            "rusqlite",
            "regctl",
            "agent",
            "api-node",
        ],
    ),
    // regctl: the API, the client and the compiler only (etcdctl's rule).
    (
        "regctl",
        &["registry", "registry-core", "openraft", "raft-log", "tokio-postgres", "rusqlite", "agent", "api-node"],
    ),
    // Agents and api-nodes never link the registry node.
    // The agent library serves nothing: HTTP and flags are the sidecar's.
    (
        "agent",
        &[
            "registry-core",
            "registry",
            "openraft",
            "raft-log",
            "tokio-postgres",
            "rusqlite",
            "api-node",
            "axum",
            "clap",
            "agent-sidecar",
        ],
    ),
    ("agent-sidecar", &["registry-core", "registry", "openraft", "raft-log", "tokio-postgres", "rusqlite", "api-node"]),
    ("api-node", &["registry-core", "registry", "openraft", "raft-log"]),
    // The suites reach the node as users do: its binary and the client.
    ("cluster-tests", &["registry", "registry-core", "openraft", "raft-log", "rusqlite"]),
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

/// A source file's module path in its crate: `server/leader.rs` is
/// `["server", "leader"]`; `lib.rs`, `main.rs` and `mod.rs` name their
/// directory's module.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src").with_extension("");
    let mut path: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    if path.last().is_some_and(|last| ["lib", "main", "mod"].contains(&last.as_str())) {
        path.pop();
    }
    path
}

/// The modules of its crate that `text` (a file of module `from`) names
/// through `crate::…` or `super::…` paths, brace groups included: the
/// longest prefix of each path that is a module of the crate. Comments and
/// the `tests` module are not read.
fn modules_named(text: &str, from: &[String], modules: &std::collections::BTreeSet<Vec<String>>) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let code: String = code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let resolve = |mut module: Vec<String>, segments: &[&str]| {
        for segment in segments {
            let mut next = module.clone();
            next.push((*segment).to_owned());
            if !modules.contains(&next) {
                break;
            }
            module = next;
        }
        module
    };
    let mut named = Vec::new();
    for (at, keyword) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        if code[..at].chars().next_back().is_some_and(ident) {
            continue; // `my_crate::`, not `crate::`
        }
        let mut base: Vec<String> =
            if keyword == "crate::" { Vec::new() } else { from[..from.len().saturating_sub(1)].to_vec() };
        let rest = &code[at + keyword.len()..];
        let path: String = rest
            .chars()
            .take_while(|c| ident(*c) || *c == ':' || *c == '{' || *c == '}' || *c == ',' || c.is_whitespace())
            .collect();
        let (head, group) = match path.split_once('{') {
            Some((head, group)) => (head, group.split('}').next().unwrap_or_default()),
            None => (path.split(|c: char| c.is_whitespace() || c == ',' || c == '}').next().unwrap_or_default(), ""),
        };
        let mut segments: Vec<&str> = head.split("::").filter(|segment| !segment.is_empty()).collect();
        while segments.first() == Some(&"super") {
            base.pop();
            segments.remove(0);
        }
        let module = resolve(base, &segments);
        named.push(module.clone());
        for item in group.split(',') {
            let item: Vec<&str> = item.trim().split("::").filter(|segment| !segment.is_empty()).collect();
            named.push(resolve(module.clone(), &item));
        }
    }
    named
}

#[test]
fn no_import_cycles_between_files_other_than_parent_and_child() {
    use std::collections::{BTreeMap, BTreeSet};
    for package in packages() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().expect("manifest_path"));
        let src = manifest.parent().expect("a crate directory").join("src");
        let mut files = Vec::new();
        walk_rs(&src, &mut files);
        // Each binary under src/bin is a crate of its own.
        files.retain(|file| !file.strip_prefix(&src).is_ok_and(|relative| relative.starts_with("bin")));
        let modules: BTreeMap<Vec<String>, PathBuf> =
            files.iter().map(|file| (module_path(&src, file), file.clone())).collect();
        let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
        let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
        let edges: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = modules
            .iter()
            .map(|(module, file)| {
                let text = std::fs::read_to_string(file).expect("read");
                let named = modules_named(&text, module, &known).into_iter().filter(|to| !related(module, to));
                (module, named.collect())
            })
            .collect();
        // Depth-first search; a module met again on the current path closes a cycle.
        fn visit<'a>(
            module: &'a Vec<String>,
            edges: &'a BTreeMap<&Vec<String>, BTreeSet<Vec<String>>>,
            path: &mut Vec<&'a Vec<String>>,
            done: &mut BTreeSet<&'a Vec<String>>,
        ) -> Option<String> {
            if let Some(start) = path.iter().position(|on| *on == module) {
                let cycle: Vec<String> =
                    path[start..].iter().chain([&module]).map(|module| module.join("::")).collect();
                return Some(cycle.join(" -> "));
            }
            if !done.insert(module) {
                return None;
            }
            path.push(module);
            for next in edges.get(module).into_iter().flatten() {
                let Some((next, _)) = edges.get_key_value(next) else { continue };
                if let Some(cycle) = visit(next, edges, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for module in edges.keys() {
            let cycle = visit(module, &edges, &mut Vec::new(), &mut done);
            assert!(cycle.is_none(), "{}: files import each other: {}", package["name"], cycle.unwrap_or_default());
        }
    }
}
