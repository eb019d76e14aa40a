//! The Raft log and vote in `raft-log`.
//!
//! raft-log batches writes and calls `fdatasync` in its flush worker before it
//! runs a flush callback; openraft counts an entry as persisted only when that
//! callback fires, so nothing is acknowledged before it is on disk. Votes wait
//! for the same synced flush before `save_vote` returns.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::RaftLog;

use super::wal::{self, FlushCallback, WalEntry, WalLogId, WalTypes, WalVote};
use crate::raft_types::{Entry, LogId, TypeConfig, Vote};
use crate::stages::{Stage, Stages};

/// The Raft log and vote store. Cheap to clone: clones share one WAL.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Mutex<RaftLog<WalTypes>>>,
    stages: Arc<Stages>,
}

impl LogStore {
    /// Opens (or creates) the WAL in `dir`, migrating a log of the
    /// previous format first (see [`wal::open`]).
    pub fn open(dir: &Path) -> io::Result<Self> {
        Ok(Self { wal: Arc::new(Mutex::new(wal::open(dir)?)), stages: Arc::default() })
    }

    /// Marks the stages this store passes (flushed, committed) in `stages`.
    pub fn timed(self, stages: Arc<Stages>) -> Self {
        Self { stages, ..self }
    }

    fn lock(&self) -> MutexGuard<'_, RaftLog<WalTypes>> {
        // A poisoned lock means a panic mid-write: the WAL state is suspect,
        // and continuing could acknowledge what is not on disk.
        match self.wal.lock() {
            Ok(guard) => guard,
            Err(_) => panic!("raft-log mutex poisoned: a WAL operation panicked; stopping"),
        }
    }

    /// Runs `write` and then a synced flush, and waits until it is on disk.
    async fn write_synced(&self, write: impl FnOnce(&mut RaftLog<WalTypes>) -> io::Result<()>) -> io::Result<()> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        {
            let mut wal = self.lock();
            write(&mut wal)?;
            wal.flush(true, Some(FlushCallback::Wait(sender)))?;
        }
        receiver.await.map_err(|_| io::Error::other("raft-log flush worker stopped"))?
    }

    /// The index of the last purged entry, if any.
    pub fn purged_index(&self) -> Option<u64> {
        self.lock().log_state().purged().map(|log_id| log_id.0.index)
    }

    /// Where to purge so that the WAL kept behind a snapshot of
    /// `snapshot_index` holds at most `bytes_max` bytes of whole chunks
    /// ([`purge_point`]); `None`: it already does.
    pub fn purge_point(&self, snapshot_index: u64, bytes_max: u64) -> Option<u64> {
        let wal = self.lock();
        let purged = wal.log_state().purged().map_or(0, |log_id| log_id.0.index);
        let chunks = wal.stat().closed_chunks.into_iter().filter_map(|chunk| {
            let last = chunk.log_state.last().map(|log_id| log_id.0.index)?;
            Some((last, chunk.size))
        });
        purge_point(chunks.collect(), snapshot_index, bytes_max).filter(|&upto| upto > purged)
    }

    /// The log id of the last entry (or the last purged one), if any.
    pub fn last_log_id(&self) -> Option<LogId> {
        let wal = self.lock();
        let state = wal.log_state();
        state.last().or(state.purged()).map(|log_id| log_id.0)
    }
}

/// The index to purge up to so that the closed WAL chunks wholly covered
/// by a snapshot of `snapshot_index` add up to at most `bytes_max`, the
/// newest kept; `chunks` are `(last index, bytes)`, oldest first. Purging
/// at a chunk's last index frees that chunk and every older one.
fn purge_point(chunks: Vec<(u64, u64)>, snapshot_index: u64, bytes_max: u64) -> Option<u64> {
    let mut kept = 0u64;
    for (last, bytes) in chunks.into_iter().rev().filter(|&(last, _)| last <= snapshot_index) {
        kept += bytes;
        if kept > bytes_max {
            return Some(last);
        }
    }
    None
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let from = match range.start_bound() {
            Bound::Included(index) => *index,
            Bound::Excluded(index) => index + 1,
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(index) => index + 1,
            Bound::Excluded(index) => *index,
            Bound::Unbounded => u64::MAX,
        };
        let wal = self.lock();
        wal.read(from, to).map(|result| result.map(|(_, entry)| entry.0)).collect::<io::Result<Vec<_>>>()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().log_state().vote().map(|vote| vote.0))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let wal = self.lock();
        let state = wal.log_state();
        let last_purged_log_id = state.purged().map(|log_id| log_id.0);
        let last_log_id = state.last().map(|log_id| log_id.0).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let vote = WalVote(*vote);
        self.write_synced(|wal| wal.save_vote(vote).map(drop)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced on its own: a lost commit record only means the node
        // learns the commit index from the leader again after a crash.
        let Some(committed) = committed else {
            return Ok(());
        };
        self.stages.mark(Stage::Committed, committed.index);
        let mut wal = self.lock();
        wal.commit(WalLogId(committed)).and_then(|_| wal.flush(false, None))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().log_state().committed().map(|log_id| log_id.0))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut wal = self.lock();
        // Entries at or below the purge point are committed and applied
        // already (a purge never passes the applied snapshot); raft-log
        // refuses them, so they are skipped rather than rewritten.
        let purged_index = wal.log_state().purged().map(|log_id| log_id.0.index);
        let mut through = 0;
        let records = entries
            .into_iter()
            .filter(|entry| purged_index.is_none_or(|purged| entry.log_id.index > purged))
            .inspect(|entry| through = entry.log_id.index)
            .map(|entry| (WalLogId(entry.log_id), WalEntry(entry)));
        // The entries are readable from raft-log's cache as soon as `append`
        // returns; openraft counts them durable only when the callback runs
        // after the worker's fdatasync.
        wal.append(records)?;
        let callback = FlushCallback::Append { callback, stages: self.stages.clone(), through };
        wal.flush(true, Some(callback))
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        // raft-log truncates from an index on; openraft keeps `last_log_id`.
        // Nothing after it is nothing to do (raft-log refuses an index it lacks).
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index + 1);
        let last_index = self.lock().log_state().last().map(|log_id| log_id.0.index);
        if last_index.is_none_or(|last| last < first_removed) {
            return Ok(());
        }
        self.write_synced(|wal| wal.truncate(first_removed).map(drop)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        // raft-log records the purge in the WAL and removes chunk files only
        // after that record is synced, so `last_purged` is durable first.
        self.write_synced(|wal| wal.purge(WalLogId(log_id)).map(drop)).await
    }
}

#[cfg(test)]
mod tests {
    use super::purge_point;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn the_kept_log_is_bounded_by_whole_chunks_behind_the_snapshot() {
        // Five chunks of 16 MiB ending at these indexes; a snapshot at 450
        // covers the first four wholly.
        let chunks = vec![(100, 16 * MIB), (200, 16 * MIB), (300, 16 * MIB), (400, 16 * MIB), (500, 16 * MIB)];
        assert_eq!(purge_point(chunks.clone(), 450, 32 * MIB), Some(200), "the two newest covered chunks stay");
        assert_eq!(purge_point(chunks.clone(), 450, 64 * MIB), None, "all four covered chunks fit");
        assert_eq!(purge_point(chunks.clone(), 450, 8 * MIB), Some(400), "not even one fits: all covered go");
        assert_eq!(purge_point(chunks.clone(), 50, 0), None, "nothing is covered by the snapshot");
        assert_eq!(purge_point(Vec::new(), 450, 0), None);
    }
}
