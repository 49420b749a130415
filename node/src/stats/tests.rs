//! Tests of the statistics engine: import, bounding, zero-filled groups, filters, clamping and refusals.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{bail, Result};
use datafusion::arrow::array::Int64Array;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::query::plan;
use super::*;

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

#[tokio::test]
async fn count_per_category_equals_the_exact_count() -> Result<()> {
    // 3,000 units for 2,000 rows with a bound of 10: bounding drops nothing here.
    let rows = random_rows(2_000, 3_000, &CATEGORIES, 1);
    let (_dir, engine, report) = engine_with(catalog(10, 10_000_000), &csv_text(&rows))?;
    assert_eq!(
        (report.rows, report.imported, report.rejected.len()),
        (2_000, 2_000, 0)
    );
    assert!(engine.has_table("incidents") && !engine.has_table("other"));
    let answer = engine.aggregate(&query("count", "category", &[])?).await?;
    let keys: Vec<&str> = answer.groups.iter().map(|g| g.key[0].as_str()).collect();
    assert_eq!(keys, CATEGORIES, "groups follow the declared domain order");
    for group in &answer.groups {
        let exact = rows.iter().filter(|r| r.category == group.key[0]).count() as i64;
        assert_eq!((group.count, group.sum), (exact, exact));
    }
    assert_eq!((answer.per_row_bound, answer.max_rows_per_unit), (1, 10));
    Ok(())
}

#[tokio::test]
async fn a_unit_with_1000_rows_counts_at_most_its_bound() -> Result<()> {
    let mut rows = random_rows(200, 1_000_000, &CATEGORIES, 2);
    let heavy = Row {
        unit: "heavy".to_owned(),
        ..rows[0].clone()
    };
    rows.extend(std::iter::repeat_n(heavy.clone(), 1_000));
    let light_total = 200 - rows[..200].iter().filter(|r| r.unit == "heavy").count() as i64;
    let (dir, engine, _) = engine_with(catalog(3, 10_000_000), &csv_text(&rows))?;
    let answer = engine.aggregate(&query("count", "", &[])?).await?;
    assert_eq!(answer.groups.len(), 1);
    assert_eq!(answer.groups[0].count, light_total + 3);
    let by_category = counts(&engine.aggregate(&query("count", "category", &[])?).await?);
    let exact = rows[..200]
        .iter()
        .filter(|r| r.category == heavy.category)
        .count() as i64;
    assert_eq!(by_category[&vec![heavy.category.to_owned()]], exact + 3);

    // The stored ranks of every unit are a permutation of 1..=n.
    let ctx = SessionContext::new();
    let path = dir.path().join("incidents.parquet");
    ctx.register_parquet(
        "t",
        path.to_str().unwrap_or_default(),
        ParquetReadOptions::default(),
    )
    .await?;
    let sql = "SELECT SUM(a), SUM(b) FROM (SELECT COUNT(*) - COUNT(DISTINCT fedq_rank) AS a, \
               CAST(MIN(fedq_rank) <> 1 OR MAX(fedq_rank) <> COUNT(*) AS BIGINT) AS b FROM t GROUP BY unit_id)";
    let batches = ctx.sql(sql).await?.collect().await?;
    let column = |i: usize| {
        batches[0]
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.value(0))
    };
    assert_eq!(
        (column(0), column(1)),
        (Some(0), Some(0)),
        "ranks are 1..=n within each unit"
    );
    Ok(())
}

#[tokio::test]
async fn an_empty_group_appears_with_zero() -> Result<()> {
    let without_insider: Vec<&'static str> = CATEGORIES
        .iter()
        .copied()
        .filter(|c| *c != "insider")
        .collect();
    let rows = random_rows(500, 1_000, &without_insider, 3);
    let (_dir, engine, _) = engine_with(catalog(5, 10_000_000), &csv_text(&rows))?;
    let answer = engine
        .aggregate(&query("count", "category,year", &[])?)
        .await?;
    assert_eq!(
        answer.groups.len(),
        8 * 3,
        "8 categories by the years 2024..=2026"
    );
    let found = counts(&answer);
    assert_eq!(found[&vec!["insider".to_owned(), "2025".to_owned()]], 0);
    assert_eq!(
        found[&vec!["fraud".to_owned(), "2026".to_owned()]],
        0,
        "no rows in 2026"
    );
    assert_eq!(answer.groups.iter().map(|g| g.count).sum::<i64>(), 500);
    let months = engine.aggregate(&query("count", "month", &[])?).await?;
    assert_eq!(months.groups.len(), 34, "2024-01 to 2026-10");
    assert_eq!(
        (
            months.groups[0].key[0].as_str(),
            months.groups[33].key[0].as_str()
        ),
        ("2024-01", "2026-10")
    );
    Ok(())
}

