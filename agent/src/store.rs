//! The agent's last-known-good copy on local disk: a snapshot file and a
//! journal of the deltas applied since, both sequences of checksummed
//! frames.
//!
//! ```text
//! view.bin     frame(meta JSON: revision, cluster id), frame(Delta: ≤1000 records)…
//! journal.bin  frame(Delta: revision, changed records; deletes as tombstones)…
//! frame        u32 LE length · u32 LE CRC-32 of the payload · payload
//! ```
//!
//! A snapshot is written to a temporary file and renamed over `view.bin`,
//! then the journal is emptied; a delta is one appended frame. Loading
//! reads the snapshot and replays the journal's frames newer than it, up to
//! the first torn or damaged frame (a crash mid-append), so what loads is
//! always a view at one revision. Not synced on every write: losing the
//! newest changes on power loss only costs a resync from the registry. A
//! damaged snapshot is reported, not trusted.
//!
//! Sequential files rather than a tree store: a cold start reads 100,000
//! tenants in one pass, and a write is one append.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use prost::Message;
use proto::v1::{self, TenantRecord, TenantStatus};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits::{DISK_FRAME_BYTES_MAX, DISK_JOURNAL_BYTES_MAX};
use crate::view::View;

const SNAPSHOT: &str = "view.bin";
const JOURNAL: &str = "journal.bin";

/// Records per snapshot frame.
const RECORDS_PER_FRAME: usize = 1000;

#[derive(Serialize, Deserialize)]
struct Meta {
    revision: u64,
    cluster_id: String,
}

pub(crate) struct DiskStore {
    dir: PathBuf,
    /// The journal, open for appending, and its length.
    journal: Mutex<(BufWriter<File>, u64)>,
    /// Whether a snapshot file exists: a journal alone would not say which
    /// view its first delta applies to.
    has_snapshot: std::sync::atomic::AtomicBool,
}

fn store_error(what: &Path, error: impl std::fmt::Display) -> Error {
    Error::Store(format!("{}: {error}", what.display()))
}

fn write_frame(out: &mut impl Write, payload: &[u8]) -> std::io::Result<u64> {
    out.write_all(&(payload.len() as u32).to_le_bytes())?;
    out.write_all(&crc32fast::hash(payload).to_le_bytes())?;
    out.write_all(payload)?;
    Ok(8 + payload.len() as u64)
}

/// The next frame's payload; `None` at the end or at a torn or damaged frame.
fn read_frame(input: &mut impl Read) -> Option<Vec<u8>> {
    let mut header = [0u8; 8];
    input.read_exact(&mut header).ok()?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > DISK_FRAME_BYTES_MAX {
        return None;
    }
    // Read what is there rather than trust a (possibly torn) length.
    let mut payload = Vec::new();
    input.take(length as u64).read_to_end(&mut payload).ok()?;
    (payload.len() == length && crc32fast::hash(&payload) == crc).then_some(payload)
}

/// A delta frame's payload: the changed records of `view` (deleted ones as tombstones).
fn delta_payload(view: &View, changed: &[String]) -> Vec<u8> {
    let tenants = changed
        .iter()
        .map(|id| match view.tenant(id) {
            Some(entry) => entry.record.clone(),
            None => TenantRecord { id: id.clone(), status: TenantStatus::Deleted as i32, ..Default::default() },
        })
        .collect();
    v1::Delta { revision: view.revision, tenants, ..Default::default() }.encode_to_vec()
}

