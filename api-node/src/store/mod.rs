//! Tenant data on shards: each shard is a PostgreSQL database
//! ([`postgres`]), or for development an embedded SQLite file
//! ([`embedded`]); [`TenantScope`] is the only way to touch one.
//!
//! The api-node keeps no tenant data itself: any number of api-nodes share
//! a region's shards. The routing map (through the agent) names each
//! tenant's shard and endpoint; credentials come from a passfile
//! ([`passfile`]).
//!
//! Architecture Invariant: every statement names its tenant (`WHERE
//! tenant_id = $1`), and on PostgreSQL row-level security also limits each
//! transaction to the tenant it was opened for, so a statement that forgot
//! its `WHERE` still sees one tenant. Every write transaction locks the
//! tenant's fence row and is refused if the shard has seen a newer epoch,
//! so a lagging api-node cannot write after a failover or a move.

pub mod embedded;
pub mod passfile;
pub mod postgres;
pub mod schema;
mod sql;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::ShardEndpoint;
use serde::{Deserialize, Serialize};

use crate::limits::{IDEMPOTENCY_KEY_TTL_MS, MOVE_BYTES_MAX};

/// The longest item title, in bytes.
pub const TITLE_BYTES_MAX: usize = 1024;

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// Items one list returns at most.
pub const ITEMS_PAGE_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The write carries an older epoch than this shard has seen: the
    /// writer's view is stale (a failover or a move happened).
    #[error("stale epoch {got} for this tenant; the shard has seen epoch {seen}")]
    StaleEpoch { got: u64, seen: u64 },
    #[error("{field}: {rule}")]
    Invalid { field: &'static str, rule: String },
    /// The shard cannot be reached now (connection refused, pool timeout,
    /// statement timeout): worth a retry.
    #[error("shard {endpoint} unavailable: {reason}")]
    Unavailable { endpoint: String, reason: String },
    /// The shard's schema is one this api-node does not understand, or the
    /// shard is not set up as the row guard needs: an operator must act.
    #[error("shard {endpoint} refused: {reason}")]
    Refused { endpoint: String, reason: String },
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

/// An idempotency key: a retry of the request that carried it, until it
/// expires, returns the item it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub item_id: String,
    pub expires_at_unix_ms: u64,
}

/// All of one tenant's rows on a shard (what a move copies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    pub items: Vec<Item>,
    pub keys: Vec<IdempotencyKey>,
}

impl Rows {
    fn bytes(&self) -> usize {
        let items: usize =
            self.items.iter().map(|item| item.id.len() + item.title.len() + item.created_by.len() + 8).sum();
        let keys: usize = self.keys.iter().map(|key| key.key.len() + key.item_id.len() + 8).sum();
        items + keys
    }
}

/// A tenant's rows on one shard: how many, and a SHA-256 the database
/// computes over them in one canonical order and form ([`sql::DIGEST_LINES`]).
/// Equal digests mean equal rows, whichever database computed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    pub rows: u64,
    pub sha256: String,
}

/// The phase of a move's copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyPhase {
    /// Fencing the old shard and reading the tenant's rows from it.
    #[default]
    Reading,
    /// Writing them to the new shard.
    Writing,
    /// Both databases computing their digests.
    Digesting,
}

/// How far a move's copy is: what the operator's progress bar shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CopyProgress {
    pub phase: CopyPhase,
    /// Rows read from the old shard (reading), or written to the new one.
    pub rows: u64,
    /// Every row to write, known once they are read.
    pub rows_total: Option<u64>,
}

/// Where a copy tells its progress.
pub type CopyReport = tokio::sync::watch::Sender<CopyProgress>;

/// A new item to create.
pub struct NewItem<'a> {
    pub title: &'a str,
    pub created_by: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub now_unix_ms: u64,
}

impl NewItem<'_> {
    fn check(&self) -> Result<(), ShardError> {
        if self.title.trim().is_empty() || self.title.len() > TITLE_BYTES_MAX {
            let rule = format!("must be 1 to {TITLE_BYTES_MAX} bytes, not blank");
            return Err(ShardError::Invalid { field: "title", rule });
        }
        if let Some(key) = self.idempotency_key {
            if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
                let rule = format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters");
                return Err(ShardError::Invalid { field: "Idempotency-Key", rule });
            }
        }
        Ok(())
    }

    fn item(&self) -> Item {
        Item {
            id: ulid::Ulid::new().to_string(),
            title: self.title.to_owned(),
            created_by: self.created_by.to_owned(),
            created_at_unix_ms: self.now_unix_ms,
        }
    }

    fn key_expires_at_unix_ms(&self) -> u64 {
        self.now_unix_ms + IDEMPOTENCY_KEY_TTL_MS
    }
}

/// One shard database.
pub enum Shard {
    Postgres(postgres::Postgres),
    Embedded(embedded::Embedded),
}

