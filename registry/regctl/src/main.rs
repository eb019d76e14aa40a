//! regctl, the operator CLI: argument parsing and the verbs, one module per
//! verb. Printing lives in [`output`] (the only module that writes to
//! stdout). It talks to a cluster through `registry-client` only; offline
//! work on a node's data (`registry snapshot restore`) is the node binary's.
//!
//! Exit codes: 0 success, 1 failure, 2 usage.

mod backup;
mod canary;
mod certs;
mod cluster;
mod failover;
mod fleet;
mod local_postgres;
mod moves;
mod output;
mod publish;
mod purge;
mod repo;
mod smoke;
mod tenants;
mod topology;
mod ui;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use proto::v1::Consistency;
use proto::TenantId;

use output::Format;
use registry_client::{Client, WriteOptions};

/// The default endpoints: the three nodes `regctl up` starts.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

#[derive(Parser)]
#[command(name = "regctl", version, about = "Operate a Tenantry registry: tenants, history, cluster.")]
struct Cli {
    /// How logs are written to stderr: text, or one JSON object per line.
    #[arg(long, global = true, env = "TENANTRY_LOG_FORMAT", default_value = "text")]
    log_format: plumbing::LogFormat,
    /// Registry gRPC endpoints, comma separated; tried in turn, following the leader.
    #[arg(long, global = true, env = "TENANTRY_ENDPOINTS", default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Human)]
    output: Format,
    /// Where traces go (OTLP/gRPC).
    #[command(flatten)]
    otlp: trust::cli::OtlpArgs,
    /// This operator's certificate (mutual TLS; the role is in it).
    #[command(flatten)]
    tls: trust::cli::TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, read, change and delete tenants.
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
    /// Compile a config repo and publish what changed, in gated cohorts.
    Publish(publish::PublishArgs),
    /// Compare a compiled config repo with the registry (exit 1 when they differ).
    Diff {
        /// The config repo.
        dir: PathBuf,
    },
    /// Write a valid config repo of N generated tenants.
    GenConfigs {
        /// How many tenants.
        #[arg(long)]
        tenants: usize,
        /// Where to write it (must not hold a repo).
        #[arg(long)]
        out: PathBuf,
    },
    /// Stage, promote or abort a tenant's canary version.
    #[command(subcommand)]
    Canary(canary::CanaryCommand),
    /// Restore a tenant's documents as of a revision, as a new revision.
    Rollback {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// The revision whose documents to restore.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        write: WriteArgs,
        #[command(flatten)]
        purge: purge::PurgeArgs,
    },
    /// Consistent backups (restore one with `registry snapshot restore`).
    #[command(subcommand)]
    Snapshot(backup::SnapshotCommand),
    /// Region status.
    #[command(subcommand)]
    Region(topology::RegionCommand),
    /// Data shards: new tenants go to the first active shard of their home region.
    #[command(subcommand)]
    Shard(topology::ShardCommand),
    /// Move the home region of a region's tenants, with lease fencing.
    Failover(failover::FailoverArgs),
    /// Move a tenant's rows to another shard of its home region (resumable;
    /// `--abort` before the flip).
    Move(moves::MoveArgs),
    /// Data residency: the regions a tenant's data and writes may be in
    /// (refused if its home or DR region would fall outside).
    Pin {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// Region names, comma separated, e.g. eu-west,eu-central.
        #[arg(long, value_delimiter = ',', required = true)]
        regions: Vec<String>,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// The audit history of a tenant, newest first.
    History {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// At most this many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Cluster membership and Raft state.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The agent fleet, merged from every reachable node.
    Agents {
        /// Only agents that have not acknowledged the newest revision.
        #[arg(long)]
        lagging: bool,
        /// Only agents of this region.
        #[arg(long)]
        region: Option<String>,
    },
    /// Wait until every connected agent has acknowledged a revision.
    Wait {
        /// The revision to wait for.
        #[arg(long)]
        revision: u64,
        /// Only agents of this region.
        #[arg(long)]
        region: Option<String>,
        /// Give up after this many seconds (exit 1, listing who has not).
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Start a local three-region cluster on loopback, seeded from configs/.
    Up(up::UpArgs),
    /// Certificates: the cluster CA, nodes, agents, operators.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// End-to-end checks of every tenant through api-nodes.
    Smoke(smoke::SmokeArgs),
    /// A live console in the browser, served on loopback with this operator's certificate.
    Ui(ui::UiArgs),
}

fn parse_tenant_id(text: &str) -> Result<TenantId, String> {
    TenantId::parse(text).map_err(|error| error.to_string())
}

#[derive(Args)]
struct WriteArgs {
    /// Apply only if the tenant's revision is exactly this (0: must not exist).
    #[arg(long)]
    expected_revision: Option<u64>,
    /// Why; recorded in the audit history.
    #[arg(long, default_value = "")]
    reason: String,
    /// Idempotency key; a retry with the same id applies once. Generated if absent.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Args)]
struct ReadArgs {
    /// Answer from the first reachable node without asking the leader (may be behind).
    #[arg(long)]
    stale: bool,
}

impl ReadArgs {
    fn consistency(&self) -> Consistency {
        if self.stale {
            Consistency::Stale
        } else {
            Consistency::Linearizable
        }
    }
}

/// An error that regctl reports and exits 1 with.
#[derive(Debug)]
struct Failure(String);

impl From<registry_client::Error> for Failure {
    fn from(error: registry_client::Error) -> Self {
        let hint = match error {
            registry_client::Error::Unavailable { .. } => {
                "\nhint: is the cluster running and reachable? Start a local one with `regctl up`, or pass --endpoints."
            }
            _ => "",
        };
        Failure(format!("{error}{hint}"))
    }
}

pub(crate) fn actor() -> String {
    std::env::var("USER").map(|user| format!("regctl:{user}")).unwrap_or_else(|_| "regctl".to_owned())
}

impl WriteArgs {
    fn options(self) -> WriteOptions {
        WriteOptions {
            expected_revision: self.expected_revision,
            request_id: self.request_id,
            actor: actor(),
            reason: self.reason,
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let format = cli.output;
    // Verbs that talk to no cluster need no certificate.
    let command = match cli.command {
        Command::Up(args) => return up::run(args, cli.tls.insecure, format).await,
        Command::Certs(command) => return certs::run(command, format),
        Command::GenConfigs { tenants, out } => {
            compiler::generate::generate(&out, tenants)
                .map_err(|error| Failure(format!("{}: {error}", out.display())))?;
            output::info(format, &format!("wrote {tenants} tenants to {}", out.display()));
            return Ok(());
        }
        command => command,
    };
    let tls = cli.tls.load("regctl").map_err(|error| Failure(error.to_string()))?;
    // Connections are lazy: making the client costs nothing until a call.
    let client = Client::new(&cli.endpoints, tls)?;
    match command {
        Command::Up(_) | Command::Certs(_) | Command::GenConfigs { .. } => {}
        Command::Smoke(args) => smoke::run(args, &client, format).await?,
        Command::Tenant(command) => tenants::run(command, &client, format).await?,
        Command::Publish(args) => publish::run(args, &client, format).await?,
        Command::Diff { dir } => {
            let compiled = repo::compile(&dir, format)?;
            let (live, _) = client.list_tenants(Consistency::Linearizable, false).await?;
            let rows = repo::diff(&compiled, &live);
            output::diff(&rows, format);
            let differ = rows.iter().filter(|row| row.state != "unchanged").count();
            if differ > 0 {
                return Err(Failure(format!("{differ} tenants differ between {} and the registry", dir.display())));
            }
        }
        Command::Canary(command) => canary::run(command, &client, format).await?,
        Command::Rollback { tenant, to, write, purge } => {
            let hook = purge.hook()?;
            let written = client.rollback_tenant(tenant.as_str(), to, &write.options()).await?;
            output::write_response(&format!("rolled back (to revision {to})"), &written, format);
            if let Some(hook) = &hook {
                purge::after_write(hook, &client, "rollback", &written, format).await?;
            }
        }
        Command::Failover(args) => failover::run(args, &client, format).await?,
        Command::Move(args) => moves::run(args, &client, format).await?,
        Command::Region(command) => topology::region(command, &client, format).await?,
        Command::Shard(command) => topology::shard(command, &client, format).await?,
        Command::Snapshot(command) => backup::run(command, &client, format).await?,
        Command::Pin { tenant, regions, write } => {
            let written = client.pin_tenant(tenant.as_str(), &regions, &write.options()).await?;
            output::write_response("pinned", &written, format);
        }
        Command::History { tenant, limit } => {
            let history = client.history(tenant.as_str(), limit, false).await?;
            output::history(&history, format);
        }
        Command::Agents { lagging, region } => fleet::agents(&client, lagging, region, format).await?,
        Command::Wait { revision, region, timeout } => fleet::wait(&client, revision, region, timeout, format).await?,
        Command::Cluster(command) => cluster::run(command, &client, format).await?,
        Command::Ui(args) => ui::run(args, client, format).await?,
    }
    Ok(())
}

/// The verb as typed, e.g. `regctl tenant set`: the name of the trace's root span.
fn verb(matches: &clap::ArgMatches) -> String {
    let mut verb = "regctl".to_owned();
    let mut at = matches;
    while let Some((name, inner)) = at.subcommand() {
        verb.push(' ');
        verb.push_str(name);
        at = inner;
    }
    verb
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            output::error(&format!("cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let telemetry = {
        let _entered = runtime.enter();
        cli.otlp.init_logging("regctl", true, "REGCTL_LOG", "warn", cli.log_format)
    };
    let _telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error) => {
            output::error(&error);
            return ExitCode::from(2);
        }
    };
    // The root of the trace: every call regctl makes is under it.
    let span = tracing::info_span!(target: plumbing::trace::TARGET, "regctl", otel.name = %verb(&matches), otel.kind = "client");
    match runtime.block_on(tracing::Instrument::instrument(run(cli), span)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            output::error(&message);
            ExitCode::FAILURE
        }
    }
}
