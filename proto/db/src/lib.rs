//! One SQL interface over fedq's two stores: an SQLite file (the embedded
//! default, nothing to start) and PostgreSQL (the production store).
//!
//! Each table's owner (the node's identifier store, its privacy ledger,
//! audit log and nonces, the coordinator's registry and witness) writes its
//! queries once, against [`Exec`], with SQLite's `?N` placeholders and SQL
//! both engines read alike; [`Db`] runs them on either. What differs is
//! kept here: the placeholders (`$N` on PostgreSQL), how a write transaction
//! excludes other writers, and the column types a value is converted to.
//!
//! # Writers
//! A [`Db::write`] transaction is the only writer of its store while it
//! runs, on both engines, so that a read-then-write (the ledger's "is there
//! budget left? then charge", the audit log's "append after the head")
//! cannot interleave with another. SQLite's `BEGIN IMMEDIATE` takes the
//! file's write lock. On PostgreSQL the transaction is READ COMMITTED and
//! first takes a transaction-scoped advisory lock ([`WRITER_LOCK`]): every
//! statement after it sees everything the previous holder committed. This
//! is chosen over SERIALIZABLE isolation, which would be correct too but
//! fails conflicting transactions for the caller to retry: fedq's writes
//! are small and rare next to its reads, and one writer at a time is what
//! SQLite gives, so both stores behave the same under concurrency.

mod postgres;
mod row;
mod sqlite;
pub mod testing;
mod value;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use row::{Column, Row};
pub use value::{Param, Value};

/// First half of the advisory lock key that every write transaction on
/// PostgreSQL holds; the second is a hash of the schema, so that stores in
/// different schemas of one database (tests, small deployments) do not wait
/// for each other.
pub const WRITER_LOCK: i32 = 0x6665_6471; // "fedq"

/// Where a party's store is: `store = "..."` in its configuration. Its
/// `Debug` (what a logged configuration shows) hides a URL's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host/db`, or
    /// `postgresql:///db?host=/run/postgresql` for a local socket).
    Postgres(String),
}

impl Location {
    /// A store setting that is a `postgres://` or `postgresql://` URL, as a
    /// PostgreSQL location; `None` for anything else (each party reads its
    /// own file settings).
    pub fn postgres(setting: &str) -> Option<Self> {
        (setting.starts_with("postgres://") || setting.starts_with("postgresql://"))
            .then(|| Self::Postgres(setting.to_owned()))
    }

    /// The location for messages: the path, or the URL without a password.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => postgres::redact(url),
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").field(&self.display()).finish(),
        }
    }
}

/// A table owner's idempotent schema (`CREATE ... IF NOT EXISTS`), in each
/// engine's dialect: the types differ (BLOB and BYTEA, INTEGER and BIGINT),
/// the statements that use the tables do not.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// For SQLite.
    pub sqlite: &'static str,
    /// For PostgreSQL.
    pub postgres: &'static str,
}

