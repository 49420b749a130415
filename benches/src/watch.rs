//! `fedq-bench watch`: the node's cost of evaluating its live watches
//! against one import, what a watch costs in storage and upload, and (with
//! `--alert`) how long after the import `fedq alerts --follow` hears of it.
//!
//! The watches are stored directly (one encrypted tag, registered under many
//! ids in random buckets, each having seen its bucket as a registration
//! would: evaluation costs the same for any tag), so that 10,000 of them
//! need no 10,000 client encryptions; the import goes through the node's own
//! import, and the evaluation is the serving node's. With `--alert`, one
//! more watch is registered by a client through the coordinator, last (so
//! evaluated last in the round), on an identifier of the import.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use fedq_client::{ClientConfig, LookupInput, Requester, WatchOptions};
use fedq_crypto::lookup::{generate_keys, EncryptedTag};
use fedq_crypto::{Bucket, IdentifierKind, Tag};
use fedq_node::NodeService;
use fedq_tests::local::{start_coordinator, start_node};
use serde_json::json;

use crate::lookup::{email, import_generated};
use crate::{federation, print_result};

/// What to measure.
pub(crate) struct WatchOptionsBench {
    /// Live watches at the node (with `alert`, one of them a client's).
    pub watches: usize,
    /// Identifiers the node holds before.
    pub base: usize,
    /// New identifiers in the import.
    pub records: usize,
    /// Also time the alert through the coordinator to a follower.
    pub alert: bool,
    /// Print one JSON object.
    pub json: bool,
}

/// Stores `count` watches of one encrypted tag in random buckets, each
/// having seen its bucket's tags; their tag and public key sizes.
fn store_watches(
    service: &NodeService,
    params: fedq_crypto::FingerprintParams,
    requester: &str,
    count: usize,
    registered_at: i64,
) -> anyhow::Result<(usize, usize)> {
    let (secret, public) = generate_keys();
    let tag =
        EncryptedTag::encrypt(&secret, Tag(rand::random::<u64>()), params.tag_bits()).to_bytes();
    let public_key = public.to_bytes().to_vec();
    let oprf_key_id = service.oprf_key_id()?.to_string();
    for i in 0..count {
        let bucket = rand::random::<u32>() % params.bucket_count();
        service.watch_store().add(
            &fedq_node::watch::Watch {
                head: fedq_node::watch::WatchHead {
                    id: format!("w{i:08}"),
                    requester: requester.to_owned(),
                    key_id: public.id().as_str().to_owned(),
                    kind: IdentifierKind::Email.code(),
                    bucket,
                    oprf_key_id: oprf_key_id.clone(),
                    nodes: 1,
                    registered_at,
                    until: registered_at + 86_400,
                    seen: service.bucket_tags(IdentifierKind::Email, Bucket(bucket))?,
                },
                public_key: public_key.clone(),
                tag: tag.clone(),
            },
            registered_at,
            u32::MAX,
        )?;
    }
    Ok((tag.len(), public_key.len()))
}

pub(crate) async fn run(options: WatchOptionsBench) -> anyhow::Result<()> {
    let WatchOptionsBench {
        watches,
        base,
        records,
        alert,
        json,
    } = options;
    anyhow::ensure!(
        watches >= 1 && records >= 1,
        "at least one watch and record"
    );
    let temp = tempfile::tempdir()?;
    let output = federation(temp.path(), 1, None)?;
    let config = fedq_node::NodeConfig::load(&output.nodes[0].1)?;
    tokio::task::block_in_place(|| import_generated(&config, temp.path(), 0, base))?;
    let seen_bytes = 8 * base / config.fingerprint_params().bucket_count() as usize;

    let (mut result, (tag_bytes, key_bytes)) = if alert {
        alert_latency(&output, &config, temp.path(), watches, records).await?
    } else {
        round(&config, temp.path(), watches, records).await?
    };
    let fields = json!({
        "watches": watches,
        "base_records": base,
        "new_records": records,
        "padded_new_candidates": fedq_node::service::WATCH_PAD,
        "tag_bytes": tag_bytes,
        "public_key_bytes": key_bytes,
        "storage_bytes_per_watch": tag_bytes + key_bytes + seen_bytes,
        "upload_bytes_per_watch_per_node": tag_bytes,
    });
    if let (Some(all), Some(more)) = (result.as_object_mut(), fields.as_object()) {
        all.extend(more.clone());
    }
    print_result(&result, json)
}

