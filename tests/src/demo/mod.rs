//! `fedq demo`: a whole federation on loopback, a few lookups, and what each
//! party learned.
//!
//! Three nodes (fr, de, nl) with synthetic people, a coordinator, and one
//! investigator, all in this process but talking over real mTLS sockets. The
//! expected answers are computed from the generated files, so the demo shows
//! that the encrypted answers match what the records say.
//!
//! - `witness.rs`: the coordinator witnessing the nodes' audit checkpoints,
//!   and a node operator's rollback caught.
//! - `deconflict.rs`: two agencies on one target, told privately.
//! - `alerts.rs`: a watch firing after a node imports a new record.

mod alerts;
mod deconflict;
mod witness;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use fedq_crypto::IdentifierKind;
use fedq_proto::federation::Parameters;
use fedq_synth::{generate, GenerateOptions};

use crate::local::{start_coordinator, start_node};
use fedq_client::init::{init, InitOptions, InitOutput};
use fedq_client::{ClientConfig, LookupInput, Requester};

const NODES: [&str; 3] = ["fr", "de", "nl"];
const SEED: u64 = 7;

/// Per phone number (normal form), the jurisdictions that hold it.
type Holders = HashMap<String, BTreeSet<String>>;
/// Per phone number (normal form), a spelling found in the generated files.
type Spellings = HashMap<String, String>;

