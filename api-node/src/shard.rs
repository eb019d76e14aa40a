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

    /// A handle on `tenant_uid`'s rows in `shard`, writing at `epoch`.
    pub fn scope(&self, shard: &str, tenant_uid: &str, epoch: u64) -> Result<TenantScope, ShardError> {
        if tenant_uid.is_empty() || tenant_uid.contains('/') {
            return Err(ShardError::Invalid { field: "tenant_uid", rule: "must be a non-empty uid".to_owned() });
        }
        Ok(TenantScope { db: self.store(shard)?, prefix: format!("{tenant_uid}/"), epoch })
    }
}

/// One tenant's rows on one shard. Cannot name another tenant's keys.
pub struct TenantScope {
    db: sled::Db,
    /// `{tenant_uid}/`: every key of this scope starts with it.
    prefix: String,
    epoch: u64,
}

fn store_error(error: impl std::fmt::Display) -> ShardError {
    ShardError::Store(error.to_string())
}

impl TenantScope {
    /// Whether the shard store answers a read (for health).
    pub fn reachable(&self) -> bool {
        self.db.get(self.key("meta", "epoch")).is_ok()
    }

    fn key(&self, kind: &str, name: &str) -> Vec<u8> {
        format!("{}{kind}/{name}", self.prefix).into_bytes()
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
        let result = self.db.transaction(|tx| {
            let seen =
                tx.get(&epoch_key)?.map_or(0, |bytes| u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8])));
            if self.epoch < seen {
                return Err(ConflictableTransactionError::Abort(ShardError::StaleEpoch { got: self.epoch, seen }));
            }
            if self.epoch > seen {
                tx.insert(epoch_key.as_slice(), &self.epoch.to_be_bytes())?;
            }
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
        });
        match result {
            Ok(created) => Ok(created),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => Err(store_error(error)),
        }
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
}
