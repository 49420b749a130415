//! Watches at the coordinator: which requester owns which watch, and the
//! encrypted alerts it raised (the nodes' results of one collection round,
//! added up), kept until the watch ends. Alert ids come from one sequence
//! shared with deconfliction alerts, so that one cursor follows both.

use fedq_db::{Db, DbError, Exec, Location, Schema};

const SCHEMA: Schema = Schema {
    sqlite: "CREATE TABLE IF NOT EXISTS watch_registrations (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        kind INTEGER NOT NULL,
        registered_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_alerts (
        id INTEGER PRIMARY KEY,
        requester TEXT NOT NULL,
        watch_id TEXT NOT NULL,
        answer BLOB NOT NULL,
        nodes INTEGER NOT NULL,
        raised_at INTEGER NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS watch_alerts_by_requester ON watch_alerts (requester, id);
    CREATE TABLE IF NOT EXISTS watch_cancelled (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        until INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_cursors (node TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS alert_sequence (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO alert_sequence (name, value) VALUES ('alerts', 0) ON CONFLICT (name) DO NOTHING;",
    postgres: "CREATE TABLE IF NOT EXISTS watch_registrations (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        kind BIGINT NOT NULL,
        registered_at BIGINT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_alerts (
        id BIGINT PRIMARY KEY,
        requester TEXT NOT NULL,
        watch_id TEXT NOT NULL,
        answer BYTEA NOT NULL,
        nodes BIGINT NOT NULL,
        raised_at BIGINT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS watch_alerts_by_requester ON watch_alerts (requester, id);
    CREATE TABLE IF NOT EXISTS watch_cancelled (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        until BIGINT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS watch_cursors (node TEXT PRIMARY KEY, seq BIGINT NOT NULL);
    CREATE TABLE IF NOT EXISTS alert_sequence (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO alert_sequence (name, value) VALUES ('alerts', 0) ON CONFLICT (name) DO NOTHING;",
};

/// Creates the alert sequence (both alert stores call it before they raise).
pub(crate) fn create_sequence(store: &Location) -> Result<(), DbError> {
    Db::open_with_schema(store, &SCHEMA).map(drop)
}

/// The next alert id, inside the caller's write transaction.
pub(crate) fn next_alert_id(exec: &mut dyn Exec) -> Result<i64, DbError> {
    exec.query_one(
        "UPDATE alert_sequence SET value = value + 1 WHERE name = 'alerts' RETURNING value",
        &[],
        |r| r.get(0),
    )
}

/// Most alerts kept per watch: the oldest beyond go (a requester away for
/// long, behind frequent imports, loses old rounds, not storage).
pub const MAX_ALERTS_PER_WATCH: usize = 1_000;

/// A watch as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchInfo {
    /// The coordinator's id.
    pub id: String,
    /// The identifier kind (wire code).
    pub kind: i32,
    /// Unix seconds.
    pub registered_at: i64,
    /// Unix seconds.
    pub until: i64,
}

/// One watch alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchAlertRecord {
    /// From the shared sequence.
    pub id: u64,
    /// The watch.
    pub watch_id: String,
    /// The sum of the round's encrypted counts.
    pub answer: Vec<u8>,
    /// Nodes whose results are in it.
    pub nodes: u32,
    /// Unix seconds.
    pub raised_at: i64,
}

/// The coordinator's watch tables.
pub struct WatchRegistry {
    db: Db,
}

impl WatchRegistry {
    /// Opens (creating the tables) in the coordinator's store.
    pub fn open(store: &Location) -> Result<Self, DbError> {
        Ok(Self {
            db: Db::open_with_schema(store, &SCHEMA)?,
        })
    }

    /// Records the requester's watch.
    pub fn add(&self, requester: &str, watch: &WatchInfo) -> Result<(), DbError> {
        self.db.write(|exec| {
            exec.execute(
                "INSERT INTO watch_registrations (id, requester, kind, registered_at, until) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[
                    &watch.id.as_str(),
                    &requester,
                    &i64::from(watch.kind),
                    &watch.registered_at,
                    &watch.until,
                ],
            )
            .map(drop)
        })
    }

    /// The requester's live watches.
    pub fn list(&self, requester: &str, now: i64) -> Result<Vec<WatchInfo>, DbError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            exec.query_all(
                "SELECT id, kind, registered_at, until FROM watch_registrations WHERE requester = ?1
                 ORDER BY registered_at, id",
                &[&requester],
                |r| {
                    Ok(WatchInfo {
                        id: r.get(0)?,
                        kind: i32::try_from(r.get::<i64>(1)?).unwrap_or_default(),
                        registered_at: r.get(2)?,
                        until: r.get(3)?,
                    })
                },
            )
        })
    }

    /// Whether the requester owns live watch `id`.
    pub fn owns(&self, requester: &str, id: &str, now: i64) -> Result<bool, DbError> {
        self.db.run(|exec| {
            Ok(exec
                .query_opt(
                    "SELECT 1 FROM watch_registrations WHERE id = ?1 AND requester = ?2 AND until >= ?3",
                    &[&id, &requester, &now],
                    |r| r.get::<i64>(0),
                )?
                .is_some())
        })
    }

    /// Deletes the requester's watch and its alerts; whether it had one.
    /// With `remember`, its id and owner are kept until it would have ended:
    /// a node that missed the cancellation still evaluates it, and is told
    /// again when one of its results shows it ([`Self::cancelled_owner`]).
    /// Without (no node can hold it), nothing is kept: a requester's
    /// refused registrations leave no rows behind.
    pub fn cancel(&self, requester: &str, id: &str, remember: bool) -> Result<bool, DbError> {
        self.db.write(|exec| {
            let until: Option<i64> = exec.query_opt(
                "SELECT until FROM watch_registrations WHERE id = ?1 AND requester = ?2",
                &[&id, &requester],
                |r| r.get(0),
            )?;
            exec.execute(
                "DELETE FROM watch_registrations WHERE id = ?1 AND requester = ?2",
                &[&id, &requester],
            )?;
            exec.execute(
                "DELETE FROM watch_alerts WHERE watch_id = ?1 AND requester = ?2",
                &[&id, &requester],
            )?;
            if let (Some(until), true) = (until, remember) {
                exec.execute(
                    "INSERT INTO watch_cancelled (id, requester, until) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &requester, &until],
                )?;
            }
            Ok(until.is_some())
        })
    }

    /// The owner of watch `id` if it was cancelled and had not ended yet.
    pub fn cancelled_owner(&self, id: &str, now: i64) -> Result<Option<String>, DbError> {
        self.db.run(|exec| {
            exec.query_opt(
                "SELECT requester FROM watch_cancelled WHERE id = ?1 AND until >= ?2",
                &[&id, &now],
                |r| r.get(0),
            )
        })
    }

    /// Raises one alert for a watch's round (the sum of its nodes' results),
    /// if the watch is still live; its id.
    pub fn raise(
        &self,
        watch_id: &str,
        answer: &[u8],
        nodes: u32,
        now: i64,
    ) -> Result<Option<u64>, DbError> {
        self.db.write(|exec| {
            let owner: Option<(String, i64)> = exec.query_opt(
                "SELECT requester, until FROM watch_registrations WHERE id = ?1 AND until >= ?2",
                &[&watch_id, &now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let Some((requester, until)) = owner else {
                return Ok(None);
            };
            let id = next_alert_id(exec)?;
            exec.execute(
                "INSERT INTO watch_alerts (id, requester, watch_id, answer, nodes, raised_at, until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &[
                    &id,
                    &requester.as_str(),
                    &watch_id,
                    &answer,
                    &i64::from(nodes),
                    &now,
                    &until,
                ],
            )?;
            exec.execute(
                &format!(
                    "DELETE FROM watch_alerts WHERE watch_id = ?1 AND id NOT IN
                     (SELECT id FROM watch_alerts WHERE watch_id = ?1
                      ORDER BY id DESC LIMIT {MAX_ALERTS_PER_WATCH})"
                ),
                &[&watch_id],
            )?;
            Ok(u64::try_from(id).ok())
        })
    }

    /// The requester's live watch alerts after `after`, in order.
    pub fn alerts(
        &self,
        requester: &str,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<Vec<WatchAlertRecord>, DbError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.db.run(|exec| {
            exec.query_all(
                &format!(
                    "SELECT id, watch_id, answer, nodes, raised_at FROM watch_alerts
                     WHERE requester = ?1 AND id > ?2 AND until >= ?3 ORDER BY id LIMIT {limit}"
                ),
                &[&requester, &after, &now],
                |r| {
                    Ok(WatchAlertRecord {
                        id: u64::try_from(r.get::<i64>(0)?).unwrap_or_default(),
                        watch_id: r.get(1)?,
                        answer: r.get(2)?,
                        nodes: u32::try_from(r.get::<i64>(3)?).unwrap_or_default(),
                        raised_at: r.get(4)?,
                    })
                },
            )
        })
    }

    /// Per node, the last result collected from it (kept across restarts,
    /// so that a restarted coordinator raises no round twice).
    pub fn cursors(&self) -> Result<std::collections::HashMap<String, u64>, DbError> {
        Ok(self
            .db
            .run(|exec| {
                exec.query_all("SELECT node, seq FROM watch_cursors", &[], |r| {
                    Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
                })
            })?
            .into_iter()
            .map(|(node, seq)| (node, u64::try_from(seq).unwrap_or_default()))
            .collect())
    }

    /// Moves the nodes' cursors, in one transaction.
    pub fn set_cursors(&self, cursors: &[(String, u64)]) -> Result<(), DbError> {
        self.db.write(|exec| {
            for (node, seq) in cursors {
                exec.execute(
                    "INSERT INTO watch_cursors (node, seq) VALUES (?1, ?2)
                     ON CONFLICT (node) DO UPDATE SET seq = excluded.seq",
                    &[&node.as_str(), &i64::try_from(*seq).unwrap_or(i64::MAX)],
                )?;
            }
            Ok(())
        })
    }

    /// Deletes what has ended, and the watches (with alerts) of requesters
    /// no longer listed (`listed` says whether one is).
    pub fn purge(&self, now: i64, listed: impl Fn(&str) -> bool) -> Result<(), DbError> {
        self.db.write(|exec| {
            purge(exec, now)?;
            let requesters: Vec<String> = exec.query_all(
                "SELECT DISTINCT requester FROM watch_registrations",
                &[],
                |r| r.get(0),
            )?;
            for gone in requesters.iter().filter(|r| !listed(r)) {
                exec.execute(
                    "DELETE FROM watch_alerts WHERE requester = ?1",
                    &[&gone.as_str()],
                )?;
                exec.execute(
                    "DELETE FROM watch_registrations WHERE requester = ?1",
                    &[&gone.as_str()],
                )?;
            }
            Ok(())
        })
    }
}

fn purge(exec: &mut dyn Exec, now: i64) -> Result<(), DbError> {
    exec.execute("DELETE FROM watch_alerts WHERE until < ?1", &[&now])?;
    exec.execute("DELETE FROM watch_registrations WHERE until < ?1", &[&now])?;
    exec.execute("DELETE FROM watch_cancelled WHERE until < ?1", &[&now])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn each_store(test: impl Fn(WatchRegistry)) {
        let dir = tempfile::tempdir().expect("temp dir");
        for location in fedq_db::testing::locations(dir.path(), "keys.db") {
            test(WatchRegistry::open(&location).expect("store opens"));
        }
    }

    fn info(id: &str, until: i64) -> WatchInfo {
        WatchInfo {
            id: id.to_owned(),
            kind: 1,
            registered_at: NOW,
            until,
        }
    }

    #[test]
    fn alerts_go_to_the_owner_of_a_live_watch_only_and_end_with_it() {
        each_store(|store| {
            store.add("alice", &info("w1", NOW + 10)).expect("adds");
            let first = store.raise("w1", b"sum", 2, NOW).expect("raises");
            assert!(first.is_some());
            // Nobody's watch, or an ended one: nothing raised.
            assert_eq!(store.raise("w9", b"sum", 1, NOW).expect("raises"), None);
            assert_eq!(
                store.raise("w1", b"sum", 1, NOW + 11).expect("raises"),
                None
            );
            let alerts = store.alerts("alice", 0, NOW, 10).expect("alerts");
            assert_eq!(alerts.len(), 1);
            assert_eq!(
                (alerts[0].nodes, alerts[0].answer.as_slice()),
                (2, &b"sum"[..])
            );
            assert!(store.alerts("bob", 0, NOW, 10).expect("alerts").is_empty());
            assert!(store
                .alerts("alice", 0, NOW + 11, 10)
                .expect("alerts")
                .is_empty());
            assert!(!store.owns("bob", "w1", NOW).expect("owns"));
            assert_eq!(store.cancelled_owner("w1", NOW).expect("reads"), None);
            assert!(
                !store.cancel("bob", "w1", true).expect("cancels"),
                "not his"
            );
            assert!(store.cancel("alice", "w1", true).expect("cancels"));
            assert!(store
                .alerts("alice", 0, NOW, 10)
                .expect("alerts")
                .is_empty());
            // Remembered for nodes that missed it, until it would have ended.
            assert_eq!(
                store.cancelled_owner("w1", NOW).expect("reads").as_deref(),
                Some("alice")
            );
            assert_eq!(store.raise("w1", b"sum", 1, NOW).expect("raises"), None);
            store.purge(NOW + 11, |_| true).expect("purges");
            assert_eq!(store.cancelled_owner("w1", NOW).expect("reads"), None);
            // A registration no node took leaves nothing behind.
            store.add("alice", &info("w4", NOW + 10)).expect("adds");
            assert!(store.cancel("alice", "w4", false).expect("cancels"));
            assert_eq!(store.cancelled_owner("w4", NOW).expect("reads"), None);
        });
    }

    #[test]
    fn cursors_survive_a_reopen_and_removed_requesters_lose_their_watches() {
        let dir = tempfile::tempdir().expect("temp dir");
        for location in fedq_db::testing::locations(dir.path(), "keys.db") {
            let store = WatchRegistry::open(&location).expect("opens");
            store
                .set_cursors(&[("fr".to_owned(), 7), ("de".to_owned(), 3)])
                .expect("saves");
            store.set_cursors(&[("fr".to_owned(), 9)]).expect("saves");
            let reopened = WatchRegistry::open(&location).expect("reopens");
            let cursors = reopened.cursors().expect("reads");
            assert_eq!((cursors["fr"], cursors["de"]), (9, 3));

            reopened
                .add("mallory", &info("w2", NOW + 100))
                .expect("adds");
            reopened.add("alice", &info("w3", NOW + 100)).expect("adds");
            reopened.raise("w2", b"sum", 1, NOW).expect("raises");
            reopened.purge(NOW, |r| r != "mallory").expect("purges");
            assert!(reopened.list("mallory", NOW).expect("lists").is_empty());
            assert!(reopened
                .alerts("mallory", 0, NOW, 10)
                .expect("alerts")
                .is_empty());
            assert_eq!(reopened.list("alice", NOW).expect("lists").len(), 1);
        }
    }
}
