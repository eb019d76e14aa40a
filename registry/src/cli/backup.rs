//! `regctl snapshot save FILE` and `regctl snapshot restore FILE`.
//!
//! A backup is the registry's own snapshot file (JSON lines, SHA-256
//! trailer) taken at a linearizable read point. A restore builds the data
//! directory of the first node of a **new** cluster from it: the same
//! tenants, placements, audit log and sessions at the same revision, a new
//! cluster id (agents of the old cluster resync from a snapshot), and the
//! new cluster's members as voters. Start that node and the others (with
//! empty data directories) with the same `--peer` list: it leads and sends
//! the others its snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use openraft::{CommittedLeaderId, Membership};

use super::output::{self, Format};
use super::Failure;
use crate::client::Client;
use crate::raft_types::{LogId, Member, StoredMembership};
use crate::store::snapshot;

#[derive(clap::Subcommand)]
pub(super) enum SnapshotCommand {
    /// Save a consistent backup to FILE (with its revision and checksum).
    Save { file: PathBuf },
    /// Build the first node's data directory of a new cluster from a backup.
    Restore {
        file: PathBuf,
        /// The new node's data directory (must not exist or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// Every member of the new cluster, ID=REGION@HOST:PORT (repeat).
        #[arg(long = "peer", value_parser = super::parse_member, required = true)]
        peers: Vec<(u64, String, String)>,
    },
}

fn io_failure(path: &Path, error: impl std::fmt::Display) -> Failure {
    Failure(format!("{}: {error}", path.display()))
}

/// Reads and verifies a backup file: its revision, tenants and the state.
fn verify(file: &Path) -> Result<(u64, snapshot::AppliedState), Failure> {
    let opened = File::open(file).map_err(|error| io_failure(file, error))?;
    let (meta, applied) = snapshot::read(opened).map_err(|error| io_failure(file, error))?;
    Ok((meta.last_log_id.map_or(0, |log_id| log_id.index), applied))
}

pub(super) async fn run(command: SnapshotCommand, client: &Client, format: Format) -> Result<(), Failure> {
    match command {
        SnapshotCommand::Save { file } => {
            let bytes = client.save_snapshot().await?;
            let temporary = file.with_extension("tmp");
            let write = || -> std::io::Result<()> {
                std::fs::write(&temporary, &bytes)?;
                File::open(&temporary)?.sync_all()?;
                std::fs::rename(&temporary, &file)
            };
            write().map_err(|error| io_failure(&file, error))?;
            let (revision, applied) = verify(&file)?;
            let sha256 = compiler::document::sha256_hex(&bytes);
            output::info(
                format,
                &format!(
                    "saved {}: revision {revision}, {} tenants, {} audit entries, {} bytes, sha256 {sha256}",
                    file.display(),
                    applied.state.live_tenants(),
                    applied.state.audit.len(),
                    bytes.len()
                ),
            );
        }
        SnapshotCommand::Restore { file, data_dir, peers } => {
            let (revision, mut applied) = verify(&file)?;
            let occupied = std::fs::read_dir(&data_dir).is_ok_and(|mut entries| entries.next().is_some());
            if occupied {
                return Err(Failure(format!("--data-dir {}: must be empty or not exist", data_dir.display())));
            }
            for (_, region, _) in &peers {
                proto::Region::parse(region).map_err(|error| Failure(format!("--peer: {error}")))?;
            }
            // A new cluster: its log starts at the backup's revision, in term 0, with the new members as voters.
            let log_id = LogId::new(CommittedLeaderId::new(0, 0), revision);
            let nodes: BTreeMap<u64, Member> = peers
                .iter()
                .map(|(id, region, addr)| (*id, Member { region: region.clone(), grpc_addr: addr.clone() }))
                .collect();
            let voters: BTreeSet<u64> = nodes.keys().copied().collect();
            applied.last_applied = Some(log_id);
            applied.membership = StoredMembership::new(Some(log_id), Membership::new(vec![voters], nodes));
            let cluster_id = ulid::Ulid::new();
            applied.state.cluster_id = Some(cluster_id);
            let snapshots = data_dir.join("snapshots");
            snapshot::prepare_dir(&snapshots).map_err(|error| io_failure(&snapshots, error))?;
            let saved = snapshot::save(&snapshots, &applied).map_err(|error| io_failure(&snapshots, error))?;
            output::info(
                format,
                &format!(
                    "restored revision {revision} ({} tenants) into {} as new cluster {cluster_id}; start this node \
                     and the others with the same --peer list",
                    applied.state.live_tenants(),
                    saved.display()
                ),
            );
        }
    }
    Ok(())
}
