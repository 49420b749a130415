//! Exact answers against counts computed in the test: per category, bounding, zero groups, filters, clamping.

use super::*;

#[tokio::test]
async fn count_per_category_equals_the_exact_count() -> Result<()> {
    // 3,000 units for 2,000 rows with a bound of 10: bounding drops nothing here.
    let rows = random_rows(2_000, 3_000, CATEGORIES, 1);
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
    let mut rows = random_rows(200, 1_000_000, CATEGORIES, 2);
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
    let rows = random_rows(3_000, 10_000, CATEGORIES, 4);
    let (_dir, engine, _) = engine_with(catalog(10, 10_000_000), &csv_text(&rows))?;
    let filters = ["sector=finance", "date>=2025-03-01", "severity>=3"];
    let answer = engine
        .aggregate(&query("count", "category,date:month", &filters)?)
        .await?;
    let found = counts(&answer);
    for &category in CATEGORIES {
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
    let rows = random_rows(1_000, 5_000, CATEGORIES, 5);
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
