//! `regctl up`: a local three-region cluster on loopback, for trying
//! Tenantry and for development. Starts a registry node, an agent sidecar
//! and an api-node per region as child processes (each in its own process group, so Ctrl-C
//! reaches only regctl, which then stops them in order), seeds an empty
//! cluster from `configs/`, and stops everything gracefully on Ctrl-C or
//! SIGTERM. Tenant data lives in each api-node's embedded store, or with
//! `--postgres` in a local PostgreSQL ([`super::local_postgres`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proto::v1::Consistency;
use serde_json::json;
use tokio::process::{Child, Command};

use super::local_postgres::LocalPostgres;
use super::output::{self, Format};
use super::{repo, Failure};
use registry_client::http::get_text_via;
use registry_client::{Client, WriteOptions};

/// The regions of the local cluster, in node-id order.
const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];

/// The binaries `regctl up` runs, and their packages.
const BINARIES: [(&str, &str); 3] = [("registry", "registry"), ("agent-sidecar", "agent"), ("api-node", "api-node")];

/// How long the processes get to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a process gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub(super) struct UpArgs {
    /// Where data, logs and materialized config files live (kept between runs).
    #[arg(long, default_value = ".tenantry")]
    dir: PathBuf,
    /// The config repo that seeds an empty cluster.
    #[arg(long, default_value = "configs")]
    configs: PathBuf,
    /// gRPC port of the first registry node; the others follow.
    #[arg(long, default_value_t = 7101)]
    grpc_port_base: u16,
    /// HTTP port of the first registry node; the others follow.
    #[arg(long, default_value_t = 7201)]
    http_port_base: u16,
    /// HTTP port of the first agent sidecar; the others follow.
    #[arg(long, default_value_t = 7301)]
    agent_port_base: u16,
    /// HTTP port of the first api-node; the others follow.
    #[arg(long, default_value_t = 8081)]
    api_port_base: u16,
    /// Operator port of the first api-node (`regctl move --api-admin`); the others follow.
    #[arg(long, default_value_t = 8181)]
    api_admin_port_base: u16,
    /// Do not seed from the config repo.
    #[arg(long)]
    no_seed: bool,
    /// Keep tenant data in a local PostgreSQL (Debian's `postgresql`,
    /// installed) instead of each api-node's embedded store: a server in
    /// DIR/postgres and a database per region.
    #[arg(long)]
    postgres: bool,
    /// The local PostgreSQL's port, with --postgres.
    #[arg(long, default_value_t = 8432)]
    postgres_port: u16,
}

/// The certificates of a local cluster, made once under `DIR/certs`: a dev
/// CA, one per node, sidecar and api-node, and an admin operator for you.
struct DevCerts {
    dir: PathBuf,
}

impl DevCerts {
    fn ensure(dir: &Path) -> Result<Self, Failure> {
        let dir =
            std::path::absolute(dir.join("certs")).map_err(|error| Failure(format!("{}: {error}", dir.display())))?;
        let failure = |error: trust::TrustError| Failure(error.to_string());
        if !dir.join(trust::certs::CA_CERT_FILE).exists() {
            trust::certs::init_ca(&dir, "regctl up", false).map_err(failure)?;
        }
        let hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut identities =
            vec![(trust::Identity::Operator { name: "admin".to_owned(), role: trust::Role::Admin }, vec![])];
        for (index, region) in REGIONS.iter().enumerate() {
            let region_name = proto::Region::parse(region).map_err(|error| Failure(error.to_string()))?;
            identities
                .push((trust::Identity::Node { id: index as u64 + 1, region: region_name.clone() }, hosts.clone()));
            identities.push((
                trust::Identity::Agent {
                    id: sidecar_id(region),
                    kind: trust::AgentKind::Frontend,
                    region: region_name.clone(),
                },
                vec![],
            ));
            identities.push((
                trust::Identity::Agent { id: api_node_id(region), kind: trust::AgentKind::Api, region: region_name },
                hosts.clone(),
            ));
        }
        for (identity, hosts) in identities {
            // Re-issued when missing or expiring within a day.
            let cert = dir.join(format!("{}.crt", identity.file_stem()));
            let fresh = trust::certs::read_certs(&cert)
                .ok()
                .and_then(|certs| trust::certs::inspect(&cert, &certs[0]).ok())
                .is_some_and(|info| info.not_after_unix_s > time_now_s() + 86_400);
            if !fresh {
                trust::certs::issue(&dir, &identity, &trust::certs::LeafOptions { hosts, days: None })
                    .map_err(failure)?;
            }
        }
        Ok(Self { dir })
    }