#[tokio::test]
async fn filters_select_the_expected_rows() -> Result<()> {
    let rows = random_rows(3_000, 10_000, &CATEGORIES, 4);
    let (_dir, engine, _) = engine_with(catalog(10, 10_000_000), &csv_text(&rows))?;
    let filters = ["sector=finance", "date>=2025-03-01", "severity>=3"];
    let answer = engine
        .aggregate(&query("count", "category,date:month", &filters)?)
        .await?;
    let found = counts(&answer);
    for category in CATEGORIES {
        let expected = rows
            .iter()
            .filter(|r| {
                r.category == category
                    && r.sector == "finance"
                    && r.date.as_str() >= "2025-03-01"
                    && r.severity >= 3
            })
            .filter(|r| r.date.starts_with("2025-07"))
            .count() as i64;
        assert_eq!(
            found[&vec![category.to_owned(), "2025-07".to_owned()]],
            expected
        );
    }
    let total = engine
        .aggregate(&query(
            "count",
            "",
            &["sector!=finance", "date<2025-01-01"],
        )?)
        .await?;
    let expected = rows
        .iter()
        .filter(|r| r.sector != "finance" && r.date.as_str() < "2025-01-01")
        .count() as i64;
    assert_eq!(total.groups[0].count, expected);
    Ok(())
}

#[tokio::test]
async fn sums_and_histograms_clamp_values() -> Result<()> {
    let rows = random_rows(1_000, 5_000, &CATEGORIES, 5);
    let (_dir, engine, _) = engine_with(catalog(10, 1_000_000), &csv_text(&rows))?;
    let answer = engine
        .aggregate(&query("sum:loss_eur", "sector", &[])?)
        .await?;
    assert_eq!(answer.per_row_bound, 1_000_000);
    for group in &answer.groups {
        let members = rows.iter().filter(|r| r.sector == group.key[0]);
        let exact: i64 = members.clone().map(|r| r.loss.clamp(0, 1_000_000)).sum();
        assert_eq!((group.sum, group.count), (exact, members.count() as i64));
    }
    let mean = engine
        .aggregate(&query("mean:loss_eur", "", &["loss_eur<500000"])?)
        .await?;
    let kept: Vec<i64> = rows
        .iter()
        .map(|r| r.loss)
        .filter(|l| *l < 500_000)
        .collect();
    assert_eq!(
        (mean.groups[0].count, mean.groups[0].sum),
        (kept.len() as i64, kept.iter().sum())
    );
    let histogram = engine
        .aggregate(&query("histogram:severity", "", &[])?)
        .await?;
    let keys: Vec<&str> = histogram.groups.iter().map(|g| g.key[0].as_str()).collect();
    assert_eq!(keys, ["1", "2", "3", "4", "5"]);
    for group in &histogram.groups {
        let exact = rows
            .iter()
            .filter(|r| r.severity.to_string() == group.key[0])
            .count() as i64;
        assert_eq!((group.count, group.sum), (exact, exact));
    }
    Ok(())
}

