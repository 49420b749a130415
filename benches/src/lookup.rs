//! `fedq-bench lookup`: a federation on loopback (mTLS), `records` identifiers
//! per node (imported with the node's OPRF), lookups one item at a time (OPRF
//! round trip included) and as one batch, and tfhe-rs's own `is_in_clears` on
//! the candidates of one item for comparison.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use fedq_client::{ClientConfig, LookupInput, Requester};
use fedq_crypto::IdentifierKind;
use fedq_tests::local::{start_coordinator, start_node};
use serde_json::json;

use crate::{federation, median, print_result};

/// Options of one lookup benchmark run (`fedq-bench lookup`).
#[derive(clap::Args)]
pub(crate) struct LookupOptions {
    /// Identifiers per node (one kind, the worst case for bucket sizes).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) records: usize,
    /// Nodes in the federation.
    #[arg(long, default_value_t = 1)]
    pub(crate) nodes: usize,
    /// Items to look up (half present, half absent).
    #[arg(long, default_value_t = 8)]
    pub(crate) items: usize,
    /// Candidates given to tfhe-rs's is_in_clears (0: all of one item's padded bucket).
    #[arg(long, default_value_t = 0)]
    pub(crate) baseline_candidates: usize,
    /// The node's store: a `postgres://` URL of an empty database (or
    /// schema) instead of the generated SQLite file; one node only.
    #[arg(long)]
    pub(crate) store: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn email(node: usize, i: usize) -> String {
    format!("person.{i}.n{node}@bench.example")
}

pub(crate) fn write_identifiers(path: &Path, node: usize, records: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "kind,value,record_id")?;
    for i in 0..records {
        writeln!(out, "email,{},r{i}", email(node, i))?;
    }
    out.flush()?;
    Ok(())
}

/// Imports `count` generated identifiers (set `node`, written under `dir`)
/// through the node's own import path; its seconds.
pub(crate) fn import_generated(
    config: &fedq_node::NodeConfig,
    dir: &Path,
    node: usize,
    count: usize,
) -> anyhow::Result<f64> {
    let csv = dir.join(format!("identifiers-{node}.csv"));
    write_identifiers(&csv, node, count)?;
    let mut store = fedq_node::store::Store::open(&config.store)?;
    let started = Instant::now();
    let report = fedq_node::import::import_identifiers(
        &mut store,
        std::io::BufReader::new(std::fs::File::open(&csv)?),
        |_| {},
    )?;
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.inserted == count,
        "import stored {} of {count}",
        report.inserted
    );
    Ok(seconds)
}

