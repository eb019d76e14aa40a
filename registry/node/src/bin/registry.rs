//! `registry serve` runs one registry node; `registry snapshot status|restore`
//! work on a backup offline (no cluster, no certificate).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use plumbing::progress::{Lines, Progress, Show};
use registry::backup::{self, Backup};
use registry::config::{Dial, NodeConfig, Peer};
use serde::Serialize;

#[derive(Parser)]
#[command(name = "registry", version, about = "A Tenantry registry node (one per region, Raft-replicated).")]
struct Cli {
    /// How logs are written to stderr: text, or one JSON object per line.
    #[arg(long, global = true, env = "TENANTRY_LOG_FORMAT", default_value = "text")]
    log_format: plumbing::LogFormat,
    /// Where traces go (OTLP/gRPC).
    #[command(flatten)]
    otlp: trust::cli::OtlpArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. Flags override the fields of --config.
    Serve(Box<ServeArgs>),
    /// Backups saved by `regctl snapshot save`, offline.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Check a backup's checksum and say what it holds.
    Status { file: PathBuf },
    /// Build the first node's data directory of a new cluster from a backup.
    Restore {
        file: PathBuf,
        /// The new node's data directory (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// Every member of the new cluster, ID=REGION@HOST:PORT (repeat).
        #[arg(long = "peer", required = true)]
        peers: Vec<Peer>,
    },
}

/// Reads backup `file` with a bar over its bytes on a terminal (a line
/// otherwise).
fn read_backup(file: &Path, show: Show) -> Result<Backup, String> {
    let (opened, bytes) = backup::open(file)?;
    let progress = Progress::bytes_of(bytes, show);
    let read = backup::read(file, progress.wrap_read(opened));
    progress.finish(if read.is_ok() { "checked" } else { "failed" });
    read
}

/// Runs an offline snapshot command: what to print, or why it failed.
fn snapshot(command: SnapshotCommand) -> Result<String, String> {
    let show = Show { bars: true, lines: Lines::Stdout };
    match command {
        SnapshotCommand::Status { file } => {
            let backup = read_backup(&file, show)?;
            Ok(format!("{}: {}, checksum ok", file.display(), backup.summary))
        }
        SnapshotCommand::Restore { file, data_dir, peers } => {
            backup::check_restore(&data_dir, &peers)?;
            let read = read_backup(&file, show)?;
            let writing = Progress::steps(show);
            writing.step(&format!("read {}: {}, checksum ok", file.display(), read.summary));
            writing.step(&format!("writing the new node's snapshot into {}", data_dir.display()));
            let restored = backup::restore(read, &data_dir, &peers);
            writing.finish(if restored.is_ok() { "written" } else { "failed" });
            let restored = restored?;
            Ok(format!(
                "restored {} into {} as new cluster {}; start this node and the others with the same --peer list",
                restored.summary,
                restored.snapshot.display(),
                restored.cluster_id
            ))
        }
    }
}

/// Every flag is a field of `NodeConfig` (same name with `_`); defaults are
/// in `registry/node/src/limits.rs`.
#[derive(clap::Args, Serialize)]
struct ServeArgs {
    /// A TOML file with the fields below (id, region, grpc, http, data_dir, peers, ...).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// This node's id; must appear in --peer.
    #[arg(long)]
    id: Option<u64>,
    /// This node's region, e.g. us-east.
    #[arg(long)]
    region: Option<String>,
    /// gRPC listen address: clients, agents and Raft.
    #[arg(long)]
    grpc: Option<SocketAddr>,
    /// HTTP listen address: /healthz, /readyz, /metrics, /status.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Where the Raft log, the state machine and snapshots live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Every voter, this node included: ID=REGION@HOST:PORT (repeat).
    #[arg(long = "peer")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<Peer>,
    /// Reach the member advertised at TO through VIA, TO=VIA (repeat): for
    /// proxies, tunnels and NAT between regions.
    #[arg(long)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dial: Vec<Dial>,
    /// Raft heartbeat interval [default: 250].
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Lower bound of the randomized election timeout [default: 1500].
    #[arg(long)]
    election_timeout_ms_min: Option<u64>,
    /// Upper bound of the randomized election timeout [default: 3000].
    #[arg(long)]
    election_timeout_ms_max: Option<u64>,
    /// Applied entries between snapshots [default: 10000].
    #[arg(long)]
    snapshot_every_entries: Option<u64>,
    /// Entries kept in the log behind a snapshot [default: 1000].
    #[arg(long)]
    log_kept_after_snapshot_entries: Option<u64>,
    /// Largest document in bytes [default: 262144].
    #[arg(long)]
    document_bytes_max: Option<usize>,
    /// Deltas kept for agents that resume [default: 10000].
    #[arg(long)]
    watch_history_deltas_max: Option<usize>,
    /// Deltas an agent may fall behind before it is cut [default: 4096].
    #[arg(long)]
    watch_queue_deltas_max: Option<usize>,
    /// Interval of Progress messages to idle agents [default: 1000].
    #[arg(long)]
    progress_interval_ms: Option<u64>,
    /// Agents this node serves at once [default: 10000].
    #[arg(long)]
    agents_max: Option<usize>,
    #[command(flatten)]
    #[serde(flatten)]
    tls: trust::cli::TlsArgs,
}

impl ServeArgs {
    /// The file's fields, overridden by every flag given.
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        let mut table = match &self.config {
            Some(path) => toml::from_str::<toml::Table>(&std::fs::read_to_string(path)?)
                .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?,
            None => toml::Table::new(),
        };
        // `None` flags serialize to nothing, so they do not override the file.
        let flags = toml::Table::try_from(&self)?;
        table.extend(flags);
        let config: NodeConfig = table.try_into().map_err(|error: toml::de::Error| {
            anyhow::anyhow!("{} (give it as a flag or in --config)", error.message())
        })?;
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _telemetry = match cli.otlp.init_logging(
        "registry",
        false,
        "RUST_LOG",
        "info,openraft=warn,raft_log=warn",
        cli.log_format,
    ) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("registry: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Snapshot(command) => match snapshot(command) {
            Ok(said) => {
                #[allow(clippy::print_stdout)] // The command's answer.
                {
                    println!("{said}");
                }
                return std::process::ExitCode::SUCCESS;
            }
            Err(error) => {
                eprintln!("registry: {error}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("registry: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match registry::server::run(config, plumbing::termination(), |_| {}).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("registry: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
