//! Retention: identifiers with an `expires_at` or past the node's retention
//! period stop matching, `fedq-node purge` deletes them, and old stores upgrade.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use fedq_crypto::{Fingerprint, FingerprintParams, IdentifierKind};
use fedq_node::config::StoreLocation;
use fedq_node::import::{import_identifiers, import_identifiers_at, ImportReport};
use fedq_node::index::LookupIndex;
use fedq_node::store::Store;

const PADDING: usize = 64;
const HEADER: &str = "kind,value,record_id,expires_at\n";

fn params() -> anyhow::Result<FingerprintParams> {
    Ok(FingerprintParams::new(12, 28)?)
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Store,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("node.db");
        let store = Store::open(&StoreLocation::Sqlite(path.clone()))?;
        Ok(Self {
            _dir: dir,
            path,
            store,
        })
    }

    /// A fresh SQLite store, then a fresh PostgreSQL one when a server is
    /// named (`fedq_db::testing`).
    fn on_each_store(test: impl Fn(Fixture) -> anyhow::Result<()>) -> anyhow::Result<()> {
        test(Self::new()?)?;
        if let Some(location) = fedq_db::testing::postgres() {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("unused.db");
            test(Self {
                _dir: dir,
                path,
                store: Store::open(&location)?,
            })?;
        }
        Ok(())
    }

    fn import(&mut self, csv: &str) -> anyhow::Result<ImportReport> {
        Ok(import_identifiers(&mut self.store, csv.as_bytes(), |_| {})?)
    }

    fn import_at(&mut self, csv: &str, now: DateTime<Utc>) -> anyhow::Result<ImportReport> {
        Ok(import_identifiers_at(
            &mut self.store,
            csv.as_bytes(),
            now,
            |_| {},
        )?)
    }

    /// The node's fingerprint under its active OPRF key.
    fn fingerprint(&self, kind: IdentifierKind, value: &str) -> anyhow::Result<Fingerprint> {
        Ok(fedq_crypto::oprf::node_fingerprint(
            &self.store.oprf_keys()?.active,
            kind,
            &fedq_crypto::normalise(kind, value)?,
        ))
    }

    /// Whether the index built at `now` has the identifier among its candidates.
    fn indexed_at(
        &self,
        kind: IdentifierKind,
        value: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let index = LookupIndex::load_at(&self.store, params()?, PADDING, now)?;
        self.in_index(&index, kind, value)
    }

    fn in_index(
        &self,
        index: &LookupIndex,
        kind: IdentifierKind,
        value: &str,
    ) -> anyhow::Result<bool> {
        let fp = self.fingerprint(kind, value)?;
        Ok(index
            .candidates(kind, fp.bucket(params()?))
            .contains(&fp.tag(params()?).0))
    }

    fn holds(&self, kind: IdentifierKind, value: &str) -> anyhow::Result<bool> {
        Ok(self
            .store
            .contains(kind, &fedq_crypto::normalise(kind, value)?)?)
    }
}

#[test]
fn a_past_expires_at_does_not_match_and_a_future_one_does() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        let report = f.import(&format!(
            "{HEADER}email,gone@example.org,r1,2000-01-01\n\
             email,kept@example.org,r2,2999-12-31\n\
             email,forever@example.org,r3,\n\
             phone,+33612345678,r4,2001-02-03T04:05:06+01:00\n"
        ))?;
        assert_eq!((report.inserted, report.rejected.len()), (4, 0));
        let now = Utc::now();
        let email = IdentifierKind::Email;
        assert!(!f.indexed_at(email, "gone@example.org", now)?);
        assert!(!f.indexed_at(IdentifierKind::Phone, "+33612345678", now)?);
        assert!(f.indexed_at(email, "kept@example.org", now)?);
        assert!(f.indexed_at(email, "forever@example.org", now)?);
        assert!(!f.holds(email, "gone@example.org")?);
        assert!(f.holds(email, "kept@example.org")?);

        let index = LookupIndex::load_at(&f.store, params()?, PADDING, now)?;
        assert_eq!((index.records(), index.expired_records()), (2, 2));
        // The earliest upcoming expiry: the end of 2999-12-31, UTC.
        assert_eq!(
            index.valid_until().map(|t| t.to_rfc3339()),
            Some("3000-01-01T00:00:00+00:00".to_owned())
        );
        Ok(())
    })
}

