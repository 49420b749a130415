//! Standing lookups (watches) in the node's store: each watch's encrypted
//! tag and bucket, the requester's public key its results are encrypted
//! under, the bucket's tags already evaluated, and the results waiting for
//! the coordinator. The node never learns what a watch is for, nor whether
//! one of its evaluations was a hit.

use fedq_db::{Db, DbError, Location, Row, Schema};

// A watch's ciphertexts (~950 KB) and the bucket tags it has seen (rewritten
// every round) live apart from its registration: a row is rewritten whole
// when any of its columns changes, so with one table each round would copy
// every tag (and, with `secure_delete`, zero the old copy), and listing the
// live watches would read all of them at once.
const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS watches (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        key_id TEXT NOT NULL,
        kind INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        oprf_key_id TEXT NOT NULL,
        nodes INTEGER NOT NULL,
        registered_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_ciphertexts (
        watch_id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL,
        tag BLOB NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_seen (
        watch_id TEXT PRIMARY KEY,
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
        kind BIGINT NOT NULL,
        bucket BIGINT NOT NULL,
        oprf_key_id TEXT NOT NULL,
        nodes BIGINT NOT NULL,
        registered_at BIGINT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_ciphertexts (
        watch_id TEXT PRIMARY KEY,
        public_key BYTEA NOT NULL,
        tag BYTEA NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_seen (
        watch_id TEXT PRIMARY KEY,
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
    /// Everything but the ciphertexts.
    pub head: WatchHead,
    /// The requester's encoded public key (results are encrypted under it).
    pub public_key: Vec<u8>,
    /// The encoded encrypted tag (checked when registered).
    pub tag: Vec<u8>,
}

/// A watch without its ciphertexts: what listing the live watches reads.
#[derive(Debug, Clone)]
pub struct WatchHead {
    /// The coordinator's id, the same at every node.
    pub id: String,
    /// Who registered it.
    pub requester: String,
    /// The id of the requester's public key.
    pub key_id: String,
    /// The identifier kind (wire code).
    pub kind: u8,
    /// The bucket.
    pub bucket: u32,
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

/// A watch's ciphertexts, as [`WatchStore::ciphertexts`] reads them.
#[derive(Debug, Clone)]
pub struct WatchCiphertexts {
    /// The requester's encoded public key.
    pub public_key: Vec<u8>,
    /// The encoded encrypted tag.
    pub tag: Vec<u8>,
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
                &[&watch.head.requester.as_str()],
                |r| r.get(0),
            )?;
            if live >= i64::from(max_live) {
                return Err(WatchStoreError::TooMany(max_live));
            }
            let head = &watch.head;
            exec.execute(
                "INSERT INTO watches (id, requester, key_id, kind, bucket, oprf_key_id, nodes,
                 registered_at, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                &[
                    &head.id.as_str(),
                    &head.requester.as_str(),
                    &head.key_id.as_str(),
                    &i64::from(head.kind),
                    &i64::from(head.bucket),
                    &head.oprf_key_id.as_str(),
                    &(head.nodes as i64),
                    &head.registered_at,
                    &head.until,
                ],
            )?;
            exec.execute(
                "INSERT INTO watch_ciphertexts (watch_id, public_key, tag) VALUES (?1, ?2, ?3)",
                &[
                    &head.id.as_str(),
                    &watch.public_key.as_slice(),
                    &watch.tag.as_slice(),
                ],
            )?;
            exec.execute(
                "INSERT INTO watch_seen (watch_id, seen) VALUES (?1, ?2)",
                &[&head.id.as_str(), &encode_seen(&head.seen).as_slice()],
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
                delete_rest(exec, "watch_id = ?1", &[&id])?;
            }
            Ok(deleted > 0)
        })
    }

    /// Deletes expired watches with their waiting results.
    pub fn purge(&self, now: i64) -> Result<(), DbError> {
        self.db.write(|exec| purge(exec, now))
    }

    /// Every live watch, without its ciphertexts (the evaluation round
    /// purges just before it asks).
    pub fn live(&self, now: i64) -> Result<Vec<WatchHead>, DbError> {
        self.db.run(|exec| {
            exec.query_all(
                "SELECT w.id, w.requester, w.key_id, w.kind, w.bucket, w.oprf_key_id,
                        w.nodes, w.registered_at, w.until, s.seen
                 FROM watches w JOIN watch_seen s ON s.watch_id = w.id
                 WHERE w.until >= ?1 ORDER BY w.registered_at, w.id",
                &[&now],
                head_of_row,
            )
        })
    }

    /// The ciphertexts of the watches `ids` that still exist.
    pub fn ciphertexts(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, WatchCiphertexts>, DbError> {
        self.db.run(|exec| {
            let mut found = std::collections::HashMap::with_capacity(ids.len());
            for id in ids {
                let row = exec.query_opt(
                    "SELECT public_key, tag FROM watch_ciphertexts WHERE watch_id = ?1",
                    &[id],
                    |r| {
                        Ok(WatchCiphertexts {
                            public_key: r.get(0)?,
                            tag: r.get(1)?,
                        })
                    },
                );
                match row {
                    Ok(Some(ciphertexts)) => {
                        found.insert((*id).to_owned(), ciphertexts);
                    }
                    Ok(None) => {}
                    // A row edited into another type spoils its own watch
                    // (treated as missing), not every later one's round.
                    Err(DbError::Type { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        })
    }

    /// Records evaluations: each watch's new result (if any) and the tags it
    /// has now seen, in one transaction.
    pub fn record(&self, evaluated: &[Evaluated], now: i64) -> Result<(), DbError> {
        self.db.write(|exec| {
            for Evaluated {
                watch_id: id,
                seen,
                answer,
            } in evaluated
            {
                let updated = exec.execute(
                    "UPDATE watch_seen SET seen = ?2 WHERE watch_id = ?1",
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
                      + (SELECT COUNT(*) FROM watch_ciphertexts WHERE watch_id = ?1)
                      + (SELECT COUNT(*) FROM watch_seen WHERE watch_id = ?1)
                      + (SELECT COUNT(*) FROM watch_results WHERE watch_id = ?1)",
                &[&id],
                |r| r.get(0),
            )
        })
    }
}

fn head_of_row(r: &Row<'_>) -> Result<WatchHead, DbError> {
    Ok(WatchHead {
        id: r.get(0)?,
        requester: r.get(1)?,
        key_id: r.get(2)?,
        kind: u8::try_from(r.get::<i64>(3)?).unwrap_or_default(),
        bucket: u32::try_from(r.get::<i64>(4)?).unwrap_or_default(),
        oprf_key_id: r.get(5)?,
        nodes: usize::try_from(r.get::<i64>(6)?).unwrap_or_default(),
        registered_at: r.get(7)?,
        until: r.get(8)?,
        seen: decode_seen(&r.get::<Vec<u8>>(9)?),
    })
}

/// Deletes a watch's ciphertexts, seen tags and waiting results, for the
/// watches that `condition` (on `watch_id`) selects.
fn delete_rest(
    exec: &mut dyn fedq_db::Exec,
    condition: &str,
    params: &[&dyn fedq_db::Param],
) -> Result<(), DbError> {
    for table in ["watch_ciphertexts", "watch_seen", "watch_results"] {
        exec.execute(&format!("DELETE FROM {table} WHERE {condition}"), params)?;
    }
    Ok(())
}

/// Expired watches go, with their ciphertexts and waiting results.
fn purge(exec: &mut dyn fedq_db::Exec, now: i64) -> Result<(), DbError> {
    delete_rest(
        exec,
        "watch_id IN (SELECT id FROM watches WHERE until < ?1)",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(id: &str, until: i64) -> Watch {
        Watch {
            head: WatchHead {
                id: id.to_owned(),
                requester: "alice".to_owned(),
                key_id: "k".to_owned(),
                kind: 1,
                bucket: 7,
                oprf_key_id: "o".to_owned(),
                nodes: 2,
                registered_at: 100,
                until,
                seen: vec![3, 1],
            },
            public_key: vec![1; 40],
            tag: vec![2; 5_000],
        }
    }

    /// A round updates the seen tags and adds a result without touching the
    /// ciphertexts; cancelling and expiry take every row of a watch, in
    /// each of its tables.
    #[test]
    fn rounds_keep_ciphertexts_and_ends_remove_every_row() {
        let dir = tempfile::tempdir().unwrap();
        for location in fedq_db::testing::locations(dir.path(), "node.db") {
            let store = WatchStore::open(&location).unwrap();
            store.add(&watch("a", 1_000), 100, 10).unwrap();
            store.add(&watch("b", 200), 100, 10).unwrap();
            assert!(matches!(
                store.add(&watch("c", 1_000), 100, 2),
                Err(WatchStoreError::TooMany(2))
            ));

            let live = store.live(150).unwrap();
            assert_eq!(live.len(), 2);
            assert_eq!(live[0].seen, vec![3, 1]);
            store
                .record(
                    &[Evaluated {
                        watch_id: "a".to_owned(),
                        seen: vec![1, 3, 9],
                        answer: Some(vec![4; 16]),
                    }],
                    150,
                )
                .unwrap();
            let live = store.live(150).unwrap();
            let a = live.iter().find(|w| w.id == "a").unwrap();
            assert_eq!(a.seen, vec![1, 3, 9]);
            let sealed = store.ciphertexts(&["a", "nope"]).unwrap();
            assert_eq!(sealed.len(), 1);
            assert_eq!(sealed["a"].tag, vec![2; 5_000]);
            assert_eq!(sealed["a"].public_key, vec![1; 40]);
            assert_eq!(store.pending().unwrap().len(), 1);
            // watch, ciphertexts, seen tags, one result.
            assert_eq!(store.rows_of("a").unwrap(), 4);

            if matches!(location, Location::Sqlite(_)) {
                // An operator's edit into another type: that watch reads as
                // missing, the others as they are.
                store.add(&watch("d", 1_000), 100, 10).unwrap();
                store
                    .db
                    .write(|exec| {
                        exec.execute(
                            "UPDATE watch_ciphertexts SET tag = 'not a blob' WHERE watch_id = 'd'",
                            &[],
                        )
                    })
                    .unwrap();
                let sealed = store.ciphertexts(&["d", "a"]).unwrap();
                assert_eq!(sealed.keys().collect::<Vec<_>>(), vec!["a"]);
                assert!(store.cancel("alice", "d").unwrap());
            }

            assert!(!store.cancel("mallory", "a").unwrap(), "not hers");
            assert!(store.cancel("alice", "a").unwrap());
            assert_eq!(store.rows_of("a").unwrap(), 0);
            assert_eq!(store.rows_of("b").unwrap(), 3);
            store.purge(201).unwrap();
            assert_eq!(store.rows_of("b").unwrap(), 0);
            assert!(store.live(201).unwrap().is_empty());
        }
    }
}
