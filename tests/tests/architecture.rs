//! The crate graph points one way: proto, crypto <- transport <- db <- audit
//! <- node, coordinator, client <- tests, benches. A requester's client links no
//! server, the coordinator is not built from the node, and the client's own
//! dependency tree holds no database or statistics engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
}

fn cargo(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(workspace_root())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Normal (non-dev, non-build) dependencies of each workspace crate on other
/// workspace crates, from `cargo metadata`.
fn workspace_arrows() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let meta: serde_json::Value = serde_json::from_str(&cargo(&[
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ])?)?;
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    let mut arrows = BTreeMap::new();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default().to_owned();
        let deps = package["dependencies"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .filter(|d| members.contains(d))
            .collect();
        arrows.insert(name, deps);
    }
    Ok(arrows)
}

#[test]
fn arrows_point_one_way() -> anyhow::Result<()> {
    let arrows = workspace_arrows()?;
    // What each crate may depend on among the workspace's crates.
    let allowed: &[(&str, &[&str])] = &[
        ("fedq-crypto", &[]),
        ("fedq-proto", &["fedq-crypto"]),
        ("fedq-transport", &["fedq-proto"]),
        ("fedq-db", &["fedq-transport"]),
        (
            "fedq-audit",
            &["fedq-proto", "fedq-crypto", "fedq-transport", "fedq-db"],
        ),
        ("fedq-synth", &["fedq-proto", "fedq-crypto"]),
        (
            "fedq-node",
            &[
                "fedq-proto",
                "fedq-crypto",
                "fedq-transport",
                "fedq-db",
                "fedq-audit",
                "fedq-synth",
            ],
        ),
        (
            "fedq-coordinator",
            &[
                "fedq-proto",
                "fedq-crypto",
                "fedq-transport",
                "fedq-db",
                "fedq-audit",
            ],
        ),
        (
            "fedq-client",
            &["fedq-proto", "fedq-crypto", "fedq-transport"],
        ),
    ];
    for (krate, may) in allowed {
        let deps = arrows
            .get(*krate)
            .ok_or_else(|| anyhow::anyhow!("{krate} is not a workspace member"))?;
        let extra: Vec<_> = deps.iter().filter(|d| !may.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{krate} must not depend on {extra:?}");
    }
    Ok(())
}

#[test]
fn the_client_links_no_server_database_or_engine() -> anyhow::Result<()> {
    // Resolved for fedq-client alone: what the `fedq` binary is built from.
    let tree = cargo(&[
        "tree",
        "-p",
        "fedq-client",
        "-e",
        "normal",
        "--prefix",
        "none",
        "--offline",
    ])?;
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(crates.contains("fedq-crypto"), "unexpected tree:\n{tree}");
    for forbidden in [
        "fedq-node",
        "fedq-coordinator",
        "fedq-audit",
        "fedq-db",
        "fedq-synth",
        "datafusion",
        "parquet",
        "rusqlite",
        "tokio-postgres",
    ] {
        assert!(
            !crates.contains(forbidden),
            "fedq-client depends on {forbidden}"
        );
    }
    // tfhe without its integer layer (the client needs core_crypto only).
    let features = cargo(&[
        "tree",
        "-p",
        "fedq-client",
        "-e",
        "features",
        "-i",
        "tfhe",
        "--prefix",
        "none",
        "--offline",
    ])?;
    assert!(
        !features.contains("tfhe feature \"integer\""),
        "fedq-client enables tfhe's integer layer:\n{features}"
    );
    Ok(())
}
