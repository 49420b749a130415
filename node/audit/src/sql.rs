//! The `audit_log` table in the party's store: schema, insert, reads.
//!
//! Triggers refuse UPDATE and DELETE (and, on PostgreSQL, TRUNCATE), so a
//! bug cannot rewrite history; they are no defence against someone with the
//! file or the database's owner role, which is what the hash chain, the
//! entries' signatures and the signed checkpoint are for.

use fedq_db::{Backend, DbError, Exec, Row, Schema};

use super::record::{self, AuditEntry, AuditRecord, Decision, FORMAT};

/// Schema of the log (idempotent).
pub(super) const SCHEMA: Schema = Schema {
    sqlite: SQLITE_SCHEMA,
    postgres: POSTGRES_SCHEMA,
};

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    format INTEGER NOT NULL,
    time TEXT NOT NULL,
    query_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    agency TEXT NOT NULL,
    role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq BIGINT PRIMARY KEY,
    format BIGINT NOT NULL,
    time TEXT NOT NULL,
    query_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    agency TEXT NOT NULL,
    role TEXT NOT NULL,
    purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
";

/// Columns in the order [`read_row`] expects.
pub(super) const COLUMNS: &str = "seq, format, time, query_id, requester, agency, role, purpose, \
     legal_basis, case_ref, action, detail, decision, reason, prev_hash, hash, signature";

/// [`COLUMNS`] of a log written before entries were signed, which a
/// read-only open must not migrate.
const LEGACY_COLUMNS: &str = "seq, format, time, query_id, requester, agency, role, purpose, \
     legal_basis, case_ref, action, detail, decision, reason, prev_hash, hash, NULL AS signature";

fn has_signature_column(exec: &mut dyn Exec) -> Result<bool, DbError> {
    // A PostgreSQL log was created with it.
    if exec.backend() == Backend::Postgres {
        return Ok(true);
    }
    Ok(exec
        .query_opt(
            "SELECT 1 FROM pragma_table_info('audit_log') WHERE name = 'signature'",
            &[],
            |_| Ok(()),
        )?
        .is_some())
}

/// The select list that reads [`read_row`]'s columns from this store.
pub(super) fn columns(exec: &mut dyn Exec) -> Result<&'static str, DbError> {
    Ok(if has_signature_column(exec)? {
        COLUMNS
    } else {
        LEGACY_COLUMNS
    })
}

/// Adds the `signature` column to a log created before entries were
/// signed; its old entries keep none (the checkpoint covers them). Returns
/// whether the column was added now. Runs in the caller's write
/// transaction, so two processes opening one old store do not both add it.
pub(super) fn migrate(tx: &mut dyn Exec) -> Result<bool, DbError> {
    if has_signature_column(tx)? {
        return Ok(false);
    }
    tx.batch("ALTER TABLE audit_log ADD COLUMN signature TEXT")?;
    Ok(true)
}

/// The stored hash of entry `seq`, if there is one.
pub(super) fn hash_at(exec: &mut dyn Exec, seq: u64) -> Result<Option<String>, DbError> {
    exec.query_opt(
        "SELECT hash FROM audit_log WHERE seq = ?1",
        &[&i64::try_from(seq).unwrap_or(i64::MAX)],
        |r| r.get(0),
    )
}

/// The last entry's (seq, hash), if any.
pub(super) fn head(exec: &mut dyn Exec) -> Result<Option<(u64, String)>, DbError> {
    let head = exec.query_opt(
        "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
        |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
    )?;
    Ok(head.map(|(seq, hash)| (seq as u64, hash)))
}

/// Stores an entry whose hash the caller computed.
pub(super) fn insert(exec: &mut dyn Exec, entry: &AuditEntry) -> Result<(), DbError> {
    let r = &entry.record;
    exec.execute(
        &format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        ),
        &[
            &(entry.seq as i64),
            &FORMAT,
            &record::format_time(r.time),
            &r.query_id,
            &r.requester,
            &r.agency,
            &r.role,
            &r.purpose,
            &r.legal_basis,
            &r.case_ref,
            &r.action,
            &r.detail,
            &r.decision.as_str(),
            &r.reason,
            &entry.prev_hash,
            &entry.hash,
            &entry.signature,
        ],
    )?;
    Ok(())
}

/// A stored row: its seq, and the entry or what stops it being read.
pub(super) type StoredRow = (i64, Result<AuditEntry, String>);

/// Reads a row selected with [`COLUMNS`]. Rows that the store can read but
/// that do not make an entry (bad format, time or decision, or a column of
/// the wrong type) come back as the problem, for the verifier to report.
pub(super) fn read_row(row: &Row<'_>) -> Result<StoredRow, DbError> {
    let seq: i64 = row.get(0)?;
    Ok((seq, entry_of(row, seq)))
}

fn entry_of(row: &Row<'_>, seq: i64) -> Result<AuditEntry, String> {
    let text = |i: usize| -> Result<String, String> {
        row.get::<String>(i)
            .map_err(|_| format!("column {i} is not text"))
    };
    if seq < 1 {
        return Err("seq is not positive".to_owned());
    }
    let format: i64 = row
        .get(1)
        .map_err(|_| "format is not a number".to_owned())?;
    if format != i64::from(FORMAT) {
        return Err(format!("unknown entry format {format}"));
    }
    let time = record::parse_time(&text(2)?)?;
    let decision =
        Decision::parse(&text(12)?).ok_or_else(|| "decision is not admitted/refused".to_owned())?;
    Ok(AuditEntry {
        seq: seq as u64,
        record: AuditRecord {
            time,
            query_id: text(3)?,
            requester: text(4)?,
            agency: text(5)?,
            role: text(6)?,
            purpose: text(7)?,
            legal_basis: text(8)?,
            case_ref: text(9)?,
            action: text(10)?,
            detail: text(11)?,
            decision,
            reason: text(13)?,
        },
        prev_hash: text(14)?,
        hash: text(15)?,
        signature: row
            .get::<Option<String>>(16)
            .map_err(|_| "signature is not text".to_owned())?,
    })
}
