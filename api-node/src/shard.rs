//! Tenant data on shard stores: one embedded store (sled) per shard under
//! `--data-dir`, and [`TenantScope`], the only way to touch it.
//!
//! Architecture Invariant: every key a scope reads or writes starts with its
//! tenant's uid, and only this file builds keys, so one tenant's handle
//! cannot reach another tenant's rows. Each write carries the tenant's epoch;
//! a store refuses an epoch lower than the highest it has seen for that
//! tenant, so a lagging node cannot write after a failover or a move.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::limits::MOVE_BYTES_MAX;

/// The longest item title, in bytes.
pub const TITLE_BYTES_MAX: usize = 1024;

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// Items one list returns at most.
pub const ITEMS_PAGE_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The write carries an older epoch than this store has seen: the
    /// writer's view is stale (a failover or a move happened).
    #[error("stale epoch {got} for this tenant; the shard has seen epoch {seen}")]
    StaleEpoch { got: u64, seen: u64 },
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    #[error("shard store: {0}")]
    Store(String),
}

/// One item of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// ULID.
    pub id: String,
    pub title: String,
    pub created_by: String,
    pub created_at_unix_ms: u64,
}

/// The shard stores of this node, opened on first use.
pub struct ShardStores {
    dir: PathBuf,
    open: Mutex<HashMap<String, sled::Db>>,
}

impl ShardStores {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), open: Mutex::default() }
    }

    fn store(&self, shard: &str) -> Result<sled::Db, ShardError> {
        let mut open = self.open.lock().map_err(|_| ShardError::Store("shard map lock poisoned".to_owned()))?;
        if let Some(db) = open.get(shard) {
            return Ok(db.clone());
        }
        let db = sled::open(self.dir.join(shard)).map_err(|error| ShardError::Store(error.to_string()))?;
        open.insert(shard.to_owned(), db.clone());
        Ok(db)
    }

    /// The copy step of a move: fences `from` at `copy_epoch` (no writer of
    /// an older epoch writes there again), makes the tenant's rows on `to`
    /// exactly those on `from`, and returns both sides' digests as stored.
    /// Idempotent; refused with [`ShardError::StaleEpoch`] once either side
    /// has seen a newer epoch (the move ended: a late copy changes nothing).
    pub fn copy_tenant(
        &self,
        from: &str,
        to: &str,
        tenant_uid: &str,
        copy_epoch: u64,
    ) -> Result<(Digest, Digest), ShardError> {
        if from == to {
            return Err(ShardError::Invalid { field: "to_shard", rule: "must differ from the old shard".to_owned() });
        }
        let source = self.scope(from, tenant_uid, copy_epoch)?;
        let target = self.scope(to, tenant_uid, copy_epoch)?;
        source.fence()?;
        let rows = source.rows()?;
        let bytes: usize = rows.iter().map(|(key, value)| key.len() + value.len()).sum();
        if bytes > MOVE_BYTES_MAX {
            let rule = format!("{bytes} bytes of rows; a move copies at most {MOVE_BYTES_MAX}");
            return Err(ShardError::Invalid { field: "rows", rule });
        }
        target.replace_rows(&rows)?;
        Ok((source.digest()?, target.digest()?))
    }

    /// A handle on `tenant_uid`'s rows in `shard`, writing at `epoch`.
    pub fn scope(&self, shard: &str, tenant_uid: &str, epoch: u64) -> Result<TenantScope, ShardError> {
        if tenant_uid.is_empty() || tenant_uid.contains('/') {
            return Err(ShardError::Invalid { field: "tenant_uid", rule: "must be a non-empty uid".to_owned() });
        }
        Ok(TenantScope {
            db: self.store(shard)?,
            db_file: self.dir.join(shard).join("db"),
            prefix: format!("{tenant_uid}/"),
            epoch,
        })
    }
}

/// One tenant's rows on one shard. Cannot name another tenant's keys.
pub struct TenantScope {
    db: sled::Db,
    /// sled's data file: fsynced after every write (see [`TenantScope::sync`]).
    db_file: PathBuf,
    /// `{tenant_uid}/`: every key of this scope starts with it.
    prefix: String,
    epoch: u64,
}

