//! The node's transactional store: an SQLite file (the embedded default).
//!
//! It holds the fingerprints of the node's identifiers with the local record
//! ids they belong to. Nothing in it ever leaves the node.

use std::path::Path;

use fedq_crypto::{Fingerprint, IdentifierKind};
use rusqlite::{params, Connection, OptionalExtension};

use crate::config::StoreLocation;

/// Schema version of the store; bump with a migration.
const SCHEMA_VERSION: i64 = 1;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed.
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store directory cannot be created.
    #[error("cannot create the store directory: {0}")]
    Io(#[from] std::io::Error),
    /// The file was written by a newer fedq.
    #[error("store schema version {0} is newer than this build ({SCHEMA_VERSION})")]
    NewerSchema(i64),
    /// A stored row does not decode.
    #[error("corrupt store row")]
    Corrupt,
}

/// One identifier as stored: kind, fingerprint, local record id.
#[derive(Debug, Clone)]
pub struct IdentifierRow {
    /// Identifier kind.
    pub kind: IdentifierKind,
    /// Keyed fingerprint of the normal form.
    pub fingerprint: Fingerprint,
    /// The node's own record id.
    pub record_id: String,
}

/// Handle on the node's store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store.
    pub fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open_sqlite(path),
        }
    }

    fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS identifiers (
                 kind INTEGER NOT NULL,
                 fingerprint BLOB NOT NULL,
                 record_id TEXT NOT NULL,
                 PRIMARY KEY (kind, fingerprint, record_id)
             ) WITHOUT ROWID;",
        )?;
        let version: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                self.conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('generation', 0)",
                    params![SCHEMA_VERSION],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::NewerSchema(v)),
            Some(_) => {}
        }
        Ok(())
    }

    /// Inserts rows in one transaction; rows already present are skipped.
    /// Returns how many were new.
    pub fn insert_identifiers(&mut self, rows: &[IdentifierRow]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO identifiers (kind, fingerprint, record_id) VALUES (?1, ?2, ?3)",
            )?;
            for row in rows {
                inserted += stmt.execute(params![
                    row.kind.code(),
                    &row.fingerprint.as_bytes()[..],
                    row.record_id
                ])?;
            }
        }
        if inserted > 0 {
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
                [],
            )?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// Increases whenever identifiers change, so a serving node can reload.
    pub fn generation(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })?)
    }

    /// Number of stored identifier rows.
    pub fn identifier_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM identifiers", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Visits every stored (kind, fingerprint), for building the lookup index.
    pub fn for_each_fingerprint(
        &self,
        mut visit: impl FnMut(IdentifierKind, Fingerprint),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, fingerprint FROM identifiers")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let code: u8 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            let kind = IdentifierKind::from_code(code).ok_or(StoreError::Corrupt)?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt)?;
            visit(kind, Fingerprint::from_bytes(bytes));
        }
        Ok(())
    }

    /// Whether a record holds this fingerprint: the node's own view, used by
    /// tests to check answers per node and by operators.
    pub fn contains(
        &self,
        kind: IdentifierKind,
        fingerprint: &Fingerprint,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM identifiers WHERE kind = ?1 AND fingerprint = ?2 LIMIT 1",
                params![kind.code(), &fingerprint.as_bytes()[..]],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }
}
