//! The node's transactional store: an SQLite file (the embedded default) or
//! a PostgreSQL database (see `fedq_db`).
//!
//! It holds the node's identifiers (kind, normal form, the local record ids
//! they belong to, when each was last imported and, optionally, when it
//! expires), the node's OPRF keys, and each identifier's fingerprint (its OPRF
//! output) under those keys. Nothing in it ever leaves the node: the file is
//! created with mode 0600. Normal forms are kept so that the OPRF key can be
//! rotated without the source files (`fedq-node rotate-oprf-key`).
//!
//! # OPRF key slots
//! Fingerprints live in two columns, `fp_a` and `fp_b`, one per key slot. One
//! slot holds the active key: lookups and OPRF evaluations use it, and the
//! index is built from its column. During a rotation the other slot holds the
//! pending key while its column is filled in short transactions (an import
//! meanwhile writes both columns); the switch is one transaction that makes
//! the pending key active and bumps the generation, so a serving node reloads
//! key and index together. The old column is then cleared. Every change of
//! the key set bumps `key_epoch`, and a write of fingerprints computed under
//! another key set is refused ([`StoreError::KeysChanged`]).
//!
//! # Expiry
//! A record expires at the earlier of its own `expires_at` and, when the node
//! sets a retention period (`[retention] identifiers_days`), its last import
//! plus that period. An expired record no longer matches (the index and
//! [`Store::contains`] skip it) and [`Store::purge_expired`] deletes it. Times
//! are whole UTC seconds; a record is expired from its expiry second on.
//!
//! Files: `keys.rs` (OPRF key slots and rotation), `identifiers.rs` (rows,
//! import, expiry), this file (opening, schema, counters).

mod identifiers;
mod keys;

use std::time::Duration;

use fedq_db::{Backend, Db, DbError, Exec, Location};

use crate::config::NodeConfig;
use fedq_crypto::oprf::NodeOprfKey;

pub use self::identifiers::{is_expired, ExpiryUpdate, IdentifierRow, PurgeReport, UpsertCounts};
use self::keys::insert_key;
pub use self::keys::{OprfKeys, Slot};

/// Schema version of the store; bump with a migration.
/// 2: `expires_at` and `imported_at` columns.
/// 3: per-node OPRF fingerprints in two key slots, normal forms, OPRF keys.
pub const SCHEMA_VERSION: i64 = 3;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store failed, or cannot be opened.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The store directory cannot be created.
    #[error("cannot create the store directory: {0}")]
    Io(#[from] std::io::Error),
    /// The file was written by a newer fedq.
    #[error("store schema version {0} is newer than this build ({SCHEMA_VERSION})")]
    NewerSchema(i64),
    /// A version 1 or 2 store holds federation-key fingerprints, which cannot
    /// be turned into OPRF outputs without the identifiers.
    #[error(
        "this store holds {0} identifiers fingerprinted with the old federation-wide key; \
         fingerprints are now per-node OPRF outputs and cannot be converted: move the \
         store file away and import the identifiers again"
    )]
    FederationKeyStore(i64),
    /// A stored row or key does not decode.
    #[error("corrupt store row")]
    Corrupt,
    /// A rotation cannot switch yet: records were stored without their
    /// pending-key fingerprint (by a write that raced the re-derivation).
    #[error("{0} records lack their new-key fingerprint; re-derive them first")]
    RotationIncomplete(i64),
    /// The OPRF keys changed (a rotation started or switched) between computing
    /// fingerprints and writing them; recompute under [`Store::oprf_keys`].
    #[error("the node's OPRF keys changed during the write; retry")]
    KeysChanged,
}

/// Handle on the node's store.
pub struct Store {
    db: Db,
    retention: Option<Duration>,
}