fn store_error(error: impl std::fmt::Display) -> ShardError {
    ShardError::Store(error.to_string())
}

/// A tenant's rows on one shard: how many, and a SHA-256 over them (each
/// key without the tenant's prefix and each value, length-prefixed) in key
/// order. Equal digests mean equal rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub rows: u64,
    pub sha256: String,
}

/// Reads the epoch a store has seen, inside a transaction.
fn seen_epoch(
    tx: &sled::transaction::TransactionalTree,
    epoch_key: &[u8],
) -> Result<u64, ConflictableTransactionError<ShardError>> {
    Ok(tx.get(epoch_key)?.map_or(0, |bytes| u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8]))))
}

fn transaction_result<T>(result: Result<T, TransactionError<ShardError>>) -> Result<T, ShardError> {
    match result {
        Ok(value) => Ok(value),
        Err(TransactionError::Abort(error)) => Err(error),
        Err(TransactionError::Storage(error)) => Err(store_error(error)),
    }
}

impl TenantScope {
    /// Whether the shard store answers a read (for health).
    pub fn reachable(&self) -> bool {
        self.db.get(self.key("meta", "epoch")).is_ok()
    }

    fn key(&self, kind: &str, name: &str) -> Vec<u8> {
        format!("{}{kind}/{name}", self.prefix).into_bytes()
    }

    /// Inside a transaction: refuses a write at an epoch older than the
    /// store has seen, and records a newer one.
    fn check_epoch(
        &self,
        tx: &sled::transaction::TransactionalTree,
        epoch_key: &[u8],
    ) -> Result<(), ConflictableTransactionError<ShardError>> {
        let seen = seen_epoch(tx, epoch_key)?;
        if self.epoch < seen {
            return Err(ConflictableTransactionError::Abort(ShardError::StaleEpoch { got: self.epoch, seen }));
        }
        if self.epoch > seen {
            tx.insert(epoch_key, &self.epoch.to_be_bytes())?;
        }
        Ok(())
    }

    /// Makes the writes so far durable before they are acknowledged. sled
    /// 0.34's `flush` writes its buffers out (surviving a kill -9 of this
    /// process) but syncs with `sync_file_range`, which is not a durability
    /// barrier (sled#1452): the data file is fsynced as well.
    fn sync(&self) -> Result<(), ShardError> {
        self.db.flush().map_err(store_error)?;
        std::fs::File::open(&self.db_file).and_then(|file| file.sync_all()).map_err(store_error)
    }

    /// Raises the store's epoch for this tenant to the scope's.
    fn fence(&self) -> Result<(), ShardError> {
        let epoch_key = self.key("meta", "epoch");
        transaction_result(self.db.transaction(|tx| self.check_epoch(tx, &epoch_key)))?;
        self.sync()
    }

    /// The tenant's rows (everything but its `meta/` keys), in key order,
    /// keys without the tenant's prefix.
    fn rows(&self) -> Result<Vec<(Vec<u8>, sled::IVec)>, ShardError> {
        let meta = self.key("meta", "");
        self.db
            .scan_prefix(&self.prefix)
            .filter(|entry| entry.as_ref().map_or(true, |(key, _)| !key.starts_with(&meta)))
            .map(|entry| {
                let (key, value) = entry.map_err(store_error)?;
                Ok((key[self.prefix.len()..].to_vec(), value))
            })
            .collect()
    }

    /// Makes the tenant's rows here exactly `rows`, at the scope's epoch, in
    /// one transaction.
    fn replace_rows(&self, rows: &[(Vec<u8>, sled::IVec)]) -> Result<(), ShardError> {
        let stale: Vec<Vec<u8>> = self.rows()?.into_iter().map(|(key, _)| key).collect();
        let epoch_key = self.key("meta", "epoch");
        let full = |key: &[u8]| [self.prefix.as_bytes(), key].concat();
        transaction_result(self.db.transaction(|tx| {
            self.check_epoch(tx, &epoch_key)?;
            for key in &stale {
                tx.remove(full(key))?;
            }
            for (key, value) in rows {
                tx.insert(full(key), value.clone())?;
            }
            Ok(())
        }))?;
        self.sync()
    }

