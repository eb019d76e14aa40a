//! The shard schema's migrations, versioned, applied in order, and kept
//! backward compatible the way operators are told to change schemas:
//! expand (add what the new code needs, keep what the old code uses) →
//! deploy the new api-nodes → contract (drop what no api-node uses any more).
//!
//! Each applied migration is a row of `tenantry_schema_migrations` with
//! `readers_from`: the oldest api-node schema version ([`SCHEMA_VERSION`]
//! of its build) that still works on the database after it. An expand step
//! keeps the value before it; a contract step raises it. So an api-node can
//! tell, from the database alone, whether it fits: it refuses a shard whose
//! `readers_from` is above its own version (upgrade the api-node), or whose
//! version is below [`SCHEMA_VERSION_MIN`] (run `api-node migrate`).

/// A step of the schema.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    /// The oldest api-node schema version that works after this step.
    pub readers_from: i64,
    pub postgres: &'static str,
    pub sqlite: &'static str,
}

/// The newest schema version this build knows (and would migrate to).
pub const SCHEMA_VERSION: i64 = 1;

/// The oldest schema version this build works with: the expand steps it
/// needs.
pub const SCHEMA_VERSION_MIN: i64 = 1;

/// Every step, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "items, idempotency keys and fences, with row-level security",
    readers_from: 1,
    postgres: "
        CREATE TABLE tenant_fences (
            tenant_id text PRIMARY KEY,
            epoch bigint NOT NULL CHECK (epoch >= 0)
        );
        CREATE TABLE items (
            tenant_id text NOT NULL,
            id text NOT NULL,
            title text NOT NULL,
            created_by text NOT NULL,
            created_at_ms bigint NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE TABLE idempotency_keys (
            tenant_id text NOT NULL,
            key text NOT NULL,
            item_id text NOT NULL,
            expires_at_ms bigint NOT NULL,
            PRIMARY KEY (tenant_id, key)
        );
        CREATE INDEX idempotency_keys_expiry ON idempotency_keys (tenant_id, expires_at_ms);
        -- The row guard: a transaction sees and writes only the rows of the
        -- tenant it set (SET LOCAL tenantry.tenant_id); none if it set none.
        -- FORCE: the tables' owner is guarded too.
        ALTER TABLE tenant_fences ENABLE ROW LEVEL SECURITY;
        ALTER TABLE tenant_fences FORCE ROW LEVEL SECURITY;
        CREATE POLICY one_tenant ON tenant_fences
            USING (tenant_id = current_setting('tenantry.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('tenantry.tenant_id', true));
        ALTER TABLE items ENABLE ROW LEVEL SECURITY;
        ALTER TABLE items FORCE ROW LEVEL SECURITY;
        CREATE POLICY one_tenant ON items
            USING (tenant_id = current_setting('tenantry.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('tenantry.tenant_id', true));
        ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
        ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
        CREATE POLICY one_tenant ON idempotency_keys
            USING (tenant_id = current_setting('tenantry.tenant_id', true))
            WITH CHECK (tenant_id = current_setting('tenantry.tenant_id', true));
    ",
    sqlite: "
        CREATE TABLE tenant_fences (
            tenant_id TEXT PRIMARY KEY,
            epoch INTEGER NOT NULL CHECK (epoch >= 0)
        ) STRICT;
        CREATE TABLE items (
            tenant_id TEXT NOT NULL,
            id TEXT NOT NULL,
            title TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, id)
        ) STRICT;
        CREATE TABLE idempotency_keys (
            tenant_id TEXT NOT NULL,
            key TEXT NOT NULL,
            item_id TEXT NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, key)
        ) STRICT;
        CREATE INDEX idempotency_keys_expiry ON idempotency_keys (tenant_id, expires_at_ms);
    ",
}];

/// The migrations table, created before the first step (both databases).
pub const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS tenantry_schema_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    readers_from bigint NOT NULL,
    applied_at_ms bigint NOT NULL
)";

pub const RECORD_MIGRATION: &str =
    "INSERT INTO tenantry_schema_migrations (version, name, readers_from, applied_at_ms) VALUES ($1, $2, $3, $4)";

/// Whether this build may use a database at `version` whose applied steps
/// need readers from `readers_from`; if not, what to do, in words.
pub fn fits(version: i64, readers_from: i64) -> Result<(), String> {
    if version < SCHEMA_VERSION_MIN {
        return Err(format!(
            "schema version {version}; this api-node needs at least {SCHEMA_VERSION_MIN}: run `api-node migrate` on it"
        ));
    }
    if readers_from > SCHEMA_VERSION {
        return Err(format!(
            "schema version {version} needs api-nodes of schema version {readers_from} or later; this one is \
             {SCHEMA_VERSION}: upgrade the api-node"
        ));
    }
    Ok(())
}

/// The steps a database at `version` still needs, in order.
pub fn pending(version: i64) -> impl Iterator<Item = &'static Migration> {
    MIGRATIONS.iter().filter(move |migration| migration.version > version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_compatibility_is_read_from_the_database() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|migration| migration.version).collect();
        assert!(versions.windows(2).all(|pair| pair[1] == pair[0] + 1), "{versions:?}");
        assert_eq!(versions.last(), Some(&SCHEMA_VERSION));
        assert!(MIGRATIONS.iter().all(|migration| migration.readers_from <= migration.version));
        assert!(fits(SCHEMA_VERSION, 1).is_ok());
        // A newer database after expand steps only still fits.
        assert!(fits(SCHEMA_VERSION + 3, SCHEMA_VERSION).is_ok());
        assert!(fits(0, 0).unwrap_err().contains("run `api-node migrate`"));
        assert!(fits(SCHEMA_VERSION + 1, SCHEMA_VERSION + 1).unwrap_err().contains("upgrade the api-node"));
        assert_eq!(pending(0).count(), MIGRATIONS.len());
        assert_eq!(pending(SCHEMA_VERSION).count(), 0);
    }
}