#[tokio::test]
async fn invalid_rows_are_rejected_with_line_numbers() -> Result<()> {
    let csv = format!(
        "{HEADER}i1,u1,2024-05-01,fraud,retail,10,3\n\
         i2,u1,2024-13-01,fraud,retail,10,3\n\
         i3,u2,2024-05-01,secret_category,retail,10,3\n\
         i4,u2,2024-05-01,fraud,retail,ten,3\n\
         i5,,2024-05-01,fraud,retail,10,3\n\
         i6,u3,2027-01-01,fraud,retail,10,3\n\
         i7,u3,2024-05-01,fraud\n\
         i8,u3,2024-06-01,ddos,health,-5,1\n"
    );
    let (_dir, engine, report) = engine_with(catalog(5, 1_000), &csv)?;
    assert_eq!((report.rows, report.imported), (8, 2));
    let lines: Vec<u64> = report.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
    let reasons: Vec<&str> = report.rejected.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons[0], "column date: not a date (yyyy-mm-dd)");
    assert_eq!(reasons[1], "column category: value outside the domain");
    assert_eq!(reasons[2], "column loss_eur: not an integer");
    assert_eq!(reasons[3], "column unit_id: missing privacy unit");
    assert_eq!(reasons[4], "column date: outside [2024-01-01, 2026-10-31]");
    assert_eq!(reasons[5], "expected 7 fields, found 4");
    assert!(
        reasons
            .iter()
            .all(|r| !r.contains("secret") && !r.contains("ten")),
        "reasons never hold values"
    );
    // Stored unclamped (-5), clamped to 0 at query time.
    let sum = engine.aggregate(&query("sum:loss_eur", "", &[])?).await?;
    assert_eq!((sum.groups[0].count, sum.groups[0].sum), (2, 10));
    Ok(())
}

#[tokio::test]
async fn reimporting_replaces_the_table() -> Result<()> {
    let (dir, engine, _) = engine_with(
        catalog(5, 1_000),
        &csv_text(&random_rows(100, 50, &CATEGORIES, 6)),
    )?;
    let report = import_table(
        &catalog(5, 1_000),
        csv_text(&random_rows(7, 50, &CATEGORIES, 7)).as_bytes(),
        dir.path(),
        |_| {},
    )?;
    assert_eq!(report.imported, 7);
    assert_eq!(
        engine.aggregate(&query("count", "", &[])?).await?.groups[0].count,
        7
    );
    let leftovers = std::fs::read_dir(dir.path())?.count();
    assert_eq!(leftovers, 1, "no temporary files remain");
    let missing = import_table(
        &catalog(5, 1_000),
        "incident_id,unit_id\n".as_bytes(),
        dir.path(),
        |_| {},
    );
    assert!(
        matches!(missing, Err(StatsError::Invalid(r)) if r == "the csv header lacks column date")
    );
    Ok(())
}

#[tokio::test]
async fn bad_queries_are_refused_with_a_reason() -> Result<()> {
    let (_dir, engine, _) = engine_with(
        catalog(5, 1_000),
        &csv_text(&random_rows(50, 20, &CATEGORIES, 8)),
    )?;
    let mut unknown_table = query("count", "", &[])?;
    unknown_table.table = "people".to_owned();
    expect_invalid(
        engine.aggregate(&unknown_table).await,
        "unknown table people",
    )?;
    unknown_table.table = "DROP TABLE t; --".to_owned();
    assert_eq!(
        expect_invalid(engine.aggregate(&unknown_table).await, "unknown table")?,
        "unknown table"
    );
    expect_invalid(
        engine.aggregate(&query("sum:salary", "", &[])?).await,
        "unknown column salary",
    )?;
    expect_invalid(
        engine.aggregate(&query("count", "unit_id", &[])?).await,
        "column unit_id: only category",
    )?;
    expect_invalid(
        engine
            .aggregate(&query("count", "", &["unit_id=u1"])?)
            .await,
        "column unit_id: not filterable",
    )?;
    let reason = expect_invalid(
        engine
            .aggregate(&query("count", "", &["sector=banking"])?)
            .await,
        "column sector",
    )?;
    assert!(!reason.contains("banking"), "the value is not echoed");
    expect_invalid(
        engine.aggregate(&query("sum:sector", "", &[])?).await,
        "integer column",
    )?;
    expect_invalid(
        engine
            .aggregate(&query("histogram:loss_eur", "", &[])?)
            .await,
        "at most 100",
    )?;
    expect_invalid(
        engine
            .aggregate(&query("count", "", &["date>=2023-12-31"])?)
            .await,
        "column date",
    )?;
    expect_invalid(
        engine
            .aggregate(&query("count", "", &["severity<x"])?)
            .await,
        "not an integer",
    )?;
    expect_invalid(
        engine
            .aggregate(&query("count", "category,category", &[])?)
            .await,
        "grouped twice",
    )?;
    let mut three = query("count", "category,sector", &[])?;
    three.group_by.push(GroupBy::Year(String::new()));
    expect_invalid(engine.aggregate(&three).await, "at most 2")?;
    assert!(
        matches!(parse_group_by("category,sector,month"), Err(StatsError::Invalid(r)) if r.contains("at most 2"))
    );
    assert!(
        matches!(parse_measure("median:loss_eur"), Err(StatsError::Invalid(r)) if r.starts_with("unknown measure"))
    );
    let absent = StatsEngine::new(
        std::env::temp_dir().join("fedq-stats-none"),
        vec![catalog(5, 1_000)],
    );
    assert!(
        matches!(absent.aggregate(&query("count", "", &[])?).await, Err(StatsError::NotImported(t)) if t == "incidents")
    );
    Ok(())
}