impl Shard {
    async fn items(&self, tenant: &str) -> Result<Vec<Item>, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.items(tenant).await,
            Shard::Embedded(shard) => shard.items(tenant).await,
        }
    }

    async fn create_item(&self, tenant: &str, epoch: u64, new: &NewItem<'_>) -> Result<(Item, bool), ShardError> {
        new.check()?;
        match self {
            Shard::Postgres(shard) => shard.create_item(tenant, epoch, new).await,
            Shard::Embedded(shard) => shard.create_item(tenant, epoch, new).await,
        }
    }

    /// Raises the tenant's fence to `epoch` (refused if higher already) and
    /// returns its rows, in one transaction. A PostgreSQL shard tells the
    /// rows read to `report` as they come; the embedded one, all at once.
    async fn fence_and_read(&self, tenant: &str, epoch: u64, report: &CopyReport) -> Result<Rows, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.fence_and_read(tenant, epoch, report).await,
            Shard::Embedded(shard) => shard.fence_and_read(tenant, epoch).await,
        }
    }

    /// Makes the tenant's rows exactly `rows`, at `epoch`, in one transaction
    /// (on PostgreSQL, [`MOVE_CHUNK_ROWS`](crate::limits::MOVE_CHUNK_ROWS)
    /// rows per statement, each told to `report`).
    async fn replace_rows(&self, tenant: &str, epoch: u64, rows: &Rows, report: &CopyReport) -> Result<(), ShardError> {
        match self {
            Shard::Postgres(shard) => shard.replace_rows(tenant, epoch, rows, report).await,
            Shard::Embedded(shard) => shard.replace_rows(tenant, epoch, rows).await,
        }
    }

    /// Removes the tenant's rows but not its fence, at `epoch`; how many.
    async fn remove_rows(&self, tenant: &str, epoch: u64) -> Result<u64, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.remove_rows(tenant, epoch).await,
            Shard::Embedded(shard) => shard.remove_rows(tenant, epoch).await,
        }
    }

    async fn digest(&self, tenant: &str) -> Result<Digest, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.digest(tenant).await,
            Shard::Embedded(shard) => shard.digest(tenant).await,
        }
    }

    /// How far the shard's writes are durable (a PostgreSQL WAL position);
    /// `None` for an embedded store, which has no replicas.
    async fn position(&self) -> Result<Option<String>, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.position().await.map(Some),
            Shard::Embedded(_) => Ok(None),
        }
    }

    async fn replayed(&self, position: &str) -> Result<bool, ShardError> {
        match self {
            Shard::Postgres(shard) => shard.replayed(position).await,
            Shard::Embedded(_) => Ok(false),
        }
    }

    fn endpoint(&self) -> &str {
        match self {
            Shard::Postgres(shard) => shard.endpoint(),
            Shard::Embedded(shard) => shard.endpoint(),
        }
    }

    /// Answers a trivial query (and the schema check on first use).
    pub async fn ping(&self) -> Result<(), ShardError> {
        match self {
            Shard::Postgres(shard) => shard.ping().await,
            Shard::Embedded(shard) => shard.ping().await,
        }
    }
}

/// How the api-node connects to its shards.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    /// Where `embedded:NAME` shards live (`NAME.sqlite`).
    pub embedded_dir: PathBuf,
    /// The libpq passfile: `--shard-passfile`, else `PGPASSFILE`, else
    /// `~/.pgpass`.
    pub passfile: Option<PathBuf>,
    /// Connections per PostgreSQL shard at most.
    pub connections_max: usize,
    /// The roots PostgreSQL servers' certificates must chain to
    /// (`--shard-ca`); without them no connection is encrypted, and an
    /// endpoint with `sslmode=require` is refused.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The shards this node has opened, by endpoint: one pool each.
pub struct Shards {
    options: ShardOptions,
    open: Mutex<HashMap<String, Arc<Shard>>>,
}

impl Shards {
    pub fn new(options: ShardOptions) -> Self {
        Self { options, open: Mutex::default() }
    }

