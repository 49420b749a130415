//! Walks the chain from seq 1, checks the signature of every entry after the
//! signed checkpoint, and compares the head with the checkpoint.

use fedq_crypto::audit_key::AuditPublicKey;
use fedq_db::{DbError, Exec};

use super::checkpoint::Checkpoint;
use super::record::{AuditEntry, GENESIS_HASH};
use super::{signature, sql, AuditError};

/// The outcome of [`super::AuditLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries stored.
    pub entries: u64,
    /// Seq of the last stored entry (0 for an empty log).
    pub head_seq: u64,
    /// Seq the signed checkpoint covers, if it is valid.
    pub checkpoint_seq: Option<u64>,
    /// The first bad entry (seq, what is wrong); `None` if the log verifies.
    pub first_bad: Option<(u64, String)>,
}

impl VerifyReport {
    /// Whether the log verifies.
    pub fn is_ok(&self) -> bool {
        self.first_bad.is_none()
    }

    /// Entries after the signed checkpoint: each carries its own valid
    /// signature (a log that verifies has no other kind), but the checkpoint
    /// was not yet rewritten to cover them (a crash between an append's
    /// commit and its checkpoint leaves one).
    pub fn unsigned_entries(&self) -> u64 {
        self.head_seq
            .saturating_sub(self.checkpoint_seq.unwrap_or(0))
    }
}

/// Whether an entry after the signed head at `signed_seq` lacks a valid
/// signature by `key`; what is wrong if so.
fn unsigned_after_head(
    entry: &AuditEntry,
    signed_seq: u64,
    key: &AuditPublicKey,
    whose: &str,
) -> Option<String> {
    let valid = entry
        .signature
        .as_deref()
        .is_some_and(|s| signature::is_valid(key, entry.seq, &entry.hash, s));
    let what = if entry.signature.is_some() {
        format!("its signature does not verify with {whose}")
    } else {
        "it has no signature".to_owned()
    };
    (!valid).then(|| {
        format!(
            "entry {} comes after the signed checkpoint (entry {signed_seq}) and {what}: \
             it was not appended by this party",
            entry.seq
        )
    })
}

/// Checks every stored entry, then the head against `checkpoint`; entries
/// after the checkpoint must each be signed by `key` (named `whose`).
///
/// `checkpoint` must be read before the rows: a concurrent append then only
/// adds entries after it, which verify by their own signatures.
pub(super) fn verify(
    exec: &mut dyn Exec,
    checkpoint: &Checkpoint,
    key: &AuditPublicKey,
    whose: &str,
) -> Result<VerifyReport, AuditError> {
    let signed_seq = match checkpoint {
        Checkpoint::Signed { seq, .. } => Some(*seq),
        _ => None,
    };
    let mut report = VerifyReport {
        entries: 0,
        head_seq: 0,
        checkpoint_seq: signed_seq,
        first_bad: None,
    };
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut hash_at_checkpoint = (signed_seq == Some(0)).then(|| GENESIS_HASH.to_owned());
    let sql = format!("SELECT {} FROM audit_log ORDER BY seq", sql::columns(exec)?);
    exec.each(&sql, &[], &mut |row| {
        let (seq, entry) = sql::read_row(row)?;
        report.entries += 1;
        report.head_seq = seq.max(0) as u64;
        if report.first_bad.is_some() {
            return Ok(());
        }
        let expected = report.entries;
        if seq < 1 {
            report.first_bad = Some((0, format!("an entry has seq {seq}; seqs start at 1")));
            return Ok(());
        }
        let seq = seq as u64;
        if seq != expected {
            report.first_bad = Some((
                expected,
                format!("entry {expected} is missing: the next stored entry is {seq}"),
            ));
            return Ok(());
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(problem) => {
                report.first_bad = Some((seq, problem));
                return Ok(());
            }
        };
        if entry.prev_hash != prev_hash {
            let link = if seq == 1 {
                "the genesis hash".to_owned()
            } else {
                format!("the hash of entry {}", seq - 1)
            };
            report.first_bad = Some((seq, format!("prev_hash does not match {link}")));
            return Ok(());
        }
        if !entry.hash_is_valid() {
            report.first_bad = Some((seq, "hash does not match the entry's contents".to_owned()));
            return Ok(());
        }
        // Without a valid checkpoint nothing is anchored, which the
        // comparison below reports; with one, what follows it must be signed.
        if let Some(problem) = signed_seq
            .filter(|signed| seq > *signed)
            .and_then(|signed| unsigned_after_head(&entry, signed, key, whose))
        {
            report.first_bad = Some((seq, problem));
            return Ok(());
        }
        if signed_seq == Some(seq) {
            hash_at_checkpoint = Some(entry.hash.clone());
        }
        prev_hash = entry.hash;
        Ok(())
    })?;
    if report.first_bad.is_none() {
        report.first_bad = compare_checkpoint(&report, checkpoint, hash_at_checkpoint);
    }
    Ok(report)
}

