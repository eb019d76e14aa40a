//! A shard that is a PostgreSQL database: a bounded pool of connections,
//! a schema check before first use, and the row guard on every
//! transaction (`tenantry.tenant_id`, set local to it, read by the
//! row-level security policies of [`super::schema`]).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction};
use futures::TryStreamExt;
use proto::{ShardEndpoint, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use super::schema::{self, MIGRATIONS_TABLE, RECORD_MIGRATION};
use super::tls::RustlsConnect;
use super::{
    epoch_i64, passfile, sql, CopyReport, Digest, IdempotencyKey, Item, NewItem, Rows, ShardError, ShardOptions,
};
use crate::limits::{
    IDEMPOTENCY_KEYS_PRUNED_PER_WRITE_MAX, MOVE_CHUNK_ROWS, MOVE_STATEMENT_MS, SHARD_CONNECT_MS, SHARD_STATEMENT_MS,
    SHARD_WAIT_MS,
};
use crate::store::ITEMS_PAGE_MAX;

/// Raises the tenant's fence to the writer's epoch and answers the epoch it
/// holds now; the row stays locked until the transaction ends, so writes of
/// one tenant are serialised against fences and moves.
const FENCE: &str = "INSERT INTO tenant_fences (tenant_id, epoch) VALUES ($1, $2) ON CONFLICT (tenant_id) \
                     DO UPDATE SET epoch = greatest(tenant_fences.epoch, excluded.epoch) RETURNING epoch";

const GUARD: &str = "SELECT set_config('tenantry.tenant_id', $1, true)";

const DIGEST: &str = "SELECT count(*), encode(sha256(convert_to(coalesce(string_agg(line, '' ORDER BY line COLLATE \"C\"), ''), 'UTF8')), 'hex') FROM (";

const INSERT_ITEMS: &str = "INSERT INTO items (tenant_id, id, title, created_by, created_at_ms) \
                            SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])";

const INSERT_KEYS: &str = "INSERT INTO idempotency_keys (tenant_id, key, item_id, expires_at_ms) \
                           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])";

/// Whether the connected role skips row-level security (the guard would be off).
const BYPASSES_RLS: &str = "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user";

pub struct Postgres {
    endpoint: String,
    pool: Pool,
    /// Set once the schema and the role were found fit.
    checked: tokio::sync::OnceCell<()>,
}

/// The connection settings of `endpoint`, with its password from the
/// passfile and the statement timeout.
pub fn config(
    endpoint: &str,
    parsed: &ShardEndpoint,
    passfile: Option<&std::path::Path>,
    statement_ms: u64,
) -> Result<tokio_postgres::Config, ShardError> {
    let refused = |reason: String| ShardError::Refused { endpoint: endpoint.to_owned(), reason };
    let ShardEndpoint::Postgres { user, host, port, database, ssl_mode } = parsed else {
        return Err(refused("not a PostgreSQL endpoint".to_owned()));
    };
    let mut config = tokio_postgres::Config::new();
    config
        .user(user)
        .host(host)
        .port(*port)
        .dbname(database)
        .application_name("tenantry-api-node")
        .connect_timeout(Duration::from_millis(SHARD_CONNECT_MS))
        .options(format!("-c statement_timeout={statement_ms}"))
        .ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require => tokio_postgres::config::SslMode::Require,
        });
    if let Some(path) = passfile::locate(passfile) {
        if let Some(password) = passfile::password(&path, host, *port, database, user).map_err(refused)? {
            config.password(password);
        }
    }
    Ok(config)
}

/// An error and its causes, as one line ("error performing TLS handshake:
/// invalid peer certificate: …").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(&format!(": {next}"));
        cause = next.source();
    }
    text
}

/// A failed statement or connection: the database's code and message, or
/// the error and its causes.
fn unavailable(endpoint: &str, error: tokio_postgres::Error) -> ShardError {
    let reason = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => with_causes(&error),
    };
    ShardError::Unavailable { endpoint: endpoint.to_owned(), reason }
}

