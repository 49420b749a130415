//! The one SQL query behind an aggregate, its parameters, and the zero-filling of the public domain.
//!
//! The SQL text is built from catalog identifiers only (validated to
//! `[a-z][a-z0-9_]*`, then quoted); every value, catalog bounds included, is a
//! `$n` parameter, so no user text is ever parsed as SQL.

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use datafusion::scalar::ScalarValue;

use super::catalog::RANK_COLUMN;
use super::plan::{Clamped, KeyExpr, Plan};
use super::{GroupAggregate, StatsError};

/// The name the table's file is registered under in each fresh session.
const TABLE: &str = "t";

/// The SQL text and its positional parameters (`$1` is the contribution bound).
pub(super) fn build(plan: &Plan) -> (String, Vec<ScalarValue>) {
    let mut params = vec![ScalarValue::UInt32(Some(plan.bound))];
    let mut bind = |value: ScalarValue| {
        params.push(value);
        format!("${}", params.len())
    };
    let mut select: Vec<String> = Vec::new();
    for key in &plan.keys {
        select.push(match &key.expr {
            KeyExpr::Column(name) => quote(name),
            KeyExpr::Clamped(c) => clamp(c, &mut bind),
        });
    }
    select.push("COUNT(*)".to_owned());
    if let Some(c) = &plan.summed {
        select.push(format!("SUM({})", clamp(c, &mut bind)));
    }
    let mut conditions = vec![format!("{} <= $1", quote(RANK_COLUMN))];
    for (column, op, value) in &plan.filters {
        conditions.push(format!("{} {op} {}", quote(column), bind(value.clone())));
    }
    let mut sql = format!(
        "SELECT {} FROM {TABLE} WHERE {}",
        select.join(", "),
        conditions.join(" AND ")
    );
    if !plan.keys.is_empty() {
        let positions: Vec<String> = (1..=plan.keys.len()).map(|i| i.to_string()).collect();
        sql.push_str(&format!(" GROUP BY {}", positions.join(", ")));
    }
    (sql, params)
}

fn clamp(c: &Clamped, bind: &mut impl FnMut(ScalarValue) -> String) -> String {
    let (min, max) = (
        bind(ScalarValue::Int64(Some(c.min))),
        bind(ScalarValue::Int64(Some(c.max))),
    );
    format!("LEAST(GREATEST({}, {min}), {max})", quote(&c.column))
}

/// Quoted so that column names which are SQL keywords (`date`) stay identifiers.
fn quote(identifier: &str) -> String {
    format!("\"{identifier}\"")
}

/// Runs the plan on a fresh session over `path` and returns every domain group in order.
pub(super) async fn run(path: &Path, plan: &Plan) -> Result<Vec<GroupAggregate>, StatsError> {
    let (sql, params) = build(plan);
    tracing::debug!(sql = %sql, "statistics query");
    let ctx = SessionContext::new();
    let path = std::path::absolute(path)?;
    let path = path.to_str().ok_or_else(|| {
        StatsError::Engine("the statistics directory is not valid utf-8".to_owned())
    })?;
    ctx.register_parquet(TABLE, path, ParquetReadOptions::default())
        .await?;
    let read_only = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let batches = ctx
        .sql_with_options(&sql, read_only)
        .await?
        .with_param_values(params)?
        .collect()
        .await?;

    let width = plan.keys.len();
    let mut found: HashMap<Vec<String>, (i64, i64)> = HashMap::new();
    for batch in &batches {
        let keys = (0..width)
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        let counts = cast(batch.column(width), &DataType::Int64)?;
        let sums = match plan.summed {
            Some(_) => cast(batch.column(width + 1), &DataType::Int64)?,
            None => counts.clone(),
        };
        let (counts, sums) = (
            counts.as_primitive::<Int64Type>(),
            sums.as_primitive::<Int64Type>(),
        );
        for row in 0..batch.num_rows() {
            let key = keys
                .iter()
                .map(|k| k.as_string::<i32>().value(row).to_owned())
                .collect();
            // SUM is NULL only without rows, which a group cannot be; COUNT is never NULL.
            let sum = if sums.is_null(row) {
                0
            } else {
                sums.value(row)
            };
            found.insert(key, (counts.value(row), sum));
        }
    }
    fill(plan, found)
}

/// Lists the cross product of the key domains in order, taking found groups
/// and zeros elsewhere, so which groups have rows is not revealed.
fn fill(
    plan: &Plan,
    mut found: HashMap<Vec<String>, (i64, i64)>,
) -> Result<Vec<GroupAggregate>, StatsError> {
    let domains: Vec<&[String]> = plan.keys.iter().map(|k| k.domain.as_slice()).collect();
    if domains.iter().any(|d| d.is_empty()) {
        return Ok(Vec::new());
    }
    let mut groups = Vec::new();
    let mut at = vec![0usize; domains.len()];
    loop {
        let key: Vec<String> = at
            .iter()
            .zip(&domains)
            .map(|(&i, d)| d[i].clone())
            .collect();
        let (count, sum) = found.remove(&key).unwrap_or((0, 0));
        groups.push(GroupAggregate { key, count, sum });
        // Odometer: the last key varies fastest, matching domain order per key.
        let Some(pos) = (0..at.len()).rev().find(|&p| at[p] + 1 < domains[p].len()) else {
            break;
        };
        at[pos] += 1;
        at[pos + 1..].iter_mut().for_each(|i| *i = 0);
    }
    if !found.is_empty() {
        // Values outside the catalog's domain mean the catalog changed after import.
        return Err(StatsError::Engine(
            "the table holds values outside the catalog; re-import it".to_owned(),
        ));
    }
    Ok(groups)
}
