//! Tests of the statistics engine: shared fixtures and the 1,000,000-row benchmark.
//!
//! `aggregate` checks answers against counts computed here; `refusals` checks
//! rejected rows, refused queries, the CLI forms, the SQL text and catalog validation.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Result};
use datafusion::arrow::array::Int64Array;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

mod aggregate;
mod refusals;

const CATEGORIES: [&str; 8] = [
    "phishing",
    "ransomware",
    "fraud",
    "ddos",
    "data_breach",
    "malware",
    "insider",
    "other",
];
const SECTORS: [&str; 8] = [
    "finance",
    "health",
    "energy",
    "government",
    "retail",
    "telecom",
    "transport",
    "education",
];
const HEADER: &str = "incident_id,unit_id,date,category,sector,loss_eur,severity\n";

fn catalog(max_rows_per_unit: u32, loss_max: i64) -> TableCatalog {
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    TableCatalog {
        name: "incidents".to_owned(),
        privacy_unit: "unit_id".to_owned(),
        max_rows_per_unit,
        columns: vec![
            ColumnSpec::Identifier {
                name: "incident_id".to_owned(),
            },
            ColumnSpec::Identifier {
                name: "unit_id".to_owned(),
            },
            ColumnSpec::Date {
                name: "date".to_owned(),
                from: "2024-01-01".to_owned(),
                to: "2026-10-31".to_owned(),
            },
            ColumnSpec::Category {
                name: "category".to_owned(),
                values: strings(&CATEGORIES),
            },
            ColumnSpec::Category {
                name: "sector".to_owned(),
                values: strings(&SECTORS),
            },
            ColumnSpec::Integer {
                name: "loss_eur".to_owned(),
                min: 0,
                max: loss_max,
            },
            ColumnSpec::Integer {
                name: "severity".to_owned(),
                min: 1,
                max: 5,
            },
        ],
    }
}

#[derive(Clone)]
struct Row {
    unit: String,
    date: String,
    category: &'static str,
    sector: &'static str,
    loss: i64,
    severity: i64,
}

fn random_rows(n: usize, units: usize, categories: &[&'static str], seed: u64) -> Vec<Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| Row {
            unit: format!("u{}", rng.gen_range(0..units)),
            date: format!(
                "{}-{:02}-{:02}",
                rng.gen_range(2024..=2025),
                rng.gen_range(1..=12),
                rng.gen_range(1..=28)
            ),
            category: categories[rng.gen_range(0..categories.len())],
            sector: SECTORS[rng.gen_range(0..SECTORS.len())],
            loss: rng.gen_range(0..=10_000_000),
            severity: rng.gen_range(1..=5),
        })
        .collect()
}

fn csv_text(rows: &[Row]) -> String {
    let mut text = HEADER.to_owned();
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            text,
            "inc{i},{},{},{},{},{},{}",
            r.unit, r.date, r.category, r.sector, r.loss, r.severity
        );
    }
    text
}

/// Imports `csv` into a fresh directory and returns the engine over it.
fn engine_with(
    catalog: TableCatalog,
    csv: &str,
) -> Result<(tempfile::TempDir, StatsEngine, StatsImportReport)> {
    let dir = tempfile::tempdir()?;
    let report = import_table(&catalog, csv.as_bytes(), dir.path(), |_| {})?;
    let engine = StatsEngine::new(dir.path().to_path_buf(), vec![catalog]);
    Ok((dir, engine, report))
}

fn query(measure: &str, group_by: &str, filters: &[&str]) -> Result<StatsQuery> {
    Ok(StatsQuery {
        table: "incidents".to_owned(),
        measure: parse_measure(measure)?,
        group_by: parse_group_by(group_by)?,
        filters: filters
            .iter()
            .map(|f| parse_filter(f))
            .collect::<Result<_, _>>()?,
    })
}

fn counts(answer: &ExactAnswer) -> HashMap<Vec<String>, i64> {
    answer
        .groups
        .iter()
        .map(|g| (g.key.clone(), g.count))
        .collect()
}

fn expect_invalid(result: Result<ExactAnswer, StatsError>, needle: &str) -> Result<String> {
    match result {
        Err(StatsError::Invalid(reason)) if reason.contains(needle) => {
            assert_eq!(reason, reason.to_lowercase(), "reasons are lowercase");
            Ok(reason)
        }
        other => bail!("expected invalid({needle}), got {other:?}"),
    }
}

/// Benchmark: `cargo test -p fedq-node --lib stats::tests::million_rows -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: 1,000,000 rows"]
async fn million_rows_import_rate_and_query_latency() -> Result<()> {
    const ROWS: usize = 1_000_000;
    let csv = csv_text(&random_rows(ROWS, 200_000, &CATEGORIES, 9));
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let report = import_table(&catalog(5, 1_000_000), csv.as_bytes(), dir.path(), |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.imported, ROWS);
    println!(
        "import: {ROWS} rows ({} MB csv) in {seconds:.3} s = {:.0} rows/s",
        csv.len() >> 20,
        ROWS as f64 / seconds
    );
    let engine = StatsEngine::new(dir.path().to_path_buf(), vec![catalog(5, 1_000_000)]);
    let cases = [
        (
            "count by category,month",
            query("count", "category,month", &[])?,
        ),
        (
            "clamped sum by sector, filtered",
            query(
                "sum:loss_eur",
                "sector",
                &["date>=2025-01-01", "category=fraud"],
            )?,
        ),
    ];
    for (name, q) in &cases {
        let mut times = Vec::new();
        for _ in 0..7 {
            let started = Instant::now();
            let answer = engine.aggregate(q).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert!(!answer.groups.is_empty());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: median {:.1} ms, min {:.1} ms (7 runs, fresh session each)",
            times[3], times[0]
        );
    }
    Ok(())
}