impl Store {
    /// Opens (creating if needed) the store, with no retention period.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        let db = Db::open(location)?;
        if let Location::Sqlite(_) = location {
            // A 64 MB page cache: imports sort and insert in large chunks.
            db.run(|exec| exec.batch("PRAGMA cache_size = -65536"))?;
        }
        let store = Self {
            db,
            retention: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store of a node with its retention period.
    pub fn open_for(config: &NodeConfig) -> Result<Self, StoreError> {
        let mut store = Self::open(&config.store)?;
        store.set_retention(config.identifier_retention);
        Ok(store)
    }

    /// Sets the node-wide retention period (`None`: records expire only by `expires_at`).
    pub fn set_retention(&mut self, retention: Option<Duration>) {
        self.retention = retention;
    }

    /// The node-wide retention period.
    pub fn retention(&self) -> Option<Duration> {
        self.retention
    }

    /// The schema version a store is at, without changing it (`None`: no
    /// fedq store there yet). A newer version than this build's is refused.
    pub fn schema_version_of(location: &Location) -> Result<Option<i64>, StoreError> {
        let db = Db::open(location)?;
        let version = db.run(|exec| {
            if !exec.table_exists("meta")? {
                return Ok(None);
            }
            exec.query_opt(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                &[],
                |r| r.get::<i64>(0),
            )
        })?;
        match version {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::NewerSchema(v)),
            other => Ok(other),
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.batch(match tx.backend() {
                Backend::Sqlite => {
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
                }
                Backend::Postgres => {
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);"
                }
            })?;
            let version: Option<i64> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                &[],
                |r| r.get(0),
            )?;
            match version {
                Some(v) if v > SCHEMA_VERSION => return Err(StoreError::NewerSchema(v)),
                Some(v) if v < 3 => {
                    // Versions 1 and 2 stored HMAC fingerprints under the
                    // federation key and no normal forms: nothing to carry over.
                    let rows: i64 =
                        tx.query_one("SELECT COUNT(*) FROM identifiers", &[], |r| r.get(0))?;
                    if rows > 0 {
                        return Err(StoreError::FederationKeyStore(rows));
                    }
                    tx.batch("DROP TABLE identifiers;")?;
                }
                _ => {}
            }
            tx.batch(match tx.backend() {
                Backend::Sqlite => SQLITE_TABLES,
                Backend::Postgres => POSTGRES_TABLES,
            })?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('generation', 0), ('key_epoch', 0)
                 ON CONFLICT (key) DO NOTHING",
                &[],
            )?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&SCHEMA_VERSION],
            )?;
            let keys: i64 = tx.query_one("SELECT COUNT(*) FROM oprf_keys", &[], |r| r.get(0))?;
            if keys == 0 {
                insert_key(tx, Slot::A, &NodeOprfKey::generate(), "active")?;
            }
            Ok(())
        })
    }

    /// Increases whenever identifiers change, so a serving node can reload.
    pub fn generation(&self) -> Result<i64, StoreError> {
        Ok(self.db.run(|exec| {
            exec.query_one(
                "SELECT value FROM meta WHERE key = 'generation'",
                &[],
                |r| r.get(0),
            )
        })?)
    }

    /// Number of stored identifier rows, expired or not.
    pub fn identifier_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .db
            .run(|exec| exec.query_one("SELECT COUNT(*) FROM identifiers", &[], |r| r.get(0)))?;
        Ok(n as u64)
    }
}

fn bump(tx: &mut dyn Exec, counter: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE meta SET value = value + 1 WHERE key = ?1",
        &[&counter],
    )?;
    Ok(())
}

/// The node's tables on SQLite (schema version 3).
const SQLITE_TABLES: &str = "CREATE TABLE IF NOT EXISTS identifiers (
                 kind INTEGER NOT NULL,
                 value TEXT NOT NULL,
                 record_id TEXT NOT NULL,
                 expires_at INTEGER,
                 imported_at INTEGER NOT NULL,
                 fp_a BLOB,
                 fp_b BLOB,
                 PRIMARY KEY (kind, value, record_id)
             ) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oprf_keys (
    slot TEXT PRIMARY KEY CHECK (slot IN ('a', 'b')),
    secret TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'pending')),
    created_at INTEGER NOT NULL
);";

/// The same tables on PostgreSQL. A store that outgrows one server can
/// distribute `identifiers` by `value` (Citus: the primary key includes it,
/// as a distributed table's unique keys must): the statements that touch
/// one identifier name it and go to one shard; the index load and purges
/// scan every shard in parallel.
const POSTGRES_TABLES: &str = "CREATE TABLE IF NOT EXISTS identifiers (
    kind BIGINT NOT NULL,
    value TEXT COLLATE \"C\" NOT NULL,
    record_id TEXT NOT NULL,
    expires_at BIGINT,
    imported_at BIGINT NOT NULL,
    fp_a BYTEA,
    fp_b BYTEA,
    PRIMARY KEY (kind, value, record_id)
);
CREATE TABLE IF NOT EXISTS oprf_keys (
    slot TEXT PRIMARY KEY CHECK (slot IN ('a', 'b')),
    secret TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'pending')),
    created_at BIGINT NOT NULL
);";
