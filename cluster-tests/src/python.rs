//! Python tools from PyPI that suites use as clients written in another
//! language than ours (grpcio-reflection): a virtualenv per tool set under
//! `target/cluster-tests/python/`, on Debian's `python3` and `python3-venv`
//! (installed by [`crate::debian`] when missing), with exact versions,
//! installed once and under the installers' lock.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const PYTHON: &str = "/usr/bin/python3";

/// The Python of a virtualenv named `name` holding exactly `requirements`
/// (`package==version`), made if it is missing or holds other ones.
pub fn venv(name: &str, requirements: &[&str]) -> anyhow::Result<PathBuf> {
    let python = crate::debian::ensure(PYTHON, "python3")?;
    crate::debian::ensure_found("python3-venv", || {
        let probe = Command::new(&python).args(["-c", "import ensurepip, venv"]).stderr(Stdio::null()).status();
        probe.is_ok_and(|status| status.success()).then(|| python.clone())
    })?;
    let dir = crate::binaries::tests_dir().join("python").join(name);
    let marker = dir.join("requirements.txt");
    let wanted = requirements.join("\n");
    let installed = || std::fs::read_to_string(&marker).is_ok_and(|text| text == wanted);
    if !installed() {
        crate::debian::serialised(|| {
            if installed() {
                return Ok(());
            }
            eprintln!("installing {} from PyPI into {} (pip)…", requirements.join(" "), dir.display());
            let _ = std::fs::remove_dir_all(&dir);
            let made = Command::new(&python).arg("-m").arg("venv").arg(&dir).stdout(std::io::stderr()).status()?;
            anyhow::ensure!(made.success(), "python3 -m venv {} failed ({made})", dir.display());
            let pip = Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "--no-input"])
                .args(requirements)
                .stdout(std::io::stderr())
                .status()?;
            anyhow::ensure!(pip.success(), "pip install {} failed ({pip})", requirements.join(" "));
            std::fs::write(&marker, &wanted)?;
            Ok(())
        })?;
    }
    Ok(dir.join("bin/python"))
}
