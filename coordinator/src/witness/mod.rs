//! What the coordinator witnessed of each node's audit log: the checkpoints
//! it countersigned, and the alarms it raised, in its own SQLite file.
//!
//! A node's operator holds the node's audit key, so they can truncate or
//! rewrite the node's log and sign the result. What they cannot do is make
//! the coordinator forget: each round (`service/witness.rs`) compares the
//! node's signed head with the highest one witnessed for that node. A lower
//! seq is a rollback, the same seq with another hash a fork; either is
//! refused and kept here as an alarm, never countersigned. A higher seq is
//! countersigned and kept; whether it extends what was witnessed is for
//! `fedq-node audit verify --witness`, which reads the entries.
//!
//! - `cli.rs`: `fedq-coordinator witness export` and `witness alarms`.

pub mod cli;

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use fedq_audit::witness::WitnessedCheckpoint;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The witness's tables. Rows are only ever inserted.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS witnessed_checkpoints (
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    node_signature TEXT NOT NULL,
    witnessed_at TEXT NOT NULL,
    countersignature TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS witness_alarms (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    witnessed_seq INTEGER NOT NULL,
    witnessed_hash TEXT NOT NULL,
    at TEXT NOT NULL
);";

/// Errors of the witness store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// SQLite failed.
    #[error("witness store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store file cannot be opened.
    #[error(transparent)]
    Open(#[from] fedq_transport::sqlite::OpenError),
    /// The export destination failed.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// What a node's signed head means against what was witnessed before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Beyond everything witnessed (or the first): countersign it.
    New,
    /// Exactly the highest head witnessed: nothing to add.
    Seen,
    /// Refused: the node's log went backwards or forked.
    Alarm(AlarmKind),
}

/// Why a node's checkpoint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmKind {
    /// A lower seq than already witnessed: the log was rolled back.
    Rollback,
    /// The witnessed seq with another hash: history was rewritten.
    Fork,
    /// Signed by another key than the one `federation.toml` pins.
    Key,
}