    /// The digest of the tenant's rows here.
    pub fn digest(&self) -> Result<Digest, ShardError> {
        use sha2::{Digest as _, Sha256};
        let rows = self.rows()?;
        let mut hasher = Sha256::new();
        for (key, value) in &rows {
            for part in [key.as_slice(), value.as_ref()] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
        }
        Ok(Digest { rows: rows.len() as u64, sha256: hex::encode(hasher.finalize()) })
    }

    /// Every item, oldest first (ULIDs sort by time).
    pub fn items(&self) -> Result<Vec<Item>, ShardError> {
        self.db
            .scan_prefix(self.key("item", ""))
            .take(ITEMS_PAGE_MAX)
            .map(|entry| {
                let (_, value) = entry.map_err(store_error)?;
                serde_json::from_slice(&value).map_err(store_error)
            })
            .collect()
    }

    /// Creates an item; with an idempotency key, a retry returns the first
    /// item (and `true`) instead of creating another.
    pub fn create_item(
        &self,
        title: &str,
        created_by: &str,
        idempotency_key: Option<&str>,
        now_unix_ms: u64,
    ) -> Result<(Item, bool), ShardError> {
        if title.trim().is_empty() || title.len() > TITLE_BYTES_MAX {
            let rule = format!("must be 1 to {TITLE_BYTES_MAX} bytes, not blank");
            return Err(ShardError::Invalid { field: "title", rule });
        }
        if let Some(key) = idempotency_key {
            if key.is_empty()
                || key.len() > IDEMPOTENCY_KEY_BYTES_MAX
                || !key.bytes().all(|byte| byte.is_ascii_graphic())
            {
                let rule = format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters");
                return Err(ShardError::Invalid { field: "Idempotency-Key", rule });
            }
        }
        let item = Item {
            id: ulid::Ulid::new().to_string(),
            title: title.to_owned(),
            created_by: created_by.to_owned(),
            created_at_unix_ms: now_unix_ms,
        };
        let item_json = serde_json::to_vec(&item).map_err(store_error)?;
        let epoch_key = self.key("meta", "epoch");
        let idempotency_key = idempotency_key.map(|key| self.key("idem", key));
        let item_key = self.key("item", &item.id);
        // One transaction: the epoch check, the idempotency lookup and the
        // insert happen together or not at all.
        let created = transaction_result(self.db.transaction(|tx| {
            self.check_epoch(tx, &epoch_key)?;
            if let Some(idempotency_key) = &idempotency_key {
                if let Some(first_id) = tx.get(idempotency_key)? {
                    let first_key = [self.key("item", ""), first_id.to_vec()].concat();
                    let first = tx.get(first_key)?.ok_or_else(|| {
                        ConflictableTransactionError::Abort(ShardError::Store(
                            "idempotency key without its item".to_owned(),
                        ))
                    })?;
                    let first: Item = serde_json::from_slice(&first)
                        .map_err(|error| ConflictableTransactionError::Abort(store_error(error)))?;
                    return Ok((first, true));
                }
                tx.insert(idempotency_key.as_slice(), item.id.as_bytes())?;
            }
            tx.insert(item_key.as_slice(), item_json.as_slice())?;
            Ok((item.clone(), false))
        }))?;
        // Acknowledged only once on disk (a replayed retry was already).
        if !created.1 {
            self.sync()?;
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_isolated_idempotent_and_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = ShardStores::new(dir.path());
        let acme = stores.scope("us-east-default", "01ACME", 1).expect("scope");
        let globex = stores.scope("us-east-default", "01GLOBEX", 1).expect("scope");

        let (first, replayed) = acme.create_item("invoice", "alice", Some("k1"), 1).expect("create");
        assert!(!replayed);
        let (again, replayed) = acme.create_item("something else", "alice", Some("k1"), 2).expect("retry");
        assert!(replayed);
        assert_eq!(again, first, "a retry returns the first result");
        // The same key in another tenant is another request.
        let (theirs, replayed) = globex.create_item("order", "bob", Some("k1"), 3).expect("create");
        assert!(!replayed);
        assert_ne!(theirs.id, first.id);
        assert_eq!(acme.items().expect("items"), vec![first.clone()]);
        assert_eq!(globex.items().expect("items"), vec![theirs]);

        // A newer epoch fences older writers of that tenant only.
        let acme_new = stores.scope("us-east-default", "01ACME", 2).expect("scope");
        acme_new.create_item("after failover", "alice", None, 4).expect("create at epoch 2");
        match acme.create_item("late write", "alice", None, 5) {
            Err(ShardError::StaleEpoch { got: 1, seen: 2 }) => {}
            other => panic!("expected a stale epoch, got {other:?}"),
        }
        globex.create_item("unaffected", "bob", None, 6).expect("globex is still at epoch 1");

        assert!(matches!(acme_new.create_item(" ", "alice", None, 7), Err(ShardError::Invalid { field: "title", .. })));
        let long_key = "k".repeat(129);
        assert!(matches!(
            acme_new.create_item("x", "alice", Some(&long_key), 7),
            Err(ShardError::Invalid { field: "Idempotency-Key", .. })
        ));
        assert!(stores.scope("s", "a/b", 1).is_err(), "a uid cannot reach into another prefix");
    }

    #[test]
    fn a_move_copies_exactly_fences_the_old_shard_and_refuses_a_late_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stores = ShardStores::new(dir.path());
        let old = stores.scope("us-1", "01ACME", 1).expect("scope");
        for (n, key) in [(1, Some("k1")), (2, None), (3, Some("k3"))] {
            old.create_item(&format!("item {n}"), "alice", key, n).expect("create");
        }
        stores.scope("us-1", "01GLOBEX", 1).expect("scope").create_item("theirs", "bob", None, 9).expect("create");
        // Left on the target by an earlier, aborted move: the copy replaces it.
        stores.scope("us-2", "01ACME", 1).expect("scope").create_item("leftover", "alice", None, 4).expect("create");

        let (source, target) = stores.copy_tenant("us-1", "us-2", "01ACME", 2).expect("copy");
        assert_eq!(source, target);
        assert_eq!(source.rows, 5, "three items and two idempotency keys; not the other tenant's, not meta");
        let again = stores.copy_tenant("us-1", "us-2", "01ACME", 2).expect("a copy is idempotent");
        assert_eq!(again, (source.clone(), target));

        // A writer still at the old epoch cannot write to the old shard now.
        match old.create_item("late", "alice", None, 5) {
            Err(ShardError::StaleEpoch { got: 1, seen: 2 }) => {}
            other => panic!("expected a stale epoch, got {other:?}"),
        }
        // After the flip the tenant writes at epoch 3 on the new shard; the
        // idempotency keys came along, so a retry is not a duplicate.
        let new = stores.scope("us-2", "01ACME", 3).expect("scope");
        let (replayed, was_replay) = new.create_item("retry", "alice", Some("k1"), 6).expect("retry");
        assert!(was_replay);
        assert_eq!(replayed.title, "item 1");
        assert_eq!(new.items().expect("items").len(), 3);
        new.create_item("after the move", "alice", None, 7).expect("create at epoch 3");
        // A copy that arrives late would wipe that row: it is refused.
        match stores.copy_tenant("us-1", "us-2", "01ACME", 2) {
            Err(ShardError::StaleEpoch { got: 2, seen: 3 }) => {}
            other => panic!("expected a stale epoch, got {other:?}"),
        }
        assert_eq!(new.items().expect("items").len(), 4);
        assert!(stores.copy_tenant("us-1", "us-1", "01ACME", 2).is_err());
    }
}
