//! Statistics queries: the CLI forms, validation against the catalog, and the engine entry point.
//!
//! Validation turns a [`StatsQuery`] into a [`Plan`] that holds only catalog
//! identifiers and typed values; user text never reaches the SQL (see `sql`).

use std::path::PathBuf;

use datafusion::scalar::ScalarValue;

use super::catalog::{self, is_identifier, ColumnSpec, TableCatalog};
use super::{sql, StatsError};

/// Most group-by columns in a query: each one multiplies the groups (and the noise to add).
pub const MAX_GROUP_BY: usize = 2;
/// Largest integer histogram: one group per value.
pub const MAX_HISTOGRAM_BINS: i64 = 100;

/// What a query computes per group.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Bounded row count.
    Count,
    /// Sum of an integer column clamped to its bounds.
    Sum(String),
    /// Clamped sum and count, for a mean.
    Mean(String),
    /// Count per value of a category or small integer column.
    Histogram(String),
}

/// A grouping key.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupBy {
    /// A category column.
    Column(String),
    /// A date column's month; an empty name means the table's only date column.
    Month(String),
    /// A date column's year; an empty name means the table's only date column.
    Year(String),
}

/// A filter's comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A row filter, `column op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// Column name.
    pub column: String,
    /// Comparison.
    pub op: FilterOp,
    /// The value as typed; checked against the column's domain.
    pub value: String,
}

/// A statistics query before noise.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    /// Table name.
    pub table: String,
    /// What to compute.
    pub measure: Measure,
    /// At most [`MAX_GROUP_BY`] keys.
    pub group_by: Vec<GroupBy>,
    /// Conjunctive filters.
    pub filters: Vec<Filter>,
}

/// One group of an exact answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAggregate {
    /// Group-by values in query order, then the histogram value if any.
    pub key: Vec<String>,
    /// Bounded row count.
    pub count: i64,
    /// Clamped sum (equal to `count` for counts and histograms).
    pub sum: i64,
}

/// The exact bounded aggregate of every group of the public domain, in domain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactAnswer {
    /// Every group, zeros included.
    pub groups: Vec<GroupAggregate>,
    /// Largest |clamped value| of one row (1 for counts).
    pub per_row_bound: i64,
    /// Most rows one unit contributes.
    pub max_rows_per_unit: u32,
}

/// Parses `count`, `sum:<col>`, `mean:<col>` or `histogram:<col>`.
pub fn parse_measure(s: &str) -> Result<Measure, StatsError> {
    let s = s.trim();
    if s == "count" {
        return Ok(Measure::Count);
    }
    let bad =
        || invalid("unknown measure; use count, sum:<column>, mean:<column> or histogram:<column>");
    let (kind, column) = s.split_once(':').ok_or_else(bad)?;
    let column = column.trim().to_owned();
    match kind.trim() {
        "sum" => Ok(Measure::Sum(column)),
        "mean" => Ok(Measure::Mean(column)),
        "histogram" => Ok(Measure::Histogram(column)),
        _ => Err(bad()),
    }
}

/// Parses a comma-separated group-by list: `<category>`, `month`, `year`, `<date>:month`, `<date>:year`.
pub fn parse_group_by(s: &str) -> Result<Vec<GroupBy>, StatsError> {
    let mut keys = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        keys.push(match item.split_once(':') {
            None if item == "month" => GroupBy::Month(String::new()),
            None if item == "year" => GroupBy::Year(String::new()),
            None => GroupBy::Column(item.to_owned()),
            Some((date, "month")) => GroupBy::Month(date.trim().to_owned()),
            Some((date, "year")) => GroupBy::Year(date.trim().to_owned()),
            Some(_) => {
                return Err(invalid(
                    "a group-by item is <column>, month, year, <date>:month or <date>:year",
                ))
            }
        });
    }
    if keys.len() > MAX_GROUP_BY {
        return Err(invalid(&format!("at most {MAX_GROUP_BY} group-by columns")));
    }
    Ok(keys)
}

/// Parses `<column><op><value>` with op one of `=`, `!=`, `<`, `<=`, `>`, `>=`.
pub fn parse_filter(s: &str) -> Result<Filter, StatsError> {
    let bad = || invalid("a filter is <column><op><value> with op =, !=, <, <=, > or >=");
    let at = s.find(['=', '!', '<', '>']).ok_or_else(bad)?;
    let (column, rest) = s.split_at(at);
    let (op, len) = match rest.as_bytes() {
        [b'>', b'=', ..] => (FilterOp::Ge, 2),
        [b'<', b'=', ..] => (FilterOp::Le, 2),
        [b'!', b'=', ..] => (FilterOp::Ne, 2),
        [b'>', ..] => (FilterOp::Gt, 1),
        [b'<', ..] => (FilterOp::Lt, 1),
        [b'=', ..] => (FilterOp::Eq, 1),
        _ => return Err(bad()),
    };
    let (column, value) = (column.trim(), rest[len..].trim());
    if column.is_empty() || value.is_empty() {
        return Err(bad());
    }
    Ok(Filter {
        column: column.to_owned(),
        op,
        value: value.to_owned(),
    })
}

/// Runs exact bounded aggregates over the imported tables.
#[derive(Debug, Clone)]
pub struct StatsEngine {
    dir: PathBuf,
    catalogs: Vec<TableCatalog>,
}

impl StatsEngine {
    /// An engine over the Parquet files in `dir`.
    pub fn new(dir: PathBuf, catalogs: Vec<TableCatalog>) -> Self {
        Self { dir, catalogs }
    }

    /// The catalogs served.
    pub fn catalogs(&self) -> &[TableCatalog] {
        &self.catalogs
    }

    /// Whether a catalog table has been imported.
    pub fn has_table(&self, name: &str) -> bool {
        self.catalog(name).is_some_and(|c| self.path(c).is_file())
    }

    /// Validates `query`, runs it as one parameterised SQL query and fills empty groups with zeros.
    #[tracing::instrument(skip_all, fields(table = %query.table))]
    pub async fn aggregate(&self, query: &StatsQuery) -> Result<ExactAnswer, StatsError> {
        let catalog = self
            .catalog(&query.table)
            .ok_or_else(|| invalid(&format!("unknown table{}", echo(&query.table))))?;
        // The SQL quotes catalog names without escaping: only validated names may reach it.
        catalog
            .validate()
            .map_err(|_| StatsError::Engine("the table's catalog is invalid".to_owned()))?;
        let plan = plan(catalog, query)?;
        let path = self.path(catalog);
        if !path.is_file() {
            return Err(StatsError::NotImported(catalog.name.clone()));
        }
        let groups = sql::run(&path, &plan).await?;
        Ok(ExactAnswer {
            groups,
            per_row_bound: plan.per_row_bound,
            max_rows_per_unit: plan.bound,
        })
    }

    fn catalog(&self, name: &str) -> Option<&TableCatalog> {
        self.catalogs.iter().find(|c| c.name == name)
    }

    fn path(&self, catalog: &TableCatalog) -> PathBuf {
        self.dir.join(format!("{}.parquet", catalog.name))
    }
}

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
    catalog
        .column(name)
        .ok_or_else(|| invalid(&format!("unknown column{}", echo(name))))
}

/// Echoes a name back only when it is a short lowercase identifier, so errors
/// never carry arbitrary user text.
fn echo(name: &str) -> String {
    if is_identifier(name) {
        format!(" {name}")
    } else {
        String::new()
    }
}

fn invalid(reason: &str) -> StatsError {
    StatsError::Invalid(reason.to_owned())
}