#[test]
fn a_date_expires_at_the_end_of_that_day_and_the_index_goes_stale_then() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        f.import(&format!("{HEADER}email,a@example.org,r1,2030-06-15\n"))?;
        let end: DateTime<Utc> = "2030-06-16T00:00:00Z".parse()?;
        let before = end - chrono::Duration::seconds(1);
        let index = LookupIndex::load_at(&f.store, params()?, PADDING, before)?;
        let generation = f.store.generation()?;
        assert!(f.in_index(&index, IdentifierKind::Email, "a@example.org")?);
        assert!(index.is_current(generation, before));
        // The store did not change, yet the index must be rebuilt from `end` on.
        assert!(!index.is_current(generation, end));
        let reloaded = LookupIndex::load_at(&f.store, params()?, PADDING, end)?;
        assert!(!f.in_index(&reloaded, IdentifierKind::Email, "a@example.org")?);
        assert!(reloaded.is_current(generation, end + days(365)));
        // The expired record still pads: the evaluation's shape does not change.
        assert_eq!(reloaded.padded_candidates(), index.padded_candidates());
        Ok(())
    })
}

#[test]
fn the_retention_period_runs_from_the_last_import() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        let now = Utc::now();
        f.import_at(
            &format!(
                "{HEADER}email,old@example.org,r1,\n\
                 email,old-but-dated@example.org,r2,2999-01-01\n"
            ),
            now - days(40),
        )?;
        f.import_at(
            &format!(
                "{HEADER}email,new@example.org,r3,\n\
                 email,new-but-dated@example.org,r4,2000-01-01\n"
            ),
            now - days(1),
        )?;
        f.store
            .set_retention(Some(Duration::from_secs(30 * 86_400)));
        let email = IdentifierKind::Email;
        // Whichever expiry comes first.
        assert!(!f.indexed_at(email, "old@example.org", now)?);
        assert!(!f.indexed_at(email, "old-but-dated@example.org", now)?);
        assert!(f.indexed_at(email, "new@example.org", now)?);
        assert!(!f.indexed_at(email, "new-but-dated@example.org", now)?);
        assert!(!f.holds(email, "old@example.org")?);
        assert!(f.holds(email, "new@example.org")?);
        let index = LookupIndex::load_at(&f.store, params()?, PADDING, now)?;
        let expected = (now - days(1) + days(30)).timestamp();
        assert_eq!(index.valid_until().map(|t| t.timestamp()), Some(expected));

        // Importing the old record again restarts its retention period.
        f.import_at(&format!("{HEADER}email,old@example.org,r1,\n"), now)?;
        assert!(f.indexed_at(email, "old@example.org", now)?);
        Ok(())
    })
}

#[test]
fn importing_again_updates_the_expiry_without_duplicating() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        let email = IdentifierKind::Email;
        f.import(&format!("{HEADER}email,a@example.org,r1,2000-01-01\n"))?;
        assert!(!f.holds(email, "a@example.org")?);
        let generation = f.store.generation()?;

        let report = f.import(&format!("{HEADER}email,a@example.org,r1,2999-01-01\n"))?;
        assert_eq!(
            (report.inserted, report.duplicates, report.expiry_updated),
            (0, 1, 1)
        );
        assert!(f.holds(email, "a@example.org")?);
        assert!(f.store.generation()? > generation, "serving nodes reload");
        assert_eq!(f.store.identifier_count()?, 1);

        // A file without the column keeps the stored expiry; an empty cell clears it.
        f.import("kind,value,record_id\nemail,a@example.org,r1\n")?;
        let index = LookupIndex::load(&f.store, params()?, PADDING)?;
        assert_eq!(
            index.valid_until().map(|t| t.to_rfc3339()),
            Some("2999-01-02T00:00:00+00:00".to_owned())
        );
        let report = f.import(&format!("{HEADER}email,a@example.org,r1,\n"))?;
        assert_eq!(report.expiry_updated, 1);
        assert_eq!(
            LookupIndex::load(&f.store, params()?, PADDING)?.valid_until(),
            None
        );
        Ok(())
    })
}

#[test]
fn a_bad_expires_at_is_reported_with_its_line() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        let report = f.import(&format!(
            "{HEADER}email,a@example.org,r1,2024-13-01\n\
             email,b@example.org,r2,2999-01-01\n\
             email,c@example.org,r3,next tuesday\n\
             email,d@example.org,r4,2030-01-01T00:00:00\n"
        ))?;
        assert_eq!(report.inserted, 1);
        let lines: Vec<u64> = report.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 4, 5]);
        for rejected in &report.rejected {
            assert!(
                rejected.reason.contains("expires_at") && !rejected.reason.contains("tuesday"),
                "{}",
                rejected.reason
            );
        }
        Ok(())
    })
}

