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

use fedq_audit::witness::WitnessedCheckpoint;
use fedq_db::{Db, DbError, Location, Schema};
use serde::{Deserialize, Serialize};

/// The witness's tables. Rows are only ever inserted.
const SCHEMA: Schema = Schema {
    sqlite: SQLITE_SCHEMA,
    postgres: POSTGRES_SCHEMA,
};

const SQLITE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS witnessed_checkpoints (
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

const POSTGRES_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS witnessed_checkpoints (
    node TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    node_signature TEXT NOT NULL,
    witnessed_at TEXT NOT NULL,
    countersignature TEXT NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS witness_alarms (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    witnessed_seq BIGINT NOT NULL,
    witnessed_hash TEXT NOT NULL,
    at TEXT NOT NULL
);";

/// Errors of the witness store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The store failed, or cannot be opened.
    #[error("witness store error: {0}")]
    Db(#[from] DbError),
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
    db: Db,
}

impl WitnessStore {
    /// Opens (creating its tables) the store in the coordinator's store.
    pub fn open(store: &Location) -> Result<Self, WitnessError> {
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// Opens an existing store to export from, changing nothing.
    pub fn open_read_only(store: &Location) -> Result<Self, WitnessError> {
        Ok(Self {
            db: Db::open_read_only(store)?,
        })
    }

    /// The highest (seq, hash) witnessed for `node`.
    pub fn highest(&self, node: &str) -> Result<Option<(u64, String)>, WitnessError> {
        let highest = self.db.run(|exec| {
            exec.query_opt(
                "SELECT seq, hash FROM witnessed_checkpoints WHERE node = ?1 ORDER BY seq DESC LIMIT 1",
                &[&node],
                |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)),
            )
        })?;
        Ok(highest.map(|(seq, hash)| (seq.max(0) as u64, hash)))
    }

    /// Keeps a countersigned checkpoint.
    pub fn keep(&self, witnessed: &WitnessedCheckpoint) -> Result<(), WitnessError> {
        self.db.run(|exec| {
            exec.execute(
                "INSERT INTO witnessed_checkpoints
                 (node, seq, hash, node_signature, witnessed_at, countersignature)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (node, seq) DO NOTHING",
                &[
                    &witnessed.node,
                    &i64::try_from(witnessed.seq).unwrap_or(i64::MAX),
                    &witnessed.hash,
                    &witnessed.node_signature,
                    &witnessed.witnessed_at,
                    &witnessed.countersignature,
                ],
            )
        })?;
        Ok(())
    }

    /// Keeps `alarm` unless the same one (node, kind, seq, hash) is kept
    /// already; returns whether it is new. A node that stays rolled back is
    /// one alarm, not one a round.
    pub fn raise(&self, alarm: &Alarm) -> Result<bool, WitnessError> {
        let seq = i64::try_from(alarm.seq).unwrap_or(i64::MAX);
        Ok(self.db.write(|tx| {
            let known = tx
                .query_opt(
                    "SELECT 1 FROM witness_alarms WHERE node = ?1 AND kind = ?2 AND seq = ?3 AND hash = ?4",
                    &[&alarm.node, &alarm.kind.as_str(), &seq, &alarm.hash],
                    |_| Ok(()),
                )?
                .is_some();
            if known {
                return Ok::<_, DbError>(false);
            }
            tx.execute(
                "INSERT INTO witness_alarms (node, kind, seq, hash, witnessed_seq, witnessed_hash, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    &alarm.node,
                    &alarm.kind.as_str(),
                    &seq,
                    &alarm.hash,
                    &i64::try_from(alarm.witnessed_seq).unwrap_or(i64::MAX),
                    &alarm.witnessed_hash,
                    &alarm.at,
                ],
            )?;
            Ok(true)
        })?)
    }

    /// Writes `node`'s countersigned checkpoints, in seq order, as the
    /// witness file's JSON lines; returns how many.
    pub fn export(&self, node: &str, out: &mut impl Write) -> Result<usize, WitnessError> {
        let witnessed = self.db.snapshot(|exec| {
            // A store from before witnessing has no tables.
            if !exec.table_exists("witnessed_checkpoints")? {
                return Ok(Vec::new());
            }
            exec.query_all(
                "SELECT node, seq, hash, node_signature, witnessed_at, countersignature
                 FROM witnessed_checkpoints WHERE node = ?1 ORDER BY seq",
                &[&node],
                |row| {
                    Ok(WitnessedCheckpoint {
                        node: row.get(0)?,
                        seq: row.get::<i64>(1)?.max(0) as u64,
                        hash: row.get(2)?,
                        node_signature: row.get(3)?,
                        witnessed_at: row.get(4)?,
                        countersignature: row.get(5)?,
                    })
                },
            )
        })?;
        for checkpoint in &witnessed {
            out.write_all(checkpoint.to_line().as_bytes())?;
        }
        out.flush()?;
        Ok(witnessed.len())
    }

    /// The alarms kept (of `node` only, if given), oldest first.
    pub fn alarms(&self, node: Option<&str>) -> Result<Vec<Alarm>, WitnessError> {
        Ok(self.db.snapshot(|exec| {
            // A store from before witnessing has no tables.
            if !exec.table_exists("witnessed_checkpoints")? {
                return Ok(Vec::new());
            }
            exec.query_all(
                "SELECT node, kind, seq, hash, witnessed_seq, witnessed_hash, at FROM witness_alarms
                 WHERE CAST(?1 AS TEXT) IS NULL OR node = ?1 ORDER BY id",
                &[&node],
                |row| {
                    let kind: String = row.get(1)?;
                    Ok(Alarm {
                        node: row.get(0)?,
                        // Only this module writes the column.
                        kind: AlarmKind::parse(&kind).unwrap_or(AlarmKind::Fork),
                        seq: row.get::<i64>(2)?.max(0) as u64,
                        hash: row.get(3)?,
                        witnessed_seq: row.get::<i64>(4)?.max(0) as u64,
                        witnessed_hash: row.get(5)?,
                        at: row.get(6)?,
                    })
                },
            )
        })?)
    }
}

#[cfg(test)]
mod tests;
