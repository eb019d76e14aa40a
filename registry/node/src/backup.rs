//! Offline work on backups, as etcdutl does for etcd: `registry snapshot
//! status FILE` reads and checks one, `registry snapshot restore FILE`
//! builds the first node's data directory of a **new** cluster from it.
//!
//! A backup is the registry's own snapshot file (JSON lines, SHA-256
//! trailer), saved by `regctl snapshot save` at a linearizable read point.
//! A restore keeps the tenants, placements, audit log and sessions at the
//! same revision, gives the cluster a new id (agents of the old cluster
//! resync from a snapshot), and makes the new cluster's members voters.
//! Start that node and the others (with empty data directories) with the
//! same `--peer` list: it leads and sends the others its snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::raft_types::Membership;

use crate::config::Peer;
use crate::raft_types::{Member, StoredMembership};
use crate::store::snapshot::{self, AppliedState};

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub revision: u64,
    pub tenants: usize,
    pub audit_entries: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "revision {}, {} tenants, {} audit entries", self.revision, self.tenants, self.audit_entries)
    }
}

fn in_file(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{}: {error}", path.display())
}

/// Opens backup `file`: the file, and its length in bytes.
pub fn open(file: &Path) -> Result<(File, u64), String> {
    let opened = File::open(file).map_err(|error| in_file(file, error))?;
    let bytes = opened.metadata().map_err(|error| in_file(file, error))?.len();
    Ok((opened, bytes))
}

/// A backup read and checked.
pub struct Backup {
    pub summary: Summary,
    applied: AppliedState,
}

/// Reads backup `file` from `reader` (the opened file, or a wrapper that
/// counts its bytes) and checks its checksum.
pub fn read(file: &Path, reader: impl Read) -> Result<Backup, String> {
    let (meta, applied) = snapshot::read(reader).map_err(|error| in_file(file, error))?;
    let summary = Summary {
        revision: meta.last_log_id.map_or(0, |log_id| log_id.index),
        tenants: applied.state.live_tenants(),
        audit_entries: applied.state.audit.len(),
    };
    Ok(Backup { summary, applied })
}

/// A restored data directory.
#[derive(Debug)]
pub struct Restored {
    pub summary: Summary,
    pub snapshot: PathBuf,
    pub cluster_id: ulid::Ulid,
}

/// Refuses a restore into `data_dir` (not empty) or without `peers`, before
/// a large backup is read.
pub fn check_restore(data_dir: &Path, peers: &[Peer]) -> Result<(), String> {
    let occupied = std::fs::read_dir(data_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(format!("--data-dir {}: must be empty or not exist", data_dir.display()));
    }
    if peers.is_empty() {
        return Err("--peer: give every member of the new cluster".to_owned());
    }
    Ok(())
}

/// Writes node data directory `data_dir` (empty or absent) of a new cluster
/// of `peers` from a backup read by [`read`].
pub fn restore(backup: Backup, data_dir: &Path, peers: &[Peer]) -> Result<Restored, String> {
    check_restore(data_dir, peers)?;
    let Backup { summary, mut applied } = backup;
    // A new cluster: its log starts at the backup's revision, in term 0, with the new members as voters.
    let log_id = crate::raft_types::log_id(0, 0, summary.revision);
    let nodes: BTreeMap<u64, Member> = peers
        .iter()
        .map(|peer| (peer.id, Member { region: peer.region.clone(), grpc_addr: peer.grpc_addr.clone() }))
        .collect();
    let voters: BTreeSet<u64> = nodes.keys().copied().collect();
    applied.last_applied = Some(log_id);
    let membership = Membership::new(vec![voters], nodes).map_err(|error| format!("--peer: {error}"))?;
    applied.membership = StoredMembership::new(Some(log_id), membership);
    let cluster_id = ulid::Ulid::new();
    applied.state.cluster_id = Some(cluster_id);
    let snapshots = data_dir.join("snapshots");
    snapshot::prepare_dir(&snapshots).map_err(|error| in_file(&snapshots, error))?;
    let saved = snapshot::save(&snapshots, &applied).map_err(|error| in_file(&snapshots, error))?;
    Ok(Restored { summary, snapshot: saved, cluster_id })
}
