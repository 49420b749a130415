//! The PostgreSQL engine, behind the same blocking calls as SQLite's.
//!
//! `tokio-postgres` splits a connection into a client (which sends
//! statements) and a driver future (which does the I/O). The driver runs on
//! a thread of its own with a one-thread runtime, so the client can be
//! called from any thread, an async runtime's included, the way fedq calls
//! SQLite today: the calling thread waits (`futures::executor::block_on`)
//! on channels the driver answers. Statements are prepared once per
//! connection and cached by their text.

use std::collections::HashMap;
use std::time::Duration;

use futures::executor::block_on;
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

use crate::value::bind;
use crate::{Backend, DbError, Mode, Param, Row, Value, WRITER_LOCK};

/// How long opening a connection may take when the URL sets no
/// `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client, its statement cache, and the thread driving its connection
/// (which ends when the client is dropped).
pub(crate) struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Connection {
    pub(crate) fn open(url: &str) -> Result<Self, DbError> {
        let failed = |reason: String| DbError::Connect {
            location: redact(url),
            reason,
        };
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| failed(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("fedq");
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("fedq-postgres".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = sender.send(Err(e.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match config.connect(NoTls).await {
                        Ok((client, connection)) => {
                            let _ = sender.send(Ok(client));
                            if let Err(e) = connection.await {
                                tracing::warn!(error = %e, "the PostgreSQL connection ended");
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(|e| failed(e.to_string()))?;
        let client = receiver
            .recv()
            .map_err(|_| failed("the connection thread stopped".to_owned()))?
            .map_err(failed)?;
        Ok(Self {
            client,
            statements: HashMap::new(),
        })
    }

    /// Whether the server ended the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    pub(crate) fn exec(&mut self) -> Exec<'_> {
        Exec {
            client: &self.client,
            statements: &mut self.statements,
        }
    }

    pub(crate) fn transaction<T, E: From<DbError>>(
        &mut self,
        mode: Mode,
        work: impl FnOnce(&mut dyn crate::Exec) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match mode {
            Mode::Write => format!(
                "BEGIN ISOLATION LEVEL READ COMMITTED; \
                 SELECT pg_advisory_xact_lock({WRITER_LOCK}, hashtext(current_schema()))"
            ),
            Mode::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned(),
        };
        block_on(self.client.batch_execute(&begin)).map_err(DbError::from)?;
        let open = Open(Some(&self.client));
        let result = work(&mut Exec {
            client: &self.client,
            statements: &mut self.statements,
        });
        open.end(result.is_ok()).map_err(DbError::from)?;
        result
    }
}

/// Rolls back a transaction whose work panicked, so that the connection is
/// not left inside it for the next caller.
struct Open<'c>(Option<&'c Client>);

impl Open<'_> {
    fn end(mut self, commit: bool) -> Result<(), tokio_postgres::Error> {
        let Some(client) = self.0.take() else {
            return Ok(());
        };
        block_on(client.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }))
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            let _ = block_on(client.batch_execute("ROLLBACK"));
        }
    }
}

/// Statements on a PostgreSQL connection.
pub(crate) struct Exec<'c> {
    client: &'c Client,
    statements: &'c mut HashMap<String, Statement>,
}

impl Exec<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = block_on(self.client.prepare(&placeholders(sql)))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

fn refs<'a>(values: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl crate::Exec for Exec<'_> {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<u64, DbError> {
        let statement = self.statement(sql)?;
        let values = bind(params);
        Ok(block_on(self.client.execute(&statement, &refs(&values)))?)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }

    fn each(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        visit: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        let statement = self.statement(sql)?;
        let values = bind(params);
        let client = &self.client;
        block_on(async {
            let rows = client.query_raw(&statement, refs(&values)).await?;
            pin_mut!(rows);
            while let Some(row) = rows.try_next().await? {
                visit(&Row::Postgres(&row))?;
            }
            Ok(())
        })
    }

    fn copy_in(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &mut dyn Iterator<Item = Vec<Value<'_>>>,
    ) -> Result<u64, DbError> {
        let list = columns.join(", ");
        // The columns' types, which the binary format needs, from the table.
        let shape = self.statement(&format!("SELECT {list} FROM {table} LIMIT 0"))?;
        let types: Vec<Type> = shape.columns().iter().map(|c| c.type_().clone()).collect();
        let client = &self.client;
        block_on(async {
            let sink = client
                .copy_in(&format!("COPY {table} ({list}) FROM STDIN (FORMAT binary)"))
                .await?;
            let writer = BinaryCopyInWriter::new(sink, &types);
            pin_mut!(writer);
            for row in rows {
                writer.as_mut().write_raw(refs(&row)).await?;
            }
            Ok(writer.finish().await?)
        })
    }
}

/// SQLite's `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// A connection string with its password (in the user part or a
/// `password=` parameter) replaced, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => param.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://fedq:secret@db.example:5432/node?sslmode=disable"),
            "postgres://fedq:***@db.example:5432/node?sslmode=disable"
        );
        assert_eq!(redact("postgres://fedq@db/node"), "postgres://fedq@db/node");
        assert_eq!(
            redact("postgresql:///node?host=/run/pg"),
            "postgresql:///node?host=/run/pg"
        );
    }
}
