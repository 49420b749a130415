//! `fedq-bench watch`: the node's cost of evaluating its live watches
//! against one import, and what a watch costs in storage and upload.
//!
//! The watches are stored directly (one encrypted tag, registered under many
//! ids in random buckets: evaluation costs the same for any tag), so that
//! 10,000 of them need no 10,000 client encryptions; the import goes through
//! the node's own import, and the evaluation is the serving node's.

use std::time::Instant;

use fedq_crypto::lookup::{generate_keys, EncryptedTag};
use fedq_crypto::Tag;
use serde_json::json;

use crate::lookup::write_identifiers;
use crate::{federation, print_result};

/// Registers `watches` watches at one node holding `base` identifiers,
/// imports `records` new ones, and times the evaluation round.
pub(crate) async fn run(
    watches: usize,
    base: usize,
    records: usize,
    json: bool,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let output = federation(temp.path(), 1, None)?;
    let config = fedq_node::NodeConfig::load(&output.nodes[0].1)?;
    let import = |node: usize, count: usize| -> anyhow::Result<f64> {
        let csv = temp.path().join(format!("identifiers-{node}.csv"));
        write_identifiers(&csv, node, count)?;
        let mut store = fedq_node::store::Store::open(&config.store)?;
        let started = Instant::now();
        let report = fedq_node::import::import_identifiers(
            &mut store,
            std::io::BufReader::new(std::fs::File::open(&csv)?),
            |_| {},
        )?;
        anyhow::ensure!(
            report.inserted == count,
            "import stored {}",
            report.inserted
        );
        Ok(started.elapsed().as_secs_f64())
    };
    tokio::task::block_in_place(|| import(0, base))?;
    let service = tokio::task::spawn_blocking({
        let config = config.clone();
        move || fedq_node::NodeService::new(config)
    })
    .await??;
    // Nothing to evaluate yet: the first round only notes the index.
    service.evaluate_watches().await?;

    let params = config.fingerprint_params();
    let (secret, public) = generate_keys();
    let tag =
        EncryptedTag::encrypt(&secret, Tag(rand::random::<u64>()), params.tag_bits()).to_bytes();
    let public_key = public.to_bytes().to_vec();
    let store = fedq_node::watch::WatchStore::open(&config.store)?;
    let now = chrono::Utc::now().timestamp();
    for i in 0..watches {
        store.add(
            &fedq_node::watch::Watch {
                head: fedq_node::watch::WatchHead {
                    id: format!("w{i:08}"),
                    requester: "bench".to_owned(),
                    key_id: public.id().as_str().to_owned(),
                    kind: fedq_crypto::IdentifierKind::Email.code(),
                    bucket: rand::random::<u32>() % params.bucket_count(),
                    oprf_key_id: service.oprf_key_id()?.to_string(),
                    nodes: 1,
                    registered_at: now,
                    until: now + 86_400,
                    seen: Vec::new(),
                },
                public_key: public_key.clone(),
                tag: tag.clone(),
            },
            now,
            u32::MAX,
        )?;
    }
    let seen_bytes = 8 * base / params.bucket_count() as usize;
    let import_seconds = tokio::task::block_in_place(|| import(1, records))?;
    let started = Instant::now();
    let evaluated = service.evaluate_watches().await?;
    let evaluate_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(evaluated == watches, "evaluated {evaluated} of {watches}");
    print_result(
        &json!({
            "watches": watches,
            "base_records": base,
            "new_records": records,
            "import_seconds": import_seconds,
            "evaluate_seconds": evaluate_seconds,
            "evaluate_ms_per_watch": 1000.0 * evaluate_seconds / watches as f64,
            "padded_new_candidates": fedq_node::service::WATCH_PAD,
            "tag_bytes": tag.len(),
            "public_key_bytes": public_key.len(),
            "storage_bytes_per_watch": tag.len() + public_key.len() + seen_bytes,
            "upload_bytes_per_watch_per_node": tag.len(),
        }),
        json,
    )
}