    /// `--ca --cert --key` for the holder of `stem`'s certificate.
    fn flags(&self, stem: &str) -> Vec<std::ffi::OsString> {
        let mut flags = Vec::new();
        for (flag, file) in
            [("--ca", "ca.crt".to_owned()), ("--cert", format!("{stem}.crt")), ("--key", format!("{stem}.key"))]
        {
            flags.push(flag.into());
            flags.push(self.dir.join(file).into_os_string());
        }
        flags
    }

    fn admin(&self) -> Result<std::sync::Arc<trust::Tls>, Failure> {
        trust::Tls::load(trust::TlsFiles {
            ca: self.dir.join("ca.crt"),
            cert: self.dir.join("operator-admin.crt"),
            key: self.dir.join("operator-admin.key"),
        })
        .map_err(|error| Failure(error.to_string()))
    }
}

fn time_now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn sidecar_id(region: &str) -> String {
    format!("frontend@{region}")
}

fn api_node_id(region: &str) -> String {
    format!("api@{region}")
}

/// The TLS flags of one process: its certificate, or `--insecure`.
fn tls_flags(certs: Option<&DevCerts>, stem: &str) -> Vec<std::ffi::OsString> {
    match certs {
        Some(certs) => certs.flags(stem),
        None => vec!["--insecure".into()],
    }
}

/// One child process: a registry node or an agent sidecar.
struct Process {
    name: String,
    /// Its HTTP address (readiness and status).
    http: String,
    /// The path that answers 200 once it is ready.
    ready_path: &'static str,
    log: PathBuf,
    child: Child,
    /// What asks it to stop (PostgreSQL's fast shutdown is SIGINT).
    stop_signal: Signal,
}

/// The directory of the workspace binaries next to this regctl. Under
/// `cargo run` they are built (or found up to date) first, in the same
/// profile, so that one command starts everything from a fresh clone.
fn binaries() -> Result<PathBuf, Failure> {
    let current =
        std::env::current_exe().map_err(|error| Failure(format!("cannot find regctl's own path: {error}")))?;
    let dir = current.parent().ok_or_else(|| Failure("regctl has no parent directory".to_owned()))?.to_path_buf();
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "--quiet"]);
        for (package, binary) in BINARIES {
            build.args(["--package", package, "--bin", binary]);
        }
        if dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        let status = build.status().map_err(|error| Failure(format!("cannot run cargo build: {error}")))?;
        if !status.success() {
            return Err(Failure(
                "building the registry and agent binaries failed (see cargo's output above)".to_owned(),
            ));
        }
    }
    for (_, binary) in BINARIES {
        if !dir.join(binary).exists() {
            return Err(Failure(format!(
                "{} not found; build it with `cargo build --release --workspace` or run `cargo run --release --bin regctl -- up`",
                dir.join(binary).display()
            )));
        }
    }
    Ok(dir)
}