/// The node's own evaluation round, timed directly.
async fn round(
    config: &fedq_node::NodeConfig,
    dir: &Path,
    watches: usize,
    records: usize,
) -> anyhow::Result<(serde_json::Value, (usize, usize))> {
    let service = tokio::task::spawn_blocking({
        let config = config.clone();
        move || NodeService::new(config)
    })
    .await??;
    // Nothing to evaluate yet: the first round only notes the index.
    service.evaluate_watches().await?;
    let (tag_bytes, key_bytes) = tokio::task::block_in_place(|| {
        store_watches(
            &service,
            config.fingerprint_params(),
            "bench",
            watches,
            chrono::Utc::now().timestamp(),
        )
    })?;
    let import_seconds = tokio::task::block_in_place(|| import_generated(config, dir, 1, records))?;
    let started = Instant::now();
    let evaluated = service.evaluate_watches().await?;
    let evaluate_seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(evaluated == watches, "evaluated {evaluated} of {watches}");
    let timings = json!({
        "import_seconds": import_seconds,
        "evaluate_seconds": evaluate_seconds,
        "evaluate_ms_per_watch": 1000.0 * evaluate_seconds / watches as f64,
    });
    Ok((timings, (tag_bytes, key_bytes)))
}

/// A serving node and coordinator: from the end of the import until a
/// follower receives the client's watch's alert.
async fn alert_latency(
    output: &fedq_client::init::InitOutput,
    config: &fedq_node::NodeConfig,
    dir: &Path,
    watches: usize,
    records: usize,
) -> anyhow::Result<(serde_json::Value, (usize, usize))> {
    let (node, service) = start_node(&output.nodes[0].1, &output.ports).await?;
    let coordinator = start_coordinator(&output.coordinator, &output.ports).await?;
    let mut requester = Requester::connect(ClientConfig::load(&output.client)?).await?;
    requester.keys_init(false).await?;

    let target = LookupInput {
        kind: IdentifierKind::Email,
        value: email(1, records / 2),
    };
    let added = requester
        .watch_add(
            &target,
            &WatchOptions {
                purpose: "fraud".to_owned(),
                case_reference: "BENCH".to_owned(),
                legal_basis: None,
                until: chrono::Utc::now().timestamp() + 86_400,
            },
        )
        .await?;
    anyhow::ensure!(
        !added.watch_id.is_empty(),
        "the node refused the watch: {:?}",
        added.nodes
    );
    // The others dated a little earlier: the round takes watches in
    // registration order, so the client's comes last. (Stored after it, so
    // that the policy's cap on live watches per requester sees one.)
    let registered_at = chrono::Utc::now().timestamp() - 60;
    let (tag_bytes, key_bytes) = tokio::task::block_in_place(|| {
        store_watches(
            &service,
            config.fingerprint_params(),
            "bench",
            watches - 1,
            registered_at,
        )
    })?;

    let (alerts, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let mut follower = Requester::connect(ClientConfig::load(&output.client)?).await?;
    let watch_id = added.watch_id.clone();
    let following = tokio::spawn(async move {
        follower
            .follow_alerts(0, |alert| {
                if let Ok(fedq_client::AlertReport::Watch(w)) = alert {
                    if w.watch_id == watch_id && w.hit {
                        let _ = alerts.send(Instant::now());
                    }
                }
                std::ops::ControlFlow::Continue(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let import_seconds = tokio::task::block_in_place(|| import_generated(config, dir, 1, records))?;
    let imported = Instant::now();
    let at = tokio::time::timeout(Duration::from_secs(1_800), arrived.recv())
        .await
        .context("no alert within 30 minutes")?
        .context("the follower stopped")?;
    let alert_seconds = at.duration_since(imported).as_secs_f64();
    following.abort();
    node.stop().await?;
    coordinator.stop().await?;
    let timings = json!({
        "import_seconds": import_seconds,
        "alert_seconds": alert_seconds,
    });
    Ok((timings, (tag_bytes, key_bytes)))
}
