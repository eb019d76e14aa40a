//! The embedded development store: a shard that is a SQLite file in the
//! api-node's data directory (SQLite is compiled into the binary, so the
//! quick start needs nothing installed). The same statements as PostgreSQL
//! where the dialects agree ([`super::sql`]).
//!
//! For development on one machine only: the api-nodes sharing it must share
//! the file system, it has no row-level security (the tenant scope is the
//! only guard), and it is as durable as the disk under it (WAL, synchronous
//! = FULL: a commit is fsynced before it is acknowledged).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::schema::{self, MIGRATIONS_TABLE, RECORD_MIGRATION};
use super::{epoch_i64, sql, Digest, IdempotencyKey, Item, NewItem, Rows, ShardError};
use crate::limits::{IDEMPOTENCY_KEYS_PRUNED_PER_WRITE_MAX, SHARD_WAIT_MS};
use crate::store::ITEMS_PAGE_MAX;

/// As PostgreSQL's, with SQLite's two-argument `max`.
const FENCE: &str = "INSERT INTO tenant_fences (tenant_id, epoch) VALUES ($1, $2) ON CONFLICT (tenant_id) \
                     DO UPDATE SET epoch = max(tenant_fences.epoch, excluded.epoch) RETURNING epoch";

const DIGEST: &str = "SELECT count(*), coalesce(string_agg(line, '' ORDER BY line), '') FROM (";

pub struct Embedded {
    endpoint: String,
    connection: Arc<Mutex<Connection>>,
}

fn item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: row.get(0)?,
        title: row.get(1)?,
        created_by: row.get(2)?,
        created_at_unix_ms: row.get::<_, i64>(3)?.max(0) as u64,
    })
}

/// Inside a write transaction: raises the tenant's fence; refused if the
/// file has seen a newer epoch.
fn fence(
    transaction: &rusqlite::Transaction<'_>,
    tenant: &str,
    epoch: u64,
) -> Result<Result<(), ShardError>, rusqlite::Error> {
    let Ok(epoch_value) = epoch_i64(epoch) else {
        return Ok(Err(ShardError::Invalid { field: "epoch", rule: "must be below 2^63".to_owned() }));
    };
    let seen = transaction.query_row(FENCE, params![tenant, epoch_value], |row| row.get::<_, i64>(0))? as u64;
    Ok(if seen > epoch { Err(ShardError::StaleEpoch { got: epoch, seen }) } else { Ok(()) })
}

