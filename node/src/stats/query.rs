//! Statistics queries: their types, the CLI forms, and the engine entry point.
//!
//! Validation (`plan`) turns a [`StatsQuery`] into a plan that holds only
//! catalog identifiers and typed values; user text never reaches the SQL (`sql`).

use std::path::PathBuf;

use super::catalog::TableCatalog;
use super::plan::{echo, invalid, plan, Plan};
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

/// A query validated against its table's catalog, ready to run.
#[derive(Debug)]
pub struct PlannedQuery {
    table: String,
    path: PathBuf,
    plan: Plan,
}

impl PlannedQuery {
    /// What bounds one privacy unit's influence on the answer.
    pub fn sensitivity(&self) -> Sensitivity {
        Sensitivity {
            per_row_bound: self.plan.per_row_bound,
            max_rows_per_unit: self.plan.bound,
        }
    }

    /// The SQL the query runs: catalog names quoted, every value a
    /// placeholder (the values are bound apart).
    pub fn sql(&self) -> String {
        sql::build(&self.plan).0
    }
}

/// The sensitivity inputs of a query, known before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sensitivity {
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
    pub async fn aggregate(&self, query: &StatsQuery) -> Result<ExactAnswer, StatsError> {
        self.run(&self.plan(query)?).await
    }

    /// Runs a planned query.
    #[tracing::instrument(skip_all, fields(table = %planned.table))]
    pub async fn run(&self, planned: &PlannedQuery) -> Result<ExactAnswer, StatsError> {
        let groups = sql::run(&planned.path, &planned.plan).await?;
        Ok(ExactAnswer {
            groups,
            per_row_bound: planned.plan.per_row_bound,
            max_rows_per_unit: planned.plan.bound,
        })
    }

    /// Validates `query` against its table's catalog and plans it; nothing
    /// is read from the table, so what bounds one privacy unit's influence
    /// ([`PlannedQuery::sensitivity`]) is known before the query runs.
    pub fn plan(&self, query: &StatsQuery) -> Result<PlannedQuery, StatsError> {
        let catalog = self.catalog(&query.table).ok_or_else(|| {
            invalid(&format!(
                "unknown table{}{}",
                echo(&query.table),
                fedq_proto::suggest::hint(
                    &query.table,
                    self.catalogs.iter().map(|c| c.name.as_str())
                )
            ))
        })?;
        // The SQL quotes catalog names without escaping: only validated names may reach it.
        catalog
            .validate()
            .map_err(|_| StatsError::Engine("the table's catalog is invalid".to_owned()))?;
        let plan = plan(catalog, query)?;
        let path = self.path(catalog);
        if !path.is_file() {
            return Err(StatsError::NotImported(catalog.name.clone()));
        }
        Ok(PlannedQuery {
            table: catalog.name.clone(),
            path,
            plan,
        })
    }

    fn catalog(&self, name: &str) -> Option<&TableCatalog> {
        self.catalogs.iter().find(|c| c.name == name)
    }

    fn path(&self, catalog: &TableCatalog) -> PathBuf {
        self.dir.join(format!("{}.parquet", catalog.name))
    }
}
