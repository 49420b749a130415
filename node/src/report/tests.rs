//! Tests of the transparency report: month parsing, the true tallies (apart
//! from the noise), the domains, the noise scale and a run on a real log.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use chrono::{TimeZone, Utc};
use fedq_crypto::IdentifierKind;

use super::*;
use crate::policy::ReportDomains;

fn domains() -> Domains {
    let domains = ReportDomains {
        agencies: vec!["de-bka".to_owned(), "fr-police".to_owned()],
        purposes: vec!["fraud investigation".to_owned(), "research".to_owned()],
        actions: ["lookup", "stats", "disclose"].map(str::to_owned).to_vec(),
    };
    Domains::new(domains, ["incidents"])
}

fn record(
    agency: &str,
    purpose: &str,
    action: &str,
    detail: &str,
    decision: Decision,
) -> AuditRecord {
    AuditRecord {
        time: Utc
            .with_ymd_and_hms(2026, 11, 3, 10, 0, 0)
            .single()
            .expect("valid date"),
        query_id: "q".to_owned(),
        requester: "alice".to_owned(),
        agency: agency.to_owned(),
        role: "investigator".to_owned(),
        purpose: purpose.to_owned(),
        legal_basis: "art. 6".to_owned(),
        case_ref: "case-1".to_owned(),
        action: action.to_owned(),
        detail: detail.to_owned(),
        decision,
        reason: "policy admits".to_owned(),
    }
}

fn at(y: i32, m: u32, d: u32, h: u32) -> Result<chrono::DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .context("bad test time")
}

fn table<'a>(tables: &'a [Table], name: &str) -> Result<&'a Table> {
    tables
        .iter()
        .find(|t| t.name == name)
        .with_context(|| format!("no table {name}"))
}

fn cell(tables: &[Table], name: &str, row: &str, column: &str) -> Result<i64> {
    table(tables, name)?
        .count(row, column)
        .with_context(|| format!("no cell {name}/{row}/{column}"))
}

#[test]
fn months_parse_strictly() -> Result<()> {
    let month: Month = "2026-11".parse()?;
    assert_eq!(month.to_string(), "2026-11");
    assert_eq!(month.start(), at(2026, 11, 1, 0)?);
    assert_eq!(month.end(), at(2026, 12, 1, 0)?);
    let december: Month = "2026-12".parse()?;
    assert_eq!(december.end(), at(2027, 1, 1, 0)?);
    for bad in [
        "",
        "2026",
        "2026-1",
        "2026-13",
        "2026-00",
        "26-11",
        "2026/11",
        "2026-11-01",
        " 2026-11",
        "+202-11",
        "1969-12",
        "nov-2026",
    ] {
        let parsed = bad.parse::<Month>();
        ensure!(
            matches!(parsed, Err(ReportError::InvalidMonth)),
            "{bad:?} gave {parsed:?}"
        );
    }
    let err = ReportOptions::new("2026-13", 1.0)
        .err()
        .context("accepted")?;
    assert!(err.is_usage());
    let err = ReportOptions::new("2026-11", 0.0)
        .err()
        .context("accepted")?;
    assert!(matches!(err, ReportError::InvalidEpsilon));
    Ok(())
}

