//! Identifier rows: import (upsert), the active fingerprints for the index,
//! expiry and purging.

use std::fmt;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fedq_crypto::oprf::NodeOprfKey;
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm};
use fedq_db::{Backend, Exec, Row, Value};

use super::keys::read_keys;
use super::{bump, Store, StoreError};

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

impl Store {
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
        // One writer: the epoch check and the writes see the same key set.
        self.db.write(|tx| {
            let keys = read_keys(tx)?;
            if keys.epoch != keys_epoch {
                return Err(StoreError::KeysChanged);
            }
            let (active, pending) = (keys.active_slot.column(), keys.active_slot.other().column());
            if rows
                .iter()
                .any(|row| keys.pending.is_some() != row.pending_fingerprint.is_some())
            {
                return Err(StoreError::KeysChanged);
            }
            if tx.backend() == Backend::Postgres {
                return upsert_by_copy(tx, rows, (active, pending), expiry, now);
            }
            let mut counts = UpsertCounts::default();
            let find =
                "SELECT expires_at FROM identifiers WHERE kind = ?1 AND value = ?2 AND record_id = ?3";
            let insert = format!(
                "INSERT INTO identifiers (kind, value, record_id, expires_at, imported_at, {active}, {pending})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            );
            let update = format!(
                "UPDATE identifiers SET expires_at = ?4, imported_at = ?5, {active} = ?6, {pending} = ?7
                 WHERE kind = ?1 AND value = ?2 AND record_id = ?3"
            );
            for row in rows {
                let key = (row.kind.code(), row.normal.as_str(), &row.record_id);
                let given = row.expires_at.map(|t| t.timestamp());
                let fps = (
                    &row.fingerprint.as_bytes()[..],
                    row.pending_fingerprint
                        .as_ref()
                        .map(|fp| &fp.as_bytes()[..]),
                );
                let stored: Option<Option<i64>> =
                    tx.query_opt(find, &[&key.0, &key.1, key.2], |r| r.get(0))?;
                match stored {
                    None => {
                        tx.execute(&insert, &[&key.0, &key.1, key.2, &given, &now, &fps.0, &fps.1])?;
                        counts.inserted += 1;
                    }
                    Some(old) => {
                        let new = match expiry {
                            ExpiryUpdate::Replace => given,
                            ExpiryUpdate::Keep => old,
                        };
                        tx.execute(&update, &[&key.0, &key.1, key.2, &new, &now, &fps.0, &fps.1])?;
                        counts.existing += 1;
                        counts.expiry_changed += usize::from(new != old);
                    }
                }
            }
            if !rows.is_empty() {
                bump(tx, "generation")?;
            }
            Ok(counts)
        })
    }

    /// Reads the active OPRF key and visits every stored (kind, fingerprint
    /// under that key) with its expiry under this store's retention period
    /// (`None`: never), in one read transaction: the index and the key it is
    /// built for always match. Returns the key.
    pub fn load_active(
        &self,
        mut visit: impl FnMut(IdentifierKind, Fingerprint, Option<i64>),
    ) -> Result<NodeOprfKey, StoreError> {
        self.db.snapshot(|tx| {
            let keys = read_keys(tx)?;
            let sql = format!(
                "SELECT kind, {}, expires_at, imported_at FROM identifiers",
                keys.active_slot.column()
            );
            // A corrupt row stops the walk; it travels out beside the
            // store's own errors.
            let mut corrupt = false;
            tx.each(&sql, &[], &mut |row| {
                let bytes: Option<Vec<u8>> = row.get(1)?;
                let fingerprint =
                    kind_of(row).zip(bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()));
                match fingerprint {
                    Some((kind, bytes)) if !corrupt => {
                        let expiry = self.expiry(row.get(2)?, row.get(3)?);
                        visit(kind, Fingerprint::from_bytes(bytes), expiry);
                    }
                    _ => corrupt = true,
                }
                Ok(())
            })?;
            if corrupt {
                return Err(StoreError::Corrupt);
            }
            Ok(keys.active)
        })
    }

    /// Up to `limit` distinct (kind, normal form) pairs after `after`, in key
    /// order: the rotation's cursor.
    pub fn values_after(
        &self,
        after: Option<&(IdentifierKind, NormalForm)>,
        limit: usize,
    ) -> Result<Vec<(IdentifierKind, NormalForm)>, StoreError> {
        let (kind, value) = after.map_or((-1, ""), |(k, v)| (i64::from(k.code()), v.as_str()));
        let rows = self.db.run(|exec| {
            exec.query_all(
                // Text compares by bytes on both engines (the column's
                // collation on PostgreSQL is set to C), so the cursor walks
                // the same order everywhere.
                "SELECT DISTINCT kind, value FROM identifiers
                 WHERE kind > ?1 OR (kind = ?1 AND value > ?2)
                 ORDER BY kind, value LIMIT ?3",
                &[&kind, &value, &(limit as i64)],
                |r| Ok((kind_of(r), r.get::<String>(1)?)),
            )
        })?;
        rows.into_iter()
            .map(|(kind, value)| {
                Ok((
                    kind.ok_or(StoreError::Corrupt)?,
                    NormalForm::from_stored(value),
                ))
            })
            .collect()
    }

    /// Number of distinct (kind, normal form) pairs: the rotation's total.
    pub fn value_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.db.run(|exec| {
            exec.query_one(
                "SELECT COUNT(*) FROM (SELECT DISTINCT kind, value FROM identifiers) AS pairs",
                &[],
                |r| r.get(0),
            )
        })?;
        Ok(n as u64)
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
        let expiries = self.db.run(|exec| {
            exec.query_all(
                "SELECT expires_at, imported_at FROM identifiers WHERE kind = ?1 AND value = ?2",
                &[&kind.code(), &normal.as_str()],
                |row| Ok(self.expiry(row.get(0)?, row.get(1)?)),
            )
        })?;
        Ok(expiries
            .into_iter()
            .any(|expiry| !is_expired(expiry, now.timestamp())))
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
        // CAST: PostgreSQL must know the parameter's type where it is only
        // tested for NULL.
        const EXPIRED: &str = "(expires_at IS NOT NULL AND expires_at <= ?1)
             OR (CAST(?2 AS BIGINT) IS NOT NULL AND (imported_at IS NULL OR imported_at <= ?2))";
        let now = now.timestamp();
        let cutoff = self
            .retention_seconds()
            .map(|secs| now.saturating_sub(secs));
        self.db.write(|tx| {
            let mut report = PurgeReport {
                dry_run,
                per_kind: BTreeMap::new(),
            };
            let counts = tx.query_all(
                &format!("SELECT kind, COUNT(*) FROM identifiers WHERE {EXPIRED} GROUP BY kind"),
                &[&now, &cutoff],
                |row| Ok((kind_of(row), row.get::<i64>(1)?)),
            )?;
            for (kind, n) in counts {
                report
                    .per_kind
                    .insert(kind.ok_or(StoreError::Corrupt)?, n as u64);
            }
            if !dry_run && report.total() > 0 {
                tx.execute(
                    &format!("DELETE FROM identifiers WHERE {EXPIRED}"),
                    &[&now, &cutoff],
                )?;
                bump(tx, "generation")?;
            }
            Ok(report)
        })
    }
}

