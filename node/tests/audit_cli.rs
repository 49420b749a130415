//! `fedq-node audit verify` and `audit export` as an operator runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{TimeZone, Utc};
use fedq_audit::{AuditEntry, AuditRecord};

fn fedq_node(args: &[&str], config: &Path) -> anyhow::Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fedq-node"));
    command
        .arg("audit")
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..]);
    Ok(command.output()?)
}

#[test]
fn verify_reports_ok_then_names_the_tampered_entry_and_export_filters_days() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let config = write_config(temp.path())?;
    let node = fedq_node::NodeConfig::load(&config)?;
    let log = node.open_audit()?;
    for day in 1..=4 {
        log.append(&record(day))?;
    }
    drop(log);

    let ok = fedq_node(&["verify"], &config)?;
    let stdout = String::from_utf8(ok.stdout)?;
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stdout.contains("audit log ok: 4 entries, head seq 4"),
        "{stdout}"
    );

    let out = temp.path().join("export.jsonl");
    let out_arg = out
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("temp path is not UTF-8"))?;
    let export = fedq_node(
        &[
            "export",
            "--since",
            "2026-02-02",
            "--until",
            "2026-02-03",
            "--out",
            out_arg,
        ],
        &config,
    )?;
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let seqs: Vec<u64> = std::fs::read_to_string(&out)?
        .lines()
        .map(|line| Ok(serde_json::from_str::<AuditEntry>(line)?.seq))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(seqs, [2, 3]);

    let fedq_node::config::StoreLocation::Sqlite(db) = &node.store else {
        anyhow::bail!("this test's node keeps its store in an SQLite file");
    };
    let conn = rusqlite::Connection::open(db)?;
    conn.execute_batch(
        "DROP TRIGGER audit_log_no_update;
         UPDATE audit_log SET detail = 'items=1' WHERE seq = 2;",
    )?;
    let bad = fedq_node(&["verify"], &config)?;
    let stderr = String::from_utf8(bad.stderr)?;
    assert_eq!(bad.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("failed at entry 2"), "{stderr}");
    Ok(())
}

fn record(day: u32) -> AuditRecord {
    let time = Utc
        .with_ymd_and_hms(2026, 2, day, 10, 0, 0)
        .single()
        .expect("valid date");
    fedq_node::testkit::lookup_record(time, &format!("q-{day}"))
}

/// A minimal node config and federation file, written by hand as an operator would.
fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(fedq_node::testkit::write_minimal_node_config(dir, "")?)
}
