//! `fedq-node generate` and `import` as a user runs them.

use std::process::Command;

fn fedq_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedq-node"))
}

/// `fedq-node import --config CONFIG --identifiers FILE`.
fn import(
    config: &std::path::Path,
    file: &std::path::Path,
) -> anyhow::Result<std::process::Output> {
    Ok(fedq_node()
        .args(["import", "--config"])
        .arg(config)
        .arg("--identifiers")
        .arg(file)
        .output()?)
}

#[test]
fn generate_is_deterministic_and_import_reports_and_deduplicates() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let init = fedq_coordinator_free_init(temp.path())?;
    let data = temp.path().join("data");
    for out in ["a", "b"] {
        let status = fedq_node()
            .args([
                "generate",
                "--jurisdiction",
                "fr",
                "--people",
                "500",
                "--seed",
                "3",
                "--out",
            ])
            .arg(data.join(out))
            .status()?;
        assert!(status.success());
    }
    let a = std::fs::read(data.join("a/identifiers.csv"))?;
    assert_eq!(
        a,
        std::fs::read(data.join("b/identifiers.csv"))?,
        "same seed, same file"
    );
    assert!(data.join("a/incidents.csv").exists());

    // Two bad rows among good ones: both reported with their line, nothing else lost.
    let mut csv = String::from_utf8(a)?;
    let good_rows = csv.lines().count() - 1;
    csv.push_str("phone,not a phone,fr-x1\nfingerprint,abc,fr-x2\n");
    let file = temp.path().join("identifiers.csv");
    std::fs::write(&file, csv)?;
    let run = |file: &std::path::Path| -> anyhow::Result<(String, String)> {
        let output = fedq_node()
            .args(["import", "--config"])
            .arg(&init)
            .arg("--identifiers")
            .arg(file)
            .output()?;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((
            String::from_utf8(output.stdout)?,
            String::from_utf8(output.stderr)?,
        ))
    };
    let (stdout, stderr) = run(&file)?;
    assert!(
        stdout.contains(&format!(
            "read {} rows: {} imported, 0 already present, 2 invalid",
            good_rows + 2,
            good_rows
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("line {}:", good_rows + 2)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("line {}: unknown identifier kind", good_rows + 3)),
        "{stderr}"
    );
    let (stdout, _) = run(&file)?;
    assert!(
        stdout.contains(&format!(
            "0 imported, {good_rows} already present, 2 invalid"
        )),
        "{stdout}"
    );

    let bad = fedq_node()
        .args(["import", "--config"])
        .arg(temp.path().join("missing.toml"))
        .arg("--identifiers")
        .arg(&file)
        .output()?;
    assert!(!bad.status.success());
    assert!(String::from_utf8(bad.stderr)?.contains("missing.toml"));
    Ok(())
}

/// A minimal node config and federation file, written by hand as an operator would.
fn fedq_coordinator_free_init(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    Ok(fedq_node::testkit::write_minimal_node_config(dir, "")?)
}

#[test]
fn rotate_oprf_key_re_derives_every_tag_and_erases_the_old_ones() -> anyhow::Result<()> {
    use fedq_crypto::IdentifierKind;
    let temp = tempfile::tempdir()?;
    let config_path = fedq_coordinator_free_init(temp.path())?;
    let file = temp.path().join("identifiers.csv");
    std::fs::write(
        &file,
        "kind,value,record_id\nemail,a@example.org,r1\nemail,a@example.org,r2\nphone,+33612345678,r3\n",
    )?;
    let imported = import(&config_path, &file)?;
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let config = fedq_node::NodeConfig::load(&config_path)?;
    let email = fedq_crypto::normalise(IdentifierKind::Email, "a@example.org")?;
    let before = {
        let store = fedq_node::store::Store::open(&config.store)?;
        let key = store.oprf_keys()?.active;
        (
            key.key_id(),
            fedq_crypto::oprf::node_fingerprint(&key, IdentifierKind::Email, &email),
        )
    };

    let rotate = fedq_node()
        .args(["rotate-oprf-key", "--config"])
        .arg(&config_path)
        .output()?;
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let stdout = String::from_utf8(rotate.stdout)?;
    assert!(
        stdout.contains(&format!("oprf key rotated: {} -> ", before.0)),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 identifiers re-derived, 3 old tags erased"),
        "{stdout}"
    );

    let store = fedq_node::store::Store::open(&config.store)?;
    let keys = store.oprf_keys()?;
    assert_ne!(keys.active.key_id(), before.0);
    assert!(keys.pending.is_none());
    let after = fedq_crypto::oprf::node_fingerprint(&keys.active, IdentifierKind::Email, &email);
    assert_ne!(after, before.1, "a new key gives new tags");
    // The index holds the new tags only; the old tag is gone from the store.
    let mut stored = Vec::new();
    let key = store.load_active(|kind, fp, _| stored.push((kind, fp)))?;
    assert_eq!(key.key_id(), keys.active.key_id());
    assert!(stored.contains(&(IdentifierKind::Email, after)));
    assert!(!stored.contains(&(IdentifierKind::Email, before.1)));
    let (old_values, key_rows): (i64, i64) = fedq_db::Db::open(&config.store)?.run(|exec| {
        exec.query_one(
            "SELECT (SELECT COUNT(*) FROM identifiers WHERE fp_a IS NOT NULL AND fp_b IS NOT NULL),
                    (SELECT COUNT(*) FROM oprf_keys)",
            &[],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    })?;
    assert_eq!(
        (old_values, key_rows),
        (0, 1),
        "old tags and old key erased"
    );
    assert!(store.contains(IdentifierKind::Email, &email)?);

    // A second import after rotation finds everything already present.
    let again = import(&config_path, &file)?;
    assert!(String::from_utf8(again.stdout)?.contains("0 imported, 3 already present"));
    Ok(())
}