fn spawn(
    dir: &Path,
    name: String,
    mut command: Command,
    http: String,
    ready_path: &'static str,
) -> Result<Process, Failure> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|error| Failure(format!("{}: {error}", logs.display())))?;
    let log = logs.join(format!("{name}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|error| Failure(format!("{}: {error}", log.display())))?;
    let log_clone = log_file.try_clone().map_err(|error| Failure(format!("{}: {error}", log.display())))?;
    command.stdin(Stdio::null()).stdout(log_file).stderr(log_clone).process_group(0).kill_on_drop(true);
    let child = command.spawn().map_err(|error| Failure(format!("cannot start {name}: {error}")))?;
    Ok(Process { name, http, ready_path, log, child, stop_signal: Signal::SIGTERM })
}

fn grpc_addr(args: &UpArgs, index: usize) -> String {
    format!("127.0.0.1:{}", args.grpc_port_base + index as u16)
}

fn registry_node(bin: &Path, args: &UpArgs, certs: Option<&DevCerts>, index: usize) -> Result<Process, Failure> {
    let (id, region) = (index + 1, REGIONS[index]);
    let http = format!("127.0.0.1:{}", args.http_port_base + index as u16);
    let mut command = Command::new(bin.join("registry"));
    command
        .arg("serve")
        .args(["--id", &id.to_string(), "--region", region, "--grpc", &grpc_addr(args, index), "--http", &http])
        .arg("--data-dir")
        .arg(args.dir.join(format!("node-{id}-{region}")))
        .args(tls_flags(certs, &format!("node-{id}")));
    for (peer_index, peer_region) in REGIONS.iter().enumerate() {
        command.arg("--peer").arg(format!("{}={peer_region}@{}", peer_index + 1, grpc_addr(args, peer_index)));
    }
    spawn(&args.dir, format!("node-{id}-{region}"), command, http, "/readyz")
}

/// A frontend sidecar per region: its own region's node first, then the others.
fn sidecar(bin: &Path, args: &UpArgs, certs: Option<&DevCerts>, index: usize) -> Result<Process, Failure> {
    let region = REGIONS[index];
    let http = format!("127.0.0.1:{}", args.agent_port_base + index as u16);
    let endpoints: Vec<_> =
        (0..REGIONS.len()).map(|offset| grpc_addr(args, (index + offset) % REGIONS.len())).collect();
    let mut command = Command::new(bin.join("agent"));
    command
        .args(["--agent-id", &sidecar_id(region), "--region", region, "--kind", "frontend"])
        .args(tls_flags(certs, &format!("agent-{}", sidecar_id(region))))
        .args(["--endpoints", &endpoints.join(","), "--http", &http])
        .arg("--data-dir")
        .arg(args.dir.join(format!("agent-{region}")))
        .arg("--materialize")
        .arg(args.dir.join(format!("frontend-{region}")));
    spawn(&args.dir, format!("agent-{region}"), command, http, "/healthz")
}

/// An api-node per region, serving `{tenant}.localhost:PORT`, with
/// `shard_flags` (none: the embedded store).
fn api_node(
    bin: &Path,
    args: &UpArgs,
    certs: Option<&DevCerts>,
    index: usize,
    shard_flags: &[String],
) -> Result<Process, Failure> {
    let region = REGIONS[index];
    let http = format!("127.0.0.1:{}", args.api_port_base + index as u16);
    let endpoints: Vec<_> =
        (0..REGIONS.len()).map(|offset| grpc_addr(args, (index + offset) % REGIONS.len())).collect();
    let mut command = Command::new(bin.join("api-node"));
    command
        .args(["--region", region, "--endpoints", &endpoints.join(","), "--http", &http])
        .args(["--admin-http", &format!("127.0.0.1:{}", args.api_admin_port_base + index as u16)])
        .args(["--base-domain", "localhost", "--agent-id", &api_node_id(region)])
        .args(tls_flags(certs, &format!("agent-{}", api_node_id(region))))
        .arg("--data-dir")
        .arg(args.dir.join(format!("api-node-{region}")))
        .arg("--session-key-file")
        .arg(args.dir.join("session.key"))
        .args(shard_flags);
    spawn(&args.dir, format!("api-node-{region}"), command, http, "/readyz")
}

/// The last lines of a log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<_> = text.lines().rev().take(10).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

async fn wait_ready(processes: &mut [Process], tls: Option<&std::sync::Arc<trust::Tls>>) -> Result<(), Failure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    for process in processes.iter_mut() {
        loop {
            if let Ok(Some(exit)) = process.child.try_wait() {
                return Err(Failure(format!(
                    "{} exited with {exit} while starting; its log {} ends with:\n{}",
                    process.name,
                    process.log.display(),
                    log_tail(&process.log)
                )));
            }
            if process.ready_path.is_empty() {
                break; // Not an HTTP server: it was waited for by other means.
            }
            // Registry nodes serve HTTP over TLS; sidecars and api-nodes in plaintext.
            let connector = trust::Connector::new(tls.filter(|_| process.name.starts_with("node-")).cloned(), false);
            if let Ok((200, _)) =
                get_text_via(&connector, &process.http, process.ready_path, Duration::from_secs(2)).await
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure(format!(
                    "{} was not ready within {} s; see {}",
                    process.name,
                    READY_TIMEOUT.as_secs(),
                    process.log.display()
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
    let compiled = repo::compile(configs, format)?;
    for tenant in &compiled.tenants {
        let options = WriteOptions {
            expected_revision: Some(0),
            request_id: Some(format!("seed-{}", tenant.id)),
            actor: "regctl up".to_owned(),
            reason: format!("seed from {}", configs.display()),
        };
        client.create_tenant(tenant.id.as_str(), repo::documents(tenant), &options).await?;
    }
    output::info(format, &format!("seeded {} tenants from {}", compiled.tenants.len(), configs.display()));
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (`None`), or when a process exits by itself.
async fn wait_for_stop(processes: &mut [Process]) -> Option<String> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let exits = futures::future::select_all(processes.iter_mut().map(|process| {
        Box::pin(async move {
            let exit = process.child.wait().await;
            format!("{} exited on its own ({exit:?}); see {}", process.name, process.log.display())
        })
    }));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminated => None,
        (message, _, _) = exits => Some(message),
    }
}

/// Stops the processes in reverse start order: SIGTERM, then a bounded wait,
/// then SIGKILL.
async fn stop(processes: &mut [Process], format: Format) {
    for process in processes.iter_mut().rev() {
        if let Some(pid) = process.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), process.stop_signal);
        }
        match tokio::time::timeout(STOP_TIMEOUT, process.child.wait()).await {
            Ok(_) => output::info(format, &format!("{} stopped", process.name)),
            Err(_) => {
                output::info(format, &format!("{} did not stop in time; killing it", process.name));
                let _ = process.child.kill().await;
            }
        }
    }
}