pub(crate) async fn run(options: LookupOptions) -> anyhow::Result<()> {
    let LookupOptions {
        records,
        nodes,
        items,
        baseline_candidates,
        store,
        json,
    } = options;
    let temp = tempfile::tempdir()?;
    let output = federation(temp.path(), nodes, store.as_deref())?;

    let mut import_seconds = 0.0;
    for (index, (_, config_path)) in output.nodes.iter().enumerate() {
        let config = fedq_node::NodeConfig::load(config_path)?;
        import_seconds +=
            tokio::task::block_in_place(|| import_generated(&config, temp.path(), index, records))?;
        eprintln!("node n{}: imported {records} identifiers", index + 1);
    }

    let mut running = Vec::new();
    let mut services = Vec::new();
    for (_, config_path) in &output.nodes {
        let (party, service) = start_node(config_path, &output.ports).await?;
        running.push(party);
        services.push(service);
    }
    running.push(start_coordinator(&output.coordinator, &output.ports).await?);
    let padded = services[0].info().padded_candidates;

    let mut requester = Requester::connect(ClientConfig::load(&output.client)?).await?;
    requester.keys_init(false).await?;
    let inputs: Vec<LookupInput> = (0..items)
        .map(|i| LookupInput {
            kind: IdentifierKind::Email,
            value: if i % 2 == 0 {
                email(0, i * 7919 % records.max(1))
            } else {
                format!("absent.{i}@bench.example")
            },
        })
        .collect();

    // Warm-up: connections, key caches, FFT plans.
    requester.lookup(&inputs[..1], "fraud", "BENCH").await?;
    let mut per_item = Vec::new();
    let mut node_per_item = Vec::new();
    let mut node_slowest = Vec::new();
    let cpu_before = process_cpu_seconds();
    let mut fan_out = Vec::new();
    let mut encrypt = Vec::new();
    let mut oprf = Vec::new();
    let mut up = 0;
    let mut down = 0;
    for (i, input) in inputs.iter().enumerate() {
        let started = Instant::now();
        let report = requester
            .lookup(std::slice::from_ref(input), "fraud", "BENCH")
            .await?;
        per_item.push(started.elapsed().as_secs_f64());
        let expected = u32::from(i % 2 == 0);
        anyhow::ensure!(
            report.results[0].jurisdictions == expected,
            "item {i}: wrong answer"
        );
        anyhow::ensure!(
            report.nodes.iter().all(|n| n.status.word() == "ok"),
            "a node failed: {:?}",
            report.nodes
        );
        let computes: Vec<f64> = report
            .stats
            .node_compute
            .iter()
            .map(|(_, compute)| compute.as_secs_f64())
            .collect();
        anyhow::ensure!(
            computes.len() == nodes,
            "item {i}: {} of {nodes} nodes reported their compute",
            computes.len()
        );
        let slowest = computes.iter().copied().fold(0.0, f64::max);
        node_slowest.push(slowest);
        node_per_item.extend(computes);
        let stats = &report.stats;
        encrypt.push(stats.encrypt.as_secs_f64());
        oprf.push(stats.oprf.as_secs_f64());
        // What the round trip spent outside the client's own work and the
        // slowest node's evaluation: transfer, TLS, the coordinator's
        // fan-out and summation.
        fan_out.push(
            (stats.round_trip.as_secs_f64()
                - stats.oprf.as_secs_f64()
                - stats.encrypt.as_secs_f64()
                - slowest)
                .max(0.0),
        );
        up += report.stats.bytes_up;
        down += report.stats.bytes_down;
    }
    // Every party runs in this process: its CPU time over the single-item
    // lookups is what they cost together, whatever the cores' sharing.
    let cpu_per_item = cpu_before
        .zip(process_cpu_seconds())
        .map(|(before, after)| (after - before) / items as f64);
    let started = Instant::now();
    let batch = requester.lookup(&inputs, "fraud", "BENCH").await?;
    let batch_seconds = started.elapsed().as_secs_f64();
    // The slowest node's compute for the whole batch (one request per chunk).
    let batch_node = batch
        .stats
        .node_compute
        .iter()
        .map(|(_, compute)| compute.as_secs_f64())
        .fold(0.0, f64::max);
    anyhow::ensure!(batch
        .results
        .iter()
        .enumerate()
        .all(|(i, r)| r.jurisdictions == u32::from(i % 2 == 0)));

    for party in running {
        party.stop().await?;
    }

    let node_median = median(node_per_item);
    let (expansion, batch_expansion) = expansion_seconds(items.max(4))?;
    let batch_node_per_item = batch_node / items as f64;
    let baseline_k = if baseline_candidates == 0 {
        padded
    } else {
        baseline_candidates
    };
    let baseline = baseline_seconds(baseline_k);
    let result = json!({
        "records_per_node": records,
        "nodes": nodes,
        "items": items,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "bucket_bits": fedq_proto::federation::DEFAULT_BUCKET_BITS,
        "tag_bits": fedq_proto::federation::DEFAULT_TAG_BITS,
        "candidates_per_item": padded,
        "per_item_seconds_median": median(per_item),
        "node_seconds_per_item_median": node_median,
        "node_seconds_per_item_slowest": median(node_slowest),
        "process_cpu_seconds_per_item": cpu_per_item,
        "process_cpu_seconds_per_item_per_node": cpu_per_item.map(|s| s / nodes as f64),
        "fan_out_overhead_seconds_per_item": median(fan_out),
        "answers_checked": items * 2,
        "batch_seconds_per_item": batch_seconds / items as f64,
        "batch_node_seconds_per_item": batch_node_per_item,
        "batch_client_encrypt_seconds_per_item": batch.stats.encrypt.as_secs_f64() / items as f64,
        "batch_oprf_seconds_per_item": batch.stats.oprf.as_secs_f64() / items as f64,
        "fhe_seconds_per_candidate": node_median / padded as f64,
        "is_in_clears_candidates": baseline_k,
        "is_in_clears_seconds": baseline,
        "is_in_clears_seconds_per_candidate": baseline.map(|s| s / baseline_k as f64),
        "bytes_up_per_item": up / items,
        "bytes_up_per_item_per_node": up / items / nodes.max(1),
        "batch_bytes_up_per_item_per_node": batch.stats.bytes_up / items / nodes.max(1),
        "tag_format": 3,
        "format_2_bytes_up_per_item_per_node": fedq_crypto::lookup::EncryptedTag::encoded_len(
            fedq_proto::federation::DEFAULT_TAG_BITS
        ),
        "requester_key_bytes": fedq_crypto::lookup::ExpansionKey::encoded_len(),
        "expansion_seconds_per_item": expansion,
        "expansion_share_of_node_seconds": expansion / node_median,
        "batch_tag_format": 4,
        "batch_expansion_seconds_per_item": batch_expansion,
        "batch_expansion_share_of_node_seconds": batch_expansion / batch_node_per_item,
        "oprf_seconds_per_item": median(oprf),
        "bytes_down_per_item": down / items,
        "client_encrypt_seconds_per_item": median(encrypt),
        "import_records_per_second": (records * nodes) as f64 / import_seconds,
    });
    print_result(&result, json)
}

