//! Rapid alerts end to end, over real mTLS: three nodes and a coordinator,
//! watches registered with `fedq watch add`, records imported with
//! `fedq-node import` while everything runs, alerts read with `fedq alerts`.
//! A watch fires after an import that adds its identifier, with the number
//! of jurisdictions, and not after imports that do not; a cancelled or
//! expired watch never fires and its ciphertexts are gone; the policy's
//! refusals are clear and audited.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::Context;
use fedq_audit::Decision;
use fedq_client::{AlertReport, ClientConfig, LookupInput, Requester, WatchOptions};
use fedq_crypto::IdentifierKind;
use fedq_proto::outcome::NodeOutcome;
use fedq_tests::binaries::{run_ok, JsonLines};
use fedq_tests::sandbox::{runtime, FederationSandbox};

/// At most this many live watches per requester at each node here.
const MAX_LIVE: usize = 8;

fn sandbox() -> &'static FederationSandbox {
    static SANDBOX: OnceLock<FederationSandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        runtime().block_on(async {
            let sandbox = FederationSandbox::builder()
                .jurisdiction("fr")
                .jurisdiction("de")
                .jurisdiction("nl")
                .people(50)
                .node_toml(&format!(
                    "[policy.watch]\nmax_live_per_requester = {MAX_LIVE}\n"
                ))
                .build()
                .await
                .expect("sandbox starts");
            // alice's lookup keys, registered.
            sandbox.requester().await.expect("keys registered");
            sandbox
        })
    })
}

fn fedq() -> Command {
    let mut command = fedq_tests::binaries::command("fedq").expect("the fedq binary");
    command.arg("--config").arg(&sandbox().output.client);
    command
}

fn node_toml(node: &str) -> &'static Path {
    sandbox().node_toml(node).expect("a node of the sandbox")
}

/// The running node `id`'s service (in this process).
fn node(id: &str) -> std::sync::Arc<fedq_node::NodeService> {
    sandbox().node(id).expect("a node of the sandbox")
}

/// A passport of its own for each test (tests share the federation).
fn passport(test: u8) -> String {
    format!("DE:W{test:02}{:06}", rand::random::<u32>() % 1_000_000)
}

