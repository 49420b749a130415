//! The statistics engine: catalog, CSV import into Parquet, and exact bounded aggregates run by DataFusion.
//!
//! Noise is not added here: [`StatsEngine::aggregate`] returns the exact answer
//! with the sensitivity inputs (`per_row_bound`, `max_rows_per_unit`) that the
//! DP layer needs. Contributions are bounded by a rank stored at import
//! (`fedq_rank <= max_rows_per_unit`), which keeps queries a plain filter
//! (56 ms against 2.8 s for a window function at 10M rows, see DESIGN.md).
//!
//! # Layout
//! - [`catalog`]: the public schema, domains and bounds, and their validation.
//! - [`import`]: CSV into `<dir>/<table>.parquet` with the rank and derived date parts
//!   (`rows` converts CSV records to Arrow, chunk by chunk).
//! - [`query`]: query types, CLI forms and the engine (`plan` validates a query against
//!   the catalog; `sql` builds and runs the one SQL query and fills empty groups with zeros).

pub mod catalog;
pub mod import;
mod plan;
pub mod query;
mod rows;
mod sql;

#[cfg(test)]
mod tests;

pub use catalog::{ColumnSpec, TableCatalog};
pub use import::{import_table, StatsImportReport};
pub use query::{
    parse_filter, parse_group_by, parse_measure, ExactAnswer, Filter, FilterOp, GroupAggregate,
    GroupBy, Measure, PlannedQuery, Sensitivity, StatsEngine, StatsQuery,
};

/// Errors of the statistics engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// The query or input does not fit the catalog; the reason is lowercase and safe to send.
    #[error("{0}")]
    Invalid(String),
    /// The table is in the catalog but has not been imported yet.
    #[error("table {0} has not been imported")]
    NotImported(String),
    /// Reading or writing the table's files failed.
    #[error("statistics i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// DataFusion, Arrow or Parquet failed.
    #[error("statistics engine error: {0}")]
    Engine(String),
    /// The CSV could not be read.
    #[error("cannot read the csv: {0}")]
    Csv(#[from] csv::Error),
}

impl From<datafusion::error::DataFusionError> for StatsError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Engine(e.to_string())
    }
}

impl From<datafusion::arrow::error::ArrowError> for StatsError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Self::Engine(e.to_string())
    }
}

impl From<datafusion::parquet::errors::ParquetError> for StatsError {
    fn from(e: datafusion::parquet::errors::ParquetError) -> Self {
        Self::Engine(e.to_string())
    }
}