/// Runs the local cluster: over mutual TLS with certificates made under
/// `DIR/certs` (kept between runs), or in plaintext with `insecure`.
pub(super) async fn run(args: UpArgs, insecure: bool, format: Format) -> Result<(), Failure> {
    let bin = binaries()?;
    let certs = if insecure { None } else { Some(DevCerts::ensure(&args.dir)?) };
    let admin = certs.as_ref().map(DevCerts::admin).transpose()?;
    let mut processes = Vec::new();
    let result = async {
        let mut shard_flags = vec![Vec::new(); REGIONS.len()];
        if args.postgres {
            let (postgres, server) = LocalPostgres::prepare(&args.dir, args.postgres_port).await?;
            // First in the list: stopped last.
            let server = spawn(&args.dir, "postgres".to_owned(), server, String::new(), "")?;
            processes.push(Process { stop_signal: Signal::SIGINT, ..server });
            shard_flags = postgres.shards(&bin, &REGIONS).await?;
        }
        for index in 0..REGIONS.len() {
            processes.push(registry_node(&bin, &args, certs.as_ref(), index)?);
        }
        wait_ready(&mut processes, admin.as_ref()).await?;
        let endpoints: Vec<_> = (0..REGIONS.len()).map(|index| grpc_addr(&args, index)).collect();
        let client = Client::new(&endpoints, admin.clone())?;
        if !args.no_seed {
            seed_if_empty(&client, &args.configs, format).await?;
        }
        for (index, shard_flags) in shard_flags.iter().enumerate() {
            processes.push(sidecar(&bin, &args, certs.as_ref(), index)?);
            processes.push(api_node(&bin, &args, certs.as_ref(), index, shard_flags)?);
        }
        wait_ready(&mut processes, admin.as_ref()).await?;
        announce(&args, &processes, &endpoints, certs.as_ref(), format);
        match wait_for_stop(&mut processes).await {
            None => {
                output::info(format, "stopping…");
                Ok(())
            }
            Some(message) => Err(Failure(message)),
        }
    }
    .await;
    stop(&mut processes, format).await;
    result
}

