//! Append, verify, tamper detection, concurrency and export.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rusqlite::Connection;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    checkpoint: PathBuf,
    key: PathBuf,
}

impl Fixture {
    fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        Ok(Self {
            db: dir.path().join("data/node.db"),
            checkpoint: dir.path().join("data/audit.checkpoint"),
            key: dir.path().join("audit.key"),
            _dir: dir,
        })
    }

    fn open(&self) -> Result<AuditLog, AuditError> {
        AuditLog::open(&self.db, &self.checkpoint, &self.key)
    }

    /// A log of `n` entries, one a day from 2026-03-01.
    fn with_entries(&self, n: u32) -> Result<AuditLog, AuditError> {
        let log = self.open()?;
        for i in 0..n {
            log.append(&record(
                i,
                day(2026, 3, 1) + chrono::Duration::days(i.into()),
            ))?;
        }
        Ok(log)
    }

    /// Runs SQL as someone holding the database file would: triggers dropped.
    fn tamper(&self, sql: &str) -> TestResult {
        let conn = Connection::open(&self.db)?;
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
        )?;
        conn.execute_batch(sql)?;
        Ok(())
    }
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid date")
}

fn record(i: u32, time: DateTime<Utc>) -> AuditRecord {
    AuditRecord {
        time,
        query_id: format!("q-{i}"),
        requester: "alice".to_owned(),
        agency: "police-fr".to_owned(),
        role: "investigator".to_owned(),
        purpose: "fraud investigation".to_owned(),
        legal_basis: "art. 6(1)(e)".to_owned(),
        case_ref: format!("case-{i}"),
        action: "lookup".to_owned(),
        detail: "items=3 kinds=phone,email".to_owned(),
        decision: if i % 3 == 2 {
            Decision::Refused
        } else {
            Decision::Admitted
        },
        reason: if i % 3 == 2 {
            "over budget"
        } else {
            "policy admits"
        }
        .to_owned(),
    }
}

fn first_bad(log: &AuditLog) -> Result<(u64, String), Box<dyn std::error::Error>> {
    let report = log.verify()?;
    report
        .first_bad
        .ok_or_else(|| "tampering was not detected".into())
}

#[test]
fn appended_entries_verify_and_survive_a_reopen() -> TestResult {
    let fx = Fixture::new()?;
    let empty = fx.open()?.verify()?;
    assert!(
        empty.is_ok(),
        "an empty log with no checkpoint is fine: {empty:?}"
    );
    let log = fx.with_entries(5)?;
    let report = log.verify()?;
    assert_eq!(
        report,
        VerifyReport {
            entries: 5,
            head_seq: 5,
            checkpoint_seq: Some(5),
            first_bad: None
        }
    );
    drop(log);
    let log = fx.open()?;
    assert!(log.verify()?.is_ok(), "the key is reused on reopen");
    assert_eq!(log.append(&record(9, day(2026, 4, 1)))?, 6);
    assert_eq!(log.verify()?.head_seq, 6);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&fx.key)?.permissions().mode() & 0o777,
            0o600
        );
    }
    Ok(())
}

#[test]
fn the_entry_hash_format_is_stable() {
    // Stored fixture: changing the encoding breaks every existing log.
    let mut r = record(1, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    r.time += chrono::Duration::nanoseconds(6);
    // Recomputed independently from the module docs' description.
    assert_eq!(
        AuditEntry::compute_hash(1, GENESIS_HASH, &r),
        "4b2c0f2e6d44c6937a3178379f59ffc3ce56fa51ef95902f26c0c95d73951024"
    );
}

#[test]
fn an_edited_entry_is_named() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    fx.tamper("UPDATE audit_log SET purpose = 'curiosity' WHERE seq = 3")?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 3);
    assert!(problem.contains("hash does not match"), "{problem}");
    Ok(())
}

#[test]
fn a_deleted_middle_entry_is_named() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    fx.tamper("DELETE FROM audit_log WHERE seq = 3")?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 3);
    assert!(problem.contains("missing"), "{problem}");
    Ok(())
}

