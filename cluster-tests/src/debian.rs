//! Tools from Debian that tests and benchmarks use (Chromium, etcd, wrk,
//! PostgreSQL, nginx, Python),
//! installed with apt-get when missing: the machine needs nothing set up by
//! hand (as root; elsewhere the error says what to install).
//!
//! This is the one installer: every suite and benchmark asks it, and it
//! serialises installs across processes (`cargo test` runs test binaries and
//! their threads at once, and two `apt-get install` runs at once fail on
//! dpkg's lock). apt-get's output goes to stderr, never to stdout, where a
//! benchmark prints its JSON.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The lock file every installer process takes before it looks or installs.
const INSTALL_LOCK: &str = "/tmp/tenantry-apt-install.lock";

/// How long apt-get waits for a dpkg lock that someone else (not us) holds.
const DPKG_LOCK_TIMEOUT_S: u32 = 600;

/// Threads of one process take this before the file lock (flock locks are
/// per open file, so two threads with two files would exclude each other,
/// but a thread must not wait on a lock its own process holds forever).
static IN_PROCESS: Mutex<()> = Mutex::new(());

/// `path`, after installing `package` with apt-get if `path` is missing.
pub fn ensure(path: &str, package: &str) -> anyhow::Result<PathBuf> {
    let find = || Path::new(path).exists().then(|| PathBuf::from(path));
    ensure_found(package, find).map_err(|error| anyhow::anyhow!("{error}: {path} is still missing"))
}

/// What `find` finds, after installing `package` with apt-get if it finds
/// nothing (for tools whose path has a version in it).
pub fn ensure_found(package: &str, find: impl Fn() -> Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(found) = find() {
        return Ok(found);
    }
    serialised(|| {
        // Another process may have installed it while this one waited.
        if let Some(found) = find() {
            return Ok(found);
        }
        apt_install(package)?;
        find().ok_or_else(|| anyhow::anyhow!("apt-get installed {package}, but what it provides is not found"))
    })
}

/// Runs `install` holding the installers' lock: one install at a time on
/// the machine, whichever process or thread asks (apt-get here, pip in
/// [`crate::python`]).
pub fn serialised<T>(install: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let _in_process = IN_PROCESS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let lock_file = File::options().create(true).truncate(false).write(true).open(INSTALL_LOCK)?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| anyhow::anyhow!("{INSTALL_LOCK}: {errno}"))?;
    install()
}

fn apt_install(package: &str) -> anyhow::Result<()> {
    eprintln!("installing Debian's {package} (apt-get)…");
    let lock_timeout = format!("DPkg::Lock::Timeout={DPKG_LOCK_TIMEOUT_S}");
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("apt-get")
            .args(["-o", &lock_timeout])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(std::io::stderr())
            .status()?;
        anyhow::ensure!(status.success(), "apt-get {args:?} failed ({status}); install {package} by hand");
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", package])
}

#[cfg(test)]
mod tests {
    /// A path that exists is returned at once, without apt or the lock.
    #[test]
    fn present_tools_are_not_installed() {
        assert_eq!(super::ensure("/bin/sh", "no-such-package").ok(), Some(std::path::PathBuf::from("/bin/sh")));
    }
}