/// `fedq watch add` for alice; the watch id.
fn watch(value: &str, case: &str) -> anyhow::Result<String> {
    let until = (chrono::Utc::now().date_naive() + chrono::Days::new(30))
        .format("%Y-%m-%d")
        .to_string();
    let out = run_ok(fedq().args([
        "watch",
        "add",
        "--kind",
        "passport",
        "--value",
        value,
        "--purpose",
        "fraud",
        "--case",
        case,
        "--until",
        &until,
    ]))?;
    assert_eq!(out.matches(": ok").count(), 3, "every node took it: {out}");
    out.lines()
        .find_map(|l| l.strip_prefix("watch "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .context("a watch id printed")
}

/// `fedq-node import` of one passport record at `node`, as its operator would.
fn import(node: &str, value: &str) -> anyhow::Result<()> {
    import_at(node_toml(node), value)
}

/// `fedq-node import` of one passport record at the node of `config`.
fn import_at(config: &Path, value: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let csv = dir.path().join("new.csv");
    std::fs::write(
        &csv,
        format!(
            "kind,value,record_id\npassport,{value},R-{:08x}\n",
            rand::random::<u32>()
        ),
    )?;
    run_ok(
        fedq_tests::binaries::command("fedq-node")?
            .args(["import", "--config"])
            .arg(config)
            .arg("--identifiers")
            .arg(&csv),
    )?;
    Ok(())
}

/// alice's watch alerts for `watch_id` after `after`, once `enough` says
/// they are (or after 30 s: the caller's assertion then fails).
async fn rounds_until(
    watch_id: &str,
    after: u64,
    enough: impl Fn(&[fedq_client::WatchReport]) -> bool,
) -> anyhow::Result<Vec<fedq_client::WatchReport>> {
    let mut alice = Requester::connect(ClientConfig::load(&sandbox().output.client)?).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<fedq_client::WatchReport> = alice
            .alerts(after)
            .await?
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|a| a.watch().cloned())
            .filter(|w| w.watch_id == watch_id)
            .collect();
        if enough(&found) || Instant::now() > deadline {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Jurisdictions counted for `watch_id` after `after`, once they reach `expected`.
async fn jurisdictions(watch_id: &str, after: u64, expected: u32) -> anyhow::Result<u32> {
    let total = |rounds: &[fedq_client::WatchReport]| rounds.iter().map(|w| w.jurisdictions).sum();
    let rounds = rounds_until(watch_id, after, |r| total(r) >= expected).await?;
    Ok(total(&rounds))
}

/// The highest alert id alice has now: later alerts have larger ids.
async fn last_alert() -> anyhow::Result<u64> {
    let mut alice = Requester::connect(ClientConfig::load(&sandbox().output.client)?).await?;
    Ok(alice
        .alerts(0)
        .await?
        .iter()
        .filter_map(|a| a.as_ref().ok().map(AlertReport::id))
        .max()
        .unwrap_or(0))
}

#[test]
fn a_watch_fires_with_the_number_of_jurisdictions_after_imports_that_add_it_only(
) -> anyhow::Result<()> {
    let target = passport(1);
    let id = watch(&target, "W-1")?;
    runtime().block_on(async {
        // An import without the identifier: a round, no hit.
        let before = last_alert().await?;
        import("fr", &passport(2))?;
        let quiet = rounds_until(&id, before, |r| !r.is_empty()).await?;
        assert!(!quiet.is_empty(), "the import was evaluated");
        assert!(
            quiet.iter().all(|w| !w.hit && w.jurisdictions == 0),
            "{quiet:?}"
        );

        // One node imports it: one jurisdiction.
        let before = last_alert().await?;
        import("de", &target)?;
        assert_eq!(jurisdictions(&id, before, 1).await?, 1);
        // The node evaluated it without learning anything: audited as a count.
        assert!(node("de")
            .audit_records()?
            .iter()
            .any(|r| r.action == "watch-evaluate" && r.detail.contains("new_candidates=")));

        // Two more import it: two more, however the rounds fall.
        let before = last_alert().await?;
        import("fr", &target)?;
        import("nl", &target)?;
        assert_eq!(jurisdictions(&id, before, 2).await?, 2);
        // `fedq alerts` prints the hits, not the quiet rounds.
        let printed = run_ok(fedq().args(["alerts"]))?;
        assert!(
            printed.contains(&format!("watch {id}: NEW HIT in 1 jurisdiction")),
            "{printed}"
        );
        Ok(())
    })
}

#[test]
fn follow_prints_a_watch_alert_within_seconds_of_the_import() -> anyhow::Result<()> {
    let target = passport(3);
    let id = watch(&target, "W-3")?;
    let follower = JsonLines::spawn(fedq().args(["alerts", "--follow", "--json"]))?;
    std::thread::sleep(Duration::from_millis(500));
    let imported = Instant::now();
    import("nl", &target)?;
    let found = follower.first(imported + Duration::from_secs(20), |alert| {
        alert["kind"] == "watch" && alert["watch_id"] == id.as_str()
    })?;
    drop(follower);
    let alert = found.context("no watch alert within 20 s of the import")?;
    assert_eq!(alert["hit"], true);
    assert_eq!(alert["jurisdictions"], 1);
    println!(
        "alert printed {:.1} s after the import",
        imported.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn a_cancelled_or_expired_watch_never_fires_and_its_ciphertexts_are_gone() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let target = passport(4);
    let cancelled = watch(&target, "W-4")?;
    assert!(node("fr").watch_rows(&cancelled)? >= 1);
    let out = run_ok(fedq().args(["watch", "cancel", &cancelled]))?;
    assert!(out.contains("cancelled"), "{out}");
    for id in ["fr", "de", "nl"] {
        assert_eq!(
            node(id).watch_rows(&cancelled)?,
            0,
            "node {id} still holds it"
        );
    }
    runtime().block_on(async {
        let mut alice = Requester::connect(ClientConfig::load(&sandbox.output.client)?).await?;
        let expired = alice
            .watch_add(
                &LookupInput {
                    kind: IdentifierKind::Passport,
                    value: target.clone(),
                },
                &WatchOptions {
                    purpose: "fraud".to_owned(),
                    case_reference: "W-5".to_owned(),
                    legal_basis: None,
                    until: chrono::Utc::now().timestamp() + 2,
                },
            )
            .await?;
        assert!(!expired.watch_id.is_empty());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = last_alert().await?;
        import("de", &target)?;
        // A later watch on another identifier gets its round: by then the
        // import has been evaluated.
        let witness = watch(&passport(6), "W-6")?;
        // A watch whose stored tag is damaged (an operator's edit, a bad
        // disk) must not hold up the others' rounds.
        node("de").watch_store().add(
            &fedq_node::watch::Watch {
                head: fedq_node::watch::WatchHead {
                    id: "damaged".to_owned(),
                    requester: "alice".to_owned(),
                    key_id: "00".repeat(16),
                    kind: IdentifierKind::Passport.code(),
                    bucket: 1,
                    oprf_key_id: node("de").oprf_key_id()?.to_string(),
                    nodes: 3,
                    registered_at: chrono::Utc::now().timestamp(),
                    until: chrono::Utc::now().timestamp() + 3_600,
                    seen: Vec::new(),
                },
                public_key: vec![1, 2, 3],
                tag: vec![0; 10],
            },
            chrono::Utc::now().timestamp(),
            u32::MAX,
        )?;
        import("de", &passport(7))?;
        let witnessed = rounds_until(&witness, before, |r| !r.is_empty()).await?;
        assert!(
            !witnessed.is_empty(),
            "the damaged watch held up the others"
        );
        for id in [&cancelled, &expired.watch_id] {
            assert!(
                rounds_until(id, before, |_| true).await?.is_empty(),
                "{id} fired"
            );
            for node_id in ["fr", "de", "nl"] {
                assert_eq!(
                    node(node_id).watch_rows(id)?,
                    0,
                    "{node_id} still holds {id}"
                );
            }
        }
        assert!(!alice
            .watch_list()
            .await?
            .iter()
            .any(|w| w.watch_id == cancelled || w.watch_id == expired.watch_id));
        Ok(())
    })
}

#[test]
fn watches_outside_policy_are_refused_with_a_reason_and_audited() -> anyhow::Result<()> {
    let sandbox = sandbox();
    runtime().block_on(async {
        let mut alice = Requester::connect(ClientConfig::load(&sandbox.output.client)?).await?;
        let input = LookupInput {
            kind: IdentifierKind::Passport,
            value: passport(8),
        };
        let base = WatchOptions {
            purpose: "fraud".to_owned(),
            case_reference: "W-POL".to_owned(),
            legal_basis: None,
            until: chrono::Utc::now().timestamp() + 86_400,
        };
        // A purpose the nodes do not admit: refused by all, nothing kept.
        let refused = alice
            .watch_add(
                &input,
                &WatchOptions {
                    purpose: "curiosity".to_owned(),
                    ..base.clone()
                },
            )
            .await?;
        assert!(refused.watch_id.is_empty());
        assert!(
            refused
                .nodes
                .iter()
                .all(|n| n.status == NodeOutcome::Refused && n.reason.contains("purpose")),
            "{:?}",
            refused.nodes
        );
        // A role the nodes do not let look up (a researcher): refused too.
        let mut rosa =
            Requester::connect(ClientConfig::load(&sandbox.output.researcher_client)?).await?;
        rosa.keys_init(false).await?;
        let by_role = rosa.watch_add(&input, &base).await?;
        assert!(by_role.watch_id.is_empty());
        assert!(
            by_role
                .nodes
                .iter()
                .all(|n| n.status == NodeOutcome::Refused && n.reason.contains("role")),
            "{:?}",
            by_role.nodes
        );
        // Past the sunset of 90 days.
        let too_long = alice
            .watch_add(
                &input,
                &WatchOptions {
                    until: chrono::Utc::now().timestamp() + 200 * 86_400,
                    case_reference: "W-LONG".to_owned(),
                    ..base.clone()
                },
            )
            .await?;
        assert!(
            too_long
                .nodes
                .iter()
                .all(|n| n.status == NodeOutcome::Refused && n.reason.contains("at most 90 days")),
            "{:?}",
            too_long.nodes
        );
        // The purpose was refused at the first step (the OPRF of the
        // identifier), the lifetime at the watch itself: both audited.
        let audit = node("fr").audit_records()?;
        for (case, action) in [("W-POL", "oprf"), ("W-LONG", "watch")] {
            assert!(
                audit.iter().any(|r| r.action == action
                    && r.case_ref == case
                    && r.decision == Decision::Refused),
                "{case} not audited"
            );
        }
        // The cap on live watches, for an investigator of its own (the other
        // tests' watches are alice's): the next one beyond it is refused.
        let client = fedq_client::init::add_requester(
            &sandbox.dir,
            &fedq_proto::federation::RequesterEntry {
                id: "bruno".to_owned(),
                agency: "test-agency".to_owned(),
                role: fedq_proto::Role::Investigator,
                public_key: String::new(),
            },
        )?;
        let mut bruno = Requester::connect(ClientConfig::load(&client)?).await?;
        bruno.keys_init(false).await?;
        let mut capped = None;
        for i in 0..=MAX_LIVE {
            let added = bruno
                .watch_add(
                    &LookupInput {
                        kind: IdentifierKind::Passport,
                        value: passport(20 + i as u8),
                    },
                    &base,
                )
                .await?;
            if added.nodes.iter().any(|n| n.status != NodeOutcome::Ok) {
                capped = Some(added);
                break;
            }
        }
        let capped = capped.context("the cap never refused")?;
        assert!(
            capped
                .nodes
                .iter()
                .all(|n| n.reason.contains("live watches")),
            "{:?}",
            capped.nodes
        );
        Ok(())
    })
}

/// A node that was down when its watch was cancelled keeps evaluating it;
/// its next result (after its restart or an import) shows the coordinator
/// so, which cancels it there again (and raises nothing for it).
#[test]
fn a_node_that_missed_a_cancellation_is_told_again_after_its_next_result() -> anyhow::Result<()> {
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("ma")
            .jurisdiction("mb")
            .people(50)
            .build()
            .await?;
        let mut alice = sandbox.requester().await?;
        let added = alice
            .watch_add(
                &LookupInput {
                    kind: IdentifierKind::Passport,
                    value: passport(20),
                },
                &WatchOptions {
                    purpose: "fraud".to_owned(),
                    case_reference: "W-20".to_owned(),
                    legal_basis: None,
                    until: chrono::Utc::now().timestamp() + 86_400,
                },
            )
            .await?;
        assert!(
            added.nodes.iter().all(|n| n.status == NodeOutcome::Ok),
            "{:?}",
            added.nodes
        );
        let id = added.watch_id;

        sandbox.stop_node("mb").await?;
        let cancelled = alice.watch_cancel(&id).await?;
        for node in &cancelled {
            let expected = if node.node == "mb" {
                NodeOutcome::Unavailable
            } else {
                NodeOutcome::Ok
            };
            assert_eq!(node.status, expected, "{node:?}");
        }
        // Read through the stopped node's service (its store is still open).
        let (ma, mb) = (sandbox.node("ma")?, sandbox.node("mb")?);
        assert_eq!(ma.watch_rows(&id)?, 0, "ma was told");
        assert!(mb.watch_rows(&id)? > 0, "mb missed the cancellation");
        // Restarted, mb evaluates its watches (it may have missed imports
        // while down) and sends a result for this one: the coordinator
        // cancels it there again. An import brings another round anyway.
        sandbox.restart_node("mb").await?;

        import_at(sandbox.node_toml("mb")?, &passport(21))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while mb.watch_rows(&id)? > 0 {
            assert!(
                Instant::now() < deadline,
                "mb still holds the cancelled watch 30 s after its import"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let alerts = alice.alerts(0).await?;
        assert!(
            !alerts
                .iter()
                .filter_map(|a| a.as_ref().ok())
                .any(|a| matches!(a, AlertReport::Watch(w) if w.watch_id == id)),
            "a cancelled watch raised an alert"
        );
        Ok(())
    })
}
