//! The SQLite engine: statements are cached per connection; a write
//! transaction is `BEGIN IMMEDIATE` (the file's write lock, waited for up
//! to the busy timeout).

use rusqlite::{Connection, TransactionBehavior};

use crate::value::bind;
use crate::{Backend, DbError, Mode, Param, Row, Value};

/// Statements on an SQLite connection (or an open transaction on it).
pub(crate) struct Exec<'c>(pub(crate) &'c Connection);

impl crate::Exec for Exec<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<u64, DbError> {
        let values = bind(params);
        let mut statement = self.0.prepare_cached(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(values.iter()))? as u64)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.0.execute_batch(sql)?)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        visit: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let values = bind(params);
        let mut statement = self.0.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values.iter()))?;
        while let Some(row) = rows.next()? {
            visit(&Row::Sqlite(row))?;
        }
        Ok(())
    }

    fn copy_in(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &mut dyn Iterator<Item = Vec<Value<'_>>>,
    ) -> Result<u64, DbError> {
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns.join(", "),
            marks.join(", ")
        );
        let mut statement = self.0.prepare_cached(&sql)?;
        let mut n = 0;
        for row in rows {
            n += statement.execute(rusqlite::params_from_iter(row.iter()))? as u64;
        }
        Ok(n)
    }
}

pub(crate) fn transaction<T, E: From<DbError>>(
    conn: &mut Connection,
    mode: Mode,
    work: impl FnOnce(&mut dyn crate::Exec) -> Result<T, E>,
) -> Result<T, E> {
    let behavior = match mode {
        Mode::Write => TransactionBehavior::Immediate,
        Mode::Snapshot => TransactionBehavior::Deferred,
    };
    let tx = conn
        .transaction_with_behavior(behavior)
        .map_err(DbError::from)?;
    let result = work(&mut Exec(&tx))?;
    tx.commit().map_err(DbError::from)?;
    Ok(result)
}
