//! `fedq-bench stats`: one node, `rows` synthetic incidents imported into its
//! columnar engine, then DP queries through the node's service (catalog check,
//! bounded and clamped aggregate, OpenDP noise, durable ledger charge), timed
//! one at a time. The network hop is left out: it is the same as a lookup's
//! and small beside the query.

use std::time::Instant;

use fedq_client::ClientConfig;
use fedq_node::service::stats::{budget_from, StatsRequest};
use fedq_node::service::Caller;
use fedq_node::{NodeConfig, NodeService};
use fedq_proto::payload::stats_payload_hash;
use fedq_proto::v1;
use fedq_synth::{generate_incidents, GenerateOptions};
use serde_json::json;

use crate::{federation, median, print_result};

/// A statistics purpose the generated policy admits.
const PURPOSE: &str = "research";
/// Epsilon per timed query: small enough that every repeat fits the default cap.
const EPSILON_PER_QUERY: f64 = 0.01;

pub(crate) async fn run(
    rows: usize,
    repeats: usize,
    store: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        rows >= 1 && repeats >= 1,
        "rows and repeats must be positive"
    );
    let temp = tempfile::tempdir()?;
    let output = federation(temp.path(), 1, store)?;
    let (node_id, config_path) = &output.nodes[0];
    let config = NodeConfig::load(config_path)?;

    eprintln!("writing {rows} incidents");
    let csv = generate_incidents(
        &GenerateOptions {
            jurisdiction: node_id.clone(),
            // 500 incidents per reporting unit on average: most units exceed the bound.
            people: (rows / 5).max(100),
            seed: 7,
            out: temp.path().join("data"),
        },
        rows,
    )?;
    let catalog = config
        .catalog
        .iter()
        .find(|t| t.name == "incidents")
        .ok_or_else(|| anyhow::anyhow!("the node's catalog has no incidents table"))?;
    let started = Instant::now();
    let report = tokio::task::block_in_place(|| {
        fedq_node::stats::import_table(
            catalog,
            std::io::BufReader::new(std::fs::File::open(&csv)?),
            &config.stats_dir,
            |_| {},
        )
        .map_err(anyhow::Error::from)
    })?;
    let import_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.imported == rows,
        "imported {} of {rows} rows: {:?}",
        report.imported,
        report.rejected.first()
    );
    eprintln!("imported {rows} rows in {import_seconds:.2} s");

    let caller = Caller(
        config
            .allowed_callers
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("the node admits no caller"))?,
    );
    let service = NodeService::new(config)?;
    // Queries are signed like a requester's: envelope checks are part of the node's time.
    let client = ClientConfig::load(&output.researcher_client)?;
    let context = v1::RequestContext {
        purpose: PURPOSE.to_owned(),
        legal_basis: "benchmark on synthetic data".to_owned(),
        ..Default::default()
    };
    let queries = [
        ("count", "count", vec![]),
        (
            "group_by",
            "count",
            vec!["category".to_owned(), "month".to_owned()],
        ),
        (
            "sum_group_by",
            "sum:loss_eur",
            vec!["category".to_owned(), "sector".to_owned()],
        ),
    ];
    let mut result = json!({
        "rows": rows,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "epsilon_per_query": EPSILON_PER_QUERY,
        "import_seconds": import_seconds,
        "import_rows_per_second": rows as f64 / import_seconds,
    });
    for (name, measure, group_by) in queries {
        let mut seconds = Vec::with_capacity(repeats);
        let mut groups = 0;
        // One untimed run first: file metadata and plans cached by the OS and engine.
        for run in 0..=repeats {
            let wire = v1::StatsQuery {
                table: "incidents".to_owned(),
                measure: measure.to_owned(),
                group_by: group_by.clone(),
                filters: vec![],
                budget: Some(v1::stats_query::Budget::Epsilon(EPSILON_PER_QUERY)),
                dry_run: false,
            };
            let payload_hash = stats_payload_hash(&wire);
            let request = StatsRequest {
                query_id: format!("bench-{name}-{run}"),
                requester: "rosa".to_owned(),
                purpose: PURPOSE.to_owned(),
                envelope: fedq_proto::payload::from_wire(Some(client.sign(
                    "stats",
                    &context,
                    payload_hash.clone(),
                )?)),
                payload_hash,
                table: wire.table,
                measure: wire.measure,
                group_by: wire.group_by,
                filters: wire.filters,
                budget: Some(budget_from(Some(EPSILON_PER_QUERY), None)?),
                dry_run: false,
            };
            let started = Instant::now();
            let answer = service.stats(&caller, request).await?;
            if run > 0 {
                seconds.push(started.elapsed().as_secs_f64());
            }
            groups = answer.groups.len();
        }
        result[format!("{name}_seconds_median")] = json!(median(seconds));
        result[format!("{name}_groups")] = json!(groups);
    }
    print_result(&result, json)
}