fn announce(args: &UpArgs, processes: &[Process], endpoints: &[String], certs: Option<&DevCerts>, format: Format) {
    let exports = match certs {
        Some(certs) => format!(
            "  export TENANTRY_CA={0}/ca.crt TENANTRY_CERT={0}/operator-admin.crt TENANTRY_KEY={0}/operator-admin.key\n",
            certs.dir.display()
        ),
        None => "  export TENANTRY_INSECURE=true\n".to_owned(),
    };
    match format {
        Format::Json => output::json_value(&json!({
            "ready": true,
            "endpoints": endpoints,
            "processes": processes.iter().map(|process| json!({
                "name": process.name, "http": process.http, "log": process.log.display().to_string(),
            })).collect::<Vec<_>>(),
            "dir": args.dir.display().to_string(),
            "certs": certs.map(|certs| certs.dir.display().to_string()),
        })),
        Format::Human => {
            let mut text = String::from(
                "\nTenantry is up: a registry node, an agent sidecar and an api-node per region, on loopback.\n\n",
            );
            for (index, region) in REGIONS.iter().enumerate() {
                text.push_str(&format!(
                    "  {region:<9} registry gRPC {}  status http://127.0.0.1:{}/status\n            \
                     agent    http://127.0.0.1:{}/v1/tenants/acme  files {}\n            \
                     api-node http://acme.localhost:{}/  operator 127.0.0.1:{}\n",
                    endpoints[index],
                    args.http_port_base + index as u16,
                    args.agent_port_base + index as u16,
                    args.dir.join(format!("frontend-{region}")).display(),
                    args.api_port_base + index as u16,
                    args.api_admin_port_base + index as u16,
                ));
            }
            match args.postgres {
                true => text.push_str(&format!(
                    "\n  tenant data: PostgreSQL on 127.0.0.1:{}, a database per region (passwords in {})\n",
                    args.postgres_port,
                    args.dir.join("postgres/pgpass").display()
                )),
                false => text.push_str(
                    "\n  tenant data: each api-node's embedded store (development only; --postgres for PostgreSQL)\n",
                ),
            }
            text.push_str(&format!(
                "\nTry, in another terminal (the certificate is an admin's; `regctl certs issue operator` makes others):\n{exports}  export TENANTRY_ENDPOINTS={}\n  \
                 cargo run --release --bin regctl -- tenant list\n  \
                 echo '{{\"colors\":{{\"primary\":\"#0b5fff\"}}}}' | cargo run --release --bin regctl -- tenant set acme --theme - --reason 'new brand color'\n  \
                 cargo run --release --bin regctl -- agents\n  \
                 curl 'http://127.0.0.1:{}/v1/resolve?host=acme.localhost'\n  \
                 cargo run --release --bin regctl -- history acme\n  \
                 cargo run --release --bin regctl -- cluster status\n\nLogs and data in {}. Ctrl-C stops everything.\nready",
                endpoints.join(","),
                args.agent_port_base,
                args.dir.display()
            ));
            output::info(format, &text);
        }
    }
}
