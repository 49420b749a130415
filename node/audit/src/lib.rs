//! The tamper-evident audit log of a node or the coordinator: every admitted
//! and refused query.
//!
//! Entries are appended to the `audit_log` table of the node's SQLite file,
//! each hash-chained to the previous one (`record.rs` gives the encoding). The
//! head (seq, hash) is signed with the node's Ed25519 audit key into a
//! checkpoint file kept outside the database (`checkpoint.rs`). [`AuditLog::verify`]
//! then detects an edited, deleted, inserted or reordered entry (its hash or
//! link breaks, or seqs stop being contiguous), a truncated tail (shorter
//! than, or different from, the checkpoint) and a forged checkpoint, and
//! names the first bad entry.
//!
//! Appends serialise on a mutex and on SQLite's write lock (`BEGIN
//! IMMEDIATE`); `seq` is the primary key, so the chain cannot fork even
//! across processes. Tracing never logs a record's contents beyond its action
//! and decision: the audit log is not tracing.
//!
//! Files: `record.rs` (entries and their hash), `sql.rs` (the table),
//! `checkpoint.rs` (the key and the signed head), `verify.rs` (the chain
//! walk), `error.rs`, `tests.rs`.

mod checkpoint;
pub mod cli;
mod error;
mod record;
mod sql;
mod verify;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use self::checkpoint::{AuditKey, Checkpoint};
pub use self::error::AuditError;
pub use self::record::{AuditEntry, AuditRecord, Decision, GENESIS_HASH};
pub use self::verify::VerifyReport;

/// A request-supplied name (table, measure) as the audit detail may hold it:
/// short identifiers pass, anything else is replaced, so the log never holds
/// arbitrary request text.
pub fn request_name(name: &str) -> &str {
    let ok = name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
    if ok {
        name
    } else {
        "(invalid)"
    }
}

