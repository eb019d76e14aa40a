//! Progress of long work: in a terminal (a pseudo-terminal made by
//! util-linux's `script`, Debian's `bsdutils`, installed when missing)
//! `regctl publish`, `regctl snapshot save` and `registry snapshot restore`
//! draw indicatif bars on stderr; piped, they print plain lines, and with
//! `-o json` stdout holds only the answer. (`regctl move`'s copy is shown
//! in the moves suite, which has the databases.)

use std::ffi::OsStr;
use std::process::Command;

use super::regctl;
use cluster_tests::binaries::binary;
use cluster_tests::{ClusterOptions, RegistryCluster};

const SCRIPT: &str = "/usr/bin/script";

/// A shell word for `text` (single quotes).
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Runs `command` (as the suites build it) inside a terminal: what it drew.
pub(super) fn in_terminal(command: &Command) -> anyhow::Result<String> {
    let script = cluster_tests::debian::ensure(SCRIPT, "bsdutils")?;
    let mut line: Vec<String> = vec![quoted(&command.get_program().to_string_lossy())];
    line.extend(command.get_args().map(|arg| quoted(&arg.to_string_lossy())));
    let output = Command::new(&script).args(["-qec", &line.join(" "), "/dev/null"]).output()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "{text}");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_work_draws_bars_in_a_terminal_and_plain_lines_otherwise() -> anyhow::Result<()> {
    tokio::task::spawn_blocking(|| cluster_tests::debian::ensure(SCRIPT, "bsdutils")).await??;
    let cluster = RegistryCluster::start(ClusterOptions::new("regctl-progress")).await?;
    let endpoints = cluster.endpoints_from(1);
    let repo = cluster.dir.join("repo");
    compiler::generate::generate(&repo, 6)?;
    let no_golden = cluster.dir.join("no-golden.txt");
    std::fs::write(&no_golden, "")?;

    let regctl_in_terminal = |args: &[&str]| {
        let mut command = cluster.regctl(&endpoints);
        command.args(args);
        in_terminal(&command)
    };
    let (repo_path, golden) = (repo.display().to_string(), no_golden.display().to_string());

    // A terminal: the bar, redrawn in place, with the tenants done.
    let drawn = regctl_in_terminal(&["publish", &repo_path, "--yes", "--cohort-size", "2", "--golden", &golden])?;
    assert!(drawn.contains("[##") && drawn.contains("6/6 tenants") && drawn.contains('\r'), "{drawn:?}");
    assert!(drawn.contains("cohort 3: 2 tenants"), "{drawn:?}");
    let backup = cluster.dir.join("backup.snapshot");
    let saved = regctl_in_terminal(&["snapshot", "save", &backup.display().to_string()])?;
    assert!(saved.contains(" received") && saved.contains("checked"), "{saved:?}");
    // The registry's offline restore: a bar over the backup's bytes, then the write.
    let restore = |into: &str| {
        let data_dir = cluster.dir.join(into).display().to_string();
        let args = ["snapshot", "restore", &backup.display().to_string(), "--data-dir", &data_dir];
        let mut command = Command::new(binary("registry"));
        command.args(args).args(["--peer", "1=us-east@127.0.0.1:1"]);
        command
    };
    let restored = in_terminal(&restore("restored-in-terminal"))?;
    assert!(restored.contains("[##") && restored.contains("checked") && restored.contains("written"), "{restored:?}");
    let piped = restore("restored-piped").output()?;
    let lines = String::from_utf8_lossy(&piped.stdout);
    assert!(piped.status.success() && !lines.contains('\r'), "{lines:?}");
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines[0].starts_with("read ") && lines[0].ends_with(", checksum ok"), "{lines:?}");
    assert!(lines[1].starts_with("writing the new node's snapshot into "), "{lines:?}");
    assert!(lines[2].starts_with("restored revision "), "{lines:?}");

    // Piped: plain lines, nothing redrawn.
    let repo2 = cluster.dir.join("repo2");
    compiler::generate::generate(&repo2, 4)?;
    for n in 1..=4 {
        super::set_primary(&repo2, &format!("tenant-{n:06}"), "#123456")?;
    }
    let args =
        [OsStr::new("publish"), repo2.as_os_str(), OsStr::new("--yes"), OsStr::new("--golden"), no_golden.as_os_str()];
    let piped = regctl(&cluster, &endpoints, &args);
    let (stdout, stderr) = (String::from_utf8_lossy(&piped.stdout), String::from_utf8_lossy(&piped.stderr));
    assert!(piped.status.success(), "{stderr}");
    assert!(!stdout.contains('\r') && !stderr.contains('\r'), "{stdout:?} {stderr:?}");
    assert!(stdout.lines().any(|line| line.starts_with("cohort 1: ")), "{stdout}");

    // -o json: stdout is the answer alone.
    let b2 = cluster.dir.join("b2");
    let json_args = [OsStr::new("-o"), OsStr::new("json"), OsStr::new("snapshot"), OsStr::new("save"), b2.as_os_str()];
    let json = regctl(&cluster, &endpoints, &json_args);
    assert!(json.status.success());
    assert!(!String::from_utf8_lossy(&json.stdout).contains("received"), "{}", String::from_utf8_lossy(&json.stdout));
    cluster.passed();
    Ok(())
}