impl AlarmKind {
    /// The stored and printed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Fork => "fork",
            Self::Key => "key",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Rollback, Self::Fork, Self::Key]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused checkpoint, kept (one JSON line each in `witness alarms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// The node.
    pub node: String,
    /// What was wrong.
    pub kind: AlarmKind,
    /// The seq the node signed.
    pub seq: u64,
    /// The hash the node signed.
    pub hash: String,
    /// The highest seq witnessed before (0 if none).
    pub witnessed_seq: u64,
    /// Its hash ("" if none).
    pub witnessed_hash: String,
    /// When it was seen (RFC 3339, UTC).
    pub at: String,
}

impl Alarm {
    /// One line for operators and the audit log's detail.
    pub fn describe(&self) -> String {
        match self.kind {
            AlarmKind::Rollback => format!(
                "rollback: node {} signed entry {} as its head, below entry {} witnessed before",
                self.node, self.seq, self.witnessed_seq
            ),
            AlarmKind::Fork => format!(
                "fork: node {} signed another entry {} than the one witnessed before",
                self.node, self.seq
            ),
            AlarmKind::Key => format!(
                "key: node {} signed entry {} with another key than federation.toml pins",
                self.node, self.seq
            ),
        }
    }
}

/// Judges a node's signed head (`seq`, `hash`) against the highest one
/// witnessed for it.
pub fn judge(highest: Option<&(u64, String)>, seq: u64, hash: &str) -> Verdict {
    match highest {
        None => Verdict::New,
        Some((witnessed, _)) if seq < *witnessed => Verdict::Alarm(AlarmKind::Rollback),
        Some((witnessed, witnessed_hash)) if seq == *witnessed => {
            if hash == witnessed_hash {
                Verdict::Seen
            } else {
                Verdict::Alarm(AlarmKind::Fork)
            }
        }
        Some(_) => Verdict::New,
    }
}

/// The coordinator's witnessed checkpoints and alarms.
pub struct WitnessStore {
    conn: Mutex<Connection>,
}

impl WitnessStore {
    /// Opens (creating its tables) the store in the coordinator's file.
    pub fn open(path: &Path) -> Result<Self, WitnessError> {
        Ok(Self {
            conn: Mutex::new(fedq_transport::sqlite::open_with_schema(path, SCHEMA)?),
        })
    }

    /// Opens an existing store to export from, changing nothing.
    pub fn open_read_only(path: &Path) -> Result<Self, WitnessError> {
        Ok(Self {
            conn: Mutex::new(fedq_transport::sqlite::open_read_only(path)?),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the tables exist (a store from before witnessing has none).
    fn has_tables(conn: &Connection) -> rusqlite::Result<bool> {
        conn.prepare(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'witnessed_checkpoints'",
        )?
        .exists([])
    }

    /// The highest (seq, hash) witnessed for `node`.
    pub fn highest(&self, node: &str) -> Result<Option<(u64, String)>, WitnessError> {
        let conn = self.lock();
        Ok(conn
            .query_row(
                "SELECT seq, hash FROM witnessed_checkpoints WHERE node = ?1 ORDER BY seq DESC LIMIT 1",
                [node],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()?
            .map(|(seq, hash)| (seq.max(0) as u64, hash)))
    }

    /// Keeps a countersigned checkpoint.
    pub fn keep(&self, witnessed: &WitnessedCheckpoint) -> Result<(), WitnessError> {
        self.lock().execute(
            "INSERT OR IGNORE INTO witnessed_checkpoints
             (node, seq, hash, node_signature, witnessed_at, countersignature)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                witnessed.node,
                i64::try_from(witnessed.seq).unwrap_or(i64::MAX),
                witnessed.hash,
                witnessed.node_signature,
                witnessed.witnessed_at,
                witnessed.countersignature,
            ],
        )?;
        Ok(())
    }

    /// Keeps `alarm` unless the same one (node, kind, seq, hash) is kept
    /// already; returns whether it is new. A node that stays rolled back is
    /// one alarm, not one a round.
    pub fn raise(&self, alarm: &Alarm) -> Result<bool, WitnessError> {
        let conn = self.lock();
        let seq = i64::try_from(alarm.seq).unwrap_or(i64::MAX);
        let known = conn
            .prepare(
                "SELECT 1 FROM witness_alarms WHERE node = ?1 AND kind = ?2 AND seq = ?3 AND hash = ?4",
            )?
            .exists(params![alarm.node, alarm.kind.as_str(), seq, alarm.hash])?;
        if known {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO witness_alarms (node, kind, seq, hash, witnessed_seq, witnessed_hash, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                alarm.node,
                alarm.kind.as_str(),
                seq,
                alarm.hash,
                i64::try_from(alarm.witnessed_seq).unwrap_or(i64::MAX),
                alarm.witnessed_hash,
                alarm.at,
            ],
        )?;
        Ok(true)
    }

    /// Writes `node`'s countersigned checkpoints, in seq order, as the
    /// witness file's JSON lines; returns how many.
    pub fn export(&self, node: &str, out: &mut impl Write) -> Result<usize, WitnessError> {
        let conn = self.lock();
        if !Self::has_tables(&conn)? {
            return Ok(0);
        }
        let mut statement = conn.prepare(
            "SELECT node, seq, hash, node_signature, witnessed_at, countersignature
             FROM witnessed_checkpoints WHERE node = ?1 ORDER BY seq",
        )?;
        let mut rows = statement.query([node])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            let witnessed = WitnessedCheckpoint {
                node: row.get(0)?,
                seq: row.get::<_, i64>(1)?.max(0) as u64,
                hash: row.get(2)?,
                node_signature: row.get(3)?,
                witnessed_at: row.get(4)?,
                countersignature: row.get(5)?,
            };
            out.write_all(witnessed.to_line().as_bytes())?;
            count += 1;
        }
        out.flush()?;
        Ok(count)
    }

    /// The alarms kept (of `node` only, if given), oldest first.
    pub fn alarms(&self, node: Option<&str>) -> Result<Vec<Alarm>, WitnessError> {
        let conn = self.lock();
        if !Self::has_tables(&conn)? {
            return Ok(Vec::new());
        }
        let mut statement = conn.prepare(
            "SELECT node, kind, seq, hash, witnessed_seq, witnessed_hash, at FROM witness_alarms
             WHERE ?1 IS NULL OR node = ?1 ORDER BY id",
        )?;
        let mut rows = statement.query([node])?;
        let mut alarms = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(1)?;
            alarms.push(Alarm {
                node: row.get(0)?,
                // Only this module writes the column.
                kind: AlarmKind::parse(&kind).unwrap_or(AlarmKind::Fork),
                seq: row.get::<_, i64>(2)?.max(0) as u64,
                hash: row.get(3)?,
                witnessed_seq: row.get::<_, i64>(4)?.max(0) as u64,
                witnessed_hash: row.get(5)?,
                at: row.get(6)?,
            });
        }
        Ok(alarms)
    }
}

#[cfg(test)]
mod tests;
