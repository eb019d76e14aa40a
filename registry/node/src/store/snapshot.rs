//! Snapshot files: one JSON record per line, a header with openraft's
//! snapshot meta first and a trailer with the record count and the SHA-256
//! of every byte before it last. Written to a temporary file, fsynced,
//! renamed into place, and the directory fsynced, so a crash leaves either
//! the old snapshot or the new one, never half of one.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_core::{AuditEntry, Session, State, Tenant};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raft_types::{LogId, SnapshotMeta, StoredMembership};

const FORMAT: &str = "tenantry-snapshot-v1";
const FILE_PREFIX: &str = "snapshot-";
const FILE_SUFFIX: &str = ".jsonl";

/// The applied state at one log id: what a snapshot holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedState {
    pub state: State,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Header { format: String, meta: SnapshotMeta },
    Tenant(Arc<Tenant>),
    Audit(Arc<AuditEntry>),
    Session(Arc<Session>),
    Cluster(ulid::Ulid),
    Topology(Arc<registry_core::Topology>),
    End { records: u64, sha256: String },
}

/// Hashes every byte written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_record(writer: &mut impl Write, record: &Record) -> io::Result<()> {
    serde_json::to_writer(&mut *writer, record).map_err(io::Error::other)?;
    writer.write_all(b"\n")
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// The file name of the snapshot at `last_index`; names sort by index.
fn file_name(last_index: u64) -> String {
    format!("{FILE_PREFIX}{last_index:020}{FILE_SUFFIX}")
}

/// The meta that a snapshot of `applied` carries.
pub fn meta_of(applied: &AppliedState) -> SnapshotMeta {
    SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership.clone() }
}

/// Writes `file` with the snapshot records of `applied`, and syncs it.
pub fn write_to(file: File, applied: &AppliedState) -> io::Result<()> {
    let writer = write_records(BufWriter::new(file), applied)?;
    let file = writer.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()
}

/// The snapshot of `applied` as bytes (a backup).
pub fn encode(applied: &AppliedState) -> io::Result<Vec<u8>> {
    write_records(Vec::new(), applied)
}

/// Writes the snapshot records of `applied` to `out` and returns it.
fn write_records<W: Write>(out: W, applied: &AppliedState) -> io::Result<W> {
    let mut writer = HashingWriter { inner: out, hasher: Sha256::new() };
    let header = Record::Header { format: FORMAT.to_owned(), meta: meta_of(applied) };
    write_record(&mut writer, &header)?;
    let state = &applied.state;
    let mut records = 0u64;
    if let Some(cluster_id) = state.cluster_id {
        write_record(&mut writer, &Record::Cluster(cluster_id))?;
        records += 1;
    }
    write_record(&mut writer, &Record::Topology(state.topology.clone()))?;
    records += 1;
    for tenant in state.tenants.values() {
        write_record(&mut writer, &Record::Tenant(tenant.clone()))?;
        records += 1;
    }
    for entry in state.audit.values() {
        write_record(&mut writer, &Record::Audit(entry.clone()))?;
        records += 1;
    }
    for session in state.sessions.values() {
        write_record(&mut writer, &Record::Session(session.clone()))?;
        records += 1;
    }
    let sha256 = hex::encode(writer.hasher.finalize_reset());
    write_record(&mut writer.inner, &Record::End { records, sha256 })?;
    Ok(writer.inner)
}

/// Makes `tmp_path` the current snapshot of `dir`: fsync, rename, fsync the
/// directory, then delete older snapshots. Returns the final path.
fn commit(dir: &Path, tmp_path: &Path, last_index: u64) -> io::Result<PathBuf> {
    File::open(tmp_path)?.sync_all()?;
    let final_path = dir.join(file_name(last_index));
    fs::rename(tmp_path, &final_path)?;
    File::open(dir)?.sync_all()?;
    for (index, path) in list(dir)? {
        if index < last_index {
            fs::remove_file(path)?;
        }
    }
    Ok(final_path)
}

/// Writes a snapshot of `applied` into `dir` and makes it current.
pub fn save(dir: &Path, applied: &AppliedState) -> io::Result<PathBuf> {
    let last_index = applied.last_applied.map_or(0, |log_id| log_id.index);
    let tmp_path = dir.join(format!("{}.tmp", ulid::Ulid::new()));
    write_to(File::create(&tmp_path)?, applied)?;
    commit(dir, &tmp_path, last_index)
}

/// The committed snapshot files in `dir`, oldest first.
fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut snapshots = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        let index = name.strip_prefix(FILE_PREFIX).and_then(|rest| rest.strip_suffix(FILE_SUFFIX));
        if let Some(Ok(index)) = index.map(str::parse::<u64>) {
            snapshots.push((index, path));
        }
    }
    snapshots.sort();
    Ok(snapshots)
}

/// The path of the current snapshot of `dir`, if there is one.
pub fn current(dir: &Path) -> io::Result<Option<PathBuf>> {
    Ok(list(dir)?.pop().map(|(_, path)| path))
}

