//! The node's transactional store: an SQLite file (the embedded default).
//!
//! It holds the fingerprints of the node's identifiers with the local record
//! ids they belong to, when each was last imported and, optionally, when it
//! expires. Nothing in it ever leaves the node.
//!
//! # Expiry
//! A record expires at the earlier of its own `expires_at` and, when the node
//! sets a retention period (`[retention] identifiers_days`), its last import
//! plus that period. An expired record no longer matches (the index and
//! [`Store::contains`] skip it) and [`Store::purge_expired`] deletes it. Times
//! are whole UTC seconds; a record is expired from its expiry second on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fedq_crypto::{Fingerprint, IdentifierKind};
use rusqlite::{params, Connection, OptionalExtension};

use crate::config::{NodeConfig, StoreLocation};

/// Schema version of the store; bump with a migration.
/// 2: `expires_at` and `imported_at` columns.
const SCHEMA_VERSION: i64 = 2;

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

/// One identifier as stored: kind, fingerprint, local record id, expiry.
#[derive(Debug, Clone)]
pub struct IdentifierRow {
    /// Identifier kind.
    pub kind: IdentifierKind,
    /// Keyed fingerprint of the normal form.
    pub fingerprint: Fingerprint,
    /// The node's own record id.
    pub record_id: String,
    /// When the record stops matching (`None`: only the retention period applies).
    pub expires_at: Option<DateTime<Utc>>,
}

/// What an import does to the expiry of records already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryUpdate {
    /// The file has an `expires_at` column: its value (or its absence) replaces the stored one.
    Replace,
    /// The file has no `expires_at` column: stored expiries are kept.
    Keep,
}

/// What [`Store::upsert_identifiers`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UpsertCounts {
    /// Rows newly stored.
    pub inserted: usize,
    /// Rows already stored (their import time is refreshed).
    pub existing: usize,
    /// Of the existing rows, those whose expiry changed.
    pub expiry_changed: usize,
}

/// Expired identifiers per kind, as counted or deleted by [`Store::purge_expired`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// Expired rows per kind (kinds with none are left out).
    pub per_kind: BTreeMap<IdentifierKind, u64>,
}

impl PurgeReport {
    /// All expired rows.
    pub fn total(&self) -> u64 {
        self.per_kind.values().sum()
    }
}

impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, n) in &self.per_kind {
            writeln!(f, "{kind}: {n}")?;
        }
        let verb = if self.dry_run {
            "would purge"
        } else {
            "purged"
        };
        writeln!(f, "{verb} {} expired identifiers", self.total())
    }
}

/// Handle on the node's store.
pub struct Store {
    conn: Connection,
    retention: Option<Duration>,
}

