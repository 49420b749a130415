//! The statistics catalog (`[[catalog]]` in `node.toml`): public schema, domains and bounds of each table.
//!
//! Everything a query may reveal about a table's shape is here, so an answer's
//! groups depend on the catalog only, never on the data.

use chrono::{Datelike, NaiveDate};

/// The column every imported table gains: a row's random rank within its privacy unit.
pub const RANK_COLUMN: &str = "fedq_rank";
/// Longest table or column name: names are echoed in errors, so they stay short.
pub const MAX_NAME_LEN: usize = 64;
/// Group-by words that name a date column's derived parts; reserved so that
/// `--group-by month` can never mean a column called `month`.
const RESERVED_NAMES: [&str; 2] = ["month", "year"];

/// One table of the catalog.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableCatalog {
    /// Table name, e.g. `incidents`; also the Parquet file's stem.
    pub name: String,
    /// The identifier column holding the privacy unit, e.g. `unit_id`.
    pub privacy_unit: String,
    /// The most rows one unit may contribute to an answer.
    pub max_rows_per_unit: u32,
    /// The public schema; other CSV columns are dropped at import.
    pub columns: Vec<ColumnSpec>,
}

/// One public column.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ColumnSpec {
    /// A public finite domain: group-by-able, filtered with `=` and `!=`.
    Category {
        /// Column name.
        name: String,
        /// The domain, in the order answers list it.
        values: Vec<String>,
    },
    /// A `YYYY-MM-DD` date within `[from, to]`; grouped by month or year.
    Date {
        /// Column name.
        name: String,
        /// First valid date, inclusive.
        from: String,
        /// Last valid date, inclusive.
        to: String,
    },
    /// An integer, clamped to `[min, max]` in queries.
    Integer {
        /// Column name.
        name: String,
        /// Lower clamping bound.
        min: i64,
        /// Upper clamping bound.
        max: i64,
    },
    /// Stored but never grouped by or filtered on (record and unit ids).
    Identifier {
        /// Column name.
        name: String,
    },
}

impl ColumnSpec {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Category { name, .. }
            | Self::Date { name, .. }
            | Self::Integer { name, .. }
            | Self::Identifier { name } => name,
        }
    }

    /// The column's kind in lowercase words, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Category { .. } => "category",
            Self::Date { .. } => "date",
            Self::Integer { .. } => "integer",
            Self::Identifier { .. } => "identifier",
        }
    }
}

impl TableCatalog {
    /// Checks the catalog, reporting every problem with its key path.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(why) = check_name(&self.name) {
            problems.push(format!("name: {why}"));
        }
        if self.max_rows_per_unit == 0 {
            problems.push("max_rows_per_unit: must be at least 1".to_owned());
        }
        if self.columns.is_empty() {
            problems.push("columns: no columns".to_owned());
        }
        match self.column(&self.privacy_unit) {
            Some(ColumnSpec::Identifier { .. }) => {}
            Some(_) => problems.push("privacy_unit: must name an identifier column".to_owned()),
            None => problems.push("privacy_unit: no such column".to_owned()),
        }
        let mut taken: Vec<String> = vec![RANK_COLUMN.to_owned()];
        for (i, column) in self.columns.iter().enumerate() {
            let name = column.name();
            if let Err(why) = check_name(name) {
                problems.push(format!("columns[{i}].name: {why}"));
            }
            for stored in stored_names(column) {
                if taken.contains(&stored) {
                    problems.push(format!("columns[{i}].name: {stored} is already taken"));
                } else {
                    taken.push(stored);
                }
            }
            check_column(i, column, &mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name() == name)
    }

    /// The table's date columns.
    pub fn date_columns(&self) -> impl Iterator<Item = &ColumnSpec> {
        self.columns
            .iter()
            .filter(|c| matches!(c, ColumnSpec::Date { .. }))
    }
}

/// The Parquet columns a catalog column occupies: date columns add derived parts.
fn stored_names(column: &ColumnSpec) -> Vec<String> {
    let name = column.name().to_owned();
    match column {
        ColumnSpec::Date { .. } => vec![month_column(&name), year_column(&name), name],
        _ => vec![name],
    }
}

fn check_column(i: usize, column: &ColumnSpec, problems: &mut Vec<String>) {
    match column {
        ColumnSpec::Category { values, .. } => {
            if values.is_empty() {
                problems.push(format!("columns[{i}].values: empty domain"));
            }
            for (j, value) in values.iter().enumerate() {
                if value.is_empty() {
                    problems.push(format!("columns[{i}].values[{j}]: empty value"));
                } else if values[..j].contains(value) {
                    problems.push(format!("columns[{i}].values[{j}]: duplicate value"));
                }
            }
        }
        ColumnSpec::Date { from, to, .. } => {
            let from = parse_date(from)
                .ok_or_else(|| format!("columns[{i}].from: not a date (yyyy-mm-dd)"));
            let to =
                parse_date(to).ok_or_else(|| format!("columns[{i}].to: not a date (yyyy-mm-dd)"));
            match (from, to) {
                (Ok(from), Ok(to)) if to < from => {
                    problems.push(format!("columns[{i}].to: before from"))
                }
                (from, to) => problems.extend(from.err().into_iter().chain(to.err())),
            }
        }
        ColumnSpec::Integer { min, max, .. } => {
            if max < min {
                problems.push(format!("columns[{i}].max: less than min"));
            }
        }
        ColumnSpec::Identifier { .. } => {}
    }
}

/// Names become SQL identifiers and file names, so they are restricted to a
/// charset that needs no escaping anywhere.
fn check_name(name: &str) -> Result<(), String> {
    if !is_identifier(name) {
        return Err(format!(
            "must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9 and _, starting with a letter"
        ));
    }
    if name.starts_with("fedq_") {
        return Err("the prefix fedq_ is reserved".to_owned());
    }
    if RESERVED_NAMES.contains(&name) {
        return Err("month and year are reserved group-by words".to_owned());
    }
    Ok(())
}

/// Whether `s` is a short lowercase identifier, the only user text ever echoed in errors.
pub fn is_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// The derived `YYYY-MM` column of a date column.
pub fn month_column(date_column: &str) -> String {
    format!("{date_column}_month")
}

/// The derived year column of a date column.
pub fn year_column(date_column: &str) -> String {
    format!("{date_column}_year")
}

/// Parses a strict `YYYY-MM-DD` date (exactly ten bytes, so no signs, spaces or short forms).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    parse_date_bytes(s.as_bytes())
}

/// [`parse_date`] on bytes: the import's hot path, so no UTF-8 check or allocation.
pub fn parse_date_bytes(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

/// Days since 1970-01-01: Arrow's `Date32`.
pub fn date32(date: NaiveDate) -> i32 {
    const UNIX_EPOCH_FROM_CE: i32 = 719_163;
    date.num_days_from_ce() - UNIX_EPOCH_FROM_CE
}

/// Every `YYYY-MM` from `from`'s month to `to`'s, ascending.
pub fn months_between(from: NaiveDate, to: NaiveDate) -> Vec<String> {
    let (mut year, mut month) = (from.year(), from.month());
    let mut months = Vec::new();
    while (year, month) <= (to.year(), to.month()) {
        months.push(format!("{year:04}-{month:02}"));
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
    }
    months
}
