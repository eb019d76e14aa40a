//! regctl, the operator CLI: argument parsing and the verbs, one module per
//! verb. Printing lives in [`output`] (the only module that writes to
//! stdout). It talks to a cluster through `registry-client` only; offline
//! work on a node's data (`registry snapshot restore`) is the node binary's.
//!
//! Exit codes: 0 success, 1 failure, 2 usage.

mod backup;
mod certs;
mod failover;
mod fleet;
mod moves;
mod output;
mod publish;
mod repo;
mod smoke;
mod topology;
mod up;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use proto::v1::{self, Consistency};
use proto::TenantId;

use output::Format;
use registry_client::{Client, WriteOptions};

/// The default endpoints: the three nodes `regctl up` starts.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103";

#[derive(Parser)]
#[command(name = "regctl", version, about = "Operate a Tenantry registry: tenants, history, cluster.")]
struct Cli {
    /// Registry gRPC endpoints, comma separated; tried in turn, following the leader.
    #[arg(long, global = true, env = "TENANTRY_ENDPOINTS", default_value = DEFAULT_ENDPOINTS, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Human)]
    output: Format,
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
    Tenant(TenantCommand),
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
    Canary(CanaryCommand),
    /// Restore a tenant's documents as of a revision, as a new revision.
    Rollback {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// The revision whose documents to restore.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        write: WriteArgs,
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
    Cluster(ClusterCommand),
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
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; documents from files (`-` for stdin).
    Create {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        documents: DocumentArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Show one tenant.
    Get {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        read: ReadArgs,
        /// Include deleted (tombstoned) tenants.
        #[arg(long)]
        include_deleted: bool,
    },
    /// Replace documents of a tenant; documents not given keep their value.
    Set {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        documents: DocumentArgs,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Delete (tombstone) a tenant.
    Delete {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Subcommand)]
enum CanaryCommand {
    /// Stage the tenant as compiled from a config repo; api-nodes serve it only
    /// with `X-Config-Canary: 1` or cookie `config_canary=1`.
    Stage {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        /// The config repo holding the candidate.
        dir: PathBuf,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Make the staged canary the live version.
    Promote {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
    },
    /// Drop the staged canary.
    Abort {
        #[arg(value_parser = parse_tenant_id)]
        tenant: TenantId,
        #[command(flatten)]
        write: WriteArgs,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members, regions, leader, term and indexes, from every endpoint.
    Status,
    /// Add a node as a learner (replicates, serves agents and stale reads, does
    /// not vote); returns once it has caught up. Start the node first with
    /// `registry serve --id ID --peer …` listing itself and the cluster.
    AddLearner {
        /// ID=REGION@HOST:PORT, e.g. 4=eu-west@10.0.2.4:7100.
        #[arg(value_parser = parse_member)]
        member: (u64, String, String),
    },
    /// Make a learner a voter.
    Promote { id: u64 },
    /// Remove a voter or a learner from the cluster (then stop its process).
    Remove { id: u64 },
}

fn parse_member(text: &str) -> Result<(u64, String, String), String> {
    let usage = || format!("`{text}`: expected ID=REGION@HOST:PORT, e.g. 4=eu-west@127.0.0.1:7104");
    let (id, rest) = text.split_once('=').ok_or_else(usage)?;
    let (region, addr) = rest.split_once('@').ok_or_else(usage)?;
    let id = id.parse::<u64>().map_err(|_| usage())?;
    Ok((id, region.to_owned(), addr.to_owned()))
}

fn parse_tenant_id(text: &str) -> Result<TenantId, String> {
    TenantId::parse(text).map_err(|error| error.to_string())
}

#[derive(Args)]
struct DocumentArgs {
    /// config.json (features, API base, SLA tier; `public` is browser-visible).
    #[arg(long)]
    config: Option<PathBuf>,
    /// theme.json (colors, logo URL, texts).
    #[arg(long)]
    theme: Option<PathBuf>,
    /// Integrations: a JSON object of name -> object.
    #[arg(long)]
    integrations: Option<PathBuf>,
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

fn read_document(path: &Option<PathBuf>, stdin_used: &mut bool) -> Result<Option<String>, Failure> {
    let Some(path) = path else { return Ok(None) };
    if path.as_os_str() == "-" {
        if std::mem::replace(stdin_used, true) {
            return Err(Failure("only one document can come from stdin (`-`)".to_owned()));
        }
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|error| Failure(format!("stdin: {error}")))?;
        return Ok(Some(text));
    }
    std::fs::read_to_string(path).map(Some).map_err(|error| Failure(format!("{}: {error}", path.display())))
}

impl DocumentArgs {
    fn read(&self) -> Result<v1::Documents, Failure> {
        let mut stdin_used = false;
        Ok(v1::Documents {
            config_json: read_document(&self.config, &mut stdin_used)?,
            theme_json: read_document(&self.theme, &mut stdin_used)?,
            integrations_json: read_document(&self.integrations, &mut stdin_used)?,
        })
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
        command => command,
    };
    let tls = cli.tls.load("regctl").map_err(|error| Failure(error.to_string()))?;
    // Connections are lazy: making the client costs nothing until a call.
    let client = Client::new(&cli.endpoints, tls)?;
    match command {
        Command::Up(_) | Command::Certs(_) => {}
        Command::Smoke(args) => smoke::run(args, &client, format).await?,
        Command::Tenant(TenantCommand::Create { tenant, documents, write }) => {
            let written = client.create_tenant(tenant.as_str(), documents.read()?, &write.options()).await?;
            output::write_response("created", &written, format);
        }
        Command::Tenant(TenantCommand::Set { tenant, documents, write }) => {
            let documents = documents.read()?;
            if documents.config_json.is_none()
                && documents.theme_json.is_none()
                && documents.integrations_json.is_none()
            {
                return Err(Failure("give at least one of --config, --theme, --integrations".to_owned()));
            }
            let written = client.update_tenant(tenant.as_str(), documents, &write.options()).await?;
            output::write_response("updated", &written, format);
        }
        Command::Tenant(TenantCommand::Delete { tenant, write }) => {
            let written = client.delete_tenant(tenant.as_str(), &write.options()).await?;
            output::write_response("deleted", &written, format);
        }
        Command::Tenant(TenantCommand::Get { tenant, read }) => {
            let got = client.get_tenant(tenant.as_str(), read.consistency()).await?;
            output::tenant(&got, format);
        }
        Command::Tenant(TenantCommand::List { read, include_deleted }) => {
            let (tenants, revision) = client.list_tenants(read.consistency(), include_deleted).await?;
            output::tenant_list(&tenants, revision, format);
        }
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
        Command::GenConfigs { tenants, out } => {
            compiler::generate::generate(&out, tenants)
                .map_err(|error| Failure(format!("{}: {error}", out.display())))?;
            output::info(format, &format!("wrote {tenants} tenants to {}", out.display()));
        }
        Command::Canary(CanaryCommand::Stage { tenant, dir, write }) => {
            let compiled = repo::compile_one(&dir, &tenant, format)?;
            let written = client.stage_canary(tenant.as_str(), repo::documents(&compiled), &write.options()).await?;
            output::write_response("staged a canary of", &written, format);
        }
        Command::Canary(CanaryCommand::Promote { tenant, write }) => {
            let written = client.finish_canary(tenant.as_str(), true, &write.options()).await?;
            output::write_response("promoted the canary of", &written, format);
        }
        Command::Canary(CanaryCommand::Abort { tenant, write }) => {
            let written = client.finish_canary(tenant.as_str(), false, &write.options()).await?;
            output::write_response("aborted the canary of", &written, format);
        }
        Command::Rollback { tenant, to, write } => {
            let written = client.rollback_tenant(tenant.as_str(), to, &write.options()).await?;
            output::write_response(&format!("rolled back (to revision {to})"), &written, format);
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
            let history = client.history(tenant.as_str(), limit).await?;
            output::history(&history, format);
        }
        Command::Agents { lagging, region } => fleet::agents(&client, lagging, region, format).await?,
        Command::Wait { revision, region, timeout } => fleet::wait(&client, revision, region, timeout, format).await?,
        Command::Cluster(ClusterCommand::AddLearner { member: (id, region, addr) }) => {
            let response = client.add_learner(id, &region, &addr).await?;
            output::membership(&format!("added learner {id}"), &response, format);
        }
        Command::Cluster(ClusterCommand::Promote { id }) => {
            let response = client.change_member(id, true).await?;
            output::membership(&format!("promoted {id} to voter"), &response, format);
        }
        Command::Cluster(ClusterCommand::Remove { id }) => {
            let response = client.change_member(id, false).await?;
            output::membership(&format!("removed {id}"), &response, format);
        }
        Command::Cluster(ClusterCommand::Status) => {
            let statuses = client.cluster_status().await;
            let reachable = statuses.iter().any(|(_, status)| status.is_ok());
            output::cluster_status(&statuses, format);
            if !reachable {
                return Err(Failure("no endpoint answered".to_owned()));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    plumbing::init_logging("REGCTL_LOG", "warn");
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            output::error(&format!("cannot start the async runtime: {error}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            output::error(&message);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_member;

    #[test]
    fn members_are_id_region_at_address() {
        assert_eq!(
            parse_member("4=eu-west@127.0.0.1:7104"),
            Ok((4, "eu-west".to_owned(), "127.0.0.1:7104".to_owned()))
        );
        for bad in ["4eu-west@a:1", "x=eu-west@a:1", "4=eu-west"] {
            assert!(parse_member(bad).expect_err(bad).contains("expected ID=REGION@HOST:PORT"));
        }
    }
}
