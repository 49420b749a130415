//! A federation of 64 jurisdictions (the largest, whose count has the least
//! room and every node the least flooding) and a coordinator over mutual TLS
//! on loopback: one lookup adds 64 answers, and each count is the number of
//! jurisdictions that hold the identifier, checked against the generated data;
//! with one of them down, the other 63 still answer and the lost one is
//! named, never read as "nobody holds it".

use anyhow::Context;
use fedq_client::{ItemAnswer, LookupInput};
use fedq_crypto::{FingerprintParams, IdentifierKind};
use fedq_tests::fixtures::GroundTruth;
use fedq_tests::sandbox::{runtime, FederationSandbox};

const NODES: usize = fedq_proto::MAX_FEDERATION_NODES;

#[test]
fn sixty_four_jurisdictions_count_who_holds_an_identifier() -> anyhow::Result<()> {
    runtime().block_on(async {
        let mut builder = FederationSandbox::builder().people(60);
        for i in 1..=NODES {
            builder = builder.jurisdiction(&format!("j{i:02}"));
        }
        let sandbox = builder.build().await?;
        let truth = GroundTruth::load(&sandbox, FingerprintParams::new(12, 28)?)?;

        // One identifier for each number of holders the data has (the
        // shared pool reaches several jurisdictions), and one nobody holds.
        let mut by_count = std::collections::BTreeMap::new();
        for known in truth.identifiers.values() {
            by_count.entry(known.holders.len()).or_insert(known);
        }
        let widest = *by_count.keys().last().context("an identifier")?;
        assert!(widest > 2, "the widest identifier has {widest} holders");
        let mut picks: Vec<(IdentifierKind, String, u32)> = by_count
            .values()
            .map(|known| (known.kind, known.raw.clone(), known.holders.len() as u32))
            .collect();
        picks.push((
            IdentifierKind::Email,
            "held.by.nobody@example.invalid".to_owned(),
            0,
        ));
        let inputs: Vec<LookupInput> = picks
            .iter()
            .map(|(kind, value, _)| LookupInput {
                kind: *kind,
                value: value.clone(),
            })
            .collect();

        let mut requester = sandbox.requester().await?;
        let report = requester.lookup(&inputs, "fraud", "T-64").await?;
        assert_eq!(report.nodes.len(), NODES);
        assert!(
            report.nodes.iter().all(|n| n.status.word() == "ok"),
            "{:?}",
            report.nodes
        );
        let counts: Vec<u32> = report.results.iter().map(|r| r.jurisdictions).collect();
        let expected: Vec<u32> = picks.iter().map(|(_, _, count)| *count).collect();
        println!("{NODES} nodes, counts {counts:?}");
        assert_eq!(counts, expected);
        assert_eq!(
            report.results.iter().map(|r| r.hit).collect::<Vec<_>>(),
            expected.iter().map(|&c| c > 0).collect::<Vec<_>>()
        );

        // A holder of the widest identifier goes down.
        let widest_known = by_count.values().last().context("an identifier")?;
        let lost = widest_known
            .holders
            .iter()
            .next()
            .context("a holder")?
            .clone();
        sandbox.stop_node(&lost).await?;
        let report = requester.lookup(&inputs, "fraud", "T-64").await?;
        for node in &report.nodes {
            let word = node.status.word();
            if node.node == lost {
                assert_eq!(word, "unavailable", "{node:?}");
            } else {
                assert_eq!(word, "ok", "{node:?}");
            }
        }
        for ((result, (_, _, count)), known) in report
            .results
            .iter()
            .zip(&picks)
            .zip(by_count.values().map(Some).chain([None]))
        {
            let held_by_lost = known.is_some_and(|k| k.holders.contains(&lost));
            let expected = count - u32::from(held_by_lost);
            assert_eq!(
                (result.jurisdictions, result.answered, result.of),
                (expected, NODES as u32 - 1, NODES as u32)
            );
            let answer = if expected > 0 {
                ItemAnswer::Hit
            } else {
                ItemAnswer::Unknown
            };
            assert_eq!(result.answer, answer, "{result:?}");
        }
        Ok(())
    })
}

/// A node that accepts connections and never answers (a hung host, or one
/// an attacker holds) is reported as timed out after the coordinator's
/// per-node deadline; the other nodes' answers arrive, and the lookup does
/// not wait longer than a few deadlines (a retry and the two fan-outs, OPRF
/// and lookup), never the 30 s default.
#[test]
fn a_node_that_never_answers_delays_nobody_past_the_deadline() -> anyhow::Result<()> {
    const DEADLINE_MS: u64 = 2_000;
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("ha")
            .jurisdiction("hb")
            .jurisdiction("hc")
            .people(100)
            .edit_coordinator_toml(|t| {
                t.replace(
                    "node_timeout_ms = 30000",
                    &format!("node_timeout_ms = {DEADLINE_MS}"),
                )
            })
            .build()
            .await?;
        let federation = fedq_proto::federation::FederationFile::load(&sandbox.output.federation)?;
        let address = federation.node("hc").context("node hc")?.address.clone();
        sandbox.stop_node("hc").await?;
        // Where hc listened: connections are accepted and left unanswered.
        let hole = std::net::TcpListener::bind(&address)?;
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for connection in hole.incoming().flatten() {
                held.push(connection);
            }
        });

        let mut requester = sandbox.requester().await?;
        let started = std::time::Instant::now();
        let report = requester
            .lookup(
                &[LookupInput {
                    kind: IdentifierKind::Email,
                    value: "held.by.nobody@example.invalid".to_owned(),
                }],
                "fraud",
                "T-hung",
            )
            .await?;
        let took = started.elapsed();
        for node in &report.nodes {
            let expected = if node.node == "hc" { "timeout" } else { "ok" };
            assert_eq!(node.status.word(), expected, "{node:?}");
        }
        let result = &report.results[0];
        assert_eq!((result.answered, result.of), (2, 3));
        assert_eq!(result.answer, ItemAnswer::Unknown);
        assert!(
            took < std::time::Duration::from_millis(6 * DEADLINE_MS),
            "the lookup took {took:?} with a {DEADLINE_MS} ms deadline"
        );
        Ok(())
    })
}
