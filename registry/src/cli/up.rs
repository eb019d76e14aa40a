//! `regctl up`: a local three-region cluster on loopback, for trying
//! Tenantry and for development. Starts the registry nodes as child
//! processes (each in its own process group, so Ctrl-C reaches only regctl,
//! which then stops them in order), seeds an empty cluster from `configs/`,
//! and stops everything gracefully on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::v1::Consistency;
use serde_json::json;
use tokio::process::{Child, Command};

use super::output::{self, Format};
use super::{seed, Failure};
use crate::client::{http_get, Client, WriteOptions};

/// The regions of the local cluster, in node-id order.
const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// How long the nodes get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a node gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub(super) struct UpArgs {
    /// Where node data and logs live (kept between runs).
    #[arg(long, default_value = ".tenantry")]
    dir: PathBuf,
    /// The config repo that seeds an empty cluster.
    #[arg(long, default_value = "configs")]
    configs: PathBuf,
    /// gRPC port of the first node; the others follow.
    #[arg(long, default_value_t = 7101)]
    grpc_port_base: u16,
    /// HTTP port of the first node; the others follow.
    #[arg(long, default_value_t = 7201)]
    http_port_base: u16,
    /// Do not seed from the config repo.
    #[arg(long)]
    no_seed: bool,
}

struct Node {
    id: u64,
    region: &'static str,
    grpc: String,
    http: String,
    log: PathBuf,
    child: Child,
}

/// The `registry` binary next to this regctl. Under `cargo run` it is built
/// (or found up to date) first, in the same profile, so that one command
/// starts everything from a fresh clone.
fn registry_binary() -> Result<PathBuf, Failure> {
    let current =
        std::env::current_exe().map_err(|error| Failure(format!("cannot find regctl's own path: {error}")))?;
    let dir = current.parent().ok_or_else(|| Failure("regctl has no parent directory".to_owned()))?;
    let binary = dir.join("registry");
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet", "--package", "registry", "--bin", "registry"]);
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().map_err(|error| Failure(format!("cannot run cargo build: {error}")))?;
        if !status.success() {
            return Err(Failure("building the registry binary failed (see cargo's output above)".to_owned()));
        }
    }
    if !binary.exists() {
        return Err(Failure(format!(
            "{} not found; build it with `cargo build --release --workspace` or run `cargo run --release --bin regctl -- up`",
            binary.display()
        )));
    }
    Ok(binary)
}

