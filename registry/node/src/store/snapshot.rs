//! Snapshot files: a header with openraft's snapshot meta first, then the
//! state's records, and a trailer with the record count and the SHA-256 of
//! every byte before it last. Written to a temporary file, fsynced, renamed
//! into place, and the directory fsynced, so a crash leaves either the old
//! snapshot or the new one, never half of one.
//!
//! Format 2 (written): [`MAGIC`], then each record as a little-endian u32
//! length and its postcard encoding (compact binary: documents as raw
//! bytes, not escaped JSON strings); an audit entry that set a tenant's
//! live documents refers to them instead of repeating them. Format 1 (one
//! JSON record per line) is still read, from older nodes and backups.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_core::{AuditEntry, Session, State, Tenant};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::raft_types::{LogId, SnapshotMeta, StoredMembership};

const FORMAT_1: &str = "tenantry-snapshot-v1";
const FORMAT: &str = "tenantry-snapshot-v2";
/// The first bytes of a format 2 file (a format 1 file starts with `{`).
const MAGIC: &[u8] = b"tenantry-snapshot-v2\n";
const FILE_PREFIX: &str = "snapshot-";
/// Format 2's file suffix; format 1 files (`.jsonl`) are listed too.
const FILE_SUFFIX: &str = ".snap";
const FILE_SUFFIX_1: &str = ".jsonl";

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
    Header {
        format: String,
        meta: SnapshotMeta,
    },
    Tenant(Arc<Tenant>),
    Audit(Arc<AuditEntry>),
    Session(Arc<Session>),
    Cluster(ulid::Ulid),
    Topology(Arc<registry_core::Topology>),
    End {
        records: u64,
        sha256: String,
    },
    /// An audit entry whose documents are its tenant's live ones (written
    /// without them; the tenant's record comes first). Format 2 only.
    AuditOfLive(Arc<AuditEntry>),
    /// The shards' read replicas (shard id → endpoint), after the topology;
    /// written only when there are some, so that a snapshot without
    /// replicas is one that builds before them read.
    Replicas(std::collections::BTreeMap<String, String>),
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
    let bytes = postcard::to_stdvec(record).map_err(io::Error::other)?;
    let length = u32::try_from(bytes.len()).map_err(|_| invalid("a snapshot record over 4 GiB"))?;
    writer.write_all(&length.to_le_bytes())?;
    writer.write_all(&bytes)
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
    writer.write_all(MAGIC)?;
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
    let replicas: std::collections::BTreeMap<String, String> =
        state.topology.shards.values().filter_map(|shard| Some((shard.id.clone(), shard.replica.clone()?))).collect();
    if !replicas.is_empty() {
        write_record(&mut writer, &Record::Replicas(replicas))?;
        records += 1;
    }
    for tenant in state.tenants.values() {
        write_record(&mut writer, &Record::Tenant(tenant.clone()))?;
        records += 1;
    }
    for entry in state.audit.values() {
        let live = state.tenants.get(&entry.tenant).map(|tenant| &tenant.documents);
        let record = match (&entry.documents, live) {
            (Some(documents), Some(live)) if Arc::ptr_eq(documents, live) => {
                Record::AuditOfLive(Arc::new(AuditEntry { documents: None, ..AuditEntry::clone(entry) }))
            }
            _ => Record::Audit(entry.clone()),
        };
        write_record(&mut writer, &record)?;
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
        let index = name
            .strip_prefix(FILE_PREFIX)
            .and_then(|rest| rest.strip_suffix(FILE_SUFFIX).or_else(|| rest.strip_suffix(FILE_SUFFIX_1)));
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
    let mut records = Records::open(BufReader::new(File::open(path)?))?;
    let expected = records.format();
    match records.next()?.0 {
        Record::Header { format, meta } if format == expected => Ok(meta),
        _ => Err(invalid(format!("{}: not a {FORMAT} or {FORMAT_1} file", path.display()))),
    }
}

