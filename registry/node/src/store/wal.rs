//! The WAL's records: raft-log's type configuration with protobuf log
//! entries and votes (format 2, [`wire::FORMAT`]), and the one-time
//! migration of a log of format 1 (serde JSON of openraft 0.9's types).
//!
//! A WAL directory of format 2 holds a `FORMAT` file; one without it that
//! holds records is of format 1. [`open`] migrates such a log into a new
//! directory, swaps it in and keeps the old one beside it as
//! `raft-log.format1` (delete it once the node runs well).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::codeq::{Decode, Encode};
use raft_log::RaftLog;

use openraft::storage::IOFlushed;

use crate::raft_types::{Entry, LogId, TypeConfig, Vote};
use crate::stages::{Stage, Stages};
use crate::wire;

/// The file that marks a WAL directory's format.
const FORMAT_FILE: &str = "FORMAT";

/// raft-log's type configuration for the registry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = WalLogId;
    type LogPayload = WalEntry;
    type Vote = WalVote;
    type Callback = FlushCallback;
    type UserData = ();

    fn log_index(log_id: &WalLogId) -> u64 {
        log_id.0.index
    }

    fn payload_size(payload: &WalEntry) -> u64 {
        // An estimate for raft-log's cache accounting: documents dominate.
        let commands = match &payload.0.payload {
            openraft::EntryPayload::Normal(proposal) => proposal.approximate_bytes(),
            _ => 0,
        };
        (commands + 256) as u64
    }
}

/// What raft-log's flush worker calls once a flush is synced (or failed).
pub(crate) enum FlushCallback {
    /// An append of the entries up to `through`: tells openraft they are
    /// durable, and marks them flushed.
    Append { callback: IOFlushed<TypeConfig>, stages: Arc<Stages>, through: u64 },
    /// A vote, truncate or purge that waits for its own sync.
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
    /// The same, for a thread outside the runtime (the migration at start).
    Blocking(std::sync::mpsc::Sender<io::Result<()>>),
}

impl raft_log::Callback for FlushCallback {
    fn send(self, result: io::Result<()>) {
        match self {
            FlushCallback::Append { callback, stages, through } => {
                if result.is_ok() {
                    stages.mark(Stage::Flushed, through);
                }
                callback.io_completed(result);
            }
            // The waiter may have given up (node shutting down); nothing to do then.
            FlushCallback::Wait(sender) => {
                let _ = sender.send(result);
            }
            FlushCallback::Blocking(sender) => {
                let _ = sender.send(result);
            }
        }
    }
}

/// Writes `bytes` as a little-endian u32 length and the bytes.
fn write_framed<W: Write>(bytes: &[u8], mut writer: W) -> io::Result<usize> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("WAL record over 4 GiB"))?;
    writer.write_all(&len.to_le_bytes())?;
    writer.write_all(bytes)?;
    Ok(4 + bytes.len())
}

