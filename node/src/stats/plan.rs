//! Validation of a query against its table's catalog, into a plan of catalog names, typed values and domains.
//!
//! Errors name catalog columns only; user text is echoed only when it is a
//! short lowercase identifier, and filter values never.

use datafusion::scalar::ScalarValue;

use super::catalog::{self, is_identifier, ColumnSpec, TableCatalog};
use super::query::{
    Filter, FilterOp, GroupBy, Measure, StatsQuery, MAX_GROUP_BY, MAX_HISTOGRAM_BINS,
};
use super::StatsError;

/// A validated query: catalog identifiers, typed values and each key's public domain.
#[derive(Debug)]
pub(super) struct Plan {
    /// Group-by keys, then the histogram key.
    pub(super) keys: Vec<Key>,
    /// The clamped column summed, for sums and means.
    pub(super) summed: Option<Clamped>,
    pub(super) filters: Vec<(String, &'static str, ScalarValue)>,
    pub(super) bound: u32,
    pub(super) per_row_bound: i64,
}

/// A grouping expression and its domain in answer order.
#[derive(Debug)]
pub(super) struct Key {
    pub(super) expr: KeyExpr,
    pub(super) domain: Vec<String>,
}

#[derive(Debug)]
pub(super) enum KeyExpr {
    Column(String),
    Clamped(Clamped),
}

/// An integer column clamped to its catalog bounds.
#[derive(Debug, Clone)]
pub(super) struct Clamped {
    pub(super) column: String,
    pub(super) min: i64,
    pub(super) max: i64,
}

pub(super) fn plan(catalog: &TableCatalog, query: &StatsQuery) -> Result<Plan, StatsError> {
    if query.group_by.len() > MAX_GROUP_BY {
        return Err(invalid(&format!("at most {MAX_GROUP_BY} group-by columns")));
    }
    let mut keys = Vec::new();
    for group in &query.group_by {
        keys.push(group_key(catalog, group)?);
    }
    let (mut summed, mut per_row_bound) = (None, 1);
    match &query.measure {
        Measure::Count => {}
        Measure::Sum(name) | Measure::Mean(name) => match column(catalog, name)? {
            ColumnSpec::Integer { name, min, max } => {
                per_row_bound =
                    i64::try_from(min.unsigned_abs().max(max.unsigned_abs())).unwrap_or(i64::MAX);
                summed = Some(Clamped {
                    column: name.clone(),
                    min: *min,
                    max: *max,
                });
            }
            c => {
                return Err(invalid(&format!(
                    "column {}: sum and mean need an integer column",
                    c.name()
                )))
            }
        },
        Measure::Histogram(name) => keys.push(histogram_key(column(catalog, name)?)?),
    }
    for (i, key) in keys.iter().enumerate() {
        if keys[..i].iter().any(|k| k.expr.name() == key.expr.name()) {
            return Err(invalid(&format!(
                "column {}: grouped twice",
                key.expr.name()
            )));
        }
    }
    let mut filters = Vec::new();
    for filter in &query.filters {
        filters.push(typed_filter(catalog, filter)?);
    }
    Ok(Plan {
        keys,
        summed,
        filters,
        bound: catalog.max_rows_per_unit,
        per_row_bound,
    })
}

impl KeyExpr {
    pub(super) fn name(&self) -> &str {
        match self {
            Self::Column(name) => name,
            Self::Clamped(c) => &c.column,
        }
    }
}

fn group_key(catalog: &TableCatalog, group: &GroupBy) -> Result<Key, StatsError> {
    let (date, by_month) = match group {
        GroupBy::Column(name) => {
            return match column(catalog, name)? {
                ColumnSpec::Category { name, values } => Ok(Key {
                    expr: KeyExpr::Column(name.clone()),
                    domain: values.clone(),
                }),
                c => Err(invalid(&format!(
                    "column {}: only category columns can be grouped by",
                    c.name()
                ))),
            };
        }
        GroupBy::Month(name) => (name, true),
        GroupBy::Year(name) => (name, false),
    };
    let spec = if date.is_empty() {
        only_date_column(catalog)?
    } else {
        column(catalog, date)?
    };
    let ColumnSpec::Date { name, from, to } = spec else {
        return Err(invalid(&format!(
            "column {}: month and year need a date column",
            spec.name()
        )));
    };
    let bad_catalog = || StatsError::Engine(format!("catalog date bounds of {name} are invalid"));
    let (from, to) = (
        catalog::parse_date(from).ok_or_else(bad_catalog)?,
        catalog::parse_date(to).ok_or_else(bad_catalog)?,
    );
    Ok(if by_month {
        Key {
            expr: KeyExpr::Column(catalog::month_column(name)),
            domain: catalog::months_between(from, to),
        }
    } else {
        let years = chrono::Datelike::year(&from)..=chrono::Datelike::year(&to);
        Key {
            expr: KeyExpr::Column(catalog::year_column(name)),
            domain: years.map(|y| y.to_string()).collect(),
        }
    })
}

fn only_date_column(catalog: &TableCatalog) -> Result<&ColumnSpec, StatsError> {
    let mut dates = catalog.date_columns();
    match (dates.next(), dates.next()) {
        (Some(date), None) => Ok(date),
        (None, _) => Err(invalid(
            "the table has no date column to group by month or year",
        )),
        (Some(_), Some(_)) => Err(invalid(
            "the table has several date columns; use <date>:month or <date>:year",
        )),
    }
}

fn histogram_key(spec: &ColumnSpec) -> Result<Key, StatsError> {
    match spec {
        ColumnSpec::Category { name, values } => Ok(Key {
            expr: KeyExpr::Column(name.clone()),
            domain: values.clone(),
        }),
        ColumnSpec::Integer { name, min, max }
            if i128::from(*max) - i128::from(*min) < i128::from(MAX_HISTOGRAM_BINS) =>
        {
            let clamped = Clamped {
                column: name.clone(),
                min: *min,
                max: *max,
            };
            Ok(Key {
                expr: KeyExpr::Clamped(clamped),
                domain: (*min..=*max).map(|v| v.to_string()).collect(),
            })
        }
        ColumnSpec::Integer { name, .. } => Err(invalid(&format!(
            "column {name}: a histogram needs at most {MAX_HISTOGRAM_BINS} integer values"
        ))),
        c => Err(invalid(&format!(
            "column {}: a histogram needs a category or integer column",
            c.name()
        ))),
    }
}

fn typed_filter(
    catalog: &TableCatalog,
    filter: &Filter,
) -> Result<(String, &'static str, ScalarValue), StatsError> {
    let spec = column(catalog, &filter.column)?;
    let name = spec.name();
    let op = match filter.op {
        FilterOp::Eq => "=",
        FilterOp::Ne => "!=",
        FilterOp::Lt => "<",
        FilterOp::Le => "<=",
        FilterOp::Gt => ">",
        FilterOp::Ge => ">=",
    };
    let value = match spec {
        ColumnSpec::Category { values, .. } => {
            if !matches!(filter.op, FilterOp::Eq | FilterOp::Ne) {
                return Err(invalid(&format!(
                    "column {name}: category filters use = or !="
                )));
            }
            let value = values.iter().find(|v| **v == filter.value);
            let value = value
                .ok_or_else(|| invalid(&format!("column {name}: value outside the domain")))?;
            ScalarValue::Utf8(Some(value.clone()))
        }
        ColumnSpec::Date { from, to, .. } => {
            if filter.op == FilterOp::Ne {
                return Err(invalid(&format!(
                    "column {name}: date filters use =, <, <=, > or >="
                )));
            }
            let date = catalog::parse_date(&filter.value).ok_or_else(|| {
                invalid(&format!(
                    "column {name}: filter value is not a date (yyyy-mm-dd)"
                ))
            })?;
            let inside = catalog::parse_date(from).is_some_and(|f| f <= date)
                && catalog::parse_date(to).is_some_and(|t| date <= t);
            if !inside {
                return Err(invalid(&format!(
                    "column {name}: filter date outside [{from}, {to}]"
                )));
            }
            ScalarValue::Date32(Some(catalog::date32(date)))
        }
        ColumnSpec::Integer { min, max, .. } => {
            let value: i64 = filter
                .value
                .parse()
                .map_err(|_| invalid(&format!("column {name}: filter value is not an integer")))?;
            if value < *min || value > *max {
                return Err(invalid(&format!(
                    "column {name}: filter value outside [{min}, {max}]"
                )));
            }
            ScalarValue::Int64(Some(value))
        }
        ColumnSpec::Identifier { .. } => {
            return Err(invalid(&format!("column {name}: not filterable")))
        }
    };
    Ok((name.to_owned(), op, value))
}

fn column<'a>(catalog: &'a TableCatalog, name: &str) -> Result<&'a ColumnSpec, StatsError> {
    catalog.column(name).ok_or_else(|| {
        invalid(&format!(
            "unknown column{}{}",
            echo(name),
            fedq_proto::suggest::hint(name, catalog.columns.iter().map(ColumnSpec::name))
        ))
    })
}

/// Echoes a name back only when it is a short lowercase identifier, so errors
/// never carry arbitrary user text.
pub(super) fn echo(name: &str) -> String {
    if is_identifier(name) {
        format!(" {name}")
    } else {
        String::new()
    }
}

pub(super) fn invalid(reason: &str) -> StatsError {
    StatsError::Invalid(reason.to_owned())
}