#[test]
fn an_inserted_entry_is_named() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    let prev = log.entries_between(day(2026, 3, 2), day(2026, 3, 3))?[0]
        .hash
        .clone();
    // Make room at seq 3, then insert a forged entry there, correctly chained
    // to entry 2 and correctly hashed: only entry 4 (the old 3) can tell.
    let forged = record(99, day(2026, 3, 2));
    let hash = AuditEntry::compute_hash(3, &prev, &forged);
    fx.tamper(
        "UPDATE audit_log SET seq = -seq WHERE seq >= 3;
         UPDATE audit_log SET seq = 1 - seq WHERE seq < 0;
         INSERT INTO audit_log SELECT 3, format, time, 'q-forged', requester, agency, role, purpose,
             legal_basis, case_ref, action, detail, decision, reason, prev_hash, hash, signature
             FROM audit_log WHERE seq = 2;",
    )?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(
        seq, 3,
        "a naive forgery is caught at its own seq: {problem}"
    );
    fx.tamper(&format!(
        "DELETE FROM audit_log WHERE seq = 3;
         INSERT INTO audit_log SELECT 3, format, '{}', 'q-99', requester, agency, role, purpose,
             legal_basis, 'case-99', action, detail, 'admitted', 'policy admits', '{prev}', '{hash}', NULL
             FROM audit_log WHERE seq = 2;",
        record::format_time(forged.time)
    ))?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 4, "{problem}");
    assert!(problem.contains("prev_hash"), "{problem}");
    Ok(())
}

#[test]
fn reordered_entries_are_named() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    let all = "format, time, query_id, requester, agency, role, purpose, legal_basis, case_ref, \
               action, detail, decision, reason, prev_hash, hash";
    fx.tamper(&format!(
        "CREATE TEMP TABLE swap AS SELECT * FROM audit_log WHERE seq IN (2, 4);
         UPDATE audit_log SET ({all}) = (SELECT {all} FROM swap WHERE swap.seq = 6 - audit_log.seq)
             WHERE seq IN (2, 4);"
    ))?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 2, "{problem}");
    Ok(())
}

#[test]
fn a_truncated_tail_is_named() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    fx.tamper("DELETE FROM audit_log WHERE seq >= 4")?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 4);
    assert!(problem.contains("removed from the tail"), "{problem}");
    fx.tamper("DELETE FROM audit_log")?;
    assert_eq!(first_bad(&log)?.0, 1, "an emptied log is caught too");
    Ok(())
}

#[test]
fn a_rewritten_and_rehashed_tail_differs_from_the_checkpoint() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    let entries = log.entries_between(day(2026, 3, 1), day(2026, 4, 1))?;
    // Rewrite entry 3 and re-chain 3..=5: the chain is consistent again.
    let mut prev = entries[1].hash.clone();
    let mut sql = String::new();
    for entry in &entries[2..] {
        let mut r = entry.record.clone();
        if entry.seq == 3 {
            r.purpose = "curiosity".to_owned();
        }
        let hash = AuditEntry::compute_hash(entry.seq, &prev, &r);
        sql.push_str(&format!(
            "UPDATE audit_log SET purpose = '{}', prev_hash = '{prev}', hash = '{hash}' WHERE seq = {};",
            r.purpose, entry.seq
        ));
        prev = hash;
    }
    fx.tamper(&sql)?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 5);
    assert!(problem.contains("signed checkpoint"), "{problem}");

    // The rewrite happened while the node was idle; its next request must
    // not launder it by signing the rewritten head.
    let next = log.append(&record(9, day(2026, 3, 9)));
    assert!(
        matches!(&next, Err(AuditError::Diverged(why)) if why.contains("entry 5 no longer has the hash")),
        "{next:?}"
    );
    assert_eq!(
        first_bad(&log)?.0,
        5,
        "still detected after the next request"
    );
    Ok(())
}

#[test]
fn a_forged_or_missing_checkpoint_is_detected() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    let signed = std::fs::read_to_string(&fx.checkpoint)?;
    std::fs::write(&fx.checkpoint, signed.replace("\"seq\":5", "\"seq\":3"))?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 1);
    assert!(problem.contains("signature does not verify"), "{problem}");

    // A checkpoint signed by another key (a new, empty log's genesis
    // checkpoint put in place of this one's).
    std::fs::remove_file(&fx.checkpoint)?;
    let _other = AuditLog::open(
        &fx.db.with_extension("other"),
        &fx.checkpoint,
        &fx.key.with_extension("other"),
    )?;
    assert!(first_bad(&log)?.1.contains("another key"));

    std::fs::write(&fx.checkpoint, "not json")?;
    assert!(first_bad(&log)?.1.contains("not a version 1 checkpoint"));

    std::fs::remove_file(&fx.checkpoint)?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 1);
    assert!(problem.contains("no signed checkpoint"), "{problem}");

    // Removing the checkpoint does not earn a fresh signature over whatever
    // the log holds now: the node refuses to sign until someone looks.
    assert!(matches!(log.checkpoint(), Err(AuditError::Diverged(_))));
    assert!(!log.verify()?.is_ok());
    Ok(())
}