#[test]
fn cli_forms_parse() -> Result<()> {
    assert_eq!(
        parse_measure(" histogram:severity ")?,
        Measure::Histogram("severity".to_owned())
    );
    assert_eq!(
        parse_group_by(" month,opened:year")?,
        vec![
            GroupBy::Month(String::new()),
            GroupBy::Year("opened".to_owned())
        ]
    );
    assert_eq!(
        parse_group_by("category,")?,
        vec![GroupBy::Column("category".to_owned())]
    );
    assert!(parse_group_by("date:week").is_err());
    assert_eq!(parse_group_by("")?, Vec::<GroupBy>::new());
    let filter = parse_filter("date>=2025-01-01")?;
    assert_eq!(
        (filter.column.as_str(), &filter.op, filter.value.as_str()),
        ("date", &FilterOp::Ge, "2025-01-01")
    );
    assert_eq!(parse_filter("loss_eur<1000")?.op, FilterOp::Lt);
    assert_eq!(
        parse_filter("sector != finance")?,
        Filter {
            column: "sector".into(),
            op: FilterOp::Ne,
            value: "finance".into()
        }
    );
    assert!(
        parse_filter("sector").is_err()
            && parse_filter("=x").is_err()
            && parse_filter("a=").is_err()
    );
    Ok(())
}

#[test]
fn the_sql_holds_only_catalog_names_and_placeholders() -> Result<()> {
    let plan = plan(
        &catalog(3, 1_000),
        &query(
            "sum:loss_eur",
            "category,month",
            &["sector=finance", "date>=2025-01-01"],
        )?,
    )?;
    let (sql, params) = super::sql::build(&plan);
    assert_eq!(
        sql,
        "SELECT \"category\", \"date_month\", COUNT(*), SUM(LEAST(GREATEST(\"loss_eur\", $2), $3)) FROM t \
         WHERE \"fedq_rank\" <= $1 AND \"sector\" = $4 AND \"date\" >= $5 GROUP BY 1, 2"
    );
    assert_eq!(params.len(), 5);
    Ok(())
}

#[test]
fn catalog_validation_reports_every_problem() -> Result<()> {
    let text = r#"
        name = "incidents"
        privacy_unit = "unit_id"
        max_rows_per_unit = 0
        columns = [
            { type = "identifier", name = "unit_id" },
            { type = "date", name = "date", from = "2024-01-01", to = "2023-01-01" },
            { type = "category", name = "category", values = [] },
            { type = "integer", name = "date_month", min = 5, max = 1 },
            { type = "category", name = "Sector", values = ["a", "a"] },
        ]
    "#;
    let bad: TableCatalog = toml::from_str(text)?;
    let problems = bad.validate().err().unwrap_or_default();
    let expected = [
        "max_rows_per_unit: must be at least 1",
        "columns[1].to: before from",
        "columns[2].values: empty domain",
        "columns[3].name: date_month is already taken",
        "columns[3].max: less than min",
        "columns[4].values[1]: duplicate value",
    ];
    for e in expected {
        assert!(
            problems.iter().any(|p| p == e),
            "missing {e:?} in {problems:?}"
        );
    }
    assert!(problems
        .iter()
        .any(|p| p.starts_with("columns[4].name: must be")));
    assert!(catalog(3, 10).validate().is_ok());
    let unknown_field = text.replace(
        "max_rows_per_unit = 0",
        "max_rows_per_unit = 1\nepsilon = 1",
    );
    assert!(
        toml::from_str::<TableCatalog>(&unknown_field).is_err(),
        "unknown fields are refused"
    );
    Ok(())
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
