//! Tools from Debian that tests and benchmarks use (Chromium, etcd, wrk),
//! installed with apt-get when missing: the machine needs nothing set up by
//! hand (as root; elsewhere the error says what to install).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `path`, after installing `package` with apt-get if `path` is missing.
pub fn ensure(path: &str, package: &str) -> anyhow::Result<PathBuf> {
    if !Path::new(path).exists() {
        eprintln!("installing Debian's {package} (apt-get)…");
        let apt = |args: &[&str]| -> anyhow::Result<()> {
            let status = Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
            anyhow::ensure!(status.success(), "apt-get {args:?} failed ({status}); install {package} by hand");
            Ok(())
        };
        apt(&["update", "-qq"])?;
        apt(&["install", "-y", "-qq", package])?;
    }
    Ok(PathBuf::from(path))
}
