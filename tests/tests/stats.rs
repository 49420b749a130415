//! Differentially private statistics across a federation over mTLS: combined
//! answers, budget exhaustion reported per node, charges that survive a
//! restart, and invalid queries refused with a reason.

use fedq_proto::v1::{self, stats_query::Budget};
use fedq_tests::sandbox::{runtime, FederationSandbox};

fn query(measure: &str, group_by: &[&str], filters: &[&str], epsilon: f64) -> v1::StatsQuery {
    v1::StatsQuery {
        table: "incidents".to_owned(),
        measure: measure.to_owned(),
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        filters: filters.iter().map(|s| s.to_string()).collect(),
        budget: Some(Budget::Epsilon(epsilon)),
        dry_run: false,
    }
}

fn context() -> v1::RequestContext {
    v1::RequestContext {
        purpose: "research".to_owned(),
        case_reference: String::new(),
        ..Default::default()
    }
}

#[test]
fn statistics_combine_charge_and_refuse() -> anyhow::Result<()> {
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("fr")
            .jurisdiction("de")
            .people(2_000)
            .build()
            .await?;
        let mut requester = sandbox.researcher().await?;

        let catalog = requester.catalog().await?;
        assert_eq!(catalog.nodes.len(), 2);
        assert!(catalog.nodes[0].catalog_json.contains("\"incidents\""));

        // Count per category and month: every public group is there, empty ones too.
        let response = requester
            .stats(
                context(),
                query("count", &["category", "month"], &["sector=finance"], 1.0),
            )
            .await?;
        assert!(
            response.nodes.iter().all(|n| n.outcome().word() == "ok"),
            "{:?}",
            response.nodes
        );
        assert_eq!(
            response.groups.len(),
            8 * 36,
            "8 categories x 36 months of the public domain"
        );
        for group in &response.groups {
            assert!(group.ci95_low < group.estimate && group.estimate < group.ci95_high);
            // Two nodes, each Laplace with scale 10 (bound 10, epsilon 1): variance 2 * 2 * 100.
            assert!(
                (group.variance - 400.0).abs() < 1e-6,
                "variance adds up: {}",
                group.variance
            );
        }
        assert!(response
            .node_answers
            .iter()
            .all(|a| (a.epsilon_charged - 1.0).abs() < 1e-9));

        let mean = requester
            .stats(context(), query("mean:loss_eur", &["sector"], &[], 1.0))
            .await?;
        assert_eq!(mean.groups.len(), 8);

        assert_spent_everywhere(&requester.budget().await?, 2.0, "charged");

        // The charge is durable: a node stopped and restarted still has it.
        sandbox.stop_node("de").await?;
        sandbox.restart_node("de").await?;
        assert_spent_everywhere(&requester.budget().await?, 2.0, "charged");

        // Over the cap (10 per month): refused with ResourceExhausted at every node, reported.
        let refused = requester
            .stats(context(), query("count", &[], &[], 8.5))
            .await?;
        assert!(refused.groups.is_empty());
        for node in &refused.nodes {
            assert_eq!(node.outcome().word(), "refused");
            assert!(
                node.reason.contains("privacy budget exhausted"),
                "{}",
                node.reason
            );
        }
        assert_spent_everywhere(&requester.budget().await?, 2.0, "refusals cost nothing");

        // A table the policy does not admit is refused before the catalog is
        // consulted; invalid queries are reported per node as invalid, with the reason.
        for (bad, fragment, status) in [
            (
                v1::StatsQuery {
                    table: "nope".to_owned(),
                    ..query("count", &[], &[], 0.1)
                },
                "table is not admitted",
                "refused",
            ),
            (
                query("median:loss_eur", &[], &[], 0.1),
                "measure",
                "invalid",
            ),
            (query("count", &["colour"], &[], 0.1), "colour", "invalid"),
            (
                query("count", &[], &["sector=space"], 0.1),
                "sector",
                "invalid",
            ),
            (query("count", &["unit_id"], &[], 0.1), "unit_id", "invalid"),
        ] {
            let response = requester.stats(context(), bad).await?;
            for node in &response.nodes {
                assert_eq!(node.outcome().word(), status, "{node:?}");
                assert!(
                    node.reason.contains(fragment),
                    "{} should mention {fragment}",
                    node.reason
                );
            }
        }
        Ok(())
    })
}

/// Every node reports `epsilon` spent by the requester this epoch.
fn assert_spent_everywhere(budget: &v1::FederationBudgetResponse, epsilon: f64, why: &str) {
    assert!(
        budget
            .nodes
            .iter()
            .all(|b| (b.epsilon_spent - epsilon).abs() < 1e-9),
        "{why}: {:?}",
        budget.nodes
    );
}
