//! A result row of either engine, read by column index.

use crate::DbError;

/// One row of a query's result.
pub enum Row<'a> {
    /// An SQLite row.
    Sqlite(&'a rusqlite::Row<'a>),
    /// A PostgreSQL row.
    Postgres(&'a tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `i`, as `T`.
    pub fn get<T: Column>(&self, i: usize) -> Result<T, DbError> {
        match self {
            Self::Sqlite(row) => T::from_sqlite(row, i),
            Self::Postgres(row) => T::from_postgres(row, i),
        }
    }
}

/// A type a column can be read as.
pub trait Column: Sized {
    /// From an SQLite row.
    fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError>;
    /// From a PostgreSQL row.
    fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Self, DbError>;
}

fn type_error(i: usize, e: impl std::fmt::Display) -> DbError {
    DbError::Type {
        column: i,
        reason: e.to_string(),
    }
}

macro_rules! column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
                row.get(i).map_err(|e| type_error(i, e))
            }
            fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Self, DbError> {
                row.try_get(i).map_err(|e| type_error(i, e))
            }
        }
        impl Column for Option<$t> {
            fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
                row.get(i).map_err(|e| type_error(i, e))
            }
            fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Self, DbError> {
                row.try_get(i).map_err(|e| type_error(i, e))
            }
        }
    )*};
}
column!(f64, String, Vec<u8>);

/// fedq's integer columns are BIGINT on PostgreSQL, but an expression may be
/// INTEGER (`SELECT 1`) or SMALLINT: all are read as i64, narrowed by the
/// caller where it needs less.
fn postgres_int(row: &tokio_postgres::Row, i: usize) -> Result<Option<i64>, DbError> {
    use tokio_postgres::types::Type;
    let ty = row
        .columns()
        .get(i)
        .ok_or_else(|| type_error(i, "no such column"))?
        .type_()
        .clone();
    let read = match ty {
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map(|v| v.map(i64::from)),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map(|v| v.map(i64::from)),
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map(|v| v.map(i64::from)),
        _ => row.try_get::<_, Option<i64>>(i),
    };
    read.map_err(|e| type_error(i, e))
}

impl Column for i64 {
    fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
        row.get(i).map_err(|e| type_error(i, e))
    }
    fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Self, DbError> {
        postgres_int(row, i)?.ok_or_else(|| type_error(i, "NULL where a number was expected"))
    }
}

impl Column for Option<i64> {
    fn from_sqlite(row: &rusqlite::Row<'_>, i: usize) -> Result<Self, DbError> {
        row.get(i).map_err(|e| type_error(i, e))
    }
    fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Result<Self, DbError> {
        postgres_int(row, i)
    }
}