#[test]
fn purge_deletes_exactly_the_expired_records_once() -> anyhow::Result<()> {
    Fixture::on_each_store(|mut f| {
        let now = Utc::now();
        f.import_at(
            &format!(
                "{HEADER}email,old@example.org,r1,\n\
                 phone,+33612345678,r2,\n"
            ),
            now - days(40),
        )?;
        f.import_at(
            &format!(
                "{HEADER}email,dated@example.org,r3,2000-01-01\n\
                 email,live@example.org,r4,2999-01-01\n\
                 phone,+33698765432,r5,\n"
            ),
            now,
        )?;
        f.store
            .set_retention(Some(Duration::from_secs(30 * 86_400)));
        let generation = f.store.generation()?;

        let dry = f.store.purge_expired(now, true)?;
        assert_eq!(dry.total(), 3);
        assert_eq!(f.store.identifier_count()?, 5, "a dry run deletes nothing");
        assert_eq!(f.store.generation()?, generation);

        let purged = f.store.purge_expired(now, false)?;
        assert_eq!(purged.per_kind.get(&IdentifierKind::Email), Some(&2));
        assert_eq!(purged.per_kind.get(&IdentifierKind::Phone), Some(&1));
        assert_eq!(
            purged.to_string(),
            "phone: 1\nemail: 2\npurged 3 expired identifiers\n"
        );
        assert_eq!(f.store.identifier_count()?, 2);
        assert!(f.store.generation()? > generation, "serving nodes reload");
        assert!(f.holds(IdentifierKind::Email, "live@example.org")?);
        assert!(f.holds(IdentifierKind::Phone, "+33698765432")?);

        let generation = f.store.generation()?;
        let again = f.store.purge_expired(now, false)?;
        assert_eq!(again.total(), 0);
        assert_eq!(f.store.generation()?, generation);
        Ok(())
    })
}

#[test]
fn a_federation_key_store_is_refused_and_an_empty_one_upgraded() -> anyhow::Result<()> {
    let f = Fixture::new()?;
    let write_v1 = |path: &Path, rows: usize| -> anyhow::Result<()> {
        // The schema as version 1 wrote it (HMAC fingerprints under the
        // federation-wide key, no normal forms).
        let conn = rusqlite::Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE identifiers (
                 kind INTEGER NOT NULL,
                 fingerprint BLOB NOT NULL,
                 record_id TEXT NOT NULL,
                 PRIMARY KEY (kind, fingerprint, record_id)
             ) WITHOUT ROWID;
             INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('generation', 3);",
        )?;
        for i in 0..rows {
            conn.execute(
                "INSERT INTO identifiers (kind, fingerprint, record_id) VALUES (?1, ?2, 'r1')",
                (IdentifierKind::Email.code(), vec![i as u8; 32]),
            )?;
        }
        Ok(())
    };
    let full = f.path.with_file_name("v1-full.db");
    write_v1(&full, 2)?;
    let error = Store::open(&StoreLocation::Sqlite(full.clone()))
        .err()
        .context("an old store with identifiers is refused")?;
    assert!(
        error.to_string().contains("import the identifiers again"),
        "{error}"
    );
    // Nothing was changed: the old rows are still there for the operator.
    let conn = rusqlite::Connection::open(&full)?;
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM identifiers", [], |r| r.get(0))?;
    assert_eq!(rows, 2);

    let empty = f.path.with_file_name("v1-empty.db");
    write_v1(&empty, 0)?;
    let mut store = Store::open(&StoreLocation::Sqlite(empty.clone()))?;
    assert_eq!(store.generation()?, 3);
    import_identifiers(
        &mut store,
        "kind,value,record_id\nemail,a@example.org,r1\n".as_bytes(),
        |_| {},
    )?;
    let normal = fedq_crypto::normalise(IdentifierKind::Email, "a@example.org")?;
    assert!(store.contains(IdentifierKind::Email, &normal)?);
    drop(store);
    // Opening the upgraded store again changes nothing.
    let store = Store::open(&StoreLocation::Sqlite(empty))?;
    assert_eq!(store.identifier_count()?, 1);
    Ok(())
}

