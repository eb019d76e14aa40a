//! The agent's last-known-good copy on local disk, in sled.
//!
//! Not synced on every write: losing the newest changes on power loss only
//! costs a resync from the registry. What is on disk is always a consistent
//! view at one revision, because each delta or snapshot is one atomic batch
//! with the revision.

use std::path::Path;

use prost::Message;
use proto::v1::TenantRecord;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::view::View;

const KEY_META: &[u8] = b"m/meta";
const PREFIX_TENANT: &str = "t/";

#[derive(Serialize, Deserialize)]
struct Meta {
    revision: u64,
    cluster_id: String,
}

pub(crate) struct DiskStore {
    db: sled::Db,
}

fn tenant_key(id: &str) -> Vec<u8> {
    format!("{PREFIX_TENANT}{id}").into_bytes()
}

fn meta_value(view: &View) -> Result<Vec<u8>, Error> {
    let meta = Meta { revision: view.revision, cluster_id: view.cluster_id.clone() };
    serde_json::to_vec(&meta).map_err(|error| Error::Store(error.to_string()))
}

impl DiskStore {
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let db = sled::open(dir).map_err(|error| Error::Store(format!("{}: {error}", dir.display())))?;
        Ok(Self { db })
    }

    /// The saved view, if any. A damaged store is reported, not trusted.
    pub(crate) fn load(&self) -> Result<Option<View>, Error> {
        let Some(meta) = self.db.get(KEY_META).map_err(|error| Error::Store(error.to_string()))? else {
            return Ok(None);
        };
        let meta: Meta = serde_json::from_slice(&meta).map_err(|error| Error::Store(format!("meta: {error}")))?;
        let mut records = Vec::new();
        for item in self.db.scan_prefix(PREFIX_TENANT) {
            let (key, value) = item.map_err(|error| Error::Store(error.to_string()))?;
            let record = TenantRecord::decode(value.as_ref())
                .map_err(|error| Error::Store(format!("{}: {error}", String::from_utf8_lossy(&key))))?;
            records.push(record);
        }
        Ok(Some(View::restored(meta.revision, meta.cluster_id, records)))
    }

    /// Saves the changes from `before` to `after` (a delta) in one batch.
    pub(crate) fn save_delta(&self, after: &View, changed: &[String]) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        for id in changed {
            match after.tenant(id) {
                Some(entry) => batch.insert(tenant_key(id), entry.record.encode_to_vec()),
                None => batch.remove(tenant_key(id)),
            }
        }
        batch.insert(KEY_META, meta_value(after)?);
        self.db.apply_batch(batch).map_err(|error| Error::Store(error.to_string()))
    }

    /// Replaces everything with `view` (after a snapshot). The meta key goes
    /// first, so a crash halfway leaves no view rather than a mixed one.
    pub(crate) fn save_all(&self, view: &View) -> Result<(), Error> {
        let store_error = |error: sled::Error| Error::Store(error.to_string());
        self.db.remove(KEY_META).map_err(store_error)?;
        self.db.clear().map_err(store_error)?;
        let mut batch = sled::Batch::default();
        for entry in view.tenants() {
            batch.insert(tenant_key(entry.id()), entry.record.encode_to_vec());
        }
        batch.insert(KEY_META, meta_value(view)?);
        self.db.apply_batch(batch).map_err(store_error)
    }

    pub(crate) async fn flush(&self) -> Result<(), Error> {
        self.db.flush_async().await.map(drop).map_err(|error| Error::Store(error.to_string()))
    }
}