/// The TLS connector for `endpoint`: with `--shard-ca`, TLS as its
/// `sslmode` says; without, none, and `sslmode=require` is refused.
fn tls_for(
    endpoint: &str,
    parsed: &ShardEndpoint,
    roots: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Option<RustlsConnect>, ShardError> {
    match (parsed, roots) {
        (ShardEndpoint::Postgres { ssl_mode: SslMode::Disable, .. }, _) => Ok(None),
        (_, Some(roots)) => Ok(Some(RustlsConnect(roots.clone()))),
        (ShardEndpoint::Postgres { ssl_mode: SslMode::Require, .. }, None) => Err(ShardError::Refused {
            endpoint: endpoint.to_owned(),
            reason: "sslmode=require: give the CA its server certificate chains to (--shard-ca)".to_owned(),
        }),
        _ => Ok(None),
    }
}

fn item(row: &Row) -> Item {
    Item {
        id: row.get(0),
        title: row.get(1),
        created_by: row.get(2),
        created_at_unix_ms: row.get::<_, i64>(3).max(0) as u64,
    }
}

impl Postgres {
    pub fn new(endpoint: &str, parsed: &ShardEndpoint, options: &ShardOptions) -> Result<Self, ShardError> {
        let config = config(endpoint, parsed, options.passfile.as_deref(), SHARD_STATEMENT_MS)?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls_for(endpoint, parsed, options.tls.as_ref())? {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let wait = Some(Duration::from_millis(SHARD_WAIT_MS));
        let pool = Pool::builder(manager)
            .max_size(options.connections_max)
            .wait_timeout(wait)
            .create_timeout(Some(Duration::from_millis(SHARD_CONNECT_MS)))
            .recycle_timeout(wait)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| ShardError::Refused { endpoint: endpoint.to_owned(), reason: error.to_string() })?;
        Ok(Self { endpoint: endpoint.to_owned(), pool, checked: tokio::sync::OnceCell::new() })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn error(&self, error: impl std::error::Error) -> ShardError {
        ShardError::Unavailable { endpoint: self.endpoint.clone(), reason: with_causes(&error) }
    }

    fn db_error(&self, error: tokio_postgres::Error) -> ShardError {
        unavailable(&self.endpoint, error)
    }

    /// A pooled connection to a database this build fits.
    async fn client(&self) -> Result<Object, ShardError> {
        let client = self.pool.get().await.map_err(|error| self.error(error))?;
        self.checked.get_or_try_init(|| self.check(&client)).await?;
        Ok(client)
    }

    /// Refuses a database of a schema this build does not understand, and a
    /// role that row-level security would not guard.
    async fn check(&self, client: &Object) -> Result<(), ShardError> {
        let refused = |reason: String| ShardError::Refused { endpoint: self.endpoint.clone(), reason };
        let (version, readers_from) = match client.query_one(sql::SCHEMA_VERSION, &[]).await {
            Ok(row) => (row.get::<_, i64>(0), row.get::<_, i64>(1)),
            Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => (0, 0),
            Err(error) => return Err(self.db_error(error)),
        };
        schema::fits(version, readers_from).map_err(refused)?;
        let bypasses: bool = client.query_one(BYPASSES_RLS, &[]).await.map_err(|error| self.db_error(error))?.get(0);
        if bypasses {
            return Err(refused(
                "the role it connects as bypasses row-level security (a superuser, or BYPASSRLS): connect as a role \
                 without it, so the row guard holds"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    /// A transaction that sees only `tenant`'s rows.
    async fn guarded<'a>(&self, client: &'a mut Object, tenant: &str) -> Result<Transaction<'a>, ShardError> {
        let transaction = client.transaction().await.map_err(|error| self.db_error(error))?;
        // Prepared once per connection: every request runs it.
        let guard = transaction.prepare_cached(GUARD).await.map_err(|error| self.db_error(error))?;
        transaction.execute(&guard, &[&tenant]).await.map_err(|error| self.db_error(error))?;
        Ok(transaction)
    }

    /// Inside `transaction`: raises the tenant's fence to `epoch` and locks
    /// it; refused if the shard has seen a newer one.
    async fn fence(&self, transaction: &Transaction<'_>, tenant: &str, epoch: u64) -> Result<(), ShardError> {
        let statement = transaction.prepare_cached(FENCE).await.map_err(|error| self.db_error(error))?;
        let row = transaction
            .query_one(&statement, &[&tenant, &epoch_i64(epoch)?])
            .await
            .map_err(|error| self.db_error(error))?;
        let seen = row.get::<_, i64>(0) as u64;
        if seen > epoch {
            return Err(ShardError::StaleEpoch { got: epoch, seen });
        }
        Ok(())
    }

    async fn commit(&self, transaction: Transaction<'_>) -> Result<(), ShardError> {
        transaction.commit().await.map_err(|error| self.db_error(error))
    }

    pub async fn items(&self, tenant: &str) -> Result<Vec<Item>, ShardError> {
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        let statement = transaction.prepare_cached(sql::ITEMS).await.map_err(|error| self.db_error(error))?;
        let rows = transaction
            .query(&statement, &[&tenant, &(ITEMS_PAGE_MAX as i64)])
            .await
            .map_err(|error| self.db_error(error))?;
        self.commit(transaction).await?;
        Ok(rows.iter().map(item).collect())
    }

    pub async fn create_item(&self, tenant: &str, epoch: u64, new: &NewItem<'_>) -> Result<(Item, bool), ShardError> {
        let now = epoch_i64(new.now_unix_ms)?;
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        self.fence(&transaction, tenant, epoch).await?;
        let prepare = |text| transaction.prepare_cached(text);
        if let Some(key) = new.idempotency_key {
            let statement = prepare(sql::REPLAYED_ITEM).await.map_err(|error| self.db_error(error))?;
            let replayed = transaction
                .query_opt(&statement, &[&tenant, &key, &now])
                .await
                .map_err(|error| self.db_error(error))?;
            if let Some(row) = replayed {
                self.commit(transaction).await?;
                return Ok((item(&row), true));
            }
        }
        let created = new.item();
        let statement = prepare(sql::INSERT_ITEM).await.map_err(|error| self.db_error(error))?;
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&tenant, &created.id, &created.title, &created.created_by, &now];
        transaction.execute(&statement, &values).await.map_err(|error| self.db_error(error))?;
        if let Some(key) = new.idempotency_key {
            let statement = prepare(sql::INSERT_KEY).await.map_err(|error| self.db_error(error))?;
            let expires = epoch_i64(new.key_expires_at_unix_ms())?;
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&tenant, &key, &created.id, &expires];
            transaction.execute(&statement, &values).await.map_err(|error| self.db_error(error))?;
        }
        let statement = prepare(sql::PRUNE_KEYS).await.map_err(|error| self.db_error(error))?;
        transaction
            .execute(&statement, &[&tenant, &now, &IDEMPOTENCY_KEYS_PRUNED_PER_WRITE_MAX])
            .await
            .map_err(|error| self.db_error(error))?;
        // Acknowledged once committed: PostgreSQL's commit is durable
        // (synchronous_commit on, its default) when the answer comes.
        self.commit(transaction).await?;
        Ok((created, false))
    }

    /// Every row `statement` returns for `tenant`, streamed, each told to
    /// `report` (after `before` rows already read).
    async fn read_all<T>(
        &self,
        transaction: &Transaction<'_>,
        statement: &str,
        tenant: &str,
        (before, report): (u64, &CopyReport),
        from_row: impl Fn(&Row) -> T,
    ) -> Result<Vec<T>, ShardError> {
        let stream = transaction.query_raw(statement, [tenant]).await.map_err(|error| self.db_error(error))?;
        let mut stream = std::pin::pin!(stream);
        let mut rows = Vec::new();
        while let Some(row) = stream.try_next().await.map_err(|error| self.db_error(error))? {
            rows.push(from_row(&row));
            if rows.len() % MOVE_CHUNK_ROWS == 0 {
                report.send_modify(|progress| progress.rows = before + rows.len() as u64);
            }
        }
        report.send_modify(|progress| progress.rows = before + rows.len() as u64);
        Ok(rows)
    }

    pub async fn fence_and_read(&self, tenant: &str, epoch: u64, report: &CopyReport) -> Result<Rows, ShardError> {
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        self.fence(&transaction, tenant, epoch).await?;
        let long = format!("SET LOCAL statement_timeout = {MOVE_STATEMENT_MS}");
        transaction.batch_execute(&long).await.map_err(|error| self.db_error(error))?;
        let items = self.read_all(&transaction, sql::ALL_ITEMS, tenant, (0, report), item).await?;
        let key = |row: &Row| IdempotencyKey {
            key: row.get(0),
            item_id: row.get(1),
            expires_at_unix_ms: row.get::<_, i64>(2).max(0) as u64,
        };
        let keys = self.read_all(&transaction, sql::ALL_KEYS, tenant, (items.len() as u64, report), key).await?;
        self.commit(transaction).await?;
        Ok(Rows { items, keys })
    }

    /// One transaction: the fence, then the tenant's rows replaced set-wise
    /// (`INSERT … SELECT unnest(…)` of [`MOVE_CHUNK_ROWS`] rows at a time),
    /// each chunk told to `report`.
    pub async fn replace_rows(
        &self,
        tenant: &str,
        epoch: u64,
        rows: &Rows,
        report: &CopyReport,
    ) -> Result<(), ShardError> {
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        self.fence(&transaction, tenant, epoch).await?;
        let long = format!("SET LOCAL statement_timeout = {MOVE_STATEMENT_MS}");
        transaction.batch_execute(&long).await.map_err(|error| self.db_error(error))?;
        for delete in [sql::DELETE_ITEMS, sql::DELETE_KEYS] {
            transaction.execute(delete, &[&tenant]).await.map_err(|error| self.db_error(error))?;
        }
        let mut written = 0;
        let mut told = |rows: usize| {
            written += rows as u64;
            report.send_modify(|progress| progress.rows = written);
        };
        for items in rows.items.chunks(MOVE_CHUNK_ROWS) {
            let column = |f: fn(&Item) -> &str| items.iter().map(f).collect::<Vec<&str>>();
            let (ids, titles, authors) = (column(|i| &i.id), column(|i| &i.title), column(|i| &i.created_by));
            let created: Vec<i64> = items.iter().map(|i| i.created_at_unix_ms as i64).collect();
            transaction
                .execute(INSERT_ITEMS, &[&tenant, &ids, &titles, &authors, &created])
                .await
                .map_err(|error| self.db_error(error))?;
            told(items.len());
        }
        for keys in rows.keys.chunks(MOVE_CHUNK_ROWS) {
            let column = |f: fn(&IdempotencyKey) -> &str| keys.iter().map(f).collect::<Vec<&str>>();
            let (names, key_items) = (column(|k| &k.key), column(|k| &k.item_id));
            let expiries: Vec<i64> = keys.iter().map(|k| k.expires_at_unix_ms as i64).collect();
            transaction
                .execute(INSERT_KEYS, &[&tenant, &names, &key_items, &expiries])
                .await
                .map_err(|error| self.db_error(error))?;
            told(keys.len());
        }
        self.commit(transaction).await
    }

    pub async fn remove_rows(&self, tenant: &str, epoch: u64) -> Result<u64, ShardError> {
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        self.fence(&transaction, tenant, epoch).await?;
        let mut removed = 0;
        for delete in [sql::DELETE_ITEMS, sql::DELETE_KEYS] {
            removed += transaction.execute(delete, &[&tenant]).await.map_err(|error| self.db_error(error))?;
        }
        self.commit(transaction).await?;
        Ok(removed)
    }

    pub async fn digest(&self, tenant: &str) -> Result<Digest, ShardError> {
        let mut client = self.client().await?;
        let transaction = self.guarded(&mut client, tenant).await?;
        let query = format!("{DIGEST}{}) AS lines", sql::DIGEST_LINES);
        let row = transaction.query_one(&query, &[&tenant]).await.map_err(|error| self.db_error(error))?;
        self.commit(transaction).await?;
        Ok(Digest { rows: row.get::<_, i64>(0) as u64, sha256: row.get(1) })
    }

    /// How far the database's WAL is flushed: at or past every write
    /// acknowledged so far (a commit returns once flushed).
    pub async fn position(&self) -> Result<String, ShardError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT pg_current_wal_flush_lsn()::text", &[]).await;
        Ok(row.map_err(|error| self.db_error(error))?.get(0))
    }

    /// On a replica: whether it has replayed the WAL up to `position`.
    pub async fn replayed(&self, position: &str) -> Result<bool, ShardError> {
        let client = self.client().await?;
        let query = "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)";
        let row = client.query_one(query, &[&position]).await;
        Ok(row.map_err(|error| self.db_error(error))?.get(0))
    }

    pub async fn ping(&self) -> Result<(), ShardError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(|error| self.db_error(error))?;
        Ok(())
    }
}

