//! The one way fedq opens an SQLite file: private (0600), WAL, full
//! durability, a generous busy timeout, secure deletion. The store, ledger,
//! audit log, nonce table and the coordinator's registry share one file per
//! party and must agree on these settings, or one connection's weaker
//! `synchronous` would decide what a crash loses.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// How long a writer waits for another connection's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors opening a store file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Creating (or, read-only, finding) the file or its directory failed.
    #[error("cannot open {path}: {source}")]
    Create {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens (creating it 0600, parents 0700) the SQLite file at `path`.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    crate::files::touch_private(path).map_err(|source| OpenError::Create {
        path: path.to_owned(),
        source,
    })?;
    let conn = Connection::open(path)?;
    // First: even switching to WAL needs a lock that a serving node may
    // hold for a moment (without the timeout, "database is locked" at once).
    conn.busy_timeout(BUSY_TIMEOUT)?;
    switch_to_wal(&conn)?;
    // A committed charge or audit entry must survive power loss, not only a
    // process crash: FULL syncs the WAL at every commit.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Deleted and overwritten cells (old fingerprints after a rotation,
    // purged records) are zeroed rather than left in free pages.
    conn.pragma_update(None, "secure_delete", "ON")?;
    Ok(conn)
}

/// Puts the file in WAL mode. Switching a new file while other connections
/// open it can fail at once with "database is locked" (SQLite does not wait
/// on its busy handler there, to avoid a deadlock), so the switch is retried
/// until [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// Opens an existing SQLite file for reading only: checks of a party's
/// files (`audit verify`, `audit export`) must change nothing, and must not
/// create a store where the path is wrong.
pub fn open_read_only(path: &Path) -> Result<Connection, OpenError> {
    use rusqlite::OpenFlags;
    if !path.is_file() {
        return Err(OpenError::Create {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such store file"),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set for the probe process: the store whose lock it tries to take.
    const PROBE_ENV: &str = "FEDQ_SQLITE_LOCK_PROBE";

    /// Opening a second connection must leave the first one's POSIX locks in
    /// place: without its shared lock, another process (an import beside a
    /// serving node) believes itself the store's last user and checkpoints
    /// and truncates the WAL under the first connection. The probe runs in a
    /// second process, because SQLite shares lock state between connections
    /// of one process and would report the first one's lock whatever the
    /// file's locks say.
    #[test]
    fn a_second_connection_leaves_the_first_ones_lock_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let first = open(&path).unwrap();
        first.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let _second = open(&path).unwrap();
        let probe = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sqlite::tests::probe_takes_the_stores_exclusive_lock",
                "--ignored",
                "--nocapture",
            ])
            .env(PROBE_ENV, &path)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&probe.stdout);
        assert!(out.contains("probe: locked out"), "{out}");
        drop(first);
    }

    /// Run by the test above, in its own process.
    #[test]
    #[ignore = "run by a_second_connection_leaves_the_first_ones_lock_in_place"]
    fn probe_takes_the_stores_exclusive_lock() {
        let path = std::env::var_os(PROBE_ENV).expect("started by the lock test");
        let conn = Connection::open(path).unwrap();
        // Leaving WAL needs the exclusive lock that every open connection's
        // shared lock holds off.
        match conn.pragma_update(None, "journal_mode", "DELETE") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                println!("probe: locked out");
            }
            other => println!("probe: took the lock ({other:?})"),
        }
    }
}
