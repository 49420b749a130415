//! The tamper-evident audit log of a node or the coordinator: every admitted
//! and refused query.
//!
//! Entries are appended to the `audit_log` table of the node's SQLite file,
//! each hash-chained to the previous one (`record.rs` gives the encoding) and
//! signed with the node's Ed25519 audit key in the transaction that appends
//! it (`signature.rs`). The head (seq, hash) is signed into a checkpoint file
//! kept outside the database (`checkpoint.rs`). [`AuditLog::verify`] then
//! detects an edited, deleted, inserted or reordered entry (its hash or link
//! breaks, or seqs stop being contiguous), a truncated tail (shorter than, or
//! different from, the checkpoint), a forged checkpoint and a forged entry
//! after it (unsigned), and names the first bad entry. Checked against the
//! key `federation.toml` pins ([`AuditLog::verify_pinned`]), a log signed
//! with any other key fails; checked against the checkpoints the coordinator
//! witnessed (`witness.rs`), a log rolled back or rewritten by its own
//! operator fails too.
//!
//! Appends serialise on a mutex and on SQLite's write lock (`BEGIN
//! IMMEDIATE`); `seq` is the primary key, so the chain cannot fork even
//! across processes. Tracing never logs a record's contents beyond its action
//! and decision: the audit log is not tracing.
//!
//! Files: `record.rs` (entries and their hash), `sql.rs` (the table),
//! `signature.rs` (each entry's signature), `checkpoint.rs` (the key and the
//! signed head), `verify.rs` (the chain walk), `witness.rs` (countersigned
//! checkpoints), `cli.rs` and `witness_cli.rs` (the commands), `error.rs`,
//! `tests.rs`.

mod checkpoint;
pub mod cli;
mod error;
mod record;
mod signature;
mod sql;
mod verify;
pub mod witness;
mod witness_cli;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use fedq_crypto::audit_key::AuditPublicKey;
use fedq_db::{Db, DbError, Exec, Location};