    /// The shard at `endpoint`, opened on first use (no connection is made
    /// until a statement needs one).
    pub fn shard(&self, endpoint: &str) -> Result<Arc<Shard>, ShardError> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(shard) = open.get(endpoint) {
            return Ok(shard.clone());
        }
        let parsed = ShardEndpoint::parse(endpoint)
            .map_err(|error| ShardError::Refused { endpoint: endpoint.to_owned(), reason: error.to_string() })?;
        let shard = Arc::new(match parsed {
            ShardEndpoint::Embedded { name } => Shard::Embedded(embedded::Embedded::open(
                endpoint,
                &self.options.embedded_dir.join(format!("{name}.sqlite")),
            )?),
            ShardEndpoint::Postgres { .. } => {
                Shard::Postgres(postgres::Postgres::new(endpoint, &parsed, &self.options)?)
            }
        });
        open.insert(endpoint.to_owned(), shard.clone());
        Ok(shard)
    }

    /// A handle on `tenant_uid`'s rows on the shard at `endpoint`, writing
    /// at `epoch`.
    pub fn scope(&self, endpoint: &str, tenant_uid: &str, epoch: u64) -> Result<TenantScope, ShardError> {
        if tenant_uid.is_empty() {
            return Err(ShardError::Invalid { field: "tenant_uid", rule: "must be a non-empty uid".to_owned() });
        }
        Ok(TenantScope { shard: self.shard(endpoint)?, tenant: tenant_uid.to_owned(), epoch })
    }

    /// The copy step of a move: fences `from` at `copy_epoch` (no writer of
    /// an older epoch writes there again) and reads the tenant's rows in one
    /// transaction; makes its rows on `to` exactly those in one transaction;
    /// and returns both sides' digests, each computed by its database.
    /// Tells its progress to `report`.
    /// Idempotent; refused with [`ShardError::StaleEpoch`] once either side
    /// has seen a newer epoch (the move ended: a late copy changes nothing).
    pub async fn copy_tenant(
        &self,
        from: &str,
        to: &str,
        tenant_uid: &str,
        copy_epoch: u64,
        report: &CopyReport,
    ) -> Result<(Digest, Digest), ShardError> {
        if from == to {
            return Err(ShardError::Invalid { field: "to_shard", rule: "must differ from the old shard".to_owned() });
        }
        let (source, target) = (self.scope(from, tenant_uid, copy_epoch)?, self.scope(to, tenant_uid, copy_epoch)?);
        let rows = source.shard.fence_and_read(&source.tenant, copy_epoch, report).await?;
        let bytes = rows.bytes();
        if bytes > MOVE_BYTES_MAX {
            let rule = format!("{bytes} bytes of rows; a move copies at most {MOVE_BYTES_MAX}");
            return Err(ShardError::Invalid { field: "rows", rule });
        }
        let total = (rows.items.len() + rows.keys.len()) as u64;
        report.send_replace(CopyProgress { phase: CopyPhase::Writing, rows: 0, rows_total: Some(total) });
        target.shard.replace_rows(&target.tenant, copy_epoch, &rows, report).await?;
        report.send_replace(CopyProgress { phase: CopyPhase::Digesting, rows: total, rows_total: Some(total) });
        Ok((source.digest().await?, target.digest().await?))
    }

    /// After a move's flip: removes the tenant's rows from the shard it left
    /// (its fence row stays, at `epoch`, so a lagging writer is still
    /// refused there). How many rows went.
    pub async fn remove_old_copy(&self, endpoint: &str, tenant_uid: &str, epoch: u64) -> Result<u64, ShardError> {
        let scope = self.scope(endpoint, tenant_uid, epoch)?;
        scope.shard.remove_rows(&scope.tenant, epoch).await
    }
}

/// One tenant's rows on one shard. Cannot name another tenant's rows.
pub struct TenantScope {
    shard: Arc<Shard>,
    tenant: String,
    epoch: u64,
}

impl TenantScope {
    /// Whether the shard answers within `within`.
    pub async fn reachable(&self, within: Duration) -> Result<(), ShardError> {
        match tokio::time::timeout(within, self.shard.ping()).await {
            Ok(answer) => answer,
            Err(_) => Err(ShardError::Unavailable {
                endpoint: self.shard.endpoint().to_owned(),
                reason: format!("no answer within {} ms", within.as_millis()),
            }),
        }
    }

    /// How far this shard's acknowledged writes go, for a later read from
    /// a replica (`None`: an embedded store).
    pub async fn position(&self) -> Result<Option<String>, ShardError> {
        self.shard.position().await
    }

    /// On a replica: whether it has replayed up to `position`.
    pub async fn replayed(&self, position: &str) -> Result<bool, ShardError> {
        self.shard.replayed(position).await
    }

    /// The digest of the tenant's rows here.
    pub async fn digest(&self) -> Result<Digest, ShardError> {
        self.shard.digest(&self.tenant).await
    }

    /// The tenant's items, oldest first (ULIDs sort by time), at most
    /// [`ITEMS_PAGE_MAX`].
    pub async fn items(&self) -> Result<Vec<Item>, ShardError> {
        self.shard.items(&self.tenant).await
    }

    /// Creates an item; with an idempotency key, a retry (before the key
    /// expires) returns the first item and `true` instead of creating another.
    pub async fn create_item(&self, new: &NewItem<'_>) -> Result<(Item, bool), ShardError> {
        self.shard.create_item(&self.tenant, self.epoch, new).await
    }
}

/// An epoch as the databases store it (`bigint`).
fn epoch_i64(epoch: u64) -> Result<i64, ShardError> {
    i64::try_from(epoch).map_err(|_| ShardError::Invalid { field: "epoch", rule: "must be below 2^63".to_owned() })
}

#[cfg(test)]
mod tests;