fn fedq_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedq-node"))
}

/// A minimal node config and federation file, plus `extra` TOML.
fn write_config(dir: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    Ok(fedq_node::testkit::write_minimal_node_config(dir, extra)?)
}

fn run(args: &[&str], config: &Path) -> anyhow::Result<(i32, String, String)> {
    let output = fedq_node()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout)?,
        String::from_utf8(output.stderr)?,
    ))
}

#[test]
fn purge_from_the_command_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = write_config(dir.path(), "[retention]\nidentifiers_days = 30\n")?;
    let csv = dir.path().join("identifiers.csv");
    std::fs::write(
        &csv,
        format!(
            "{HEADER}email,gone@example.org,r1,2000-01-01\n\
             email,kept@example.org,r2,2999-12-31\n\
             phone,+33612345678,r3,1999-12-31T23:00:00Z\n\
             email,bad@example.org,r4,31/12/2999\n"
        ),
    )?;
    let identifiers = csv.to_str().unwrap_or_default();
    let (code, stdout, stderr) = run(&["import", "--identifiers", identifiers], &config)?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("3 imported"), "{stdout}");
    assert!(stderr.contains("line 5: expires_at"), "{stderr}");

    let (code, stdout, stderr) = run(&["purge", "--dry-run"], &config)?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "phone: 1\nemail: 1\nwould purge 2 expired identifiers\n"
    );
    let (_, stdout, _) = run(&["purge"], &config)?;
    assert_eq!(stdout, "phone: 1\nemail: 1\npurged 2 expired identifiers\n");
    let (code, stdout, _) = run(&["purge"], &config)?;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "purged 0 expired identifiers\n")
    );
    Ok(())
}

#[test]
fn a_bad_retention_period_is_reported_with_its_key_path() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for bad in ["0", "-5", "100000"] {
        let config = write_config(
            dir.path(),
            &format!("[retention]\nidentifiers_days = {bad}\n"),
        )?;
        let (code, _, stderr) = run(&["purge"], &config)?;
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains("retention.identifiers_days: must be between 1 and"),
            "{stderr}"
        );
    }
    let config = write_config(dir.path(), "[retention]\nidentifier_days = 5\n")?;
    let (code, _, stderr) = run(&["purge"], &config)?;
    assert_eq!(code, 2, "unknown keys are refused: {stderr}");
    Ok(())
}

/// `fedq-node migrate` creates every table, then has nothing to do, and
/// refuses (changing nothing) a store written by a newer fedq; on SQLite and,
/// when a server is named, PostgreSQL.
#[test]
fn migrate_creates_upgrades_and_refuses_a_newer_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut stores = vec![None];
    stores.extend(fedq_db::testing::postgres().map(Some));
    for store in stores {
        let config = write_config(dir.path(), "")?;
        let location = match &store {
            Some(location @ fedq_db::Location::Postgres(url)) => {
                let text = std::fs::read_to_string(&config)?;
                std::fs::write(
                    &config,
                    text.replace("sqlite://store/node.db", url.as_str()),
                )?;
                location.clone()
            }
            _ => {
                let _ = std::fs::remove_dir_all(dir.path().join("store"));
                StoreLocation::Sqlite(dir.path().join("store/node.db"))
            }
        };
        let (code, out, err) = run(&["migrate"], &config)?;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("created at schema version 3"), "{out}");
        let db = fedq_db::Db::open(&location)?;
        for table in [
            "audit_log",
            "budget_spent",
            "identifiers",
            "meta",
            "oprf_keys",
            "privacy_ledger",
            "releases",
            "seen_nonces",
        ] {
            assert!(
                db.run(|exec| exec.table_exists(table))?,
                "{table} is created"
            );
        }
        let (code, out, _) = run(&["migrate"], &config)?;
        assert_eq!((code, out.contains("nothing to do")), (0, true), "{out}");

        fedq_db::Db::open(&location)?.run(|exec| {
            exec.execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                &[],
            )
        })?;
        let (code, _, err) = run(&["migrate"], &config)?;
        assert_ne!(code, 0);
        assert!(err.contains("schema version 99 is newer"), "{err}");
        let version: i64 = fedq_db::Db::open(&location)?.run(|exec| {
            exec.query_one(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                &[],
                |row| row.get(0),
            )
        })?;
        assert_eq!(version, 99, "a refused migration changes nothing");
    }
    Ok(())
}
