//! The statements both kinds of shard run as they are (PostgreSQL and
//! SQLite read `$1` alike). What differs (the fence's upsert, the row guard,
//! the digest's hash, bulk inserts) is in each backend.
//!
//! Every statement names its tenant as `$1`.

pub(super) const ITEMS: &str = "SELECT id, title, created_by, created_at_ms FROM items \
                         WHERE tenant_id = $1 ORDER BY id LIMIT $2";

/// The item an unexpired idempotency key points at.
pub(super) const REPLAYED_ITEM: &str = "SELECT i.id, i.title, i.created_by, i.created_at_ms \
                                 FROM idempotency_keys k JOIN items i ON i.tenant_id = k.tenant_id AND i.id = k.item_id \
                                 WHERE k.tenant_id = $1 AND k.key = $2 AND k.expires_at_ms > $3";

pub(super) const INSERT_ITEM: &str =
    "INSERT INTO items (tenant_id, id, title, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5)";

/// An expired key of the same name is replaced.
pub(super) const INSERT_KEY: &str = "INSERT INTO idempotency_keys (tenant_id, key, item_id, expires_at_ms) \
                              VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, key) \
                              DO UPDATE SET item_id = excluded.item_id, expires_at_ms = excluded.expires_at_ms";

/// At most `$3` expired keys go per write.
pub(super) const PRUNE_KEYS: &str = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key IN \
                              (SELECT key FROM idempotency_keys WHERE tenant_id = $1 AND expires_at_ms <= $2 LIMIT $3)";

pub(super) const ALL_ITEMS: &str =
    "SELECT id, title, created_by, created_at_ms FROM items WHERE tenant_id = $1 ORDER BY id";

pub(super) const ALL_KEYS: &str =
    "SELECT key, item_id, expires_at_ms FROM idempotency_keys WHERE tenant_id = $1 ORDER BY key";

pub(super) const DELETE_ITEMS: &str = "DELETE FROM items WHERE tenant_id = $1";

pub(super) const DELETE_KEYS: &str = "DELETE FROM idempotency_keys WHERE tenant_id = $1";

/// One line per row of the tenant, each field length-prefixed (`length` counts
/// characters in both databases), so that the digest of the lines sorted
/// bytewise and joined is the same in any database holding the same rows.
pub(super) const DIGEST_LINES: &str = "SELECT 'item ' || length(id) || ':' || id || length(title) || ':' || title \
                                || length(created_by) || ':' || created_by || ' ' || created_at_ms || '.' AS line \
                                FROM items WHERE tenant_id = $1 \
                                UNION ALL \
                                SELECT 'key ' || length(key) || ':' || key || length(item_id) || ':' || item_id \
                                || ' ' || expires_at_ms || '.' FROM idempotency_keys WHERE tenant_id = $1";

/// The applied migrations: the newest, and the oldest api-node schema
/// version that may still use the database.
pub(super) const SCHEMA_VERSION: &str =
    "SELECT coalesce(max(version), 0), coalesce(max(readers_from), 0) FROM tenantry_schema_migrations";
