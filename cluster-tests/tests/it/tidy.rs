//! Tidy checks of the whole workspace, as ordinary tests (STYLE.md): module
//! docs everywhere, no stubs or debug macros, stdout only from regctl's
//! output module and the benchmark tables.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under the crates' `src/` directories.
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
    for krate in ["proto", "registry", "agent", "api-node", "cluster-tests"] {
        walk(&workspace_root().join(krate).join("src"), &mut files);
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

/// The only places that write to stdout: regctl's output module and the
/// benchmark program's tables.
const PRINTERS: [&str; 2] = ["registry/src/cli/output/", "cluster-tests/src/bin/bench/"];

#[test]
fn only_regctl_output_prints_to_stdout() {
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
