//! Standing lookups (watches) in the node's store: each watch's encrypted
//! tag and bucket, the requester's public key its results are encrypted
//! under, the bucket's tags already evaluated, and the results waiting for
//! the coordinator. The node never learns what a watch is for, nor whether
//! one of its evaluations was a hit.

use fedq_db::{Db, DbError, Location, Row, Schema};

const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS watches (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        key_id TEXT NOT NULL,
        public_key BLOB NOT NULL,
        kind INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        tag BLOB NOT NULL,
        oprf_key_id TEXT NOT NULL,
        nodes INTEGER NOT NULL,
        registered_at INTEGER NOT NULL,
        until INTEGER NOT NULL,
        seen BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_results (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        watch_id TEXT NOT NULL,
        answer BLOB NOT NULL,
        evaluated_at INTEGER NOT NULL
    );",
    postgres: "CREATE TABLE IF NOT EXISTS watches (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        key_id TEXT NOT NULL,
        public_key BYTEA NOT NULL,
        kind BIGINT NOT NULL,
        bucket BIGINT NOT NULL,
        tag BYTEA NOT NULL,
        oprf_key_id TEXT NOT NULL,
        nodes BIGINT NOT NULL,
        registered_at BIGINT NOT NULL,
        until BIGINT NOT NULL,
        seen BYTEA NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_results (
        seq BIGSERIAL PRIMARY KEY,
        watch_id TEXT NOT NULL,
        answer BYTEA NOT NULL,
        evaluated_at BIGINT NOT NULL
    );",
};

/// Most results one call hands the coordinator.
pub const MAX_RESULTS_PER_CALL: usize = 1_000;

/// One watch as the node keeps it.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The coordinator's id, the same at every node.
    pub id: String,
    /// Who registered it.
    pub requester: String,
    /// The requester's public key id and key (results are encrypted under it).
    pub key_id: String,
    /// The encoded public key.
    pub public_key: Vec<u8>,
    /// The identifier kind (wire code).
    pub kind: u8,
    /// The bucket.
    pub bucket: u32,
    /// The encoded encrypted tag (checked when registered).
    pub tag: Vec<u8>,
    /// The OPRF key the tag was derived under.
    pub oprf_key_id: String,
    /// Nodes of the federation when it was registered (the count's encoding).
    pub nodes: usize,
    /// Unix seconds.
    pub registered_at: i64,
    /// Unix seconds.
    pub until: i64,
    /// The bucket's tags already evaluated against it.
    pub seen: Vec<u64>,
}

/// An evaluation result waiting for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchResult {
    /// Increasing; the coordinator's cursor.
    pub seq: u64,
    /// The watch.
    pub watch_id: String,
    /// The encrypted count.
    pub answer: Vec<u8>,
    /// Unix seconds.
    pub evaluated_at: i64,
}

/// One watch's part in an evaluation round.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The watch.
    pub watch_id: String,
    /// Its bucket's tags now (all seen from now on).
    pub seen: Vec<u64>,
    /// The encrypted count of the round, if it was evaluated.
    pub answer: Option<Vec<u8>>,
}

/// Why a watch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum WatchStoreError {
    /// The requester holds as many live watches as the policy allows.
    #[error(
        "at most {0} live watches per requester at this node (policy.watch.max_live_per_requester)"
    )]
    TooMany(u32),
    /// The store failed.
    #[error("watch store: {0}")]
    Db(#[from] DbError),
}

/// The node's watch tables.
pub struct WatchStore {
    db: Db,
}