impl Embedded {
    /// Opens (creating and migrating if needed) the file at `path`.
    pub fn open(endpoint: &str, path: &Path) -> Result<Self, ShardError> {
        let failed = |error: rusqlite::Error| ShardError::Unavailable {
            endpoint: endpoint.to_owned(),
            reason: format!("{}: {error}", path.display()),
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| ShardError::Unavailable {
                endpoint: endpoint.to_owned(),
                reason: format!("{}: {error}", parent.display()),
            })?;
        }
        let mut connection = Connection::open(path).map_err(failed)?;
        connection.busy_timeout(Duration::from_millis(SHARD_WAIT_MS)).map_err(failed)?;
        connection.pragma_update(None, "journal_mode", "WAL").map_err(failed)?;
        connection.pragma_update(None, "synchronous", "FULL").map_err(failed)?;
        connection.execute_batch(MIGRATIONS_TABLE).map_err(failed)?;
        loop {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
            let (version, readers_from) = transaction
                .query_row(sql::SCHEMA_VERSION, [], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .map_err(failed)?;
            let Some(step) = schema::pending(version).next() else {
                schema::fits(version, readers_from)
                    .map_err(|reason| ShardError::Refused { endpoint: endpoint.to_owned(), reason })?;
                break;
            };
            transaction.execute_batch(step.sqlite).map_err(failed)?;
            let now = plumbing::now_unix_ms() as i64;
            transaction
                .execute(RECORD_MIGRATION, params![step.version, step.name, step.readers_from, now])
                .map_err(failed)?;
            transaction.commit().map_err(failed)?;
        }
        Ok(Self { endpoint: endpoint.to_owned(), connection: Arc::new(Mutex::new(connection)) })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `work` on the connection, off the async workers.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<Result<T, ShardError>, rusqlite::Error> + Send + 'static,
    ) -> Result<T, ShardError> {
        let connection = self.connection.clone();
        let endpoint = self.endpoint.clone();
        let unavailable = move |reason: String| ShardError::Unavailable { endpoint: endpoint.clone(), reason };
        let done = tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            work(&mut connection)
        })
        .await;
        match done {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => Err(unavailable(error.to_string())),
            Err(error) => Err(unavailable(error.to_string())),
        }
    }

    pub async fn items(&self, tenant: &str) -> Result<Vec<Item>, ShardError> {
        let tenant = tenant.to_owned();
        self.run(move |connection| {
            let mut statement = connection.prepare_cached(sql::ITEMS)?;
            let items = statement.query_map(params![tenant, ITEMS_PAGE_MAX as i64], item)?;
            items.collect::<rusqlite::Result<Vec<Item>>>().map(Ok)
        })
        .await
    }

    pub async fn create_item(&self, tenant: &str, epoch: u64, new: &NewItem<'_>) -> Result<(Item, bool), ShardError> {
        let (tenant, key) = (tenant.to_owned(), new.idempotency_key.map(str::to_owned));
        let (created, now, expires) = (new.item(), new.now_unix_ms as i64, new.key_expires_at_unix_ms() as i64);
        self.run(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Err(refused) = fence(&transaction, &tenant, epoch)? {
                return Ok(Err(refused));
            }
            if let Some(key) = &key {
                let replayed = transaction.query_row(sql::REPLAYED_ITEM, params![tenant, key, now], item).optional()?;
                if let Some(first) = replayed {
                    transaction.commit()?;
                    return Ok(Ok((first, true)));
                }
            }
            let values = params![tenant, created.id, created.title, created.created_by, now];
            transaction.execute(sql::INSERT_ITEM, values)?;
            if let Some(key) = &key {
                transaction.execute(sql::INSERT_KEY, params![tenant, key, created.id, expires])?;
            }
            transaction.execute(sql::PRUNE_KEYS, params![tenant, now, IDEMPOTENCY_KEYS_PRUNED_PER_WRITE_MAX])?;
            transaction.commit()?;
            Ok(Ok((created, false)))
        })
        .await
    }

    pub async fn fence_and_read(&self, tenant: &str, epoch: u64) -> Result<Rows, ShardError> {
        let tenant = tenant.to_owned();
        self.run(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Err(refused) = fence(&transaction, &tenant, epoch)? {
                return Ok(Err(refused));
            }
            let items = transaction.prepare(sql::ALL_ITEMS)?.query_map([&tenant], item)?.collect::<Result<_, _>>()?;
            let keys = transaction
                .prepare(sql::ALL_KEYS)?
                .query_map([&tenant], |row| {
                    Ok(IdempotencyKey {
                        key: row.get(0)?,
                        item_id: row.get(1)?,
                        expires_at_unix_ms: row.get::<_, i64>(2)?.max(0) as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            transaction.commit()?;
            Ok(Ok(Rows { items, keys }))
        })
        .await
    }

    pub async fn replace_rows(&self, tenant: &str, epoch: u64, rows: &Rows) -> Result<(), ShardError> {
        let (tenant, rows) = (tenant.to_owned(), rows.clone());
        self.run(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Err(refused) = fence(&transaction, &tenant, epoch)? {
                return Ok(Err(refused));
            }
            for delete in [sql::DELETE_ITEMS, sql::DELETE_KEYS] {
                transaction.execute(delete, [&tenant])?;
            }
            {
                let mut insert = transaction.prepare(sql::INSERT_ITEM)?;
                for i in &rows.items {
                    insert.execute(params![tenant, i.id, i.title, i.created_by, i.created_at_unix_ms as i64])?;
                }
                let mut insert = transaction.prepare(sql::INSERT_KEY)?;
                for k in &rows.keys {
                    insert.execute(params![tenant, k.key, k.item_id, k.expires_at_unix_ms as i64])?;
                }
            }
            transaction.commit()?;
            Ok(Ok(()))
        })
        .await
    }

    pub async fn remove_rows(&self, tenant: &str, epoch: u64) -> Result<u64, ShardError> {
        let tenant = tenant.to_owned();
        self.run(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Err(refused) = fence(&transaction, &tenant, epoch)? {
                return Ok(Err(refused));
            }
            let mut removed = 0;
            for delete in [sql::DELETE_ITEMS, sql::DELETE_KEYS] {
                removed += transaction.execute(delete, [&tenant])? as u64;
            }
            transaction.commit()?;
            Ok(Ok(removed))
        })
        .await
    }

    /// SQLite orders and joins the lines; it has no SHA-256, so the hash of
    /// what it joined is taken here.
    pub async fn digest(&self, tenant: &str) -> Result<Digest, ShardError> {
        use sha2::{Digest as _, Sha256};
        let tenant = tenant.to_owned();
        self.run(move |connection| {
            let query = format!("{DIGEST}{}) AS lines", sql::DIGEST_LINES);
            let (rows, joined) =
                connection.query_row(&query, [&tenant], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?;
            Ok(Ok(Digest { rows: rows as u64, sha256: hex::encode(Sha256::digest(joined.as_bytes())) }))
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), ShardError> {
        self.run(|connection| connection.query_row("SELECT 1", [], |_| Ok(())).map(Ok)).await
    }
}
