//! The same statements on SQLite and, when a server is named, PostgreSQL:
//! values round-trip, a failed transaction leaves nothing, concurrent
//! read-then-write transactions never lose an update, uniqueness is
//! reported, bulk loads land, and calls work from inside an async runtime.

use std::sync::Arc;

use fedq_db::{testing, Db, DbError, Location, Value};

const SCHEMA_SQLITE: &str =
    "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n INTEGER NOT NULL, r REAL, b BLOB);
     CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);";
const SCHEMA_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, n BIGINT NOT NULL, r DOUBLE PRECISION, b BYTEA);
     CREATE TABLE IF NOT EXISTS counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);";

fn open(location: &Location) -> Db {
    let db = Db::open(location).unwrap();
    db.run(|exec| {
        exec.batch(match exec.backend() {
            fedq_db::Backend::Sqlite => SCHEMA_SQLITE,
            fedq_db::Backend::Postgres => SCHEMA_POSTGRES,
        })
    })
    .unwrap();
    db
}

fn each_engine(test: impl Fn(&Location)) {
    let dir = tempfile::tempdir().unwrap();
    for location in testing::locations(dir.path(), "t.db") {
        test(&location);
    }
}

#[test]
fn values_round_trip() {
    each_engine(|location| {
        let db = open(location);
        db.write(|tx| {
            tx.execute(
                "INSERT INTO t (k, n, r, b) VALUES (?1, ?2, ?3, ?4)",
                &[&"a", &-7i64, &0.5f64, &vec![0u8, 255]],
            )?;
            tx.execute(
                "INSERT INTO t (k, n, r, b) VALUES (?1, ?2, ?3, ?4)",
                &[&"b", &i64::MAX, &None::<f64>, &None::<Vec<u8>>],
            )
        })
        .unwrap();
        let rows = db
            .run(|exec| {
                exec.query_all("SELECT k, n, r, b FROM t ORDER BY k", &[], |row| {
                    Ok((
                        row.get::<String>(0)?,
                        row.get::<i64>(1)?,
                        row.get::<Option<f64>>(2)?,
                        row.get::<Option<Vec<u8>>>(3)?,
                    ))
                })
            })
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("a".to_owned(), -7, Some(0.5), Some(vec![0, 255])),
                ("b".to_owned(), i64::MAX, None, None),
            ],
            "{location:?}"
        );
        // An expression of another integer width reads as i64 too.
        let one: i64 = db
            .run(|exec| exec.query_one("SELECT 1", &[], |row| row.get(0)))
            .unwrap();
        assert_eq!(one, 1);
    });
}

#[test]
fn a_failed_transaction_leaves_nothing() {
    each_engine(|location| {
        let db = open(location);
        let failed: Result<(), DbError> = db.write(|tx| {
            tx.execute("INSERT INTO t (k, n) VALUES (?1, ?2)", &[&"x", &1i64])?;
            // The same key again: the whole transaction is refused.
            tx.execute("INSERT INTO t (k, n) VALUES (?1, ?2)", &[&"x", &2i64])?;
            Ok(())
        });
        let err = failed.unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        let n: i64 = db
            .run(|exec| exec.query_one("SELECT COUNT(*) FROM t", &[], |row| row.get(0)))
            .unwrap();
        assert_eq!(n, 0, "{location:?}");
        // The connection is usable after the rollback.
        db.write(|tx| tx.execute("INSERT INTO t (k, n) VALUES (?1, ?2)", &[&"x", &3i64]))
            .unwrap();
    });
}