fn read_framed<R: Read>(mut reader: R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    reader.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn invalid_data(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// An openraft log id in raft-log's codec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct WalLogId(pub(crate) LogId);

impl Encode for WalLogId {
    fn encode<W: Write>(&self, mut writer: W) -> io::Result<usize> {
        writer.write_all(&self.0.leader_id.term.to_le_bytes())?;
        writer.write_all(&self.0.leader_id.node_id.to_le_bytes())?;
        writer.write_all(&self.0.index.to_le_bytes())?;
        Ok(24)
    }
}

impl Decode for WalLogId {
    fn decode<R: Read>(mut reader: R) -> io::Result<Self> {
        let mut read_u64 = || -> io::Result<u64> {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            Ok(u64::from_le_bytes(bytes))
        };
        let (term, node_id, index) = (read_u64()?, read_u64()?, read_u64()?);
        Ok(Self(crate::raft_types::log_id(term, node_id, index)))
    }
}

/// An openraft vote in the WAL: a `RaftVote` message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
pub(crate) struct WalVote(pub(crate) Vote);

impl Encode for WalVote {
    fn encode<W: Write>(&self, writer: W) -> io::Result<usize> {
        write_framed(&wire::vote(&self.0).encode_to_vec(), writer)
    }
}

impl Decode for WalVote {
    fn decode<R: Read>(reader: R) -> io::Result<Self> {
        let message = proto::v1::RaftVote::decode(read_framed(reader)?.as_slice()).map_err(invalid_data)?;
        wire::vote_from(Some(message), "vote").map(Self).map_err(invalid_data)
    }
}

/// An openraft entry in the WAL: a `RaftEntry` message.
#[derive(Debug, Clone)]
pub(crate) struct WalEntry(pub(crate) Entry);

impl Encode for WalEntry {
    fn encode<W: Write>(&self, writer: W) -> io::Result<usize> {
        write_framed(&wire::entry(&self.0).encode_to_vec(), writer)
    }
}

impl Decode for WalEntry {
    fn decode<R: Read>(reader: R) -> io::Result<Self> {
        let message = proto::v1::RaftEntry::decode(read_framed(reader)?.as_slice()).map_err(invalid_data)?;
        wire::entry_from(message, "entry").map(Self).map_err(invalid_data)
    }
}

fn config(dir: &Path) -> Arc<raft_log::Config> {
    // raft-log caches log payloads (1 GiB by default); entries a lagging
    // follower needs beyond the cache are read back from disk.
    let mut config = raft_log::Config::new(dir.display());
    config.log_cache_capacity = Some(crate::limits::LOG_CACHE_BYTES_MAX);
    // A purge removes whole chunks only: with the default (1 GiB) a purged
    // log stayed on disk, and every start read all of it.
    config.wal.chunk_max_size = Some(crate::limits::WAL_CHUNK_BYTES_MAX);
    Arc::new(config)
}

/// Opens (or creates) the WAL in `dir`, migrating a format 1 log first.
pub(crate) fn open(dir: &Path) -> io::Result<RaftLog<WalTypes>> {
    std::fs::create_dir_all(dir)?;
    if !dir.join(FORMAT_FILE).exists() {
        if holds_records(dir)? {
            migrate(dir)?;
        } else {
            mark(dir)?;
        }
    }
    RaftLog::open(config(dir))
}

/// Whether `dir` holds anything but raft-log's lock file.
fn holds_records(dir: &Path) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        if entry?.file_name() != "LOCK" {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Writes the `FORMAT` file of `dir`, durably.
fn mark(dir: &Path) -> io::Result<()> {
    let path = dir.join(FORMAT_FILE);
    let mut file = std::fs::File::create(&path)?;
    writeln!(file, "{}", wire::FORMAT)?;
    file.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Rewrites the format 1 log in `dir` as format 2: the vote, the purge
/// point, every entry after it and the commit index, synced; then swaps the
/// directories (the old one stays as `<dir>.format1`).
fn migrate(dir: &Path) -> io::Result<()> {
    let old_dir = sibling(dir, "format1");
    let new_dir = sibling(dir, "format2.tmp");
    if new_dir.exists() {
        std::fs::remove_dir_all(&new_dir)?;
    }
    if old_dir.exists() {
        return Err(io::Error::other(format!(
            "{}: a migrated log of format 1 is already there; remove it (or move it away) and start again",
            old_dir.display()
        )));
    }
    let old = RaftLog::<legacy::Types>::open(config(dir))?;
    let state = old.log_state().clone();
    let (purged, last) = (state.purged().map(|log_id| log_id.0), state.last().map(|log_id| log_id.0));
    let first = purged.map_or(0, |log_id| log_id.index + 1);
    let to = last.map_or(0, |log_id| log_id.index + 1);
    std::fs::create_dir_all(&new_dir)?;
    let mut new = RaftLog::<WalTypes>::open(config(&new_dir))?;
    if let Some(purged) = purged {
        new.purge(WalLogId(purged))?;
    }
    let mut entries = 0u64;
    for item in old.read(first, to) {
        let (_, entry) = item?;
        new.append([(WalLogId(entry.0.log_id), WalEntry(entry.0))])?;
        entries += 1;
    }
    if let Some(vote) = state.vote() {
        new.save_vote(WalVote(vote.0))?;
    }
    if let Some(committed) = state.committed() {
        new.commit(WalLogId(committed.0))?;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    new.flush(true, Some(FlushCallback::Blocking(sender)))?;
    receiver.recv().map_err(|_| io::Error::other("raft-log flush worker stopped"))??;
    drop(new);
    drop(old);
    mark(&new_dir)?;
    std::fs::rename(dir, &old_dir)?;
    std::fs::rename(&new_dir, dir)?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    tracing::warn!(
        entries,
        dir = %dir.display(),
        kept = %old_dir.display(),
        "migrated the Raft log from format 1 (JSON) to format {}; delete the kept copy once the node runs well",
        wire::FORMAT
    );
    Ok(())
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "raft-log".into(), |name| name.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}.{suffix}"))
}

/// Format 1: serde JSON of openraft's entries and votes (whose JSON is the
/// same in openraft 0.9 and 0.10), read once for the migration.
pub(crate) mod legacy {
    use std::io::{self, Read, Write};

    use raft_log::codeq::{Decode, Encode};

    use super::{read_framed, write_framed, FlushCallback, WalLogId};
    use crate::raft_types::{Entry, Vote};

    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub(crate) struct Types;

    impl raft_log::Types for Types {
        type LogId = WalLogId;
        type LogPayload = JsonEntry;
        type Vote = JsonVote;
        type Callback = FlushCallback;
        type UserData = ();

        fn log_index(log_id: &WalLogId) -> u64 {
            log_id.0.index
        }

        fn payload_size(_payload: &JsonEntry) -> u64 {
            1024
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd)]
    pub(crate) struct JsonVote(pub(crate) Vote);

    #[derive(Debug, Clone)]
    pub(crate) struct JsonEntry(pub(crate) Entry);

    fn json<T: serde::Serialize, W: Write>(value: &T, writer: W) -> io::Result<usize> {
        write_framed(&serde_json::to_vec(value).map_err(io::Error::other)?, writer)
    }

    fn from_json<T: serde::de::DeserializeOwned, R: Read>(reader: R) -> io::Result<T> {
        serde_json::from_slice(&read_framed(reader)?).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
    }

    impl Encode for JsonVote {
        fn encode<W: Write>(&self, writer: W) -> io::Result<usize> {
            json(&self.0, writer)
        }
    }

    impl Decode for JsonVote {
        fn decode<R: Read>(reader: R) -> io::Result<Self> {
            from_json(reader).map(Self)
        }
    }

    impl Encode for JsonEntry {
        fn encode<W: Write>(&self, writer: W) -> io::Result<usize> {
            json(&self.0, writer)
        }
    }

    impl Decode for JsonEntry {
        fn decode<R: Read>(reader: R) -> io::Result<Self> {
            from_json(reader).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use raft_log::api::raft_log_writer::RaftLogWriter;
    use registry_core::{Command, DocumentsPatch, Op, Proposal, WriteMeta};

    use super::*;
    use crate::raft_types::log_id;

    fn entry(index: u64) -> Entry {
        let command = Command::new(
            WriteMeta {
                expected_revision: None,
                request_id: Some(format!("req-{index}")),
                actor: "test".to_owned(),
                reason: String::new(),
                at_unix_ms: index,
                change_id: ulid::Ulid::from_parts(index, 1),
            },
            Op::UpdateTenant {
                tenant: proto::TenantId::parse("acme").expect("valid"),
                documents: DocumentsPatch { config: Some(format!(r#"{{"n":{index}}}"#)), ..Default::default() },
            },
        );
        Entry { log_id: log_id(2, 1, index), payload: EntryPayload::Normal(Proposal::single(command)) }
    }

    fn flush<T: raft_log::Types<Callback = FlushCallback>>(log: &mut RaftLog<T>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        log.flush(true, Some(FlushCallback::Blocking(sender))).expect("flush");
        receiver.recv().expect("flushed").expect("synced");
    }

    /// A log of format 1 (JSON records, no FORMAT file): purged up to 3,
    /// entries 4..=9, a vote and a commit index.
    fn format1_log(dir: &Path) {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut log = RaftLog::<legacy::Types>::open(config(dir)).expect("open");
        for index in 1..=9 {
            let entry = entry(index);
            log.append([(WalLogId(entry.log_id), legacy::JsonEntry(entry))]).expect("append");
        }
        log.save_vote(legacy::JsonVote(Vote::new_committed(2, 1))).expect("vote");
        log.commit(WalLogId(log_id(2, 1, 8))).expect("commit");
        log.purge(WalLogId(log_id(2, 1, 3))).expect("purge");
        flush(&mut log);
    }

    #[test]
    fn a_format1_log_is_migrated_once_and_kept_beside() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("raft-log");
        format1_log(&dir);

        let log = open(&dir).expect("migrate");
        let state = log.log_state();
        assert_eq!(state.purged().map(|log_id| log_id.0.index), Some(3));
        assert_eq!(state.last().map(|log_id| log_id.0.index), Some(9));
        assert_eq!(state.committed().map(|log_id| log_id.0.index), Some(8));
        assert_eq!(state.vote().map(|vote| vote.0), Some(Vote::new_committed(2, 1)));
        let read: Vec<Entry> = log.read(4, 10).map(|item| item.expect("read").1 .0).collect();
        assert_eq!(read, (4..=9).map(entry).collect::<Vec<_>>());
        drop(log);
        assert!(dir.join(FORMAT_FILE).exists());
        assert!(root.path().join("raft-log.format1").is_dir(), "the old log is kept beside");

        // Reopening reads format 2 as is; a second format-1 copy would be refused.
        let log = open(&dir).expect("reopen");
        assert_eq!(log.log_state().last().map(|log_id| log_id.0.index), Some(9));
    }

    #[test]
    fn a_new_or_empty_directory_is_format2_from_the_start() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("raft-log");
        drop(open(&dir).expect("open"));
        assert!(dir.join(FORMAT_FILE).exists());
        assert!(!root.path().join("raft-log.format1").exists());
    }
}