impl Schema {
    /// The DDL for `backend`.
    pub fn for_backend(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// Which engine a [`Db`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite failed.
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite file cannot be opened.
    #[error(transparent)]
    Open(#[from] fedq_transport::sqlite::OpenError),
    /// PostgreSQL failed.
    #[error("store error: {0}")]
    Postgres(#[source] tokio_postgres::Error),
    /// PostgreSQL cannot be reached.
    #[error("cannot connect to the PostgreSQL store {location}: {reason}")]
    Connect {
        /// The store, without its password.
        location: String,
        /// Why.
        reason: String,
    },
    /// A column holds another type than the code reads.
    #[error("store column {column}: {reason}")]
    Type {
        /// Column index.
        column: usize,
        /// What was found.
        reason: String,
    },
    /// A query meant to return one row returned none.
    #[error("store query returned no row")]
    NoRow,
}

impl DbError {
    /// Whether a UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::ConstraintViolation
                    && matches!(
                        e.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    )
            }
            Self::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

/// Statements on a connection, inside or outside a transaction.
pub trait Exec {
    /// The engine underneath.
    fn backend(&self) -> Backend;

    /// Runs one statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[&dyn Param]) -> Result<u64, DbError>;

    /// Runs statements without parameters, separated by `;` (schema).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// Runs a query and visits its rows in order, without holding them all.
    fn each(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        visit: &mut dyn FnMut(&Row<'_>) -> Result<(), DbError>,
    ) -> Result<(), DbError>;

    /// Loads rows into `table`'s `columns` in bulk: PostgreSQL's binary
    /// `COPY`, prepared inserts on SQLite. A row that already exists fails
    /// the whole load (run it in a [`Db::write`] transaction).
    fn copy_in(
        &mut self,
        table: &str,
        columns: &[&str],
        rows: &mut dyn Iterator<Item = Vec<Value<'_>>>,
    ) -> Result<u64, DbError>;
}

impl dyn Exec + '_ {
    /// The first row's `read`, if the query returned a row.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        let mut read = Some(read);
        let mut found = None;
        self.each(sql, params, &mut |row| {
            if let Some(read) = read.take() {
                found = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The first row's `read`; [`DbError::NoRow`] if there is none.
    pub fn query_one<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        read: impl FnOnce(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, params, read)?.ok_or(DbError::NoRow)
    }

    /// Whether `table` exists in the store (in the current schema on
    /// PostgreSQL): a store from before a table owner existed has none.
    pub fn table_exists(&mut self, table: &str) -> Result<bool, DbError> {
        let sql = match self.backend() {
            Backend::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            Backend::Postgres => {
                "SELECT 1 FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = ?1"
            }
        };
        Ok(self.query_opt(sql, &[&table], |_| Ok(()))?.is_some())
    }

    /// Every row's `read`, in order.
    pub fn query_all<T>(
        &mut self,
        sql: &str,
        params: &[&dyn Param],
        mut read: impl FnMut(&Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut rows = Vec::new();
        self.each(sql, params, &mut |row| {
            rows.push(read(row)?);
            Ok(())
        })?;
        Ok(rows)
    }
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The store's only writer until it ends (see the crate's doc).
    Write,
    /// A consistent view of the store, for reads that must agree.
    Snapshot,
}

enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Connection),
}

/// One connection to a party's store; calls from several threads take turns.
pub struct Db {
    conn: Mutex<Conn>,
    backend: Backend,
    location: Location,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.location.display())
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the store: the SQLite file (created 0600 with fedq's settings,
    /// see [`fedq_transport::sqlite::open`]), or a connection to PostgreSQL.
    pub fn open(location: &Location) -> Result<Self, DbError> {
        let (conn, backend) = match location {
            Location::Sqlite(path) => (
                Conn::Sqlite(fedq_transport::sqlite::open(path)?),
                Backend::Sqlite,
            ),
            Location::Postgres(url) => (
                Conn::Postgres(postgres::Connection::open(url)?),
                Backend::Postgres,
            ),
        };
        Ok(Self {
            conn: Mutex::new(conn),
            backend,
            location: location.clone(),
        })
    }

    /// [`Db::open`], then creates what `schema` declares, as the store's
    /// only writer (two processes opening a new store do not race).
    pub fn open_with_schema(location: &Location, schema: &Schema) -> Result<Self, DbError> {
        let db = Self::open(location)?;
        db.write(|tx| {
            let ddl = schema.for_backend(tx.backend());
            tx.batch(ddl)
        })?;
        Ok(db)
    }

    /// Opens an existing SQLite file for reading only (checks that must
    /// change nothing); PostgreSQL opens as [`Db::open`] does, and such
    /// checks only read.
    pub fn open_read_only(location: &Location) -> Result<Self, DbError> {
        match location {
            Location::Sqlite(path) => Ok(Self {
                conn: Mutex::new(Conn::Sqlite(fedq_transport::sqlite::open_read_only(path)?)),
                backend: Backend::Sqlite,
                location: location.clone(),
            }),
            Location::Postgres(_) => Self::open(location),
        }
    }

    /// Wraps an SQLite connection opened elsewhere (tests, tools).
    pub fn from_sqlite(conn: rusqlite::Connection, path: &Path) -> Self {
        Self {
            conn: Mutex::new(Conn::Sqlite(conn)),
            backend: Backend::Sqlite,
            location: Location::Sqlite(path.to_owned()),
        }
    }

    /// The engine underneath.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The connection, reopened first if PostgreSQL closed it (a server
    /// restart, an administrator's `pg_terminate_backend`): the call that
    /// finds it closed is served by the new one. If reopening fails, the
    /// call fails on the closed one and the next call tries again.
    fn lock(&self) -> MutexGuard<'_, Conn> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let (Conn::Postgres(closed), Location::Postgres(url)) = (&mut *conn, &self.location) {
            if closed.is_closed() {
                match postgres::Connection::open(url) {
                    Ok(fresh) => {
                        tracing::warn!("the PostgreSQL connection was closed; reconnected");
                        *closed = fresh;
                    }
                    Err(e) => tracing::warn!(error = %e, "the PostgreSQL connection is closed"),
                }
            }
        }
        conn
    }

    /// Runs `work` outside a transaction: each statement commits on its own.
    pub fn run<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut dyn Exec) -> Result<T, E>,
    ) -> Result<T, E> {
        match &mut *self.lock() {
            Conn::Sqlite(conn) => work(&mut sqlite::Exec(conn)),
            Conn::Postgres(conn) => work(&mut conn.exec()),
        }
    }

    /// Runs `work` in one transaction as the store's only writer: committed
    /// when it returns `Ok`, rolled back when it returns `Err`.
    pub fn write<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut dyn Exec) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(Mode::Write, work)
    }

    /// Runs `work` in one read transaction: every query sees the store as
    /// of one moment.
    pub fn snapshot<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&mut dyn Exec) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction(Mode::Snapshot, work)
    }

    fn transaction<T, E: From<DbError>>(
        &self,
        mode: Mode,
        work: impl FnOnce(&mut dyn Exec) -> Result<T, E>,
    ) -> Result<T, E> {
        match &mut *self.lock() {
            Conn::Sqlite(conn) => sqlite::transaction(conn, mode, work),
            Conn::Postgres(conn) => conn.transaction(mode, work),
        }
    }
}