impl WatchStore {
    /// Opens (creating the tables) in the node's store.
    pub fn open(store: &Location) -> Result<Self, DbError> {
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// Stores `watch` unless its requester already holds `max_live` live ones.
    pub fn add(&self, watch: &Watch, now: i64, max_live: u32) -> Result<(), WatchStoreError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            let live: i64 = exec.query_one(
                "SELECT COUNT(*) FROM watches WHERE requester = ?1",
                &[&watch.requester.as_str()],
                |r| r.get(0),
            )?;
            if live >= i64::from(max_live) {
                return Err(WatchStoreError::TooMany(max_live));
            }
            exec.execute(
                "INSERT INTO watches (id, requester, key_id, public_key, kind, bucket, tag,
                 oprf_key_id, nodes, registered_at, until, seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                &[
                    &watch.id.as_str(),
                    &watch.requester.as_str(),
                    &watch.key_id.as_str(),
                    &watch.public_key.as_slice(),
                    &i64::from(watch.kind),
                    &i64::from(watch.bucket),
                    &watch.tag.as_slice(),
                    &watch.oprf_key_id.as_str(),
                    &(watch.nodes as i64),
                    &watch.registered_at,
                    &watch.until,
                    &encode_seen(&watch.seen).as_slice(),
                ],
            )?;
            Ok(())
        })
    }

    /// Deletes the requester's watch `id` and its waiting results; whether
    /// there was one.
    pub fn cancel(&self, requester: &str, id: &str) -> Result<bool, DbError> {
        self.db.write(|exec| {
            let deleted = exec.execute(
                "DELETE FROM watches WHERE id = ?1 AND requester = ?2",
                &[&id, &requester],
            )?;
            if deleted > 0 {
                exec.execute("DELETE FROM watch_results WHERE watch_id = ?1", &[&id])?;
            }
            Ok(deleted > 0)
        })
    }

    /// Deletes expired watches with their waiting results.
    pub fn purge(&self, now: i64) -> Result<(), DbError> {
        self.db.write(|exec| purge(exec, now))
    }

    /// Every live watch (the evaluation round purges just before it asks).
    pub fn live(&self, now: i64) -> Result<Vec<Watch>, DbError> {
        self.db.run(|exec| {
            exec.query_all(
                "SELECT id, requester, key_id, public_key, kind, bucket, tag, oprf_key_id,
                        nodes, registered_at, until, seen
                 FROM watches WHERE until >= ?1 ORDER BY registered_at, id",
                &[&now],
                watch_of_row,
            )
        })
    }

    /// Records one evaluation round: each watch's new result (if any) and the
    /// tags it has now seen, in one transaction.
    pub fn record(&self, evaluated: &[Evaluated], now: i64) -> Result<(), DbError> {
        self.db.write(|exec| {
            for Evaluated {
                watch_id: id,
                seen,
                answer,
            } in evaluated
            {
                let updated = exec.execute(
                    "UPDATE watches SET seen = ?2 WHERE id = ?1",
                    &[&id.as_str(), &encode_seen(seen).as_slice()],
                )?;
                // Cancelled meanwhile: its result goes with it.
                if let (Some(answer), 1..) = (answer, updated) {
                    exec.execute(
                        "INSERT INTO watch_results (watch_id, answer, evaluated_at) VALUES (?1, ?2, ?3)",
                        &[&id.as_str(), &answer.as_slice(), &now],
                    )?;
                }
            }
            Ok(())
        })
    }

    /// Watches with a result the coordinator has not collected yet.
    pub fn pending(&self) -> Result<std::collections::HashSet<String>, DbError> {
        Ok(self
            .db
            .run(|exec| {
                exec.query_all("SELECT DISTINCT watch_id FROM watch_results", &[], |r| {
                    r.get::<String>(0)
                })
            })?
            .into_iter()
            .collect())
    }

    /// Results after `after`, oldest first; those up to `after` are
    /// forgotten (the coordinator has them).
    pub fn results_after(&self, after: u64) -> Result<Vec<WatchResult>, DbError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.db.write(|exec| {
            exec.execute("DELETE FROM watch_results WHERE seq <= ?1", &[&after])?;
            exec.query_all(
                &format!(
                    "SELECT seq, watch_id, answer, evaluated_at FROM watch_results
                     WHERE seq > ?1 ORDER BY seq LIMIT {MAX_RESULTS_PER_CALL}"
                ),
                &[&after],
                |r| {
                    Ok(WatchResult {
                        seq: u64::try_from(r.get::<i64>(0)?).unwrap_or_default(),
                        watch_id: r.get(1)?,
                        answer: r.get(2)?,
                        evaluated_at: r.get(3)?,
                    })
                },
            )
        })
    }

    /// Rows left for watch `id`, results included: what a test checks is gone.
    pub fn rows_of(&self, id: &str) -> Result<i64, DbError> {
        self.db.run(|exec| {
            exec.query_one(
                "SELECT (SELECT COUNT(*) FROM watches WHERE id = ?1)
                      + (SELECT COUNT(*) FROM watch_results WHERE watch_id = ?1)",
                &[&id],
                |r| r.get(0),
            )
        })
    }
}

fn watch_of_row(r: &Row<'_>) -> Result<Watch, DbError> {
    Ok(Watch {
        id: r.get(0)?,
        requester: r.get(1)?,
        key_id: r.get(2)?,
        public_key: r.get(3)?,
        kind: u8::try_from(r.get::<i64>(4)?).unwrap_or_default(),
        bucket: u32::try_from(r.get::<i64>(5)?).unwrap_or_default(),
        tag: r.get(6)?,
        oprf_key_id: r.get(7)?,
        nodes: usize::try_from(r.get::<i64>(8)?).unwrap_or_default(),
        registered_at: r.get(9)?,
        until: r.get(10)?,
        seen: decode_seen(&r.get::<Vec<u8>>(11)?),
    })
}

/// Expired watches go, with their waiting results.
fn purge(exec: &mut dyn fedq_db::Exec, now: i64) -> Result<(), DbError> {
    exec.execute(
        "DELETE FROM watch_results WHERE watch_id IN (SELECT id FROM watches WHERE until < ?1)",
        &[&now],
    )?;
    exec.execute("DELETE FROM watches WHERE until < ?1", &[&now])?;
    Ok(())
}

fn encode_seen(seen: &[u64]) -> Vec<u8> {
    seen.iter().flat_map(|t| t.to_le_bytes()).collect()
}

fn decode_seen(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            u64::from_le_bytes(word)
        })
        .collect()
}