/// Creates `dir` if needed and removes temporary files that a crash left
/// behind. Only for start-up: at run time a temporary file may be a snapshot
/// being built or received.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|extension| extension == "tmp") {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Reads only the header of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    let mut line = String::new();
    BufReader::new(File::open(path)?).read_line(&mut line)?;
    match serde_json::from_str(&line).map_err(|error| invalid(format!("snapshot header: {error}")))? {
        Record::Header { format, meta } if format == FORMAT => Ok(meta),
        _ => Err(invalid(format!("{}: not a {FORMAT} file", path.display()))),
    }
}

/// Reads and verifies a whole snapshot.
pub fn read(reader: impl io::Read) -> io::Result<(SnapshotMeta, AppliedState)> {
    let mut reader = BufReader::new(reader);
    let mut hasher = Sha256::new();
    let mut line = String::new();
    let mut meta = None;
    let mut applied = AppliedState::default();
    let mut records = 0u64;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("snapshot ends without its trailer (truncated?)"));
        }
        let record: Record =
            serde_json::from_str(&line).map_err(|error| invalid(format!("snapshot record {records}: {error}")))?;
        match record {
            Record::End { records: expected, sha256 } => {
                let actual = hex::encode(hasher.finalize());
                if actual != sha256 || expected != records {
                    return Err(invalid(format!(
                        "snapshot checksum mismatch: {records} records hashing to {actual}, trailer says {expected} and {sha256}"
                    )));
                }
                let meta = meta.ok_or_else(|| invalid("snapshot has no header"))?;
                applied.state.validate().map_err(invalid)?;
                return Ok((meta, applied));
            }
            Record::Header { format, meta: header } => {
                if format != FORMAT || meta.is_some() {
                    return Err(invalid("snapshot header is not the first record or has an unknown format"));
                }
                applied.last_applied = header.last_log_id;
                applied.membership = header.last_membership.clone();
                meta = Some(header);
            }
            Record::Tenant(tenant) => {
                applied.state.tenants.insert(tenant.id.clone(), tenant);
                records += 1;
            }
            Record::Audit(entry) => {
                applied.state.audit.insert(entry.position(), entry);
                records += 1;
            }
            Record::Session(session) => {
                applied.state.insert_session(session);
                records += 1;
            }
            Record::Cluster(cluster_id) => {
                applied.state.cluster_id = Some(cluster_id);
                records += 1;
            }
            Record::Topology(topology) => {
                applied.state.topology = topology;
                records += 1;
            }
        }
        hasher.update(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Revision, TenantId};
    use registry_core::{apply, Command, DocumentsPatch, Op, WriteMeta};

    fn sample() -> AppliedState {
        let mut applied = AppliedState::default();
        for (index, id) in ["acme", "globex", "initech"].into_iter().enumerate() {
            let command = Command::new(
                WriteMeta {
                    expected_revision: None,
                    request_id: Some(format!("req-{id}")),
                    actor: "test".to_owned(),
                    reason: String::new(),
                    at_unix_ms: 1,
                    change_id: ulid::Ulid::nil(),
                },
                Op::CreateTenant {
                    tenant: TenantId::parse(id).expect("valid"),
                    uid: ulid::Ulid::nil(),
                    documents: DocumentsPatch { config: Some(r#"{"a":1}"#.to_owned()), ..Default::default() },
                    proposer_region: None,
                },
            );
            apply(&mut applied.state, Revision(index as u64 + 1), 0, &command);
        }
        applied.last_applied = Some(crate::raft_types::log_id(2, 1, 3));
        applied.state.cluster_id = Some(ulid::Ulid::from_parts(7, 7));
        applied
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let applied = sample();
        let path = save(dir.path(), &applied).expect("save");
        assert_eq!(current(dir.path()).expect("list"), Some(path.clone()));
        assert_eq!(read_meta(&path).expect("meta").last_log_id, applied.last_applied);
        let (_, loaded) = read(File::open(&path).expect("open")).expect("read");
        assert_eq!(loaded, applied);

        let text = fs::read_to_string(&path).expect("read");
        let corrupted = text.replacen(r#"\"a\":1"#, r#"\"a\":2"#, 1);
        assert_ne!(corrupted, text);
        assert!(read(corrupted.as_bytes()).is_err(), "a changed byte fails the checksum");
        let truncated = &text[..text.len() / 2];
        assert!(read(truncated.as_bytes()).is_err(), "a truncated file is refused");
    }

    #[test]
    fn newer_snapshot_replaces_older() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut applied = sample();
        save(dir.path(), &applied).expect("save");
        applied.last_applied = Some(crate::raft_types::log_id(2, 1, 9));
        let newer = save(dir.path(), &applied).expect("save");
        fs::write(dir.path().join("leftover.tmp"), b"partial").expect("write");
        prepare_dir(dir.path()).expect("prepare");
        assert_eq!(current(dir.path()).expect("list"), Some(newer));
        assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 1, "old snapshot and temp files removed");
    }
}