#[test]
fn concurrent_appends_form_one_chain() -> TestResult {
    let fx = Fixture::new()?;
    let shared = Arc::new(fx.open()?);
    let mut handles = Vec::new();
    for t in 0..6u32 {
        // Half share one log; half open their own connection, as another
        // process would.
        let log = if t % 2 == 0 {
            Arc::clone(&shared)
        } else {
            Arc::new(fx.open()?)
        };
        handles.push(std::thread::spawn(
            move || -> Result<Vec<u64>, AuditError> {
                (0..20)
                    .map(|i| log.append(&record(t * 100 + i, day(2026, 3, 1))))
                    .collect()
            },
        ));
    }
    let mut seqs = Vec::new();
    for handle in handles {
        seqs.extend(handle.join().map_err(|_| "append thread panicked")??);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=120).collect::<Vec<u64>>());
    shared.checkpoint()?;
    let report = shared.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.entries, report.unsigned_entries()), (120, 0));
    Ok(())
}

#[test]
fn append_in_a_rolled_back_transaction_leaves_nothing() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(2)?;
    let store = fedq_db::Location::Sqlite(fx.db.clone());
    let db = fedq_db::Db::open(&store)?;
    let rolled_back: Result<(), AuditError> = db.write(|tx| {
        assert_eq!(
            AuditLog::append_in(tx, &store, &record(7, day(2026, 5, 1)))?,
            3
        );
        Err(AuditError::InvalidRange)
    });
    assert!(rolled_back.is_err());
    let report = log.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.entries, 2);

    let seq = db.write(|tx| AuditLog::append_in(tx, &store, &record(8, day(2026, 5, 1))))?;
    assert_eq!(seq, 3);
    assert_eq!(
        log.verify()?.unsigned_entries(),
        1,
        "committed, not yet signed"
    );
    log.checkpoint()?;
    let report = log.verify()?;
    assert!(
        report.is_ok() && report.unsigned_entries() == 0,
        "{report:?}"
    );

    // Without a log open on the store in this process nothing can sign the
    // entry, so nothing is appended.
    drop(log);
    let unsigned = db.write(|tx| AuditLog::append_in(tx, &store, &record(9, day(2026, 5, 2))));
    assert!(unsigned.is_err());
    Ok(())
}

#[test]
fn export_writes_the_days_asked_for() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.open()?;
    let feb = |d: u32| NaiveDate::from_ymd_opt(2026, 2, d).ok_or("bad date");
    let times = [
        Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap()
            + chrono::Duration::nanoseconds(999_999_999),
        Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(),
        day(2026, 2, 14),
        Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
    ];
    for (i, time) in times.iter().enumerate() {
        log.append(&record(i as u32, *time))?;
    }
    let mut out = Vec::new();
    assert_eq!(log.export(feb(1)?, feb(28)?, &mut out)?, 3);
    let exported: Vec<AuditEntry> = String::from_utf8(out)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(
        exported.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    assert!(exported.iter().all(AuditEntry::hash_is_valid));
    let mut out = Vec::new();
    log.export(feb(1)?, feb(1)?, &mut out)?;
    let line = String::from_utf8(out)?;
    assert!(
        line.contains("\"time\":\"2026-02-01T00:00:00.000000000Z\""),
        "{line}"
    );
    assert!(line.contains("\"decision\":\"admitted\""), "{line}");
    assert!(matches!(
        log.export(feb(2)?, feb(1)?, &mut Vec::new()),
        Err(AuditError::InvalidRange)
    ));
    assert_eq!(log.entries_between(times[2], times[4])?.len(), 2);
    Ok(())
}

#[test]
fn times_outside_the_storable_range_are_refused() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.open()?;
    let early = record(0, day(1969, 12, 31));
    assert!(matches!(
        log.append(&early),
        Err(AuditError::InvalidRecord(_))
    ));
    assert_eq!(log.verify()?.entries, 0);
    Ok(())
}

