//! Tests of the statistics engine and their shared fixtures (timings are in
//! `fedq-bench stats`).
//!
//! `aggregate` checks answers against counts computed here; `refusals` checks
//! rejected rows, refused queries, the CLI forms, the SQL text and catalog validation.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use datafusion::arrow::array::Int64Array;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

mod aggregate;
mod refusals;

use fedq_proto::demo::{CATEGORIES, SECTORS};

const HEADER: &str = "incident_id,unit_id,date,category,sector,loss_eur,severity\n";

/// The demo catalog with its date range ending where `random_rows` could
/// reach, and the bounds under test.
fn catalog(max_rows_per_unit: u32, loss_max: i64) -> TableCatalog {
    let mut catalog = fedq_proto::demo::incidents_catalog();
    catalog.max_rows_per_unit = max_rows_per_unit;
    for column in &mut catalog.columns {
        match column {
            ColumnSpec::Date { to, .. } => "2026-10-31".clone_into(to),
            ColumnSpec::Integer { name, max, .. } if name == "loss_eur" => *max = loss_max,
            _ => {}
        }
    }
    catalog
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

/// Rows within the bound sit in row groups of their own, first, so the rank
/// filter can skip the others by their statistics alone.
#[test]
fn rows_within_the_bound_are_written_first_in_their_own_row_groups() -> Result<()> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use datafusion::parquet::file::statistics::Statistics;

    const BOUND: u32 = 4;
    // 300 units with 50 rows each: 1,200 rows within the bound, 13,800 beyond.
    let rows: Vec<Row> = (0..15_000)
        .map(|i| Row {
            unit: format!("u{}", i % 300),
            ..random_rows(1, 1, CATEGORIES, i as u64)[0].clone()
        })
        .collect();
    let (dir, _engine, report) = engine_with(catalog(BOUND, 10_000_000), &csv_text(&rows))?;
    assert_eq!(report.imported, rows.len());
    let reader =
        SerializedFileReader::new(std::fs::File::open(dir.path().join("incidents.parquet"))?)?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let rank = (0..schema.num_columns())
        .find(|&i| schema.column(i).name() == catalog::RANK_COLUMN)
        .ok_or_else(|| anyhow::anyhow!("no rank column"))?;
    let mut ranges = Vec::new();
    for group in metadata.row_groups() {
        let Some(Statistics::Int32(stats)) = group.column(rank).statistics() else {
            bail!("row group without rank statistics");
        };
        let (min, max) = (
            stats.min_opt().copied().unwrap_or_default() as u32,
            stats.max_opt().copied().unwrap_or_default() as u32,
        );
        ranges.push((min, max, group.num_rows()));
    }
    let within: i64 = ranges
        .iter()
        .filter(|(_, max, _)| *max <= BOUND)
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(within, 300 * i64::from(BOUND), "{ranges:?}");
    assert!(ranges[0].1 <= BOUND, "{ranges:?}");
    assert!(
        ranges
            .iter()
            .all(|(min, max, _)| *max <= BOUND || *min > BOUND),
        "no row group mixes the two parts: {ranges:?}"
    );
    Ok(())
}
