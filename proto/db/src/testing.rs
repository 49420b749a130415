//! Stores for tests of every party: the same test runs on a fresh SQLite
//! file and, when `FEDQ_TEST_POSTGRES` names a server, on a fresh
//! PostgreSQL schema. Without it the PostgreSQL half is skipped, and says so
//! once per test binary (never a silent pass).

use std::io::Write;
use std::sync::Once;

use crate::{Db, DbError, Location};

/// The variable naming the PostgreSQL server tests may use, e.g.
/// `postgres://fedq@127.0.0.1:5432/fedq` (`.ci/run` starts one).
pub const POSTGRES_ENV: &str = "FEDQ_TEST_POSTGRES";

/// A new, empty schema on the test server, as a store location; `None`
/// (with one line on the terminal per test binary) when no server is named.
///
/// # Panics
/// When a server is named but cannot be reached: a PostgreSQL half that
/// cannot run must fail, not pass.
pub fn postgres() -> Option<Location> {
    let Some(url) = std::env::var(POSTGRES_ENV).ok().filter(|u| !u.is_empty()) else {
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Written past the test harness's capture, so it is seen.
            let _ = writeln!(
                std::io::stderr(),
                "fedq: PostgreSQL store tests skipped ({POSTGRES_ENV} is not set; .ci/run sets it)"
            );
        });
        return None;
    };
    let schema = format!("fedq_test_{:016x}", rand::random::<u64>());
    let admin = Db::open(&Location::Postgres(url.clone()))
        .unwrap_or_else(|e| panic!("{POSTGRES_ENV} is set but: {e}"));
    admin
        .run(|exec| exec.batch(&format!("CREATE SCHEMA {schema}")))
        .unwrap_or_else(|e: DbError| panic!("cannot create a test schema: {e}"));
    let join = if url.contains('?') { '&' } else { '?' };
    Some(Location::Postgres(format!(
        "{url}{join}options=-c%20search_path%3D{schema}"
    )))
}

/// The stores a test runs on: a file in `dir`, then PostgreSQL if named.
pub fn locations(dir: &std::path::Path, file: &str) -> Vec<Location> {
    let mut locations = vec![Location::Sqlite(dir.join(file))];
    locations.extend(postgres());
    locations
}