fn compare_checkpoint(
    report: &VerifyReport,
    checkpoint: &Checkpoint,
    hash_at_checkpoint: Option<String>,
) -> Option<(u64, String)> {
    match checkpoint {
        Checkpoint::Missing if report.entries == 0 => None,
        Checkpoint::Missing => Some((
            1,
            format!(
                "there is no signed checkpoint, yet the log has {} entries: none of them is anchored",
                report.entries
            ),
        )),
        Checkpoint::Invalid(problem) => Some((1, format!("{problem}: no entry is anchored"))),
        Checkpoint::Signed { seq, .. } if *seq > report.head_seq => Some((
            report.head_seq + 1,
            format!(
                "the log ends at entry {} but the signed checkpoint covers entry {seq}: \
                 entries were removed from the tail",
                report.head_seq
            ),
        )),
        Checkpoint::Signed { seq, hash, .. } if hash_at_checkpoint.as_ref() != Some(hash) => Some((
            *seq,
            format!(
                "entry {seq} differs from the signed checkpoint: \
                 the log was rewritten at or before it"
            ),
        )),
        Checkpoint::Signed { .. } => None,
    }
}

/// The head of the chain, if it extends the signed head `(seq, hash)`: the
/// entry at `seq` still has that hash, and every entry after it links to
/// the one before, hashes to what it stores and, unless `key` is `None`
/// (the one re-signing of a log written before entries were signed), is
/// signed by `key`: a forged tail is never covered by the next checkpoint.
/// Only the entries after the signed head are read, so a checkpoint costs
/// what was appended since.
pub(super) fn extends(
    exec: &mut dyn Exec,
    (signed_seq, signed_hash): (u64, &str),
    key: Option<&AuditPublicKey>,
) -> Result<Result<(u64, String), String>, AuditError> {
    let seq_param = i64::try_from(signed_seq).unwrap_or(i64::MAX);
    if signed_seq > 0 {
        match sql::hash_at(exec, signed_seq)? {
            Some(hash) if hash == signed_hash => {}
            Some(_) => {
                return Ok(Err(format!(
                    "entry {signed_seq} no longer has the hash this node signed"
                )))
            }
            None => {
                return Ok(Err(format!(
                    "entry {signed_seq}, which this node signed, is gone"
                )))
            }
        }
    }
    let sql = format!(
        "SELECT {} FROM audit_log WHERE seq > ?1 ORDER BY seq",
        sql::columns(exec)?
    );
    let (mut head_seq, mut head_hash) = (signed_seq, signed_hash.to_owned());
    let mut broken: Option<String> = None;
    exec.each(&sql, &[&seq_param], &mut |row| -> Result<(), DbError> {
        if broken.is_some() {
            return Ok(());
        }
        let (seq, entry) = sql::read_row(row)?;
        let entry = match entry {
            Ok(entry) if u64::try_from(seq).ok() == Some(head_seq + 1) => entry,
            Ok(_) => {
                broken = Some(format!("entry {} is missing", head_seq + 1));
                return Ok(());
            }
            Err(problem) => {
                broken = Some(format!("entry {seq}: {problem}"));
                return Ok(());
            }
        };
        if entry.prev_hash != head_hash || !entry.hash_is_valid() {
            broken = Some(format!("entry {seq} does not extend the chain"));
            return Ok(());
        }
        if let Some(problem) = key
            .and_then(|key| unsigned_after_head(&entry, signed_seq, key, "this party's audit key"))
        {
            broken = Some(problem);
            return Ok(());
        }
        head_seq += 1;
        head_hash = entry.hash;
        Ok(())
    })?;
    Ok(match broken {
        Some(problem) => Err(problem),
        None => Ok((head_seq, head_hash)),
    })
}