fn spawn(binary: &Path, args: &UpArgs, id: u64, region: &'static str) -> Result<Node, Failure> {
    let port = |base: u16| base + (id as u16 - 1);
    let grpc = format!("127.0.0.1:{}", port(args.grpc_port_base));
    let http = format!("127.0.0.1:{}", port(args.http_port_base));
    let data_dir = args.dir.join(format!("node-{id}-{region}"));
    let logs = args.dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|error| Failure(format!("{}: {error}", logs.display())))?;
    let log = logs.join(format!("node-{id}-{region}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|error| Failure(format!("{}: {error}", log.display())))?;
    let log_clone = log_file.try_clone().map_err(|error| Failure(format!("{}: {error}", log.display())))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .args(["--id", &id.to_string(), "--region", region, "--grpc", &grpc, "--http", &http])
        .arg("--data-dir")
        .arg(&data_dir);
    for (peer_index, peer_region) in REGIONS.iter().enumerate() {
        let peer_port = args.grpc_port_base + peer_index as u16;
        command.arg("--peer").arg(format!("{}={peer_region}@127.0.0.1:{peer_port}", peer_index + 1));
    }
    command.stdin(Stdio::null()).stdout(log_file).stderr(log_clone).process_group(0).kill_on_drop(true);
    let child = command.spawn().map_err(|error| Failure(format!("cannot start {}: {error}", binary.display())))?;
    Ok(Node { id, region, grpc, http, log, child })
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<_> = text.lines().rev().take(10).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

async fn wait_ready(nodes: &mut [Node]) -> Result<(), Failure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for node in nodes.iter_mut() {
        loop {
            if let Ok(Some(exit)) = node.child.try_wait() {
                return Err(Failure(format!(
                    "node {} ({}) exited with {exit} while starting; its log {} ends with:\n{}",
                    node.id,
                    node.region,
                    node.log.display(),
                    log_tail(&node.log)
                )));
            }
            if let Ok((200, _)) = http_get(&node.http, "/readyz", Duration::from_secs(2)).await {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "node {} ({}) was not ready within {} s; see {}",
                    node.id,
                    node.region,
                    READY_TIMEOUT.as_secs(),
                    node.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn seed_if_empty(client: &Client, configs: &Path, format: Format) -> Result<(), Failure> {
    let (existing, _) = client.list_tenants(Consistency::Linearizable, true).await?;
    if !existing.is_empty() {
        output::info(format, &format!("cluster already holds {} tenants; not seeding", existing.len()));
        return Ok(());
    }
    let tenants = seed::load(configs)?;
    for tenant in &tenants {
        let options = WriteOptions {
            expected_revision: Some(0),
            request_id: Some(format!("seed-{}", tenant.id)),
            actor: "regctl up".to_owned(),
            reason: format!("seed from {}", configs.display()),
        };
        client.create_tenant(&tenant.id, tenant.documents.clone(), &options).await?;
    }
    output::info(format, &format!("seeded {} tenants from {}", tenants.len(), configs.display()));
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, or when a node exits by itself.
async fn wait_for_stop(nodes: &mut [Node]) -> Option<String> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let exits = futures::future::select_all(nodes.iter_mut().map(|node| {
        Box::pin(async move {
            let exit = node.child.wait().await;
            format!("node {} ({}) exited on its own ({exit:?}); see {}", node.id, node.region, node.log.display())
        })
    }));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminated => None,
        (message, _, _) = exits => Some(message),
    }
}

/// Stops every node: SIGTERM, then a bounded wait, then SIGKILL.
async fn stop(nodes: &mut [Node], format: Format) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for node in nodes.iter_mut() {
        match tokio::time::timeout(STOP_TIMEOUT, node.child.wait()).await {
            Ok(_) => output::info(format, &format!("node {} ({}) stopped", node.id, node.region)),
            Err(_) => {
                output::info(format, &format!("node {} ({}) did not stop in time; killing it", node.id, node.region));
                let _ = node.child.kill().await;
            }
        }
    }
}

pub(super) async fn run(args: UpArgs, format: Format) -> Result<(), Failure> {
    let binary = registry_binary()?;
    let mut nodes = Vec::new();
    for (index, region) in REGIONS.into_iter().enumerate() {
        nodes.push(spawn(&binary, &args, index as u64 + 1, region)?);
    }
    let result = serve(&args, &mut nodes, format).await;
    stop(&mut nodes, format).await;
    result
}

async fn serve(args: &UpArgs, nodes: &mut [Node], format: Format) -> Result<(), Failure> {
    wait_ready(nodes).await?;
    let endpoints: Vec<_> = nodes.iter().map(|node| node.grpc.clone()).collect();
    let client = Client::new(&endpoints)?;
    if !args.no_seed {
        seed_if_empty(&client, &args.configs, format).await?;
    }
    let endpoint_list = endpoints.join(",");
    match format {
        Format::Json => output::json_value(&json!({
            "ready": true,
            "endpoints": endpoints,
            "nodes": nodes.iter().map(|node| json!({
                "id": node.id, "region": node.region, "grpc": node.grpc, "http": node.http,
                "log": node.log.display().to_string(),
            })).collect::<Vec<_>>(),
            "dir": args.dir.display().to_string(),
        })),
        Format::Human => {
            let mut text = String::from("\nTenantry is up: three registry nodes on loopback.\n\n");
            for node in nodes.iter() {
                text.push_str(&format!(
                    "  node {} {:<9} gRPC {}   HTTP http://{}/status   log {}\n",
                    node.id,
                    node.region,
                    node.grpc,
                    node.http,
                    node.log.display()
                ));
            }
            text.push_str(&format!(
                "\nTry, in another terminal:\n  export TENANTRY_ENDPOINTS={endpoint_list}\n  \
                 cargo run --release --bin regctl -- tenant list\n  \
                 cargo run --release --bin regctl -- tenant get acme\n  \
                 echo '{{\"colors\":{{\"primary\":\"#0b5fff\"}}}}' | cargo run --release --bin regctl -- tenant set acme --theme - --reason 'new brand color'\n  \
                 cargo run --release --bin regctl -- history acme\n  \
                 cargo run --release --bin regctl -- cluster status\n\nData in {}. Ctrl-C stops everything.\nready",
                args.dir.display()
            ));
            output::info(format, &text);
        }
    }
    match wait_for_stop(nodes).await {
        None => {
            output::info(format, "stopping…");
            Ok(())
        }
        Some(message) => Err(Failure(message)),
    }
}
