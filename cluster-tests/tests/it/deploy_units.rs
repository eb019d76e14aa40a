//! The units to deploy on many hosts, checked by the tools their users
//! run, every warning a failure:
//!
//! * `deploy/systemd/*.{service,timer}` by `systemd-analyze verify` (Debian's
//!   `systemd`, installed when missing), against a root that holds the
//!   system's own units and the built binaries where the units expect them
//!   (it exits 0 on an unknown key, so its output must be empty too);
//! * `deploy/kubernetes/*.yaml` by PyPI's kubernetes-validate, offline and
//!   strict (unknown fields refused), against Kubernetes 1.30's schemas;
//!   every flag the manifests give a binary is one its `--help` lists.

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster_tests::binaries::binary;

const SYSTEMD_ANALYZE: &str = "/usr/bin/systemd-analyze";

/// kubernetes-validate and its dependencies, exactly.
const KUBERNETES_VALIDATE: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "attrs==26.1.0",
    "importlib_resources==7.1.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "packaging==26.4",
    "PyYAML==6.0.4",
    "referencing==0.37.0",
    "rpds-py==2026.9.1",
    "typing_extensions==4.16.0",
];

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
    for tool in ["kill", "sh", "date", "find", "install"] {
        let path = Path::new("/usr/bin").join(tool);
        // /usr/bin/sh is a link (to dash): the root gets the program itself.
        place(&std::fs::canonicalize(&path)?, &root.join("usr/bin").join(tool))?;
    }
    for name in ["registry", "api-node", "agent", "regctl"] {
        place(&binary(name), &root.join("usr/local/bin").join(name))?;
    }
    for file in ["tenantry-api-node", "tenantry-agent", "tenantry-backup"] {
        std::fs::write(root.join("etc/default").join(file), "")?;
    }
    let mut units = Vec::new();
    for entry in std::fs::read_dir(deploy("systemd"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "service" || extension == "timer") {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            std::fs::copy(&path, root.join("etc/systemd/system").join(&name))?;
            units.push(name);
        }
    }
    units.sort();
    let expected = ["agent.service", "api-node.service", "backup.service", "backup.timer", "registry.service"];
    assert_eq!(units, expected.map(|unit| format!("tenantry-{unit}")));
    let output = Command::new(analyze).arg("verify").arg(format!("--root={}", root.display())).args(&units).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    std::fs::remove_dir_all(&root)?;
    Ok(())
}

#[test]
fn the_kubernetes_manifests_validate_against_the_schemas_and_name_real_flags() -> anyhow::Result<()> {
    let python = cluster_tests::python::venv("kubernetes-validate", KUBERNETES_VALIDATE)?;
    let validate = python.with_file_name("kubernetes-validate");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(deploy("kubernetes"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    manifests.retain(|path| path.extension().is_some_and(|extension| extension == "yaml"));
    manifests.sort();
    assert_eq!(manifests.len(), 3, "{manifests:?}");
    let output = Command::new(&validate).args(["--strict", "--no-warn", "-k", "1.30.0"]).args(&manifests).output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "kubernetes-validate: {said}");
    let passed = said.lines().filter(|line| line.starts_with("INFO") && line.contains(" passed for resource ")).count();
    assert_eq!(passed, said.lines().filter(|line| !line.trim().is_empty()).count(), "{said}");
    for kind in ["statefulset/tenantry-registry", "deployment/tenantry-api-node", "deployment/tenantry-frontend"] {
        assert!(said.contains(kind), "{kind} missing: {said}");
    }
    assert_eq!(said.matches("poddisruptionbudget/").count(), 3, "{said}");

    // Each container's args: the binary, then flags its --help lists.
    for manifest in &manifests {
        let text = std::fs::read_to_string(manifest)?;
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "args:" {
                continue;
            }
            let args: Vec<&str> =
                lines.by_ref().take_while(|line| line.starts_with("- ") || line.starts_with('#')).collect();
            let args: Vec<&str> = args.iter().filter_map(|line| line.strip_prefix("- ")).collect();
            let (program, rest) = args.split_first().ok_or_else(|| anyhow::anyhow!("empty args"))?;
            let subcommand: Vec<&str> = rest.iter().take_while(|arg| !arg.starts_with("--")).copied().collect();
            let help = Command::new(binary(program)).args(&subcommand).arg("--help").output()?;
            let help = String::from_utf8_lossy(&help.stdout).into_owned();
            for flag in rest.iter().filter_map(|arg| arg.strip_prefix("--")) {
                let name = flag.split('=').next().unwrap_or_default();
                assert!(help.contains(&format!("--{name} ")), "{}: {program} has no --{name}", manifest.display());
            }
        }
    }
    Ok(())
}