#[test]
fn the_append_only_triggers_refuse_rewrites() -> TestResult {
    let fx = Fixture::new()?;
    let _log = fx.with_entries(1)?;
    let conn = Connection::open(&fx.db)?;
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
    assert!(conn
        .execute("UPDATE audit_log SET reason = ''", [])
        .is_err());
    Ok(())
}

#[test]
fn the_key_and_checkpoint_formats_are_stable() -> TestResult {
    // Stored fixtures: a key file, and the checkpoint it signs for an empty
    // log (Ed25519 signatures are deterministic).
    const CHECKPOINT: &str = concat!(
        r#"{"version":"1","seq":0,"hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""public_key":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c","#,
        r#""signature":"75b9dc449638cc2452ee88786378a3d81eff38af09d1c0f1e260c8581e44a6f5"#,
        r#"77273b2b6766cea4053c912a02eff502d49a2c25cc5beb0472f51ea4e7679508"}"#,
        "\n"
    );
    let fx = Fixture::new()?;
    std::fs::write(&fx.key, format!("fedq-audit-key-v1 {}\n", "07".repeat(32)))?;
    let log = fx.open()?;
    std::fs::create_dir_all(fx.checkpoint.parent().ok_or("no parent")?)?;
    std::fs::write(&fx.checkpoint, CHECKPOINT)?;
    let report = log.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.checkpoint_seq, Some(0));
    log.checkpoint()?;
    assert_eq!(std::fs::read_to_string(&fx.checkpoint)?, CHECKPOINT);
    Ok(())
}

/// Appends, as someone holding the database file would, an entry correctly
/// chained and hashed after the head, with `signature` in its column.
fn forge_tail(fx: &Fixture, log: &AuditLog, signature: Option<String>) -> TestResult {
    let head = log
        .entries_between(day(1970, 1, 2), day(9999, 1, 1))?
        .pop()
        .ok_or("a head")?;
    let seq = head.seq + 1;
    let forged = record(99, day(2026, 3, 20));
    let entry = AuditEntry {
        seq,
        hash: AuditEntry::compute_hash(seq, &head.hash, &forged),
        prev_hash: head.hash,
        record: forged,
        signature,
    };
    let db = fedq_db::Db::from_sqlite(Connection::open(&fx.db)?, &fx.db);
    db.run(|exec| sql::insert(exec, &entry))?;
    Ok(())
}

#[test]
fn a_forged_unsigned_entry_after_the_signed_head_is_rejected() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(3)?;
    forge_tail(&fx, &log, None)?;
    let (seq, problem) = first_bad(&log)?;
    assert_eq!(seq, 4, "{problem}");
    assert!(problem.contains("no signature"), "{problem}");

    // The node's next append does not launder it: its own entry is signed,
    // but the head it would sign does not extend what it signed before.
    let next = log.append(&record(5, day(2026, 3, 21)));
    assert!(
        matches!(&next, Err(AuditError::Diverged(why)) if why.contains("entry 4")),
        "{next:?}"
    );
    assert_eq!(
        first_bad(&log)?.0,
        4,
        "still detected after the next append"
    );
    Ok(())
}

#[test]
fn an_entry_signed_by_another_key_is_rejected_with_a_pinned_key() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(3)?;
    let pinned = log.public_key();
    assert!(log.verify_pinned(&pinned)?.is_ok());

    // A tail entry signed by a key of the forger's own.
    let forger = checkpoint::AuditKey::load_or_create(&fx.key.with_extension("forger"))?;
    let head = log.verify()?.head_seq;
    let hash = {
        let forged = record(99, day(2026, 3, 20));
        let prev = log
            .entries_between(day(1970, 1, 2), day(9999, 1, 1))?
            .pop()
            .ok_or("a head")?
            .hash;
        AuditEntry::compute_hash(head + 1, &prev, &forged)
    };
    forge_tail(&fx, &log, Some(signature::sign(&forger, head + 1, &hash)))?;
    let report = log.verify_pinned(&pinned)?;
    let (seq, problem) = report.first_bad.ok_or("the forged entry was accepted")?;
    assert_eq!(seq, 4);
    assert!(
        problem.contains("does not verify with the audit key federation.toml pins"),
        "{problem}"
    );

    // The forger replaces the key file and re-signs the checkpoint over the
    // forged head: the log then verifies against its own key file, but not
    // against the pin.
    std::fs::copy(fx.key.with_extension("forger"), &fx.key)?;
    checkpoint::write(&fx.checkpoint, &forger, 4, &hash)?;
    let reopened = AuditLog::open_read_only(&fx.db, &fx.checkpoint, &fx.key)?;
    let own = reopened.verify()?;
    assert!(own.is_ok(), "{own:?}");
    let (seq, problem) = reopened
        .verify_pinned(&pinned)?
        .first_bad
        .ok_or("a checkpoint by another key was accepted")?;
    assert_eq!(seq, 1);
    assert!(
        problem.contains("another key than the audit key federation.toml pins"),
        "{problem}"
    );
    Ok(())
}

