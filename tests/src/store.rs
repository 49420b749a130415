//! Which store the integration tests' nodes keep their state in: SQLite
//! files (the default, as `federation init` writes them) or, with
//! `FEDQ_TEST_STORE=postgres`, a fresh PostgreSQL schema per node on the
//! server that `FEDQ_TEST_POSTGRES` names. `.ci/run` runs the governance,
//! statistics and lookup suites both ways.

use std::path::Path;

use anyhow::Context;

/// The variable choosing the store: `sqlite` (default) or `postgres`.
pub const STORE_ENV: &str = "FEDQ_TEST_STORE";

/// Points a generated `node.toml` at the store under test.
///
/// # Errors
/// When PostgreSQL is asked for but no server is named (a PostgreSQL run
/// that cannot reach one fails; it never passes on SQLite instead).
pub fn store_under_test(node_toml: &Path) -> anyhow::Result<()> {
    point_at_store_under_test(node_toml, "store")
}

/// Points a generated `coordinator.toml` (its `key_store`: registry,
/// witness and audit log) at the store under test.
///
/// # Errors
/// As [`store_under_test`].
pub fn coordinator_store_under_test(coordinator_toml: &Path) -> anyhow::Result<()> {
    point_at_store_under_test(coordinator_toml, "key_store")
}

fn point_at_store_under_test(toml: &Path, key: &str) -> anyhow::Result<()> {
    match std::env::var(STORE_ENV).as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Ok(()),
        Ok("postgres") => {
            let Some(fedq_db::Location::Postgres(url)) = fedq_db::testing::postgres() else {
                anyhow::bail!(
                    "{STORE_ENV}=postgres needs a server in {}",
                    fedq_db::testing::POSTGRES_ENV
                );
            };
            let text = std::fs::read_to_string(toml)?;
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(&format!("{key} =")))
                .with_context(|| format!("{} has a {key} line", toml.display()))?;
            std::fs::write(toml, text.replacen(line, &format!("{key} = \"{url}\""), 1))?;
            Ok(())
        }
        Ok(other) => anyhow::bail!("{STORE_ENV}={other}: expected sqlite or postgres"),
    }
}
