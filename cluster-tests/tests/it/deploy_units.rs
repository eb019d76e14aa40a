//! The units to deploy on many hosts, checked by the tools their users
//! run: `deploy/systemd/*.service` by `systemd-analyze verify` (Debian's
//! `systemd`, installed when missing), against a root that holds the
//! system's own units and the built binaries where the units expect them,
//! with every warning a failure (it exits 0 on an unknown key).

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster_tests::binaries::binary;

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

fn deploy(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(dir)
}

/// `from` at `to`: a hard link where the file system allows, else a copy.
fn place(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() -> anyhow::Result<()> {
    let analyze = cluster_tests::debian::ensure(SYSTEMD_ANALYZE, "systemd")?;
    let root = cluster_tests::binaries::test_dir("deploy-units");
    for dir in ["etc/systemd/system", "etc/default", "usr/local/bin", "usr/bin", "usr/lib/systemd"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin"))?;
    std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
    let copied =
        Command::new("cp").arg("-a").arg("/usr/lib/systemd/system").arg(root.join("usr/lib/systemd")).status()?;
    anyhow::ensure!(copied.success(), "copying the system's units failed");
    place(Path::new("/usr/bin/kill"), &root.join("usr/bin/kill"))?;
    for name in ["registry", "api-node", "agent"] {
        place(&binary(name), &root.join("usr/local/bin").join(name))?;
    }
    for file in ["tenantry-api-node", "tenantry-agent"] {
        std::fs::write(root.join("etc/default").join(file), "")?;
    }
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy("systemd"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "service") {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::copy(&path, root.join("etc/systemd/system").join(&name))?;
            units.push(name);
        }
    }
    units.sort();
    assert_eq!(units, ["tenantry-agent.service", "tenantry-api-node.service", "tenantry-registry.service"]);
    let output = Command::new(analyze).arg("verify").arg(format!("--root={}", root.display())).args(&units).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