/// The `audit_log` table as it was before entries were signed.
const LEGACY_SCHEMA: &str = "CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY, format INTEGER NOT NULL, time TEXT NOT NULL, query_id TEXT NOT NULL,
    requester TEXT NOT NULL, agency TEXT NOT NULL, role TEXT NOT NULL, purpose TEXT NOT NULL,
    legal_basis TEXT NOT NULL, case_ref TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL,
    decision TEXT NOT NULL, reason TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);";

#[test]
fn logs_written_before_entries_were_signed_still_verify() -> TestResult {
    let fx = Fixture::new()?;
    std::fs::create_dir_all(fx.db.parent().ok_or("no parent")?)?;
    let conn = Connection::open(&fx.db)?;
    conn.execute_batch(LEGACY_SCHEMA)?;
    let key = checkpoint::AuditKey::load_or_create(&fx.key)?;
    let mut prev = GENESIS_HASH.to_owned();
    for seq in 1..=4u64 {
        let r = record(seq as u32, day(2026, 3, seq as u32));
        let hash = AuditEntry::compute_hash(seq, &prev, &r);
        conn.execute(
            &format!("INSERT INTO audit_log VALUES ({seq}, 1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"),
            rusqlite::params![record::format_time(r.time), r.query_id, r.requester, r.agency, r.role,
                r.purpose, r.legal_basis, r.case_ref, r.action, r.detail, r.decision.as_str(), r.reason, prev, hash],
        )?;
        // The old node checkpointed after each append; it crashed before
        // the checkpoint of entry 4.
        if seq == 3 {
            checkpoint::write(&fx.checkpoint, &key, seq, &hash)?;
        }
        prev = hash;
    }
    drop(conn);
    drop(key);

    // Read-only, nothing migrated: entries 1-3 are covered by the
    // checkpoint; the unsigned entry 4 after it is what a forger could have
    // appended, so it is named.
    let read_only = AuditLog::open_read_only(&fx.db, &fx.checkpoint, &fx.key)?;
    let report = read_only.verify()?;
    assert_eq!(
        report.first_bad.as_ref().map(|(seq, _)| *seq),
        Some(4),
        "{report:?}"
    );
    drop(read_only);

    // The node's next start adds the column and, the chain extending what
    // it signed, covers entry 4 by a checkpoint; new entries are signed.
    let log = fx.open()?;
    let report = log.verify()?;
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.entries, report.checkpoint_seq), (4, Some(4)));
    assert_eq!(log.append(&record(5, day(2026, 3, 5)))?, 5);
    let entries = log.entries_between(day(2026, 3, 1), day(2026, 4, 1))?;
    assert!(entries[..4].iter().all(|e| e.signature.is_none()));
    assert!(entries[4].signature.is_some());
    let report = log.verify_pinned(&log.public_key())?;
    assert!(report.is_ok() && report.entries == 5, "{report:?}");
    Ok(())
}

#[test]
fn the_entry_signature_format_is_stable() -> TestResult {
    // Stored fixture: Ed25519 signatures are deterministic, so the key of
    // the checkpoint fixture signs entry 1 of the hash fixture alike forever.
    let fx = Fixture::new()?;
    std::fs::write(&fx.key, format!("fedq-audit-key-v1 {}\n", "07".repeat(32)))?;
    let key = checkpoint::AuditKey::load(&fx.key)?;
    let hash = "4b2c0f2e6d44c6937a3178379f59ffc3ce56fa51ef95902f26c0c95d73951024";
    let signed = signature::sign(&key, 1, hash);
    assert_eq!(signed, ENTRY_SIGNATURE, "{signed}");
    assert!(signature::is_valid(
        &key.verifying_key(),
        1,
        hash,
        ENTRY_SIGNATURE
    ));
    assert!(!signature::is_valid(
        &key.verifying_key(),
        2,
        hash,
        ENTRY_SIGNATURE
    ));
    Ok(())
}