#[test]
fn concurrent_read_then_write_loses_no_update() {
    each_engine(|location| {
        let first = open(location);
        first
            .run(|exec| exec.execute("INSERT INTO counter (id, n) VALUES (1, 0)", &[]))
            .unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let location = location.clone();
                std::thread::spawn(move || {
                    let db = Db::open(&location).unwrap();
                    for _ in 0..25 {
                        db.write(|tx| {
                            let n: i64 =
                                tx.query_one("SELECT n FROM counter WHERE id = 1", &[], |row| {
                                    row.get(0)
                                })?;
                            tx.execute("UPDATE counter SET n = ?1 WHERE id = 1", &[&(n + 1)])
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let n: i64 = first
            .run(|exec| exec.query_one("SELECT n FROM counter WHERE id = 1", &[], |row| row.get(0)))
            .unwrap();
        assert_eq!(n, 100, "{location:?}");
    });
}

#[test]
fn bulk_loads_land_and_a_duplicate_fails_the_load() {
    each_engine(|location| {
        let db = open(location);
        let keys: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let loaded = db
            .write(|tx| {
                tx.copy_in(
                    "t",
                    &["k", "n", "b"],
                    &mut keys.iter().enumerate().map(|(i, k)| {
                        vec![Value::Text(k), Value::Int(i as i64), Value::Blob(b"fp")]
                    }),
                )
            })
            .unwrap();
        assert_eq!(loaded, 1000);
        let again: Result<u64, DbError> = db.write(|tx| {
            tx.copy_in(
                "t",
                &["k", "n"],
                &mut [
                    vec![Value::Text("new"), Value::Int(0)],
                    vec![Value::Text("k5"), Value::Int(0)],
                ]
                .into_iter(),
            )
        });
        assert!(again.unwrap_err().is_unique_violation());
        let (n, sum): (i64, f64) = db
            .run(|exec| {
                exec.query_one(
                    "SELECT COUNT(*), CAST(SUM(n) AS DOUBLE PRECISION) FROM t",
                    &[],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .unwrap();
        assert_eq!((n, sum), (1000, 499_500.0), "{location:?}");
    });
}

#[test]
fn calls_work_from_inside_an_async_runtime() {
    each_engine(|location| {
        let db = Arc::new(open(location));
        for runtime in [
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ] {
            let db = Arc::clone(&db);
            let n: i64 = runtime
                .block_on(async move {
                    tokio::spawn(async move {
                        db.write(|tx| {
                            tx.execute(
                                "INSERT INTO t (k, n) VALUES (?1, 1) ON CONFLICT (k) DO UPDATE SET n = t.n + 1",
                                &[&"async"],
                            )?;
                            tx.query_one("SELECT n FROM t WHERE k = ?1", &[&"async"], |row| row.get(0))
                        })
                    })
                    .await
                })
                .unwrap()
                .unwrap();
            assert!(n >= 1);
        }
    });
}

/// A dropped handle's connection thread ends, and opening a store that
/// does not answer fails with the location named (not a hang).
#[test]
fn an_unreachable_server_is_a_clear_error() {
    let err = Db::open(&Location::Postgres(
        "postgres://fedq:secret@127.0.0.1:1/none?connect_timeout=2".to_owned(),
    ))
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("secret"),
        "{text}"
    );
}

/// A connection the server ends (a restart, `pg_terminate_backend`) is
/// reopened by the next call: the store keeps serving.
#[test]
fn a_connection_the_server_closed_is_reopened() {
    let Some(location) = testing::postgres() else {
        return;
    };
    let db = open(&location);
    let pid: i64 = db
        .run(|exec| exec.query_one("SELECT pg_backend_pid()", &[], |row| row.get(0)))
        .unwrap();
    let admin = Db::open(&location).unwrap();
    admin
        .run(|exec| {
            exec.query_one(
                "SELECT pg_terminate_backend(CAST(?1 AS INTEGER))",
                &[&pid],
                |_| Ok(()),
            )
        })
        .unwrap();
    // The driver notices the end of the stream shortly after.
    let mut after = None;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        if let Ok(n) =
            db.run(|exec| exec.query_one("SELECT pg_backend_pid()", &[], |row| row.get::<i64>(0)))
        {
            after = Some(n);
            break;
        }
    }
    let after = after.expect("the store answers again");
    assert_ne!(after, pid, "a new connection");
}