#[test]
fn tallies_equal_the_true_counts() -> Result<()> {
    use Decision::{Admitted, Refused};
    let mut revealed = record(
        "fr-police",
        "fraud investigation",
        "disclose",
        "items=1 kinds=phone disclose=asked",
        Admitted,
    );
    revealed.reason = "revealed under authorization W-1".to_owned();
    let mut withheld = revealed.clone();
    withheld.reason = "withheld: the disclosure rule does not cover this".to_owned();
    let records = vec![
        record(
            "fr-police",
            "Fraud   Investigation ",
            "lookup",
            "items=3 kinds=phone",
            Admitted,
        ),
        record(
            "fr-police",
            "fraud investigation",
            "lookup",
            "items=2 kinds=email,phone disclose=asked",
            Admitted,
        ),
        revealed,
        withheld,
        record(
            "fr-police",
            "fraud investigation",
            "lookup",
            "items=1 kinds=iban",
            Refused,
        ),
        record("nsa", "curiosity", "lookup", "items=1 kinds=phone", Refused),
        record("", "", "lookup", "garbled", Refused),
        record(
            "de-bka",
            "research",
            "stats",
            "table=incidents measure=count",
            Admitted,
        ),
        record(
            "de-bka",
            "research",
            "stats",
            "table=secrets measure=count",
            Refused,
        ),
        record(
            "",
            "transparency report",
            "report",
            "month=2026-10",
            Admitted,
        ),
    ];
    let mut records = records;
    // 100 bad signatures claiming fr-police: counted apart, not as fr-police's.
    for _ in 0..100 {
        let mut forged = record(
            "fr-police",
            "fraud investigation",
            "lookup",
            "items=1 kinds=phone",
            Refused,
        );
        forged.reason = "envelope: bad envelope signature".to_owned();
        records.push(forged);
    }
    let tables = tally(&domains(), &records);

    assert_eq!(cell(&tables, "agency", UNVERIFIED, "refused")?, 100);
    assert_eq!(cell(&tables, "purpose", UNVERIFIED, "refused")?, 100);
    assert_eq!(cell(&tables, "agency", "fr-police", "admitted")?, 2);
    assert_eq!(cell(&tables, "agency", "fr-police", "refused")?, 1);
    assert_eq!(cell(&tables, "agency", "de-bka", "admitted")?, 1);
    assert_eq!(cell(&tables, "agency", "de-bka", "refused")?, 1);
    assert_eq!(cell(&tables, "agency", OTHER, "refused")?, 2);
    assert_eq!(cell(&tables, "agency", OTHER, "admitted")?, 0);

    assert_eq!(
        cell(&tables, "purpose", "fraud investigation", "admitted")?,
        2
    );
    assert_eq!(
        cell(&tables, "purpose", "fraud investigation", "refused")?,
        1
    );
    assert_eq!(cell(&tables, "purpose", "research", "admitted")?, 1);
    assert_eq!(cell(&tables, "purpose", "research", "refused")?, 1);
    assert_eq!(cell(&tables, "purpose", OTHER, "refused")?, 2);

    assert_eq!(cell(&tables, "kind", "lookup: phone", "admitted")?, 1);
    // What was received is still counted by kind: the 100 forgeries too.
    assert_eq!(cell(&tables, "kind", "lookup: phone", "refused")?, 101);
    assert_eq!(
        cell(&tables, "kind", "lookup: (several kinds)", "admitted")?,
        1
    );
    assert_eq!(cell(&tables, "kind", "lookup: iban", "refused")?, 1);
    assert_eq!(cell(&tables, "kind", "lookup: (other)", "refused")?, 1);
    assert_eq!(cell(&tables, "kind", "stats: incidents", "admitted")?, 1);
    assert_eq!(cell(&tables, "kind", "stats: (other)", "refused")?, 1);

    assert_eq!(
        cell(&tables, "disclosure", "revealed", DISCLOSURE_COLUMN)?,
        1
    );
    assert_eq!(
        cell(&tables, "disclosure", "withheld", DISCLOSURE_COLUMN)?,
        1
    );

    // Each request table counts the 7 request entries and the 100 forgeries
    // exactly once; the disclose entries and the operator's report entry are
    // not among them.
    for name in ["agency", "purpose", "kind"] {
        assert_eq!(
            table(&tables, name)?.counts.iter().sum::<i64>(),
            107,
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn every_domain_cell_is_present_zeros_included() -> Result<()> {
    let tables = tally(&domains(), &[]);
    let names: Vec<&str> = tables.iter().map(|t| t.name).collect();
    assert_eq!(names, ["agency", "purpose", "kind", "disclosure"]);
    for t in &tables {
        assert_eq!(t.counts.len(), t.rows.len() * t.columns.len(), "{}", t.name);
        assert!(t.counts.iter().all(|&c| c == 0), "{}", t.name);
    }
    assert_eq!(
        table(&tables, "agency")?.rows,
        ["de-bka", "fr-police", OTHER, UNVERIFIED]
    );
    assert_eq!(
        table(&tables, "purpose")?.rows,
        ["fraud investigation", "research", OTHER, UNVERIFIED]
    );
    assert_eq!(table(&tables, "agency")?.columns, DECISIONS);
    let mut kinds: Vec<String> = IdentifierKind::ALL
        .iter()
        .map(|k| format!("lookup: {k}"))
        .collect();
    kinds.extend(
        [
            "lookup: (several kinds)",
            "lookup: (other)",
            "stats: incidents",
            "stats: (other)",
        ]
        .map(str::to_owned),
    );
    assert_eq!(table(&tables, "kind")?.rows, kinds);
    assert_eq!(table(&tables, "disclosure")?.rows, DISCLOSURE_OUTCOMES);

    // A node without a policy still releases its "other" rows.
    let empty = Domains::new(crate::policy::Policy::default().report_domains(), []);
    let tables = tally(&empty, &[]);
    assert_eq!(table(&tables, "agency")?.rows, [OTHER, UNVERIFIED]);
    assert_eq!(table(&tables, "purpose")?.rows, [OTHER, UNVERIFIED]);
    Ok(())
}

#[test]
fn released_noise_has_the_declared_scale() -> Result<()> {
    let epsilon = Epsilon::new(1.0)?;
    let tables = tally(&domains(), &[]);
    let released = release(&tables, epsilon)?;
    for t in &released {
        // epsilon / 4 per table at sensitivity 1: scale 4.
        assert!(
            (t.noise_scale - 4.0).abs() < 1e-6,
            "{}: {}",
            t.name,
            t.noise_scale
        );
        assert!(
            t.epsilon <= 0.25 * (1.0 + 1e-9),
            "{}: {}",
            t.name,
            t.epsilon
        );
        let keys: Vec<&String> = t.rows.iter().map(|r| &r.key).collect();
        let tally_rows: Vec<&String> = table(&tables, t.name)?.rows.iter().collect();
        assert_eq!(keys, tally_rows);
    }
    let (mut n, mut sum, mut sum_sq) = (0.0_f64, 0.0_f64, 0.0_f64);
    for _ in 0..200 {
        for t in release(&tables, epsilon)? {
            for v in t.rows.iter().flat_map(|r| &r.values) {
                let v = *v as f64;
                n += 1.0;
                sum += v;
                sum_sq += v * v;
            }
        }
    }
    let mean = sum / n;
    let variance = sum_sq / n - mean * mean;
    // Discrete Laplace at scale 4: variance 1/(2 sinh²(1/8)) ≈ 31.8 (≤ 2·4² = 32).
    ensure!(mean.abs() < 1.0, "mean {mean} over {n} draws");
    ensure!(
        (20.0..45.0).contains(&variance),
        "variance {variance} over {n} draws"
    );
    Ok(())
}

#[test]
fn a_run_releases_every_table_and_audits_itself() -> Result<()> {
    let temp = tempfile::tempdir()?;
    let config = crate::NodeConfig::load(&write_config(temp.path())?)?;
    let log = config.open_audit()?;
    log.append(&record(
        "fr-police",
        "fraud investigation",
        "lookup",
        "items=1 kinds=phone",
        Decision::Admitted,
    ))?;
    drop(log);

    let options = ReportOptions::new("2026-11", 2.0)?;
    let now = at(2026, 12, 2, 9)?;
    let report = run(&config, &options, now)?;
    assert_eq!(report.month, "2026-11");
    assert!(report.complete);
    assert_eq!(report.tables.len(), 4);
    assert!(
        (report.epsilon_spent - 2.0).abs() < 1e-6,
        "{}",
        report.epsilon_spent
    );
    assert!(
        (report.noise_scale - 2.0).abs() < 1e-6,
        "{}",
        report.noise_scale
    );
    let agency = &report.tables[0];
    let keys: Vec<&str> = agency.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["fr-police", OTHER, UNVERIFIED]);
    let json: serde_json::Value = serde_json::from_str(&report.to_json())?;
    assert_eq!(json["tables"][2]["name"], "kind");
    assert!(report.to_text().contains("requests by agency and decision"));

    let log = config.open_audit()?;
    let entries = log.entries_between(now, now + chrono::Days::new(1))?;
    let audited = entries.last().context("the run was not audited")?;
    assert_eq!(audited.record.action, REPORT_ACTION);
    assert_eq!(audited.record.requester, "operator");
    assert!(
        audited.record.reason.contains("epsilon 2"),
        "{}",
        audited.record.reason
    );
    assert!(log.verify()?.is_ok());
    Ok(())
}

/// A minimal node config with a lookup policy.
fn write_config(dir: &Path) -> Result<PathBuf> {
    Ok(crate::testkit::write_minimal_node_config(
        dir,
        crate::testkit::LOOKUP_POLICY,
    )?)
}