/// [`Store::upsert_identifiers`] on PostgreSQL: the chunk goes in with one
/// binary `COPY` into a session table, then one `INSERT ... ON CONFLICT`
/// moves it (a round trip per chunk, not two per row). Counts are those of
/// the row-by-row path, but for a key given twice in one chunk: its last
/// row wins, and an expiry change between its two rows is not counted.
fn upsert_by_copy(
    tx: &mut dyn Exec,
    rows: &[IdentifierRow],
    (active, pending): (&str, &str),
    expiry: ExpiryUpdate,
    now: i64,
) -> Result<UpsertCounts, StoreError> {
    tx.batch(
        "CREATE TEMP TABLE IF NOT EXISTS incoming (
             ord BIGINT NOT NULL,
             kind BIGINT NOT NULL,
             value TEXT COLLATE \"C\" NOT NULL,
             record_id TEXT NOT NULL,
             expires_at BIGINT,
             fp_active BYTEA NOT NULL,
             fp_pending BYTEA
         ) ON COMMIT DELETE ROWS",
    )?;
    tx.copy_in(
        "incoming",
        &[
            "ord",
            "kind",
            "value",
            "record_id",
            "expires_at",
            "fp_active",
            "fp_pending",
        ],
        &mut rows.iter().enumerate().map(|(ord, row)| {
            vec![
                Value::Int(ord as i64),
                Value::Int(i64::from(row.kind.code())),
                Value::Text(row.normal.as_str()),
                Value::Text(&row.record_id),
                row.expires_at
                    .map_or(Value::Null, |t| Value::Int(t.timestamp())),
                Value::Blob(row.fingerprint.as_bytes()),
                row.pending_fingerprint
                    .as_ref()
                    .map_or(Value::Null, |fp| Value::Blob(fp.as_bytes())),
            ]
        }),
    )?;
    const LAST: &str = "SELECT DISTINCT ON (kind, value, record_id) * FROM incoming
                        ORDER BY kind, value, record_id, ord DESC";
    let (new, changed): (i64, i64) = tx.query_one(
        &format!(
            "SELECT COUNT(*) FILTER (WHERE t.record_id IS NULL),
                    COUNT(*) FILTER (WHERE t.record_id IS NOT NULL
                                     AND t.expires_at IS DISTINCT FROM last.expires_at)
             FROM ({LAST}) AS last
             LEFT JOIN identifiers AS t
               ON t.kind = last.kind AND t.value = last.value AND t.record_id = last.record_id"
        ),
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let keep_or_replace = match expiry {
        ExpiryUpdate::Replace => "excluded.expires_at",
        ExpiryUpdate::Keep => "identifiers.expires_at",
    };
    tx.execute(
        &format!(
            "INSERT INTO identifiers (kind, value, record_id, expires_at, imported_at, {active}, {pending})
             SELECT kind, value, record_id, expires_at, CAST(?1 AS BIGINT), fp_active, fp_pending
             FROM ({LAST}) AS last
             ON CONFLICT (kind, value, record_id) DO UPDATE SET
                 expires_at = {keep_or_replace}, imported_at = excluded.imported_at,
                 {active} = excluded.{active}, {pending} = excluded.{pending}"
        ),
        &[&now],
    )?;
    if !rows.is_empty() {
        bump(tx, "generation")?;
    }
    let inserted = new as usize;
    Ok(UpsertCounts {
        inserted,
        existing: rows.len() - inserted,
        expiry_changed: match expiry {
            ExpiryUpdate::Replace => changed as usize,
            ExpiryUpdate::Keep => 0,
        },
    })
}

/// The identifier kind in a row's first column, if it is one.
fn kind_of(row: &Row<'_>) -> Option<IdentifierKind> {
    let code = row.get::<i64>(0).ok()?;
    IdentifierKind::from_code(u8::try_from(code).ok()?)
}

/// Whether a record with this expiry (UTC seconds) is expired at `now`.
pub fn is_expired(expiry: Option<i64>, now: i64) -> bool {
    expiry.is_some_and(|at| at <= now)
}
