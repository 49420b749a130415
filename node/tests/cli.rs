//! `fedq-node generate` and `import` as a user runs them.

use std::process::Command;

fn fedq_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedq-node"))
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
