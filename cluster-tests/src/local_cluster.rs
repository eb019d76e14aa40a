//! `regctl up` as its users run it: the local three-region cluster (a
//! registry node, a frontend sidecar and an api-node per region, seeded
//! from `configs/`) on free ports in a fresh directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::binaries::{binary, test_dir};
use crate::certs::TestCerts;
use crate::process::ChildGuard;

/// How long `regctl up` has to say `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running `regctl up`.
pub struct LocalCluster {
    pub dir: PathBuf,
    pub grpc_base: u16,
    pub api_base: u16,
    /// What it printed until `ready`.
    pub output: Vec<String>,
    /// Its certificates: `regctl up`'s CA, so more operators can be issued.
    pub certs: TestCerts,
    up: ChildGuard,
    lines: Receiver<String>,
}

fn free_port_block(count: u16) -> anyhow::Result<u16> {
    crate::registry_cluster::free_ports(count)
}

impl LocalCluster {
    /// Runs `regctl up` in a fresh `test_name` directory seeded from the
    /// repository's `configs/`, with a local PostgreSQL when `postgres`,
    /// and `env` set for it and its processes, and waits until it says `ready`.
    pub fn start(test_name: &str, postgres: bool, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = test_dir(test_name);
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
        let grpc_base = free_port_block(3)?;
        let api_base = free_port_block(3)?;
        let mut command = Command::new(binary("regctl"));
        command
            .envs(env.iter().copied())
            .args(["up", "--grpc-port-base", &grpc_base.to_string()])
            .args(["--http-port-base", &free_port_block(3)?.to_string()])
            .args(["--agent-port-base", &free_port_block(3)?.to_string()])
            .args(["--api-port-base", &api_base.to_string()])
            .args(["--api-admin-port-base", &free_port_block(3)?.to_string()])
            .arg("--dir")
            .arg(&dir)
            .arg("--configs")
            .arg(&configs);
        if postgres {
            command.args(["--postgres", "--postgres-port", &free_port_block(1)?.to_string()]);
        }
        // No CARGO: the harness already built the binaries.
        let mut up =
            ChildGuard::new(command.env_remove("CARGO").stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?);
        let stdout = up.child().and_then(|child| child.stdout.take()).ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut output = Vec::new();
        while !output.iter().any(|line: &String| line == "ready") {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => output.push(line),
                Err(_) => anyhow::bail!("regctl up not ready in time; output so far:\n{}", output.join("\n")),
            }
        }
        let certs = TestCerts::new(&dir.join("certs"))?;
        Ok(Self { dir, grpc_base, api_base, output, certs, up, lines })
    }

    /// The registry nodes' gRPC endpoints, comma separated.
    pub fn endpoints(&self) -> String {
        (0..3).map(|offset| format!("127.0.0.1:{}", self.grpc_base + offset)).collect::<Vec<_>>().join(",")
    }

    /// The api-nodes' addresses, comma separated.
    pub fn api_nodes(&self) -> String {
        (0..3).map(|offset| format!("127.0.0.1:{}", self.api_base + offset)).collect::<Vec<_>>().join(",")
    }

    /// `--ca --cert --key` of the operator `regctl up` made (admin).
    pub fn admin_flags(&self) -> Vec<String> {
        let certs = self.dir.join("certs");
        [("--ca", "ca.crt"), ("--cert", "operator-admin.crt"), ("--key", "operator-admin.key")]
            .into_iter()
            .flat_map(|(flag, file)| [flag.to_owned(), certs.join(file).display().to_string()])
            .collect()
    }

    /// A client of the cluster as the admin operator.
    pub fn admin_client(&self) -> anyhow::Result<registry_client::Client> {
        let tls = self.certs.operator(trust::Role::Admin)?;
        Ok(registry_client::Client::new(&self.endpoints().split(',').collect::<Vec<_>>(), Some(tls))?)
    }

    /// Stops `regctl up` with SIGTERM; its exit and what it printed after `ready`.
    pub fn terminate(self) -> anyhow::Result<(ExitStatus, Vec<String>)> {
        let status = self.up.terminate()?;
        Ok((status, self.lines.try_iter().collect()))
    }
}
