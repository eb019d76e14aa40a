//! `registry serve`: runs one registry node.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use registry::config::{NodeConfig, Peer};
use registry::limits;

#[derive(Parser)]
#[command(name = "registry", version, about = "A Tenantry registry node (one per region, Raft-replicated).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node. Flags override the fields of --config.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A TOML file with the fields below (id, region, grpc, http, data_dir, peers, ...).
    #[arg(long)]
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
    peers: Vec<Peer>,
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
}

fn missing(flag: &str) -> anyhow::Error {
    anyhow::anyhow!("--{flag} is required (or set it in --config)")
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<NodeConfig> {
        let base = self.config.as_deref().map(NodeConfig::from_file).transpose()?;
        let or = |flag: Option<u64>, from_file: Option<u64>, default: u64| flag.or(from_file).unwrap_or(default);
        let config = NodeConfig {
            id: self.id.or(base.as_ref().map(|config| config.id)).ok_or_else(|| missing("id"))?,
            region: self
                .region
                .or(base.as_ref().map(|config| config.region.clone()))
                .ok_or_else(|| missing("region"))?,
            grpc: self.grpc.or(base.as_ref().map(|config| config.grpc)).ok_or_else(|| missing("grpc"))?,
            http: self.http.or(base.as_ref().map(|config| config.http)).ok_or_else(|| missing("http"))?,
            data_dir: self
                .data_dir
                .or(base.as_ref().map(|config| config.data_dir.clone()))
                .ok_or_else(|| missing("data-dir"))?,
            peers: if self.peers.is_empty() {
                base.as_ref().map(|config| config.peers.clone()).ok_or_else(|| missing("peer"))?
            } else {
                self.peers
            },
            heartbeat_ms: or(self.heartbeat_ms, base.as_ref().map(|c| c.heartbeat_ms), limits::HEARTBEAT_MS_DEFAULT),
            election_timeout_ms_min: or(
                self.election_timeout_ms_min,
                base.as_ref().map(|c| c.election_timeout_ms_min),
                limits::ELECTION_TIMEOUT_MS_MIN_DEFAULT,
            ),
            election_timeout_ms_max: or(
                self.election_timeout_ms_max,
                base.as_ref().map(|c| c.election_timeout_ms_max),
                limits::ELECTION_TIMEOUT_MS_MAX_DEFAULT,
            ),
            snapshot_every_entries: or(
                self.snapshot_every_entries,
                base.as_ref().map(|c| c.snapshot_every_entries),
                limits::SNAPSHOT_EVERY_ENTRIES_DEFAULT,
            ),
            log_kept_after_snapshot_entries: or(
                self.log_kept_after_snapshot_entries,
                base.as_ref().map(|c| c.log_kept_after_snapshot_entries),
                limits::LOG_KEPT_AFTER_SNAPSHOT_ENTRIES_DEFAULT,
            ),
            document_bytes_max: self
                .document_bytes_max
                .or(base.as_ref().map(|c| c.document_bytes_max))
                .unwrap_or(limits::DOCUMENT_BYTES_MAX_DEFAULT),
        };
        config.validate()?;
        Ok(config)
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this node gracefully");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn,raft_log=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Command::Serve(args) = Cli::parse().command;
    let config = match args.into_config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("registry: {error:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match registry::server::run(config, termination(), |_| {}).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("registry: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