/// The node's expansion and conversion into the tree's GGSWs (part of its
/// compute per item), median over `samples` items: of one compressed tag
/// (format 3, single items), and per item of a packed group of three
/// (format 4, batches). On this process's rayon pool (all cores, as a
/// node's pool with `threads = 0`).
fn expansion_seconds(samples: usize) -> anyhow::Result<(f64, f64)> {
    use fedq_crypto::lookup::{
        CompressedTag, ExpansionKey, PackedTags, PreparedExpansionKey, PreparedTag,
    };
    use fedq_crypto::Tag;
    let (secret, _) = fedq_crypto::lookup::generate_keys();
    let key = PreparedExpansionKey::from_bytes(&ExpansionKey::generate(&secret).to_bytes())?;
    let bits = fedq_proto::federation::DEFAULT_TAG_BITS;
    let single = (0..samples)
        .map(|i| {
            let tag = CompressedTag::encrypt(&secret, Tag(i as u64 * 7919), bits);
            let started = Instant::now();
            std::hint::black_box(PreparedTag::prepare_compressed(tag, &key));
            started.elapsed().as_secs_f64()
        })
        .collect();
    let capacity = PackedTags::capacity(bits);
    let grouped = (0..samples.div_ceil(capacity))
        .map(|g| {
            let tags: Vec<Tag> = (0..capacity)
                .map(|i| Tag((g * capacity + i) as u64 * 7919))
                .collect();
            let group = PackedTags::encrypt(&secret, &tags, bits);
            let started = Instant::now();
            std::hint::black_box(PreparedTag::prepare_packed(group, &key));
            started.elapsed().as_secs_f64() / capacity as f64
        })
        .collect();
    Ok((median(single), median(grouped)))
}

/// tfhe-rs's `is_in_clears` on `candidates` clear values, in seconds; `None`
/// (printed as JSON null) when built without the `baseline` feature.
#[cfg(feature = "baseline")]
fn baseline_seconds(candidates: usize) -> Option<f64> {
    eprintln!("measuring tfhe-rs is_in_clears on {candidates} candidates (slow by design)");
    let elapsed = tokio::task::block_in_place(|| {
        let keys = crate::baseline::BaselineKeys::generate();
        let values: Vec<u32> = (0..candidates as u32)
            .map(|c| c.wrapping_mul(2_654_435_761))
            .collect();
        keys.time_is_in_clears(values[candidates / 2], &values)
    });
    Some(elapsed.as_secs_f64())
}

#[cfg(not(feature = "baseline"))]
fn baseline_seconds(_candidates: usize) -> Option<f64> {
    eprintln!(
        "is_in_clears baseline not built: add `--features fedq-benches/baseline` to measure it"
    );
    None
}

/// User and system CPU time of this process so far, from `/proc/self/stat`
/// (in USER_HZ ticks, 100 per second on Linux); `None` where that is absent.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}
