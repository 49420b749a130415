//! Rejected rows, refused queries, the CLI forms, the SQL text and catalog validation.

use super::*;
use crate::stats::plan::plan;

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
        &csv_text(&random_rows(100, 50, CATEGORIES, 6)),
    )?;
    let report = import_table(
        &catalog(5, 1_000),
        csv_text(&random_rows(7, 50, CATEGORIES, 7)).as_bytes(),
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
        &csv_text(&random_rows(50, 20, CATEGORIES, 8)),
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
        "unknown table (one of: incidents)",
        "the caller's text is not echoed; the catalog's names are"
    );
    unknown_table.table = "incidnets".to_owned();
    expect_invalid(
        engine.aggregate(&unknown_table).await,
        "unknown table incidnets; did you mean \"incidents\"? (one of: incidents)",
    )?;
    expect_invalid(
        engine.aggregate(&query("sum:salary", "", &[])?).await,
        "unknown column salary",
    )?;
    expect_invalid(
        engine.aggregate(&query("sum:los_eur", "", &[])?).await,
        "did you mean \"loss_eur\"?",
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