/// The records of a snapshot file of either format, each with its bytes
/// (what the trailer's hash covers), read into one reused buffer.
struct Records<R> {
    reader: R,
    /// Format 2 (binary) or 1 (JSON lines).
    binary: bool,
    buffer: Vec<u8>,
}

/// The largest record a snapshot may hold: a tenant with its canary, each
/// document at most the hard maximum, with room to spare.
const RECORD_BYTES_MAX: usize = 8 * registry_core::limits::DOCUMENT_BYTES_HARD_MAX + 1024 * 1024;

impl<R: BufRead> Records<R> {
    fn open(mut reader: R) -> io::Result<Self> {
        if reader.fill_buf()?.starts_with(b"{") {
            return Ok(Records { reader, binary: false, buffer: Vec::new() });
        }
        let mut magic = vec![0; MAGIC.len()];
        reader.read_exact(&mut magic).map_err(|_| invalid("not a snapshot file (too short)"))?;
        if magic != MAGIC {
            return Err(invalid(format!("not a {FORMAT} or {FORMAT_1} snapshot file")));
        }
        Ok(Records { reader, binary: true, buffer: Vec::new() })
    }

    fn format(&self) -> &'static str {
        if self.binary {
            FORMAT
        } else {
            FORMAT_1
        }
    }

    /// The first bytes the hash covers (format 2: the magic).
    fn preamble(&self) -> &'static [u8] {
        if self.binary {
            MAGIC
        } else {
            b""
        }
    }

    fn next(&mut self) -> io::Result<(Record, &[u8])> {
        let truncated = || invalid("snapshot ends without its trailer (truncated?)");
        self.buffer.clear();
        if !self.binary {
            if self.reader.read_until(b'\n', &mut self.buffer)? == 0 {
                return Err(truncated());
            }
            let record = serde_json::from_slice(&self.buffer).map_err(|error| invalid(error.to_string()))?;
            return Ok((record, &self.buffer));
        }
        let mut length = [0; 4];
        self.reader.read_exact(&mut length).map_err(|_| truncated())?;
        let record_length = u32::from_le_bytes(length) as usize;
        if record_length > RECORD_BYTES_MAX {
            return Err(invalid(format!("a snapshot record of {record_length} bytes (at most {RECORD_BYTES_MAX})")));
        }
        self.buffer.extend_from_slice(&length);
        self.buffer.resize(4 + record_length, 0);
        self.reader.read_exact(&mut self.buffer[4..]).map_err(|_| truncated())?;
        let record = postcard::from_bytes(&self.buffer[4..]).map_err(|error| invalid(error.to_string()))?;
        Ok((record, &self.buffer))
    }
}