impl Store {
    /// Opens (creating if needed) the store, with no retention period.
    pub fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Self::open_sqlite(path),
        }
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

    fn open_sqlite(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Fingerprints are random keys: inserts land all over the B-tree, and
        // with SQLite's default 2 MB cache most of them miss. 64 MB holds the
        // interior pages of a few million identifiers.
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut store = Self {
            conn,
            retention: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS identifiers (
                 kind INTEGER NOT NULL,
                 fingerprint BLOB NOT NULL,
                 record_id TEXT NOT NULL,
                 expires_at INTEGER,
                 imported_at INTEGER,
                 PRIMARY KEY (kind, fingerprint, record_id)
             ) WITHOUT ROWID;",
        )?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            None => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('generation', 0)",
                    params![SCHEMA_VERSION],
                )?;
            }
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::NewerSchema(v)),
            Some(v) if v < 2 => {
                // Version 1 had neither column. Its records count as imported
                // now: the retention period runs from the upgrade.
                let columns: Vec<String> = tx
                    .prepare("SELECT name FROM pragma_table_info('identifiers')")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for column in ["expires_at", "imported_at"] {
                    if !columns.iter().any(|c| c == column) {
                        tx.execute_batch(&format!(
                            "ALTER TABLE identifiers ADD COLUMN {column} INTEGER"
                        ))?;
                    }
                }
                tx.execute(
                    "UPDATE identifiers SET imported_at = ?1 WHERE imported_at IS NULL",
                    params![Utc::now().timestamp()],
                )?;
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    params![SCHEMA_VERSION],
                )?;
            }
            Some(_) => {}
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores rows in one transaction, as imported at `now`. A row already
    /// stored is not duplicated: its import time is refreshed and, with
    /// [`ExpiryUpdate::Replace`], its expiry replaced. Bumps the generation
    /// when anything was written, so a serving node reloads.
    pub fn upsert_identifiers(
        &mut self,
        rows: &[IdentifierRow],
        expiry: ExpiryUpdate,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let now = now.timestamp();
        let tx = self.conn.transaction()?;
        let mut counts = UpsertCounts::default();
        {
            let mut find = tx.prepare_cached(
                "SELECT expires_at FROM identifiers WHERE kind = ?1 AND fingerprint = ?2 AND record_id = ?3",
            )?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO identifiers (kind, fingerprint, record_id, expires_at, imported_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut update = tx.prepare_cached(
                "UPDATE identifiers SET expires_at = ?4, imported_at = ?5 WHERE kind = ?1 AND fingerprint = ?2 AND record_id = ?3",
            )?;
            for row in rows {
                let key = (
                    row.kind.code(),
                    &row.fingerprint.as_bytes()[..],
                    &row.record_id,
                );
                let given = row.expires_at.map(|t| t.timestamp());
                let stored: Option<Option<i64>> = find
                    .query_row(params![key.0, key.1, key.2], |r| r.get(0))
                    .optional()?;
                match stored {
                    None => {
                        insert.execute(params![key.0, key.1, key.2, given, now])?;
                        counts.inserted += 1;
                    }
                    Some(old) => {
                        let new = match expiry {
                            ExpiryUpdate::Replace => given,
                            ExpiryUpdate::Keep => old,
                        };
                        update.execute(params![key.0, key.1, key.2, new, now])?;
                        counts.existing += 1;
                        counts.expiry_changed += usize::from(new != old);
                    }
                }
            }
        }
        if !rows.is_empty() {
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
                [],
            )?;
        }
        tx.commit()?;
        Ok(counts)
    }

    /// Increases whenever identifiers change, so a serving node can reload.
    pub fn generation(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })?)
    }

    /// Number of stored identifier rows, expired or not.
    pub fn identifier_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM identifiers", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Visits every stored (kind, fingerprint) with its expiry under this
    /// store's retention period (`None`: never), for building the lookup index.
    pub fn for_each_fingerprint(
        &self,
        mut visit: impl FnMut(IdentifierKind, Fingerprint, Option<i64>),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, fingerprint, expires_at, imported_at FROM identifiers")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let code: u8 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            let kind = IdentifierKind::from_code(code).ok_or(StoreError::Corrupt)?;
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| StoreError::Corrupt)?;
            let expiry = self.expiry(row.get(2)?, row.get(3)?);
            visit(kind, Fingerprint::from_bytes(bytes), expiry);
        }
        Ok(())
    }

    /// A record's expiry in UTC seconds: the earlier of its own and the end of
    /// its retention period.
    fn expiry(&self, expires_at: Option<i64>, imported_at: Option<i64>) -> Option<i64> {
        let retained_until = self
            .retention_seconds()
            .map(|secs| imported_at.unwrap_or(i64::MIN).saturating_add(secs));
        match (expires_at, retained_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn retention_seconds(&self) -> Option<i64> {
        self.retention
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }

    /// Whether an unexpired record holds this fingerprint now: the node's own
    /// view, used by tests to check answers per node and by operators.
    pub fn contains(
        &self,
        kind: IdentifierKind,
        fingerprint: &Fingerprint,
    ) -> Result<bool, StoreError> {
        self.contains_at(kind, fingerprint, Utc::now())
    }

    /// Whether a record unexpired at `now` holds this fingerprint.
    pub fn contains_at(
        &self,
        kind: IdentifierKind,
        fingerprint: &Fingerprint,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT expires_at, imported_at FROM identifiers WHERE kind = ?1 AND fingerprint = ?2",
        )?;
        let mut rows = stmt.query(params![kind.code(), &fingerprint.as_bytes()[..]])?;
        while let Some(row) = rows.next()? {
            if !is_expired(self.expiry(row.get(0)?, row.get(1)?), now.timestamp()) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Deletes (or with `dry_run` only counts) the records expired at `now`,
    /// by either rule, in one transaction. Bumps the generation when it
    /// deleted any, so serving nodes reload; a second run finds none.
    pub fn purge_expired(
        &mut self,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<PurgeReport, StoreError> {
        // Mirrors `is_expired(self.expiry(..))`: expired from the expiry second on.
        const EXPIRED: &str = "(expires_at IS NOT NULL AND expires_at <= ?1)
             OR (?2 IS NOT NULL AND (imported_at IS NULL OR imported_at <= ?2))";
        let now = now.timestamp();
        let cutoff = self
            .retention_seconds()
            .map(|secs| now.saturating_sub(secs));
        let tx = self.conn.transaction()?;
        let mut report = PurgeReport {
            dry_run,
            per_kind: BTreeMap::new(),
        };
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT kind, COUNT(*) FROM identifiers WHERE {EXPIRED} GROUP BY kind"
            ))?;
            let mut rows = stmt.query(params![now, cutoff])?;
            while let Some(row) = rows.next()? {
                let kind = IdentifierKind::from_code(row.get(0)?).ok_or(StoreError::Corrupt)?;
                let n: i64 = row.get(1)?;
                report.per_kind.insert(kind, n as u64);
            }
        }
        if !dry_run && report.total() > 0 {
            tx.execute(
                &format!("DELETE FROM identifiers WHERE {EXPIRED}"),
                params![now, cutoff],
            )?;
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
                [],
            )?;
        }
        tx.commit()?;
        Ok(report)
    }
}

/// Whether a record with this expiry (UTC seconds) is expired at `now`.
pub fn is_expired(expiry: Option<i64>, now: i64) -> bool {
    expiry.is_some_and(|at| at <= now)
}