/// The audit log of one node.
pub struct AuditLog {
    conn: Mutex<Connection>,
    key: AuditKey,
    checkpoint_path: PathBuf,
    /// Orders checkpoint writes, so a later write never signs an older head.
    checkpoint_lock: Mutex<()>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("checkpoint", &self.checkpoint_path)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating tables if needed) the log in the node's SQLite file;
    /// loads or creates (0600) the Ed25519 checkpoint key.
    pub fn open(db: &Path, checkpoint: &Path, key: &Path) -> Result<Self, AuditError> {
        let conn = fedq_transport::sqlite::open_with_schema(db, sql::SCHEMA)?;
        let log = Self {
            conn: Mutex::new(conn),
            key: AuditKey::load_or_create(key)?,
            checkpoint_path: checkpoint.to_owned(),
            checkpoint_lock: Mutex::new(()),
        };
        // A new log is anchored at once (the genesis head), so that a
        // checkpoint missing later is evidence, not a fresh start.
        let empty = sql::head(&log.lock())?.is_none();
        if empty && !log.checkpoint_path.exists() {
            log.checkpoint()?;
        }
        Ok(log)
    }

    /// Opens an existing log to check or export it, changing nothing: the
    /// store is opened read-only, no table is created, and a missing key is
    /// an error rather than a new key (which would verify nothing).
    pub fn open_read_only(db: &Path, checkpoint: &Path, key: &Path) -> Result<Self, AuditError> {
        Ok(Self {
            conn: Mutex::new(fedq_transport::sqlite::open_read_only(db)?),
            key: AuditKey::load(key)?,
            checkpoint_path: checkpoint.to_owned(),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// Appends in its own IMMEDIATE transaction, commits durably, then
    /// re-signs the checkpoint. Returns the entry's seq. If signing fails the
    /// entry stays committed (and the error is returned): the next
    /// checkpoint covers it, and until then `verify` counts it as unsigned.
    pub fn append(&self, record: &AuditRecord) -> Result<u64, AuditError> {
        let seq = {
            let mut conn = self.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let seq = Self::append_in(&tx, record)?;
            tx.commit()?;
            seq
        };
        Self::counted(record, seq);
        self.checkpoint()?;
        Ok(seq)
    }

    /// Counts a committed entry in the process's metrics (requests by
    /// action and decision, refusals by reason, the chain's length); callers
    /// of [`AuditLog::append_in`] call it once their transaction committed.
    pub fn counted(record: &AuditRecord, seq: u64) {
        fedq_transport::metrics::audited(
            &record.action,
            record.decision == Decision::Admitted,
            &record.reason,
            seq,
        );
    }

    /// Appends inside a caller's transaction, which should be IMMEDIATE (the
    /// privacy ledger charges a query and audits it atomically). The caller
    /// commits, then calls [`Self::checkpoint`]; a rollback leaves no entry.
    pub fn append_in(tx: &Transaction<'_>, record: &AuditRecord) -> Result<u64, AuditError> {
        record::validate(record)?;
        let (seq, prev_hash) = sql::head(tx)?.map_or_else(
            || (1, GENESIS_HASH.to_owned()),
            |(seq, hash)| (seq + 1, hash),
        );
        let hash = AuditEntry::compute_hash(seq, &prev_hash, record);
        sql::insert(
            tx,
            &AuditEntry {
                seq,
                record: record.clone(),
                prev_hash,
                hash,
            },
        )?;
        tracing::debug!(seq, action = %record.action, decision = %record.decision, "audit entry appended");
        Ok(seq)
    }

    /// Signs the current head (seq, hash) into the checkpoint file (write
    /// temp + fsync + rename). An empty log signs (0, [`GENESIS_HASH`]).
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        let _order = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let conn = self.lock();
        // Only a chain that extends what this node signed last is signed:
        // a rewrite made while the node was idle is not laundered by the
        // next request's checkpoint.
        let signed = match checkpoint::read(&self.checkpoint_path, &self.key.verifying_key())? {
            Checkpoint::Signed { seq, hash } => (seq, hash),
            Checkpoint::Missing if sql::head(&conn)?.is_none() => (0, GENESIS_HASH.to_owned()),
            Checkpoint::Missing => {
                return Err(AuditError::Diverged(
                    "the log has entries but its signed checkpoint is missing".to_owned(),
                ))
            }
            Checkpoint::Invalid(why) => return Err(AuditError::Diverged(why)),
        };
        let (seq, hash) =
            verify::extends(&conn, (signed.0, &signed.1))?.map_err(AuditError::Diverged)?;
        drop(conn);
        checkpoint::write(&self.checkpoint_path, &self.key, seq, &hash)
    }

    /// Recomputes the whole chain and checks it against the signed
    /// checkpoint; the report names the first bad entry, if any.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let signed = checkpoint::read(&self.checkpoint_path, &self.key.verifying_key())?;
        let report = verify::verify(&self.lock(), &signed)?;
        match &report.first_bad {
            Some((seq, _)) => tracing::warn!(seq, "audit log verification failed"),
            None => tracing::debug!(entries = report.entries, "audit log verified"),
        }
        Ok(report)
    }

    /// Writes the entries of the UTC days `since..=until` to `out` as JSON
    /// lines (one [`AuditEntry`] per line, in seq order); returns how many.
    pub fn export(
        &self,
        since: NaiveDate,
        until: NaiveDate,
        out: &mut impl Write,
    ) -> Result<usize, AuditError> {
        if since > until {
            return Err(AuditError::InvalidRange);
        }
        let from = since.and_time(chrono::NaiveTime::MIN).and_utc();
        let to = until.succ_opt().map_or(DateTime::<Utc>::MAX_UTC, |d| {
            d.and_time(chrono::NaiveTime::MIN).and_utc()
        });
        let mut count = 0;
        self.for_each_between(from, to, |entry| {
            let mut line = serde_json::to_vec(&entry).expect("an audit entry serialises");
            line.push(b'\n');
            out.write_all(&line).map_err(AuditError::Write)?;
            count += 1;
            Ok(())
        })?;
        out.flush().map_err(AuditError::Write)?;
        Ok(count)
    }

    /// The entries timed in `[from, to)`, in seq order (for the transparency report).
    pub fn entries_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let mut entries = Vec::new();
        self.for_each_between(from, to, |entry| {
            entries.push(entry);
            Ok(())
        })?;
        Ok(entries)
    }

    fn for_each_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut f: impl FnMut(AuditEntry) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let conn = self.lock();
        let mut statement = conn.prepare(&format!(
            "SELECT {} FROM audit_log WHERE time >= ?1 AND time < ?2 ORDER BY seq",
            sql::COLUMNS
        ))?;
        let mut rows = statement.query(params![time_bound(from), time_bound(to)])?;
        while let Some(row) = rows.next()? {
            let (seq, entry) = sql::read_row(row)?;
            let entry = entry.map_err(|problem| AuditError::Malformed {
                seq: seq.max(0) as u64,
                problem,
            })?;
            f(entry)?;
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stored times are fixed-width text for years 1970 to 9999, so they compare
/// as text; bounds outside that range become text below or above them all.
fn time_bound(time: DateTime<Utc>) -> String {
    match time.year() {
        ..=1969 => String::new(),
        10000.. => "~".to_owned(),
        _ => record::format_time(time),
    }
}
