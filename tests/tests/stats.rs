//! Differentially private statistics across a federation over mTLS: combined
//! answers, budget exhaustion reported per node, charges that survive a
//! restart, one budget currency against the requester's, its agency's and
//! its lifetime cap, and invalid queries refused with a reason.

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

        // Over the cap (rho 1 per month by default; epsilon 8.5 costs 36.125):
        // refused with ResourceExhausted at every node, reported.
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

/// Every node has charged `epsilon` in Laplace releases: a count at epsilon
/// 1 (rho 0.5) and a mean at epsilon 1 (two halves, rho 0.125 each), one
/// currency: rho 0.75 against every cap.
fn assert_spent_everywhere(budget: &v1::FederationBudgetResponse, epsilon: f64, why: &str) {
    assert!(
        budget.nodes.iter().all(|b| {
            (b.epsilon_spent - epsilon).abs() < 1e-9
                && (b.rho_spent - 0.75).abs() < 1e-6
                && (b.agency_rho_spent - 0.75).abs() < 1e-6
                && (b.lifetime_rho_spent - 0.75).abs() < 1e-6
                && (b.rho_left - (b.rho_cap - 0.75)).abs() < 1e-6
        }),
        "{why}: {:?}",
        budget.nodes
    );
}

/// The reason every node gave for refusing, or why it did not.
fn refusals(response: &v1::StatsResponse) -> Vec<String> {
    response
        .nodes
        .iter()
        .map(|n| format!("{} {}", n.outcome().word(), n.reason))
        .collect()
}

#[test]
fn one_budget_binds_a_requester_its_agency_and_its_lifetime() -> anyhow::Result<()> {
    runtime().block_on(async {
        // Both requesters of test-agency may ask statistics here; the agency
        // may spend rho 0.8 a month, each requester 0.6 for good.
        let sandbox = FederationSandbox::builder()
            .jurisdiction("fr")
            .people(2_000)
            .edit_node_toml(|toml| {
                toml.replace("agency_rho_per_epoch = 6.0", "agency_rho_per_epoch = 0.8")
                    .replace("rho_lifetime = 24.0", "rho_lifetime = 0.6")
                    .replace(
                        "[policy.stats]",
                        "[policy.actions]\nstats = [\"researcher\", \"investigator\"]\n\n[policy.stats]",
                    )
            })
            .build()
            .await?;
        let mut rosa = sandbox.researcher().await?;
        let mut alice = sandbox.requester().await?;
        let rho = |r: f64| v1::StatsQuery {
            budget: Some(Budget::Rho(r)),
            ..query("count", &[], &[], 1.0)
        };

        // Pure DP and zCDP draw on one currency: epsilon 1 costs rho 0.5 of
        // rosa's lifetime 0.6, so a Gaussian query of rho 0.125 is refused.
        let first = rosa.stats(context(), query("count", &[], &[], 1.0)).await?;
        assert_eq!(refusals(&first), ["ok "], "{:?}", first.nodes);
        let lifetime = rosa.stats(context(), rho(0.125)).await?;
        let reasons = refusals(&lifetime);
        assert!(
            reasons[0].starts_with("refused privacy budget exhausted for the requester's lifetime: the query costs rho 0.125, rho 0.1 of 0.6 is left"),
            "{reasons:?}"
        );

        // alice is another requester of the same agency: her own caps are
        // untouched, but the agency has 0.3 left this month.
        let fits = alice.stats(context(), rho(0.25)).await?;
        assert_eq!(refusals(&fits), ["ok "], "{:?}", fits.nodes);
        let over = alice.stats(context(), rho(0.1)).await?;
        let reasons = refusals(&over);
        assert!(
            reasons[0].starts_with("refused privacy budget exhausted of agency test-agency for epoch "),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("rho 0.05 of 0.8 is left"), "{reasons:?}");

        // `fedq budget`'s figures: each cap, spent and left, and what the
        // month's spending amounts to as (epsilon, delta)-DP.
        let budget = alice.budget().await?;
        let fr = &budget.nodes[0];
        assert_eq!(fr.agency, "test-agency");
        assert!((fr.rho_spent - 0.25).abs() < 1e-9, "{fr:?}");
        assert!((fr.agency_rho_spent - 0.75).abs() < 1e-9, "{fr:?}");
        assert!((fr.lifetime_rho_spent - 0.25).abs() < 1e-9, "{fr:?}");
        assert!((fr.rho_left - 0.05).abs() < 1e-9, "the agency's cap binds: {fr:?}");
        assert_eq!(fr.delta, 1e-6);
        assert!(fr.epsilon_at_delta > 0.25, "{fr:?}");
        Ok(())
    })
}