/// Reads and verifies a whole snapshot (either format).
pub fn read(reader: impl io::Read) -> io::Result<(SnapshotMeta, AppliedState)> {
    let mut records = Records::open(BufReader::new(reader))?;
    let mut hasher = Sha256::new();
    hasher.update(records.preamble());
    let mut meta = None;
    let mut applied = AppliedState::default();
    let mut count = 0u64;
    loop {
        let (record, bytes) = records.next().map_err(|error| invalid(format!("snapshot record {count}: {error}")))?;
        // Every byte before the trailer.
        if !matches!(record, Record::End { .. }) {
            hasher.update(bytes);
        }
        match record {
            Record::End { records: expected, sha256 } => {
                let actual = hex::encode(hasher.finalize());
                if actual != sha256 || expected != count {
                    return Err(invalid(format!(
                        "snapshot checksum mismatch: {count} records hashing to {actual}, trailer says {expected} and {sha256}"
                    )));
                }
                let meta = meta.ok_or_else(|| invalid("snapshot has no header"))?;
                // Tombstones of builds that kept what a deleted tenant held,
                // compacted now that the audit entries took their documents.
                for tenant in applied.state.tenants.values_mut() {
                    if tenant.is_uncompacted_tombstone() {
                        *tenant = Arc::new(tenant.tombstone(tenant.mod_revision));
                    }
                }
                applied.state.validate().map_err(invalid)?;
                return Ok((meta, applied));
            }
            Record::Header { format, meta: header } => {
                if format != records.format() || meta.is_some() {
                    return Err(invalid("snapshot header is not the first record or has an unknown format"));
                }
                applied.last_applied = header.last_log_id;
                applied.membership = header.last_membership.clone();
                meta = Some(header);
            }
            Record::Tenant(tenant) => {
                applied.state.tenants.insert(tenant.id.clone(), tenant);
                count += 1;
            }
            Record::Audit(mut entry) => {
                // Shares the tenant's live documents when they are the same
                // (format 1 wrote them twice).
                let live = applied.state.tenants.get(&entry.tenant).map(|tenant| &tenant.documents);
                if let (Some(documents), Some(live)) = (&entry.documents, live) {
                    if documents == live && !Arc::ptr_eq(documents, live) {
                        Arc::make_mut(&mut entry).documents = Some(live.clone());
                    }
                }
                applied.state.audit.insert(entry.position(), entry);
                count += 1;
            }
            Record::AuditOfLive(mut entry) => {
                let live = applied.state.tenants.get(&entry.tenant).map(|tenant| tenant.documents.clone());
                let live = live.ok_or_else(|| invalid(format!("audit entry of unknown tenant {}", entry.tenant)))?;
                Arc::make_mut(&mut entry).documents = Some(live);
                applied.state.audit.insert(entry.position(), entry);
                count += 1;
            }
            Record::Session(session) => {
                applied.state.insert_session(session);
                count += 1;
            }
            Record::Cluster(cluster_id) => {
                applied.state.cluster_id = Some(cluster_id);
                count += 1;
            }
            Record::Topology(topology) => {
                applied.state.topology = topology;
                count += 1;
            }
            Record::Replicas(replicas) => {
                let topology = Arc::make_mut(&mut applied.state.topology);
                for (id, replica) in replicas {
                    if let Some(shard) = topology.shards.get_mut(&id) {
                        shard.replica = Some(replica);
                    }
                }
                count += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::{Revision, TenantId};
    use registry_core::{apply, Command, DocumentsPatch, Op, Tenant, TenantStatus, WriteMeta};

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
        let region = proto::Region::parse("us-east").expect("region");
        for (id, replica) in [("us-1", Some("postgres://app@replica/s")), ("us-2", None)] {
            let shard = registry_core::Shard {
                id: id.to_owned(),
                region: region.clone(),
                endpoint: "postgres://app@primary/s".to_owned(),
                state: registry_core::ShardState::Active,
                replica: replica.map(str::to_owned),
            };
            Arc::make_mut(&mut applied.state.topology).shards.insert(id.to_owned(), shard);
        }
        applied
    }

    /// Audit entries that set live documents share the tenant's copy.
    fn assert_shares_documents(applied: &AppliedState) {
        let state = &applied.state;
        let shared = state.audit.values().filter(|entry| {
            let live = &state.tenants[&entry.tenant].documents;
            entry.documents.as_ref().is_some_and(|documents| Arc::ptr_eq(documents, live))
        });
        assert_eq!(shared.count(), state.tenants.len(), "each create's audit entry shares its tenant's documents");
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let applied = sample();
        let path = save(dir.path(), &applied).expect("save");
        assert!(path.to_string_lossy().ends_with(".snap"), "{}", path.display());
        assert_eq!(current(dir.path()).expect("list"), Some(path.clone()));
        assert_eq!(read_meta(&path).expect("meta").last_log_id, applied.last_applied);
        let (_, loaded) = read(File::open(&path).expect("open")).expect("read");
        assert_eq!(loaded, applied, "replicas included");
        assert_shares_documents(&loaded);

        let bytes = fs::read(&path).expect("read");
        assert!(bytes.starts_with(MAGIC));
        let at = bytes.windows(7).position(|window| window == br#"{"a":1}"#).expect("a document, unescaped");
        let mut corrupted = bytes.clone();
        corrupted[at + 5] = b'2';
        assert!(read(corrupted.as_slice()).is_err(), "a changed byte fails the checksum");
        assert!(read(&bytes[..bytes.len() / 2]).is_err(), "a truncated file is refused");
        let mut oversized = bytes[..MAGIC.len()].to_vec();
        oversized.extend_from_slice(&u32::MAX.to_le_bytes());
        let refused = read(oversized.as_slice()).unwrap_err().to_string();
        assert!(refused.contains("a snapshot record of 4294967295 bytes"), "{refused}");
    }

    /// A snapshot file of format 1, as nodes before format 2 wrote it.
    fn format_1(applied: &AppliedState) -> Vec<u8> {
        let state = &applied.state;
        let mut records = vec![Record::Header { format: FORMAT_1.to_owned(), meta: meta_of(applied) }];
        records.extend(state.cluster_id.map(Record::Cluster));
        records.push(Record::Topology(state.topology.clone()));
        records.extend(state.tenants.values().map(|tenant| {
            // Format 1 held each tenant's private bundle whole.
            let mut tenant = serde_json::to_value(tenant).expect("json");
            tenant["private_bundle"]["json"] = "{}".into();
            Record::Tenant(serde_json::from_value(tenant).expect("a tenant"))
        }));
        records.extend(state.audit.values().map(|entry| Record::Audit(Arc::new(AuditEntry::clone(entry)))));
        records.extend(state.sessions.values().cloned().map(Record::Session));
        let mut bytes = Vec::new();
        for record in &records {
            bytes.extend(serde_json::to_vec(record).expect("json"));
            bytes.push(b'\n');
        }
        let end = Record::End { records: records.len() as u64 - 1, sha256: hex::encode(Sha256::digest(&bytes)) };
        bytes.extend(serde_json::to_vec(&end).expect("json"));
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn a_format_1_snapshot_is_read_and_its_documents_shared() {
        // Format 1 predates read replicas.
        let mut applied = sample();
        Arc::make_mut(&mut applied.state.topology).shards.values_mut().for_each(|shard| shard.replica = None);
        let bytes = format_1(&applied);
        let (meta, loaded) = read(bytes.as_slice()).expect("read");
        assert_eq!(meta.last_log_id, applied.last_applied);
        assert_eq!(loaded, applied);
        assert_shares_documents(&loaded);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("{FILE_PREFIX}{:020}{FILE_SUFFIX_1}", 3));
        fs::write(&path, &bytes).expect("write");
        assert_eq!(current(dir.path()).expect("list"), Some(path.clone()));
        assert_eq!(read_meta(&path).expect("meta").last_log_id, applied.last_applied);
    }

    #[test]
    fn a_tombstone_that_kept_its_documents_is_compacted_on_load_and_its_history_kept() {
        let mut applied = sample();
        let globex = TenantId::parse("globex").expect("valid");
        // A delete as builds before compacted tombstones applied it.
        let tenant = applied.state.tenants.get_mut(&globex).expect("globex");
        *tenant =
            Arc::new(Tenant { status: TenantStatus::Deleted, mod_revision: Revision(4), ..Tenant::clone(tenant) });
        assert!(tenant.is_uncompacted_tombstone());
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, loaded) = read(File::open(save(dir.path(), &applied).expect("save")).expect("open")).expect("read");

        let tombstone = &loaded.state.tenants[&globex];
        assert!(!tombstone.is_uncompacted_tombstone(), "{tombstone:?}");
        assert_eq!((tombstone.status, tombstone.mod_revision), (TenantStatus::Deleted, Revision(4)));
        let created = loaded.state.audit.values().find(|entry| entry.tenant == globex).expect("its create");
        let documents = created.documents.as_ref().expect("the create's documents");
        assert_eq!(documents.config, r#"{"a":1}"#, "the history keeps what the tombstone dropped");
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
