//! `fedq-bench`: the end-to-end benchmark harness behind BENCHMARKS.md.
//!
//! - `fedq-bench lookup --records 1000000 --nodes 3 --items 8 --json`
//! - `fedq-bench federation --nodes 32 --records 20000 --items 8 --json`
//! - `fedq-bench stats --rows 10000000 --json`
//! - `fedq-bench deconflict --nodes 3 --targets 50 --json`
//! - `fedq-bench watch --watches 10000 --records 10000 --json`

#[cfg(feature = "baseline")]
mod baseline;
mod deconflict;
mod lookup;
mod stats;
mod watch;

use std::path::Path;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fedq_client::init::{init, InitOptions, InitOutput};
use fedq_proto::federation::Parameters;

#[derive(Parser)]
#[command(name = "fedq-bench", about = "End-to-end benchmarks of fedq")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encrypted lookups against `records` identifiers per node.
    Lookup(lookup::LookupOptions),
    /// Lookups across a federation of `nodes` nodes over loopback mTLS: the
    /// lookup figures with the per-node compute apart from wall time and the
    /// coordinator's fan-out overhead. The nodes share this machine's cores.
    Federation {
        /// Nodes in the federation.
        #[arg(long, default_value_t = 32)]
        nodes: usize,
        /// Identifiers per node.
        #[arg(long, default_value_t = 20_000)]
        records: usize,
        /// Items to look up (half present, half absent).
        #[arg(long, default_value_t = 8)]
        items: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Differentially private statistics over `rows` incidents at one node.
    Stats {
        /// Incident rows imported into the node's columnar engine.
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
        /// Queries timed per kind of query.
        #[arg(long, default_value_t = 15)]
        repeats: usize,
        /// The node's store (its privacy ledger and audit log): a
        /// `postgres://` URL of an empty database or schema instead of the
        /// generated SQLite file.
        #[arg(long)]
        store: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A node's evaluation of its live watches against one import.
    Watch {
        /// Live watches at the node.
        #[arg(long, default_value_t = 10_000)]
        watches: usize,
        /// Identifiers the node holds before.
        #[arg(long, default_value_t = 100_000)]
        base: usize,
        /// New identifiers in the import.
        #[arg(long, default_value_t = 10_000)]
        records: usize,
        /// Serve the node and a coordinator, register one watch from a
        /// client, and time its alert from the end of the import to a
        /// follower (`fedq alerts --follow`).
        #[arg(long)]
        alert: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Deconfliction over loopback mTLS: registration latency (threshold
    /// OPRF across the nodes, then the coordinator) and the time until the
    /// other agency's follower prints the alert.
    Deconflict {
        /// Nodes in the federation (each holds a share; a majority takes part).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Targets registered by each of the two agencies.
        #[arg(long, default_value_t = 50)]
        targets: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Lookup(options) => lookup::run(options).await,
        Command::Federation {
            nodes,
            records,
            items,
            json,
        } => {
            lookup::run(lookup::LookupOptions {
                records,
                nodes,
                items,
                // One node's bucket: the baseline is the one-node figure.
                baseline_candidates: 0,
                store: None,
                json,
            })
            .await
        }
        Command::Stats {
            rows,
            repeats,
            store,
            json,
        } => stats::run(rows, repeats, store.as_deref(), json).await,
        Command::Deconflict {
            nodes,
            targets,
            json,
        } => deconflict::run(nodes, targets, json).await,
        Command::Watch {
            watches,
            base,
            records,
            alert,
            json,
        } => {
            watch::run(watch::WatchOptionsBench {
                watches,
                base,
                records,
                alert,
                json,
            })
            .await
        }
    }
}

/// A fresh local federation of `nodes` nodes (`n1`, `n2`, ...) under `dir`;
/// with `store`, its one node keeps its state there instead of in SQLite.
fn federation(dir: &Path, nodes: usize, store: Option<&str>) -> anyhow::Result<InitOutput> {
    anyhow::ensure!(nodes >= 1, "at least one node");
    anyhow::ensure!(
        store.is_none() || nodes == 1,
        "--store names one node's store: use --nodes 1"
    );
    let output = init(&InitOptions {
        dir: dir.join("federation"),
        nodes: (1..=nodes).map(|i| format!("n{i}")).collect(),
        requester: "bench".to_owned(),
        researcher: "rosa".to_owned(),
        agency: "bench".to_owned(),
        base_port: None,
        force: false,
        parameters: Parameters::default(),
    })?;
    if let Some(store) = store {
        let node_toml = &output.nodes[0].1;
        let text = std::fs::read_to_string(node_toml)?;
        let line = text
            .lines()
            .find(|line| line.starts_with("store ="))
            .context("node.toml has a store line")?;
        std::fs::write(
            node_toml,
            text.replacen(line, &format!("store = {store:?}"), 1),
        )?;
    }
    Ok(output)
}

fn print_result(result: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{result}");
    } else {
        println!("{}", serde_json::to_string_pretty(result).context("json")?);
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