impl DiskStore {
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(|error| store_error(dir, error))?;
        let path = dir.join(JOURNAL);
        let file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|error| store_error(&path, error))?;
        let length = file.metadata().map_err(|error| store_error(&path, error))?.len();
        let has_snapshot = dir.join(SNAPSHOT).exists().into();
        Ok(Self { dir: dir.to_owned(), journal: Mutex::new((BufWriter::new(file), length)), has_snapshot })
    }

    /// The saved view, if any, served in `region`. A damaged snapshot is
    /// reported, not trusted.
    pub(crate) fn load(&self, region: &str) -> Result<Option<View>, Error> {
        let path = self.dir.join(SNAPSHOT);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(store_error(&path, error)),
        };
        let length = file.metadata().map_err(|error| store_error(&path, error))?.len();
        let mut input = BufReader::new(file);
        let header = read_frame(&mut input).ok_or_else(|| store_error(&path, "no readable header"))?;
        let meta: Meta = serde_json::from_slice(&header).map_err(|error| store_error(&path, error))?;
        let mut tenants = std::collections::HashMap::new();
        let mut read = 8 + header.len() as u64;
        while let Some(payload) = read_frame(&mut input) {
            read += 8 + payload.len() as u64;
            let chunk = v1::Delta::decode(payload.as_slice()).map_err(|error| store_error(&path, error))?;
            tenants.extend(chunk.tenants.into_iter().map(|record| (record.id.clone(), record)));
        }
        // Every frame must read back: a snapshot is renamed into place whole.
        if read != length {
            return Err(store_error(&path, "damaged or torn snapshot"));
        }
        let mut revision = meta.revision;
        let journal_path = self.dir.join(JOURNAL);
        if let Ok(file) = File::open(&journal_path) {
            let mut input = BufReader::new(file);
            while let Some(payload) = read_frame(&mut input) {
                let Ok(delta) = v1::Delta::decode(payload.as_slice()) else { break };
                if delta.revision <= revision {
                    continue;
                }
                revision = delta.revision;
                for record in delta.tenants {
                    if record.status == TenantStatus::Deleted as i32 {
                        tenants.remove(&record.id);
                    } else {
                        tenants.insert(record.id.clone(), record);
                    }
                }
            }
        }
        Ok(Some(View::restored(revision, meta.cluster_id, tenants.into_values(), region)))
    }

    /// Appends the changes that made `after` (a delta) to the journal; with
    /// no snapshot yet, or past the journal's size limit, writes a new
    /// snapshot instead.
    pub(crate) fn save_delta(&self, after: &View, changed: &[String]) -> Result<(), Error> {
        if !self.has_snapshot.load(std::sync::atomic::Ordering::Acquire) {
            return self.save_all(after);
        }
        let path = self.dir.join(JOURNAL);
        let mut journal = self.journal.lock().map_err(|_| store_error(&path, "journal lock poisoned"))?;
        if journal.1 > DISK_JOURNAL_BYTES_MAX {
            drop(journal);
            return self.save_all(after);
        }
        let written = write_frame(&mut journal.0, &delta_payload(after, changed)).and_then(|written| {
            journal.0.flush()?;
            Ok(written)
        });
        journal.1 += written.map_err(|error| store_error(&path, error))?;
        Ok(())
    }

    /// Replaces everything with `view` (after a snapshot): a new snapshot
    /// file renamed into place, then an empty journal.
    pub(crate) fn save_all(&self, view: &View) -> Result<(), Error> {
        let path = self.dir.join(SNAPSHOT);
        let temporary = self.dir.join(format!("{SNAPSHOT}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut out = BufWriter::new(File::create(&temporary)?);
            let meta = Meta { revision: view.revision, cluster_id: view.cluster_id.clone() };
            write_frame(&mut out, &serde_json::to_vec(&meta).map_err(std::io::Error::other)?)?;
            let records: Vec<&TenantRecord> = view.tenants().map(|entry| &entry.record).collect();
            for chunk in records.chunks(RECORDS_PER_FRAME) {
                let chunk = v1::Delta {
                    revision: 0,
                    tenants: chunk.iter().map(|record| (*record).clone()).collect(),
                    ..Default::default()
                };
                write_frame(&mut out, &chunk.encode_to_vec())?;
            }
            out.into_inner().map_err(|error| error.into_error())?.sync_data()
        };
        write().map_err(|error| store_error(&temporary, error))?;
        // The journal is emptied before the new snapshot is renamed into
        // place: a crash in between leaves the old snapshot without its
        // journal (an older, consistent view), never the new snapshot with
        // the old journal (whose deltas may belong to another cluster).
        let journal_path = self.dir.join(JOURNAL);
        let mut journal = self.journal.lock().map_err(|_| store_error(&journal_path, "journal lock poisoned"))?;
        journal
            .0
            .flush()
            .and_then(|()| journal.0.get_ref().set_len(0))
            .map_err(|error| store_error(&journal_path, error))?;
        journal.1 = 0;
        fs::rename(&temporary, &path).map_err(|error| store_error(&path, error))?;
        self.has_snapshot.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Syncs the journal (at shutdown).
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        let path = self.dir.join(JOURNAL);
        let mut journal = self.journal.lock().map_err(|_| store_error(&path, "journal lock poisoned"))?;
        journal.0.flush().and_then(|()| journal.0.get_ref().sync_data()).map_err(|error| store_error(&path, error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, revision: u64) -> TenantRecord {
        let json = format!(r#"{{"tenant":"{id}"}}"#);
        let public = v1::Bundle { sha256: compiler::document::sha256_hex(json.as_bytes()), json: json.into() };
        TenantRecord {
            id: id.to_owned(),
            mod_revision: revision,
            config_revision: revision,
            public_bundle: Some(public),
            ..Default::default()
        }
    }

    fn ids(view: &View) -> Vec<(String, u64)> {
        let mut ids: Vec<_> = view.tenants().map(|entry| (entry.id().to_owned(), entry.record.mod_revision)).collect();
        ids.sort();
        ids
    }

    #[test]
    fn snapshot_and_journal_load_at_one_revision_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DiskStore::open(dir.path()).expect("open");
        assert!(store.load("eu-west").expect("load").is_none(), "nothing saved yet");

        // An agent that started with deltas (no snapshot yet) still saves a loadable view.
        let first = View::restored(2, "c1".to_owned(), vec![record("acme", 2)], "eu-west");
        store.save_delta(&first, &["acme".to_owned()]).expect("first delta");
        assert_eq!(store.load("eu-west").expect("load").map(|view| view.revision), Some(2));

        let snapshot = View::restored(5, "c1".to_owned(), vec![record("acme", 3), record("globex", 5)], "eu-west");
        store.save_all(&snapshot).expect("save all");
        let after = View::restored(6, "c1".to_owned(), vec![record("acme", 6)], "eu-west");
        store.save_delta(&after, &["acme".to_owned(), "globex".to_owned()]).expect("delta");
        let loaded = store.load("eu-west").expect("load").expect("a view");
        assert_eq!((loaded.revision, loaded.cluster_id.as_str()), (6, "c1"));
        assert_eq!(ids(&loaded), [("acme".to_owned(), 6)], "globex deleted by the delta");

        // A crash mid-append leaves a torn frame: ignored, the view before it loads.
        let journal = dir.path().join(JOURNAL);
        let mut file = OpenOptions::new().append(true).open(&journal).expect("journal");
        file.write_all(&[200, 0, 0, 0, 1, 2]).expect("torn frame");
        drop(file);
        let reopened = DiskStore::open(dir.path()).expect("reopen");
        assert_eq!(reopened.load("eu-west").expect("load").map(|view| view.revision), Some(6));

        // A new snapshot empties the journal.
        let snapshot = View::restored(9, "c2".to_owned(), vec![record("initech", 9)], "eu-west");
        reopened.save_all(&snapshot).expect("save all");
        assert_eq!(fs::metadata(&journal).expect("journal").len(), 0);
        let loaded = reopened.load("eu-west").expect("load").expect("a view");
        assert_eq!((loaded.revision, ids(&loaded)), (9, vec![("initech".to_owned(), 9)]));

        // A damaged snapshot is reported, not trusted.
        let path = dir.path().join(SNAPSHOT);
        let mut bytes = fs::read(&path).expect("snapshot");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("damage");
        assert!(reopened.load("eu-west").is_err());
    }
}
