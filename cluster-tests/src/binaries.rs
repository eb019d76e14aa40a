//! Finds the workspace's binaries, building them first so a test never runs
//! a stale binary.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The directory holding this build's binaries (`target/debug` or
/// `target/release`), derived from the running executable: a test
/// (`target/<profile>/deps/<test>`) or a binary (`target/<profile>/<bin>`).
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| anyhow::anyhow!("{} has no parent directory", exe.display()))?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        let profile = dir.parent().ok_or_else(|| anyhow::anyhow!("{} has no parent", dir.display()))?;
        return Ok(profile.to_path_buf());
    }
    Ok(dir.to_path_buf())
}

fn build(profile_dir: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| option_env!("CARGO").unwrap_or("cargo").to_owned());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--quiet",
        "--package",
        "registry",
        "--package",
        "regctl",
        "--package",
        "agent-sidecar",
        "--package",
        "api-node",
        "--bins",
    ]);
    if profile_dir.file_name().is_some_and(|name| name == "release") {
        command.arg("--release");
    }
    // `cargo test` gives the test process the variables it sets for a crate
    // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, …). Passed on, they differ from
    // an ordinary build's, and build scripts that watch them (ring's watches
    // CARGO_MANIFEST_DIR) make this build and the next ordinary one rebuild
    // half the workspace: 20 s per test process.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_crate = ["CARGO_MANIFEST_", "CARGO_PKG_", "CARGO_BIN_", "CARGO_CRATE_", "CARGO_PRIMARY_PACKAGE"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || ["CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"].contains(&name.as_ref());
        if per_crate {
            command.env_remove(name.as_ref());
        }
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "cargo build of the workspace binaries failed");
    Ok(())
}

/// The path of workspace binary `name`, built (once per test process) if needed.
pub fn binary(name: &str) -> PathBuf {
    static PROFILE_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = PROFILE_DIR.get_or_init(|| {
        let dir = profile_dir().unwrap_or_else(|error| panic!("cannot locate the target directory: {error}"));
        build(&dir).unwrap_or_else(|error| panic!("{error}"));
        dir
    });
    dir.join(name)
}

/// `target/cluster-tests`, where the suites keep what they leave.
pub(crate) fn tests_dir() -> PathBuf {
    binary("registry")
        .parent()
        .and_then(Path::parent)
        .map(|target| target.join("cluster-tests"))
        .unwrap_or_else(std::env::temp_dir)
}

/// A directory for one test's data and logs under `target/cluster-tests`.
pub fn test_dir(test_name: &str) -> PathBuf {
    tests_dir().join(format!("{test_name}-{}", ulid::Ulid::new()))
}

/// Where a suite keeps an artefact that outlives a passing test (a
/// screenshot): `target/cluster-tests/artefacts/{name}`, its directory
/// made.
pub fn artefact(name: &str) -> std::io::Result<PathBuf> {
    let dir = tests_dir().join("artefacts");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(name))
}