/// `api-node migrate`: applies the steps the database at `endpoint` lacks,
/// each in its own transaction, under an advisory lock (two migrators wait
/// for each other). Connects as the schema's owner. Returns the versions
/// applied.
pub async fn migrate(
    endpoint: &str,
    parsed: &ShardEndpoint,
    passfile: Option<&std::path::Path>,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    grant_to: &[String],
) -> Result<Vec<i64>, ShardError> {
    let failed = |error| unavailable(endpoint, error);
    let config = config(endpoint, parsed, passfile, MOVE_STATEMENT_MS)?;
    let (mut client, connection) = match tls_for(endpoint, parsed, tls)? {
        Some(tls) => {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            (client, tokio::spawn(async move { connection.await.map(drop) }))
        }
        None => {
            let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
            (client, tokio::spawn(async move { connection.await.map(drop) }))
        }
    };
    let mut applied = Vec::new();
    client.batch_execute(MIGRATIONS_TABLE).await.map_err(failed)?;
    loop {
        let transaction = client.transaction().await.map_err(failed)?;
        // One migrator at a time: the key is "tenantry" in ASCII.
        transaction.batch_execute("SELECT pg_advisory_xact_lock(7308604888372935033)").await.map_err(failed)?;
        let version: i64 = transaction.query_one(sql::SCHEMA_VERSION, &[]).await.map_err(failed)?.get(0);
        let Some(step) = schema::pending(version).next() else { break };
        transaction.batch_execute(step.postgres).await.map_err(failed)?;
        let now = plumbing::now_unix_ms() as i64;
        transaction
            .execute(RECORD_MIGRATION, &[&step.version, &step.name, &step.readers_from, &now])
            .await
            .map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        applied.push(step.version);
    }
    for role in grant_to {
        let role = role.replace('"', "\"\"");
        let grants = format!(
            "GRANT SELECT ON tenantry_schema_migrations TO \"{role}\"; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_fences, items, idempotency_keys TO \"{role}\""
        );
        client.batch_execute(&grants).await.map_err(failed)?;
    }
    drop(client);
    let _ = connection.await;
    Ok(applied)
}