/// Phone numbers (normal form) per jurisdiction that holds them.
fn phone_holders(dir: &Path) -> anyhow::Result<(Holders, Spellings)> {
    let mut holders: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut spelling: HashMap<String, String> = HashMap::new();
    for node in NODES {
        let path = dir
            .join("nodes")
            .join(node)
            .join("data")
            .join("identifiers.csv");
        let mut reader = csv::Reader::from_path(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for record in reader.records() {
            let record = record?;
            if record.get(0) != Some("phone") {
                continue;
            }
            let raw = record.get(1).unwrap_or_default();
            let normal = fedq_crypto::normalise(IdentifierKind::Phone, raw)?;
            spelling
                .entry(normal.as_str().to_owned())
                .or_insert_with(|| raw.to_owned());
            holders
                .entry(normal.as_str().to_owned())
                .or_default()
                .insert(node.to_owned());
        }
    }
    Ok((holders, spelling))
}

/// Rewrites an E.164 number in another usual spelling: "00" prefix and spaces.
fn respell(e164: &str) -> String {
    let digits = e164.trim_start_matches('+');
    let mut out = String::from("00");
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Runs the demo; `--dir` keeps the federation, otherwise a temporary
/// directory is used.
pub async fn run(args: fedq_client::DemoArgs) -> anyhow::Result<()> {
    let fedq_client::DemoArgs { people, dir, force } = args;
    let temp = tempfile::tempdir()?;
    let kept = dir.is_some();
    let dir = dir.unwrap_or_else(|| temp.path().join("federation"));
    println!(
        "== fedq demo: 3 jurisdictions, {people} people each, in {}",
        dir.display()
    );
    let output = init(&InitOptions {
        dir: dir.clone(),
        nodes: NODES.iter().map(|s| s.to_string()).collect(),
        requester: "alice".to_owned(),
        researcher: "rosa".to_owned(),
        agency: "demo-agency".to_owned(),
        base_port: None,
        force,
        parameters: Parameters::default(),
    })?;
    println!("federation init: development CA, mTLS certificates, configs");

    for (node, config_path) in &output.nodes {
        let data = dir.join("nodes").join(node).join("data");
        let started = Instant::now();
        let summary = generate(&GenerateOptions {
            jurisdiction: node.clone(),
            people,
            seed: SEED,
            out: data.clone(),
        })?;
        let config = fedq_node::NodeConfig::load(config_path)?;
        let mut store = fedq_node::store::Store::open(&config.store)?;
        let file = std::fs::File::open(data.join("identifiers.csv"))?;
        let report = tokio::task::block_in_place(|| {
            fedq_node::import::import_identifiers(&mut store, std::io::BufReader::new(file), |_| {})
        })?;
        if !report.rejected.is_empty() {
            bail!(
                "node {node}: {} generated rows were refused",
                report.rejected.len()
            );
        }
        import_incidents(&config, &data)?;
        deconflict::admit_customs(config_path)?;
        println!(
            "node {node}: generated {} identifiers, imported {} in {:.1} s",
            summary.identifiers,
            report.inserted,
            started.elapsed().as_secs_f64()
        );
    }

    let mut running = Vec::new();
    for (_, config_path) in &output.nodes {
        let (node, _) = start_node(config_path, &output.ports).await?;
        running.push(node);
    }
    running.push(start_coordinator(&output.coordinator, &output.ports).await?);
    println!("nodes and coordinator serving on loopback over mutual TLS");

    let result = investigate(&dir, &output).await;
    for party in running {
        party.stop().await?;
    }
    result?;
    if kept {
        println!(
            "\nall parties stopped; the federation's files are in {}",
            dir.display()
        );
    } else {
        println!(
            "\nall parties stopped; the temporary federation was removed (keep one with --dir DIR)"
        );
    }
    Ok(())
}

/// Loads the generator's incidents into the node's statistics engine.
pub fn import_incidents(config: &fedq_node::NodeConfig, data: &Path) -> anyhow::Result<()> {
    let catalog = config
        .catalog
        .iter()
        .find(|t| t.name == "incidents")
        .context("no incidents table in the catalog")?;
    let file = std::fs::File::open(data.join("incidents.csv"))?;
    let report = tokio::task::block_in_place(|| {
        fedq_node::stats::import_table(
            catalog,
            std::io::BufReader::new(file),
            &config.stats_dir,
            |_| {},
        )
    })?;
    if !report.rejected.is_empty() {
        bail!(
            "{} generated incident rows were refused",
            report.rejected.len()
        );
    }
    Ok(())
}

/// The demo's statistics query: incidents per category since 2025, at
/// epsilon 0.5, for a threat report.
fn incidents_query() -> (fedq_proto::v1::RequestContext, fedq_proto::v1::StatsQuery) {
    let query = fedq_proto::v1::StatsQuery {
        table: "incidents".to_owned(),
        measure: "count".to_owned(),
        group_by: vec!["category".to_owned()],
        filters: vec!["date>=2025-01-01".to_owned()],
        budget: Some(fedq_proto::v1::stats_query::Budget::Epsilon(0.5)),
        dry_run: false,
    };
    let context = fedq_proto::v1::RequestContext {
        purpose: "threat-report".to_owned(),
        case_reference: String::new(),
        ..Default::default()
    };
    (context, query)
}

/// Statistics are the researcher's: the investigator is refused by role.
async fn research(investigator: &mut Requester, researcher: &Path) -> anyhow::Result<()> {
    println!("\nresearcher's view: incidents per category across the federation (epsilon 0.5 at each node)");
    let (context, query) = incidents_query();
    let refused = investigator.stats(context.clone(), query.clone()).await?;
    if let Some(node) = refused.nodes.first() {
        println!(
            "\ninvestigator alice asks for statistics: node {} {} ({})",
            node.node,
            node.outcome().word(),
            node.reason
        );
    }
    let mut requester = Requester::connect(ClientConfig::load(researcher)?).await?;
    println!("researcher rosa asks the same:");
    let response = requester.stats(context, query).await?;
    fedq_client::stats_cli::print_stats(&response, false, false)?;
    println!("\nprivacy budget left at each node this month:");
    fedq_client::stats_cli::print_budget(&requester.budget().await?, false)?;
    Ok(())
}

async fn investigate(dir: &Path, output: &InitOutput) -> anyhow::Result<()> {
    let mut requester = Requester::connect(ClientConfig::load(&output.client)?).await?;
    let key_id = requester.keys_init(false).await?;
    println!("investigator alice: TFHE keys made, public key {key_id} registered (secret key stays local)\n");

    let (holders, spelling) = tokio::task::block_in_place(|| phone_holders(dir))?;
    let mut shared = holders
        .iter()
        .filter(|(_, h)| h.len() >= 2)
        .collect::<Vec<_>>();
    let mut local = holders
        .iter()
        .filter(|(_, h)| h.len() == 1)
        .collect::<Vec<_>>();
    shared.sort();
    local.sort();
    let (Some((shared_phone, shared_at)), Some((local_phone, local_at))) =
        (shared.first(), local.first())
    else {
        bail!("the generated data has no cross-border phone numbers; use more --people");
    };
    let absent = (0..1000u32)
        .map(|i| {
            format!(
                "+33 6 99 {:02} {:02} {:02}",
                i / 100,
                (i / 10) % 10 * 7 % 100,
                i % 100
            )
        })
        .find(|p| {
            fedq_crypto::normalise(IdentifierKind::Phone, p)
                .is_ok_and(|n| !holders.contains_key(n.as_str()))
        })
        .context("no absent phone number found")?;
    let cases = [
        (
            spelling[*shared_phone].clone(),
            shared_at.len(),
            "held in two or more jurisdictions",
        ),
        (
            respell(shared_phone),
            shared_at.len(),
            "same number, another spelling",
        ),
        (
            spelling[*local_phone].clone(),
            local_at.len(),
            "held in one jurisdiction",
        ),
        (absent, 0, "held nowhere"),
    ];
    let inputs: Vec<LookupInput> = cases
        .iter()
        .map(|(value, _, _)| LookupInput {
            kind: IdentifierKind::Phone,
            value: value.clone(),
        })
        .collect();
    let started = Instant::now();
    let report = requester.lookup(&inputs, "demo", "DEMO-001").await?;
    let elapsed = started.elapsed();
    println!(
        "lookup of {} phone numbers (purpose demo, case DEMO-001):",
        inputs.len()
    );
    for (result, (_, expected, why)) in report.results.iter().zip(&cases) {
        let verdict = if result.hit {
            format!("HIT, {} jurisdiction(s)", result.jurisdictions)
        } else {
            "no hit".to_owned()
        };
        let check = if result.jurisdictions as usize == *expected {
            "as the records say"
        } else {
            "MISMATCH"
        };
        println!("  {:<24} {:<24} {check} ({why})", result.value, verdict);
        if result.jurisdictions as usize != *expected {
            bail!("demo answer does not match the generated records");
        }
    }
    for node in &report.nodes {
        println!("  node {}: {}", node.node, node.status.word());
    }
    let stats = &report.stats;
    println!(
        "  {:.2} s in all: {:.2} s encrypting, {:.0} KB sent and {:.0} KB received per item",
        elapsed.as_secs_f64(),
        stats.encrypt.as_secs_f64(),
        stats.bytes_up as f64 / 1024.0 / inputs.len() as f64,
        stats.bytes_down as f64 / 1024.0 / inputs.len() as f64,
    );
    println!(
        "\nwho learned what:\n\
         - each node: that alice asked about {n} phone numbers for purpose \"demo\", and their buckets\n\
         \x20 (12 bits of its own OPRF output: ~1 in 4096); it evaluated the numbers blinded, so never\n\
         \x20 learned them nor whether they matched; the evaluations count against alice's hourly limit\n\
         - the coordinator: who asked and how many items; it passed on blinded elements and added up\n\
         \x20 ciphertexts it cannot decrypt\n\
         - alice: per number, how many jurisdictions hold it, not which, and nothing about other records\n\
         \x20 (answers are re-randomised under her public key before they leave a node)",
        n = inputs.len()
    );
    research(&mut requester, &output.researcher_client).await?;
    revoke(dir).await?;
    governance(&mut requester, dir, &inputs[..1]).await?;
    deconflict::deconflict(&mut requester, dir).await?;
    alerts::watch_fires(&mut requester, dir).await?;
    witness::witness(&mut requester, dir).await?;
    Ok(())
}

/// Revocation while everything runs: a researcher added to the federation
/// file is answered, removed (`fedq federation remove-requester`), and then
/// refused within seconds, without a restart.
async fn revoke(dir: &Path) -> anyhow::Result<()> {
    use fedq_proto::federation::RequesterEntry;
    println!("\nrevocation: researcher bob joins demo-agency, asks, and is removed while everything runs");
    let entry = RequesterEntry {
        id: "bob".to_owned(),
        agency: "demo-agency".to_owned(),
        role: fedq_proto::role::Role::Researcher,
        public_key: String::new(),
    };
    let client = tokio::task::block_in_place(|| fedq_client::init::add_requester(dir, &entry))?;
    let mut bob = Requester::connect(ClientConfig::load(&client)?).await?;
    // A dry run: answered and audited, nothing read or charged.
    let query = fedq_proto::v1::StatsQuery {
        table: "incidents".to_owned(),
        measure: "count".to_owned(),
        budget: Some(fedq_proto::v1::stats_query::Budget::Epsilon(0.5)),
        dry_run: true,
        ..Default::default()
    };
    let context = fedq_proto::v1::RequestContext {
        purpose: "research".to_owned(),
        ..Default::default()
    };
    let answered = bob.stats(context.clone(), query.clone()).await?;
    let ok = answered
        .nodes
        .iter()
        .filter(|n| n.outcome() == fedq_proto::outcome::NodeOutcome::Ok)
        .count();
    println!(
        "  bob's dry run: answered by {ok} of {} nodes",
        answered.nodes.len()
    );
    tokio::task::block_in_place(|| fedq_client::init::remove_requester(dir, "bob"))?;
    let removed = Instant::now();
    loop {
        match bob.stats(context.clone(), query.clone()).await {
            Err(refusal) => {
                println!(
                    "  bob removed from federation.toml: refused {:.1} s later ({})",
                    removed.elapsed().as_secs_f64(),
                    refusal.root_cause()
                );
                return Ok(());
            }
            Ok(response)
                if response
                    .nodes
                    .iter()
                    .all(|n| n.outcome() != fedq_proto::outcome::NodeOutcome::Ok) =>
            {
                let reason = response.nodes.first().map_or("", |n| n.reason.as_str());
                println!(
                    "  bob removed from federation.toml: refused by every node {:.1} s later ({reason})",
                    removed.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            Ok(_) if removed.elapsed().as_secs() >= 5 => {
                bail!("bob was still answered 5 s after his removal")
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// Staged disclosure, a refused request, and each node's audit log verified.
async fn governance(
    requester: &mut Requester,
    dir: &Path,
    shared: &[LookupInput],
) -> anyhow::Result<()> {
    use fedq_client::LookupOptions;

    println!(
        "\nstaged disclosure: which jurisdictions hold {}? (purpose {}, authorization WARRANT-17)",
        shared[0].value,
        fedq_client::init::DISCLOSURE_PURPOSE
    );
    let report = requester
        .lookup_with(
            shared,
            &LookupOptions {
                purpose: fedq_client::init::DISCLOSURE_PURPOSE.to_owned(),
                case_reference: "DEMO-002".to_owned(),
                legal_basis: None,
                disclose: Some("WARRANT-17".to_owned()),
                ..LookupOptions::default()
            },
        )
        .await?;
    for node in &report.nodes {
        println!("  node {}: {}", node.node, node.disclosure.word());
    }
    let revealed = report.results[0].held_by.clone().unwrap_or_default();
    println!(
        "  {} jurisdiction(s) hold it; revealed by their own policy: {}",
        report.results[0].jurisdictions,
        if revealed.is_empty() {
            "none".to_owned()
        } else {
            revealed.join(", ")
        }
    );

    println!("\na request the policies refuse (purpose \"curiosity\"):");
    let report = requester.lookup(shared, "curiosity", "DEMO-003").await?;
    for node in &report.nodes {
        println!(
            "  node {}: {} ({})",
            node.node,
            node.status.word(),
            node.reason
        );
    }

    println!("\naudit logs (hash-chained, head signed by each node's audit key):");
    let verify = |party: &str, command: &str, log: fedq_audit::AuditLog| -> anyhow::Result<()> {
        let verified = tokio::task::block_in_place(|| log.verify())?;
        match &verified.first_bad {
            None => println!(
                "  {party}: {command} audit verify: ok, {} entries (admitted and refused), chain intact",
                verified.entries
            ),
            Some((seq, why)) => bail!("{party}: audit log fails at entry {seq}: {why}"),
        }
        Ok(())
    };
    for node in NODES {
        let config = fedq_node::NodeConfig::load(&dir.join("nodes").join(node).join("node.toml"))?;
        verify(&format!("node {node}"), "fedq-node", config.open_audit()?)?;
    }
    let config = fedq_coordinator::config::CoordinatorConfig::load(
        &dir.join("coordinator").join("coordinator.toml"),
    )?;
    verify(
        "coordinator",
        "fedq-coordinator",
        fedq_audit::AuditLog::open_at(
            &config.key_store,
            &config.audit_checkpoint,
            &config.audit_key,
        )?,
    )?;
    Ok(())
}
