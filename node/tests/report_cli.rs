//! `fedq-node report` as an operator runs it: a bad month is refused with
//! exit status 64; a good one prints every table and is audited.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context;
use chrono::{TimeZone, Utc};
use fedq_audit::AuditRecord;

fn report(config: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_fedq-node"))
        .arg("report")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("FEDQ_LOG", "warn")
        .output()?)
}

#[test]
fn report_refuses_a_bad_month_then_releases_and_audits_a_good_one() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let config = write_config(temp.path())?;
    let node = fedq_node::NodeConfig::load(&config)?;
    let log = node.open_audit()?;
    log.append(&record()?)?;
    drop(log);

    let bad = report(&config, &["--month", "2026-13"])?;
    let stderr = String::from_utf8(bad.stderr)?;
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("month must be YYYY-MM"), "{stderr}");
    assert!(bad.stdout.is_empty());

    // A month that has not begun would spend epsilon on nothing: refused,
    // and nothing is written to the log.
    let entries = || -> anyhow::Result<u64> { Ok(node.open_audit()?.verify()?.entries) };
    let before = entries()?;
    let future = report(&config, &["--month", "9999-12"])?;
    let stderr = String::from_utf8(future.stderr)?;
    assert_eq!(future.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("9999-12 has not begun"), "{stderr}");
    assert_eq!(entries()?, before, "nothing released, nothing audited");

    let text = report(&config, &["--month", "2026-11"])?;
    let stdout = String::from_utf8(text.stdout)?;
    assert_eq!(
        text.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(
        stdout.contains("requests by agency and decision"),
        "{stdout}"
    );
    assert!(stdout.contains("lookup: (several kinds)"), "{stdout}");

    let json = report(
        &config,
        &["--month", "2026-11", "--epsilon", "0.5", "--json"],
    )?;
    assert_eq!(
        json.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(value["month"], "2026-11");
    assert_eq!(value["epsilon"], 0.5);
    let names: Vec<&str> = value["tables"]
        .as_array()
        .context("no tables")?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["agency", "purpose", "kind", "disclosure"]);

    // Both runs were audited, and the log still verifies.
    let log = node.open_audit()?;
    let since = Utc::now() - chrono::Days::new(1);
    let runs = log
        .entries_between(since, Utc::now() + chrono::Days::new(1))?
        .into_iter()
        .filter(|e| e.record.action == "report")
        .count();
    assert_eq!(runs, 2);
    assert!(log.verify()?.is_ok());
    Ok(())
}

fn record() -> anyhow::Result<AuditRecord> {
    let time = Utc
        .with_ymd_and_hms(2026, 11, 3, 10, 0, 0)
        .single()
        .context("bad test time")?;
    Ok(fedq_node::testkit::lookup_record(time, "q-1"))
}

/// A minimal node config with a lookup policy, written by hand as an operator would.
fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(fedq_node::testkit::write_minimal_node_config(
        dir,
        fedq_node::testkit::LOOKUP_POLICY,
    )?)
}
