//! `regctl region` and `regctl shard`: the cluster's regions and data
//! shards (the routing map sends new tenants to their home region's first
//! active shard).

use clap::Subcommand;
use proto::v1;

use super::output::{self, Format};
use super::Failure;
use registry_client::{Client, TopologyChange};

#[derive(Subcommand)]
pub(super) enum RegionCommand {
    /// Declare a region healthy, degraded or evacuated.
    SetStatus {
        region: String,
        #[arg(value_enum)]
        status: RegionStatusArg,
    },
    /// Regions with a declared status.
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum RegionStatusArg {
    Healthy,
    Degraded,
    Evacuated,
}

#[derive(Subcommand)]
pub(super) enum ShardCommand {
    /// Add a shard in a region.
    Add {
        id: String,
        #[arg(long)]
        region: String,
        /// Where its database is, for the region's api-nodes:
        /// postgres://USER@HOST:PORT/DB[?sslmode=disable|prefer|require] (no
        /// password: api-nodes read theirs from a passfile), or embedded:NAME
        /// (a SQLite file of each api-node, for development on one machine).
        #[arg(long)]
        endpoint: String,
        /// A streaming replica of the database (postgres://…): api-nodes
        /// serve reads from it once it has replayed the caller's last write.
        #[arg(long, value_name = "ENDPOINT")]
        replica: Option<String>,
    },
    /// Every shard.
    List,
    /// Stop a shard from taking new tenants.
    Drain { id: String },
}

pub(super) async fn region(command: RegionCommand, client: &Client, format: Format) -> Result<(), Failure> {
    let change = match command {
        RegionCommand::SetStatus { region, status } => {
            let status = match status {
                RegionStatusArg::Healthy => v1::RegionStatus::Healthy,
                RegionStatusArg::Degraded => v1::RegionStatus::Degraded,
                RegionStatusArg::Evacuated => v1::RegionStatus::Evacuated,
            };
            Some(TopologyChange::RegionStatus(region, status))
        }
        RegionCommand::List => None,
    };
    output::topology(&client.topology(change).await?, format);
    Ok(())
}

pub(super) async fn shard(command: ShardCommand, client: &Client, format: Format) -> Result<(), Failure> {
    let change = match command {
        ShardCommand::Add { id, region, endpoint, replica } => Some(TopologyChange::AddShard(v1::ShardInfo {
            id,
            region,
            endpoint,
            state: String::new(),
            replica_endpoint: replica.unwrap_or_default(),
        })),
        ShardCommand::List => None,
        ShardCommand::Drain { id } => Some(TopologyChange::DrainShard(id)),
    };
    output::topology(&client.topology(change).await?, format);
    Ok(())
}
