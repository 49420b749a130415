//! The node's transactional store: an SQLite file (the embedded default).
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

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fedq_crypto::oprf::NodeOprfKey;
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm};
use rusqlite::{params, Connection, OptionalExtension};

use crate::config::{NodeConfig, StoreLocation};

/// Schema version of the store; bump with a migration.
/// 2: `expires_at` and `imported_at` columns.
/// 3: per-node OPRF fingerprints in two key slots, normal forms, OPRF keys.
const SCHEMA_VERSION: i64 = 3;

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

/// One of the two OPRF key slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Slot `a` (column `fp_a`).
    A,
    /// Slot `b` (column `fp_b`).
    B,
}

impl Slot {
    fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    fn parse(name: &str) -> Result<Self, StoreError> {
        match name {
            "a" => Ok(Slot::A),
            "b" => Ok(Slot::B),
            _ => Err(StoreError::Corrupt),
        }
    }

    /// The fingerprint column of this slot (a fixed name, safe to splice into SQL).
    fn column(self) -> &'static str {
        match self {
            Slot::A => "fp_a",
            Slot::B => "fp_b",
        }
    }

    /// The other slot.
    pub fn other(self) -> Self {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// The node's OPRF keys as of one read: the active key and, during a
/// rotation, the pending one.
#[derive(Debug)]
pub struct OprfKeys {
    /// Slot of the active key.
    pub active_slot: Slot,
    /// The key lookups and OPRF evaluations use.
    pub active: NodeOprfKey,
    /// The key a running rotation is moving to.
    pub pending: Option<NodeOprfKey>,
    /// Bumped by every change of the key set.
    pub epoch: i64,
}

impl OprfKeys {
    /// Per item, in order, its fingerprint under the active key and, during
    /// a rotation, under the pending one.
    pub fn fingerprints(
        &self,
        items: &[(IdentifierKind, &NormalForm)],
    ) -> Vec<(Fingerprint, Option<Fingerprint>)> {
        let active = fedq_crypto::oprf::node_fingerprints(&self.active, items);
        let mut pending = self
            .pending
            .as_ref()
            .map(|key| fedq_crypto::oprf::node_fingerprints(key, items).into_iter());
        active
            .into_iter()
            .map(|fp| (fp, pending.as_mut().and_then(Iterator::next)))
            .collect()
    }
}

/// One identifier as stored: kind, normal form, local record id, expiry, and
/// its fingerprints under the node's current keys.
#[derive(Debug, Clone)]
pub struct IdentifierRow {
    /// Identifier kind.
    pub kind: IdentifierKind,
    /// Normal form.
    pub normal: NormalForm,
    /// The node's own record id.
    pub record_id: String,
    /// When the record stops matching (`None`: only the retention period applies).
    pub expires_at: Option<DateTime<Utc>>,
    /// OPRF output under the active key.
    pub fingerprint: Fingerprint,
    /// OPRF output under the pending key, during a rotation.
    pub pending_fingerprint: Option<Fingerprint>,
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
        create_private(path)?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Deleted and overwritten cells (old fingerprints after a rotation,
        // purged records) are zeroed rather than left in free pages.
        conn.pragma_update(None, "secure_delete", "ON")?;
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
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        let version: Option<i64> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match version {
            Some(v) if v > SCHEMA_VERSION => return Err(StoreError::NewerSchema(v)),
            Some(v) if v < 3 => {
                // Versions 1 and 2 stored HMAC fingerprints under the
                // federation key and no normal forms: nothing to carry over.
                let rows: i64 =
                    tx.query_row("SELECT COUNT(*) FROM identifiers", [], |r| r.get(0))?;
                if rows > 0 {
                    return Err(StoreError::FederationKeyStore(rows));
                }
                tx.execute_batch("DROP TABLE identifiers;")?;
            }
            _ => {}
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS identifiers (
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
             );
             INSERT OR IGNORE INTO meta (key, value) VALUES ('generation', 0), ('key_epoch', 0);",
        )?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![SCHEMA_VERSION],
        )?;
        let keys: i64 = tx.query_row("SELECT COUNT(*) FROM oprf_keys", [], |r| r.get(0))?;
        if keys == 0 {
            insert_key(&tx, Slot::A, &NodeOprfKey::generate(), "active")?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The node's OPRF keys, read in one statement.
    pub fn oprf_keys(&self) -> Result<OprfKeys, StoreError> {
        read_keys(&self.conn)
    }

    /// Stores rows in one transaction, as imported at `now`. A row already
    /// stored is not duplicated: its import time and fingerprints are
    /// refreshed and, with [`ExpiryUpdate::Replace`], its expiry replaced.
    /// `keys_epoch` is the [`OprfKeys::epoch`] the fingerprints were computed
    /// under; if the keys changed since, nothing is written and
    /// [`StoreError::KeysChanged`] is returned. Bumps the generation when
    /// anything was written, so a serving node reloads.
    pub fn upsert_identifiers(
        &mut self,
        rows: &[IdentifierRow],
        keys_epoch: i64,
        expiry: ExpiryUpdate,
        now: DateTime<Utc>,
    ) -> Result<UpsertCounts, StoreError> {
        let now = now.timestamp();
        // IMMEDIATE: the epoch check and the writes see the same key set.
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.epoch != keys_epoch {
            return Err(StoreError::KeysChanged);
        }
        let (active, pending) = (keys.active_slot.column(), keys.active_slot.other().column());
        let mut counts = UpsertCounts::default();
        {
            let mut find = tx.prepare_cached(
                "SELECT expires_at FROM identifiers WHERE kind = ?1 AND value = ?2 AND record_id = ?3",
            )?;
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO identifiers (kind, value, record_id, expires_at, imported_at, {active}, {pending})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?;
            let mut update = tx.prepare_cached(&format!(
                "UPDATE identifiers SET expires_at = ?4, imported_at = ?5, {active} = ?6, {pending} = ?7
                 WHERE kind = ?1 AND value = ?2 AND record_id = ?3"
            ))?;
            for row in rows {
                let key = (row.kind.code(), row.normal.as_str(), &row.record_id);
                let given = row.expires_at.map(|t| t.timestamp());
                let fps = (
                    &row.fingerprint.as_bytes()[..],
                    row.pending_fingerprint
                        .as_ref()
                        .map(|fp| &fp.as_bytes()[..]),
                );
                if keys.pending.is_some() != fps.1.is_some() {
                    return Err(StoreError::KeysChanged);
                }
                let stored: Option<Option<i64>> = find
                    .query_row(params![key.0, key.1, key.2], |r| r.get(0))
                    .optional()?;
                match stored {
                    None => {
                        insert.execute(params![key.0, key.1, key.2, given, now, fps.0, fps.1])?;
                        counts.inserted += 1;
                    }
                    Some(old) => {
                        let new = match expiry {
                            ExpiryUpdate::Replace => given,
                            ExpiryUpdate::Keep => old,
                        };
                        update.execute(params![key.0, key.1, key.2, new, now, fps.0, fps.1])?;
                        counts.existing += 1;
                        counts.expiry_changed += usize::from(new != old);
                    }
                }
            }
        }
        if !rows.is_empty() {
            bump(&tx, "generation")?;
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

    /// Reads the active OPRF key and visits every stored (kind, fingerprint
    /// under that key) with its expiry under this store's retention period
    /// (`None`: never), in one read transaction: the index and the key it is
    /// built for always match. Returns the key.
    pub fn load_active(
        &self,
        mut visit: impl FnMut(IdentifierKind, Fingerprint, Option<i64>),
    ) -> Result<NodeOprfKey, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let keys = read_keys(&tx)?;
        {
            let mut stmt = tx.prepare(&format!(
                "SELECT kind, {}, expires_at, imported_at FROM identifiers",
                keys.active_slot.column()
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let code: u8 = row.get(0)?;
                let bytes: Option<Vec<u8>> = row.get(1)?;
                let kind = IdentifierKind::from_code(code).ok_or(StoreError::Corrupt)?;
                let bytes: [u8; 32] = bytes
                    .ok_or(StoreError::Corrupt)?
                    .try_into()
                    .map_err(|_| StoreError::Corrupt)?;
                let expiry = self.expiry(row.get(2)?, row.get(3)?);
                visit(kind, Fingerprint::from_bytes(bytes), expiry);
            }
        }
        tx.commit()?;
        Ok(keys.active)
    }

    /// Up to `limit` distinct (kind, normal form) pairs after `after`, in key
    /// order: the rotation's cursor.
    pub fn values_after(
        &self,
        after: Option<&(IdentifierKind, NormalForm)>,
        limit: usize,
    ) -> Result<Vec<(IdentifierKind, NormalForm)>, StoreError> {
        let (kind, value) = after.map_or((-1, ""), |(k, v)| (i64::from(k.code()), v.as_str()));
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT kind, value FROM identifiers
             WHERE kind > ?1 OR (kind = ?1 AND value > ?2)
             ORDER BY kind, value LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![kind, value, limit as i64], |r| {
            Ok((r.get::<_, u8>(0)?, r.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (code, value) = row?;
            let kind = IdentifierKind::from_code(code).ok_or(StoreError::Corrupt)?;
            Ok((kind, NormalForm::from_stored(value)))
        })
        .collect()
    }

    /// Number of distinct (kind, normal form) pairs: the rotation's total.
    pub fn value_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM (SELECT DISTINCT kind, value FROM identifiers)",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Starts a key rotation: draws a pending key into the free slot, or
    /// returns the keys unchanged when a rotation is already under way (it
    /// resumes with the same pending key).
    pub fn begin_rotation(&mut self) -> Result<OprfKeys, StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.pending.is_some() {
            return Ok(keys);
        }
        insert_key(
            &tx,
            keys.active_slot.other(),
            &NodeOprfKey::generate(),
            "pending",
        )?;
        bump(&tx, "key_epoch")?;
        let keys = read_keys(&tx)?;
        tx.commit()?;
        Ok(keys)
    }

    /// Writes pending-key fingerprints of (kind, normal form) pairs, for every
    /// record id holding them, in one transaction; refused with
    /// [`StoreError::KeysChanged`] if the key set is no longer `keys_epoch`.
    pub fn write_pending(
        &mut self,
        keys_epoch: i64,
        rows: &[(IdentifierKind, &NormalForm, Fingerprint)],
    ) -> Result<(), StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.epoch != keys_epoch || keys.pending.is_none() {
            return Err(StoreError::KeysChanged);
        }
        {
            let mut update = tx.prepare_cached(&format!(
                "UPDATE identifiers SET {} = ?3 WHERE kind = ?1 AND value = ?2",
                keys.active_slot.other().column()
            ))?;
            for (kind, normal, fp) in rows {
                update.execute(params![kind.code(), normal.as_str(), &fp.as_bytes()[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends a rotation: the pending key becomes the active one and the old key
    /// is deleted, in one transaction that also bumps the generation (serving
    /// nodes reload key and index together). Returns the slot whose column
    /// still holds the old fingerprints, for [`Store::clear_slot`]. Refused if
    /// a record still lacks its pending fingerprint.
    pub fn finish_rotation(&mut self, keys_epoch: i64) -> Result<Slot, StoreError> {
        let tx =
            rusqlite::Transaction::new(&mut self.conn, rusqlite::TransactionBehavior::Immediate)?;
        let keys = read_keys(&tx)?;
        if keys.epoch != keys_epoch || keys.pending.is_none() {
            return Err(StoreError::KeysChanged);
        }
        let (old, new) = (keys.active_slot, keys.active_slot.other());
        let missing: i64 = tx.query_row(
            &format!(
                "SELECT COUNT(*) FROM identifiers WHERE {} IS NULL",
                new.column()
            ),
            [],
            |r| r.get(0),
        )?;
        if missing > 0 {
            return Err(StoreError::RotationIncomplete(missing));
        }
        tx.execute("DELETE FROM oprf_keys WHERE slot = ?1", params![old.name()])?;
        tx.execute(
            "UPDATE oprf_keys SET state = 'active' WHERE slot = ?1",
            params![new.name()],
        )?;
        bump(&tx, "key_epoch")?;
        bump(&tx, "generation")?;
        tx.commit()?;
        Ok(old)
    }

    /// Clears the fingerprints of a slot that holds no key (after a rotation),
    /// in batches of short transactions, then checkpoints the write-ahead log
    /// so that the old values leave it too. Returns how many rows it cleared.
    pub fn clear_slot(&mut self, slot: Slot) -> Result<u64, StoreError> {
        let column = slot.column();
        let mut cleared = 0;
        loop {
            let tx = rusqlite::Transaction::new(
                &mut self.conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let in_use: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM oprf_keys WHERE slot = ?1)",
                params![slot.name()],
                |r| r.get(0),
            )?;
            if in_use {
                return Err(StoreError::KeysChanged);
            }
            let n = tx.execute(
                &format!(
                    "UPDATE identifiers SET {column} = NULL WHERE (kind, value, record_id) IN
                     (SELECT kind, value, record_id FROM identifiers WHERE {column} IS NOT NULL LIMIT 20000)"
                ),
                [],
            )?;
            tx.commit()?;
            cleared += n as u64;
            if n == 0 {
                break;
            }
        }
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(cleared)
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

    /// Whether an unexpired record holds this identifier now: the node's own
    /// view, used by tests to check answers per node and by operators.
    pub fn contains(&self, kind: IdentifierKind, normal: &NormalForm) -> Result<bool, StoreError> {
        self.contains_at(kind, normal, Utc::now())
    }

    /// Whether a record unexpired at `now` holds this identifier.
    pub fn contains_at(
        &self,
        kind: IdentifierKind,
        normal: &NormalForm,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT expires_at, imported_at FROM identifiers WHERE kind = ?1 AND value = ?2",
        )?;
        let mut rows = stmt.query(params![kind.code(), normal.as_str()])?;
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
            bump(&tx, "generation")?;
        }
        tx.commit()?;
        Ok(report)
    }
}

/// Whether a record with this expiry (UTC seconds) is expired at `now`.
pub fn is_expired(expiry: Option<i64>, now: i64) -> bool {
    expiry.is_some_and(|at| at <= now)
}

fn bump(conn: &Connection, counter: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = ?1",
        params![counter],
    )?;
    Ok(())
}

fn insert_key(
    conn: &Connection,
    slot: Slot,
    key: &NodeOprfKey,
    state: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO oprf_keys (slot, secret, state, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            slot.name(),
            key.to_text().as_str(),
            state,
            Utc::now().timestamp()
        ],
    )?;
    Ok(())
}

fn read_keys(conn: &Connection) -> Result<OprfKeys, StoreError> {
    let epoch: i64 = conn.query_row("SELECT value FROM meta WHERE key = 'key_epoch'", [], |r| {
        r.get(0)
    })?;
    let mut stmt = conn.prepare_cached("SELECT slot, secret, state FROM oprf_keys")?;
    let mut rows = stmt.query([])?;
    let (mut active, mut pending) = (None, None);
    while let Some(row) = rows.next()? {
        let slot = Slot::parse(&row.get::<_, String>(0)?)?;
        let secret = zeroize::Zeroizing::new(row.get::<_, String>(1)?);
        let key = NodeOprfKey::from_text(&secret).map_err(|_| StoreError::Corrupt)?;
        match row.get::<_, String>(2)?.as_str() {
            "active" => active = Some((slot, key)),
            "pending" => pending = Some(key),
            _ => return Err(StoreError::Corrupt),
        }
    }
    let (active_slot, active) = active.ok_or(StoreError::Corrupt)?;
    Ok(OprfKeys {
        active_slot,
        active,
        pending,
        epoch,
    })
}

/// Creates the store file with mode 0600 if it does not exist yet (SQLite
/// gives its `-wal` and `-shm` files the same mode).
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // The audit log or ledger may have created the file first: tighten
            // it (best effort, e.g. a file owned by another user stays as is).
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