use self::checkpoint::{AuditKey, Checkpoint};
pub use self::error::AuditError;
pub use self::record::{AuditEntry, AuditRecord, Decision, GENESIS_HASH};
pub use self::verify::VerifyReport;
use self::witness::{SignedHead, WitnessCheck, WitnessedCheckpoint};

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
    db: Db,
    /// Shared with the process's signer registry (`signature.rs`), so that
    /// appends in another connection's transaction sign with it.
    key: Arc<AuditKey>,
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
    /// [`Self::open_at`] on an SQLite file.
    pub fn open(db: &Path, checkpoint: &Path, key: &Path) -> Result<Self, AuditError> {
        Self::open_at(&Location::Sqlite(db.to_owned()), checkpoint, key)
    }

    /// Opens (creating tables if needed) the log in the party's store;
    /// loads or creates (0600) the Ed25519 audit key. A log written before
    /// entries were signed gains the `signature` column and, if its chain
    /// extends what it last signed, a checkpoint covering every old entry.
    pub fn open_at(store: &Location, checkpoint: &Path, key: &Path) -> Result<Self, AuditError> {
        let db = Db::open_with_schema(store, &sql::SCHEMA)?;
        let migrated = db.write(sql::migrate)?;
        let key = Arc::new(AuditKey::load_or_create(key)?);
        signature::register(store, &key)?;
        let log = Self {
            db,
            key,
            checkpoint_path: checkpoint.to_owned(),
            checkpoint_lock: Mutex::new(()),
        };
        // A new log is anchored at once (the genesis head), so that a
        // checkpoint missing later is evidence, not a fresh start.
        let empty = log.db.run(sql::head)?.is_none();
        if empty && !log.checkpoint_path.exists() {
            log.checkpoint()?;
        }
        if migrated {
            // The old entries after the last checkpoint (a crash window) are
            // unsigned; covered now, they never need to be.
            match log.sign_head(None) {
                Err(AuditError::Diverged(why)) => {
                    tracing::warn!(%why, "audit log not re-signed after adding entry signatures");
                }
                other => other?,
            }
        }
        Ok(log)
    }

    /// Opens an existing log to check or export it, changing nothing: the
    /// store is opened read-only, no table is created, and a missing key is
    /// an error rather than a new key (which would verify nothing).
    pub fn open_read_only(db: &Path, checkpoint: &Path, key: &Path) -> Result<Self, AuditError> {
        Self::open_read_only_at(&Location::Sqlite(db.to_owned()), checkpoint, key)
    }

    /// [`Self::open_read_only`] on any store.
    pub fn open_read_only_at(
        store: &Location,
        checkpoint: &Path,
        key: &Path,
    ) -> Result<Self, AuditError> {
        Ok(Self {
            db: Db::open_read_only(store)?,
            key: Arc::new(AuditKey::load(key)?),
            checkpoint_path: checkpoint.to_owned(),
            checkpoint_lock: Mutex::new(()),
        })
    }

    /// Appends (signed) in its own IMMEDIATE transaction, commits durably,
    /// then re-signs the checkpoint. Returns the entry's seq. If the
    /// checkpoint cannot be written the entry stays committed (and the error
    /// is returned): its own signature vouches for it, and the next
    /// checkpoint covers it.
    pub fn append(&self, record: &AuditRecord) -> Result<u64, AuditError> {
        let seq = self
            .db
            .write(|tx| Self::append_signed(tx, record, &self.key))?;
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

    /// Appends inside a caller's write transaction on `store` (the privacy
    /// ledger charges a query and audits it atomically). The caller
    /// commits, then calls [`Self::checkpoint`]; a rollback leaves no entry.
    /// The entry is signed by the key of the log open on the same store in
    /// this process (an error if there is none): the signature commits with
    /// the entry, so no crash leaves an unsigned one.
    pub fn append_in(
        tx: &mut dyn Exec,
        store: &Location,
        record: &AuditRecord,
    ) -> Result<u64, AuditError> {
        let key = signature::signer_for(store)?;
        Self::append_signed(tx, record, &key)
    }

    fn append_signed(
        tx: &mut dyn Exec,
        record: &AuditRecord,
        key: &AuditKey,
    ) -> Result<u64, AuditError> {
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
                signature: Some(signature::sign(key, seq, &hash)),
                hash,
            },
        )?;
        tracing::debug!(seq, action = %record.action, decision = %record.decision, "audit entry appended");
        Ok(seq)
    }

    /// Signs the current head (seq, hash) into the checkpoint file (write
    /// temp + fsync + rename). An empty log signs (0, [`GENESIS_HASH`]).
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        self.sign_head(Some(&self.key.verifying_key()))
    }

    /// [`Self::checkpoint`], requiring every entry after the last signed
    /// head to be signed by `entry_key` (`None` only when a log written
    /// before entries were signed is migrated).
    fn sign_head(&self, entry_key: Option<&AuditPublicKey>) -> Result<(), AuditError> {
        let _order = self
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only a chain that extends what this node signed last is signed:
        // a rewrite made while the node was idle is not laundered by the
        // next request's checkpoint.
        let (seq, hash) = self.db.snapshot(|exec| {
            let signed = match checkpoint::read(
                &self.checkpoint_path,
                &self.key.verifying_key(),
                OWN_KEY,
            )? {
                Checkpoint::Signed { seq, hash, .. } => (seq, hash),
                Checkpoint::Missing if sql::head(exec)?.is_none() => (0, GENESIS_HASH.to_owned()),
                Checkpoint::Missing => {
                    return Err(AuditError::Diverged(
                        "the log has entries but its signed checkpoint is missing".to_owned(),
                    ))
                }
                Checkpoint::Invalid(why) => return Err(AuditError::Diverged(why)),
            };
            verify::extends(exec, (signed.0, &signed.1), entry_key)?.map_err(AuditError::Diverged)
        })?;
        checkpoint::write(&self.checkpoint_path, &self.key, seq, &hash)
    }

    /// Recomputes the whole chain and checks it against the signed
    /// checkpoint, and the signature of every entry after it, with this
    /// party's own key; the report names the first bad entry, if any.
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        self.verify_with(&self.key.verifying_key(), OWN_KEY)
    }

    /// [`Self::verify`] against `pinned`, the key `federation.toml` pins for
    /// this party, instead of the key file beside the log: a log (or
    /// checkpoint) signed with any other key fails.
    pub fn verify_pinned(&self, pinned: &AuditPublicKey) -> Result<VerifyReport, AuditError> {
        self.verify_with(pinned, "the audit key federation.toml pins")
    }

    fn verify_with(&self, key: &AuditPublicKey, whose: &str) -> Result<VerifyReport, AuditError> {
        let signed = checkpoint::read(&self.checkpoint_path, key, whose)?;
        let report = self
            .db
            .snapshot(|exec| verify::verify(exec, &signed, key, whose))?;
        match &report.first_bad {
            Some((seq, _)) => tracing::warn!(seq, "audit log verification failed"),
            None => tracing::debug!(entries = report.entries, "audit log verified"),
        }
        Ok(report)
    }

    /// The public half of this party's audit key.
    pub fn public_key(&self) -> AuditPublicKey {
        self.key.verifying_key()
    }

    /// The head as last signed into the checkpoint file (checked with this
    /// party's key): what the coordinator witnesses.
    pub fn signed_head(&self) -> Result<SignedHead, AuditError> {
        let key = self.key.verifying_key();
        match checkpoint::read(&self.checkpoint_path, &key, OWN_KEY)? {
            Checkpoint::Signed {
                seq,
                hash,
                signature,
            } => Ok(SignedHead {
                seq,
                hash,
                signature,
                public_key: key,
            }),
            Checkpoint::Missing => Err(AuditError::Diverged(
                "there is no signed checkpoint".to_owned(),
            )),
            Checkpoint::Invalid(why) => Err(AuditError::Diverged(why)),
        }
    }

    /// Countersigns node `node`'s signed `head` with this party's key (the
    /// coordinator witnessing a node), as witnessed at `at`.
    pub fn countersign(
        &self,
        node: &str,
        head: &SignedHead,
        at: DateTime<Utc>,
    ) -> WitnessedCheckpoint {
        WitnessedCheckpoint::countersign(&self.key, node, head, at)
    }

    /// Whether this log still holds what the coordinator witnessed: the
    /// same hash at the witnessed seq.
    pub fn check_witnessed(
        &self,
        witnessed: &WitnessedCheckpoint,
    ) -> Result<WitnessCheck, AuditError> {
        if witnessed.seq == 0 {
            return Ok(if witnessed.hash == GENESIS_HASH {
                WitnessCheck::Holds
            } else {
                WitnessCheck::Forked { witnessed: 0 }
            });
        }
        let (at, head) = self.db.snapshot(|exec| {
            Ok::<_, DbError>((sql::hash_at(exec, witnessed.seq)?, sql::head(exec)?))
        })?;
        Ok(match at {
            Some(hash) if hash == witnessed.hash => WitnessCheck::Holds,
            Some(_) => WitnessCheck::Forked {
                witnessed: witnessed.seq,
            },
            None => match head.map_or(0, |(seq, _)| seq) {
                head if head < witnessed.seq => WitnessCheck::RolledBack {
                    witnessed: witnessed.seq,
                    head,
                },
                // Gone from the middle of a longer log: another history.
                _ => WitnessCheck::Forked {
                    witnessed: witnessed.seq,
                },
            },
        })
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
        self.db.snapshot(|exec| {
            let sql = format!(
                "SELECT {} FROM audit_log WHERE time >= ?1 AND time < ?2 ORDER BY seq",
                sql::columns(exec)?
            );
            // The visitor's own errors stop the walk; they travel out
            // beside the store's, which the walk returns itself.
            let mut failed = None;
            exec.each(&sql, &[&time_bound(from), &time_bound(to)], &mut |row| {
                if failed.is_some() {
                    return Ok(());
                }
                let (seq, entry) = sql::read_row(row)?;
                let visited = entry
                    .map_err(|problem| AuditError::Malformed {
                        seq: seq.max(0) as u64,
                        problem,
                    })
                    .and_then(&mut f);
                if let Err(e) = visited {
                    failed = Some(e);
                }
                Ok(())
            })?;
            failed.map_or(Ok(()), Err)
        })
    }
}

/// How checks against the party's own key file name it.
const OWN_KEY: &str = "this party's audit key";

/// Stored times are fixed-width text for years 1970 to 9999, so they compare
/// as text; bounds outside that range become text below or above them all.
fn time_bound(time: DateTime<Utc>) -> String {
    match time.year() {
        ..=1969 => String::new(),
        10000.. => "~".to_owned(),
        _ => record::format_time(time),
    }
}