const ENTRY_SIGNATURE: &str = concat!(
    "3e02a47f7c6a6dcee83470b9a1602e5aa03aab24de85b50aab55cb5d33a5650b",
    "3c1ecf81cdec280649da39326698f81d957513d4818f485a987a7fe6e9ebf202"
);

#[test]
fn the_witness_file_format_is_stable() -> TestResult {
    // Stored fixture, computed independently from `witness.rs`'s docs: the
    // fixture key witnessing its own checkpoint of entry 1 as node fr.
    const LINE: &str = concat!(
        r#"{"version":"1","node":"fr","seq":1,"#,
        r#""hash":"4b2c0f2e6d44c6937a3178379f59ffc3ce56fa51ef95902f26c0c95d73951024","#,
        r#""node_signature":"f257accbf97833d86b86c013a0c84fcb8daa4844eb53bc48a1a246e070a658de"#,
        r#"27d584fd9674afcad7695da8b53d03050cb35bdd389541bcb32947de3518b401","#,
        r#""witnessed_at":"2026-03-10T12:00:00.000000000Z","#,
        r#""countersignature":"57b33350047317872c213520bfcb105e0bc16600f0f8253157a4df494f256e43"#,
        r#"329bea33929390f2f05672a36e1da6c1bb5fb90bd6df7aa6a97e60401338f506"}"#,
        "\n"
    );
    let fx = Fixture::new()?;
    std::fs::write(&fx.key, format!("fedq-audit-key-v1 {}\n", "07".repeat(32)))?;
    let key = checkpoint::AuditKey::load(&fx.key)?;
    let hash = "4b2c0f2e6d44c6937a3178379f59ffc3ce56fa51ef95902f26c0c95d73951024";
    let head = witness::SignedHead {
        seq: 1,
        hash: hash.to_owned(),
        signature: key.sign(&checkpoint::message(1, hash)),
        public_key: key.verifying_key(),
    };
    let line =
        witness::WitnessedCheckpoint::countersign(&key, "fr", &head, day(2026, 3, 10)).to_line();
    assert_eq!(line, LINE);
    let read = witness::WitnessedCheckpoint::from_line(LINE.trim_end())?;
    assert!(read.is_countersigned_by(&key.verifying_key()));
    assert!(read.is_signed_by_node(&key.verifying_key()));
    Ok(())
}

#[test]
fn a_witnessed_checkpoint_catches_a_rollback_and_a_fork() -> TestResult {
    let fx = Fixture::new()?;
    let log = fx.with_entries(5)?;
    let witness_dir = tempfile::tempdir()?;
    let coordinator = AuditLog::open(
        &witness_dir.path().join("keys.db"),
        &witness_dir.path().join("audit.checkpoint"),
        &witness_dir.path().join("audit.key"),
    )?;
    let head = log.signed_head()?;
    assert!(head.is_signed_by(&log.public_key()));
    let witnessed = coordinator.countersign("fr", &head, day(2026, 3, 10));
    let line = witnessed.to_line();
    let read = witness::WitnessedCheckpoint::from_line(line.trim_end())?;
    assert!(read.is_countersigned_by(&coordinator.public_key()));
    assert!(!read.is_countersigned_by(&log.public_key()));
    assert!(read.is_signed_by_node(&log.public_key()));
    let mut moved = read.clone();
    moved.seq = 4;
    assert!(!moved.is_countersigned_by(&coordinator.public_key()));
    assert_eq!(log.check_witnessed(&read)?, witness::WitnessCheck::Holds);

    fx.tamper("DELETE FROM audit_log WHERE seq >= 4")?;
    assert_eq!(
        log.check_witnessed(&read)?,
        witness::WitnessCheck::RolledBack {
            witnessed: 5,
            head: 3
        }
    );
    let mut forked = read.clone();
    forked.seq = 2;
    forked.hash = "00".repeat(32);
    assert_eq!(
        log.check_witnessed(&forked)?,
        witness::WitnessCheck::Forked { witnessed: 2 }
    );
    assert!(witness::WitnessedCheckpoint::from_line(&"x".repeat(5000)).is_err());
    Ok(())
}
