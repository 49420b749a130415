//! `fedq-bench deconflict`: registration latency and the time until both
//! agencies are told, over loopback mTLS with every node holding a share.

use std::time::{Duration, Instant};

use anyhow::Context;
use fedq_client::{ClientConfig, DeconflictOptions, LookupInput, Requester};
use fedq_crypto::IdentifierKind;
use fedq_tests::local::{start_coordinator, start_node};
use serde_json::json;

use crate::{federation, median, print_result};

/// The second agency, admitted by every node's policy.
const PARTNER: &str = "bench-partner";

/// Registers `targets` passports as agency `bench`, then the same ones as
/// the partner agency, each while `bench` follows its alerts.
pub(crate) async fn run(nodes: usize, targets: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(targets >= 1, "at least one target");
    let temp = tempfile::tempdir()?;
    let output = federation(temp.path(), nodes, None)?;
    for (_, node_toml) in &output.nodes {
        let text = std::fs::read_to_string(node_toml)?;
        std::fs::write(
            node_toml,
            text.replace(
                "agencies = [\"bench\"]",
                &format!("agencies = [\"bench\", \"{PARTNER}\"]"),
            ),
        )?;
    }
    let mut running = Vec::new();
    for (_, node_toml) in &output.nodes {
        running.push(start_node(node_toml, &output.ports).await?.0);
    }
    running.push(start_coordinator(&output.coordinator, &output.ports).await?);
    let partner_toml = fedq_client::init::add_requester(
        &temp.path().join("federation"),
        &fedq_proto::federation::RequesterEntry {
            id: "partner".to_owned(),
            agency: PARTNER.to_owned(),
            role: fedq_proto::role::Role::Investigator,
            public_key: String::new(),
        },
    )?;
    let mut bench = Requester::connect(ClientConfig::load(&output.client)?).await?;
    let mut partner = Requester::connect(ClientConfig::load(&partner_toml)?).await?;

    // bench follows its alerts: each arrives here with its arrival time.
    let (alerts, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let mut follower = Requester::connect(ClientConfig::load(&output.client)?).await?;
    let following = tokio::spawn(async move {
        follower
            .follow_alerts(0, |alert| {
                if let Some(alert) = alert.as_ref().ok().and_then(|a| a.deconfliction()) {
                    let _ = alerts.send((alert.other_registration.clone(), Instant::now()));
                }
                std::ops::ControlFlow::Continue(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let options = |contact: &str| DeconflictOptions {
        purpose: "deconfliction".to_owned(),
        case_reference: "BENCH-1".to_owned(),
        legal_basis: None,
        contact: contact.to_owned(),
        until: chrono::Utc::now().timestamp() + 86_400,
    };
    let passport = |i: usize| LookupInput {
        kind: IdentifierKind::Passport,
        value: format!("FR:BENCH{i:06}"),
    };
    let mut first = Vec::with_capacity(targets);
    for i in 0..targets {
        let started = Instant::now();
        bench
            .deconflict_register(&passport(i), &options("desk@bench.example"))
            .await?;
        first.push(started.elapsed().as_secs_f64());
    }
    let mut matching = Vec::with_capacity(targets);
    let mut notify = Vec::with_capacity(targets);
    for i in 0..targets {
        let started = Instant::now();
        let registration = partner
            .deconflict_register(&passport(i), &options("desk@partner.example"))
            .await?;
        matching.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(registration.matches == 1, "target {i} was not matched");
        let (other, at) = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
            .await
            .context("no alert within 30 s")?
            .context("the follower stopped")?;
        anyhow::ensure!(
            other == registration.id,
            "an alert for another registration"
        );
        notify.push(at.duration_since(started).as_secs_f64());
    }
    following.abort();
    for party in running {
        party.stop().await?;
    }
    let p95 = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[(v.len() * 95 / 100).min(v.len() - 1)]
    };
    print_result(
        &json!({
            "nodes": nodes,
            "threshold": fedq_client::init::deconfliction_threshold(u16::try_from(nodes)?),
            "targets": targets,
            "register_seconds_median": median(first.clone()),
            "register_seconds_p95": p95(first),
            "register_matching_seconds_median": median(matching.clone()),
            "register_matching_seconds_p95": p95(matching),
            "notify_seconds_median": median(notify.clone()),
            "notify_seconds_p95": p95(notify),
        }),
        json,
    )
}
