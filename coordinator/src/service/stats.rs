//! Statistics, catalogs and budgets across the nodes.

use std::sync::Arc;

use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;
use tracing::info;

use crate::combine::StatsTotals;
use crate::fanout::fan_out;

use super::{split_outcomes, AuditFacts, CoordinatorError, CoordinatorService};

impl CoordinatorService {
    /// Sends a statistics query to every node and combines the answers:
    /// estimates and noise variances add up per group (a mean divides the
    /// summed sums by the summed counts; its variance by the delta method).
    pub async fn stats(
        &self,
        caller: &str,
        request: v1::StatsRequest,
    ) -> Result<v1::StatsResponse, CoordinatorError> {
        let facts = AuditFacts::of(caller, request.context.as_ref(), "stats");
        let query = request.query.clone().unwrap_or_default();
        let detail = format!(
            "table={} measure={}",
            fedq_audit::request_name(&query.table),
            fedq_audit::request_name(&query.measure)
        );
        let work = self.stats_fan_out(caller, request);
        self.audited(facts, detail, work, |response| {
            let ok = response
                .nodes
                .iter()
                .filter(|n| n.outcome() == NodeOutcome::Ok)
                .count();
            (response.query_id.clone(), ok, response.nodes.len())
        })
        .await
    }

    async fn stats_fan_out(
        &self,
        caller: &str,
        request: v1::StatsRequest,
    ) -> Result<v1::StatsResponse, CoordinatorError> {
        self.requester(caller)?;
        self.signed_by_caller(
            caller,
            [request.context.as_ref().and_then(|c| c.envelope.as_ref())],
        )?;
        // Refused here, once, rather than by every node.
        fedq_proto::limits::check_stats_query(&request.query.clone().unwrap_or_default())
            .and_then(|()| {
                fedq_proto::limits::check_context(&request.context.clone().unwrap_or_default())
            })
            .map_err(CoordinatorError::InvalidArgument)?;
        let query_id = format!("{:032x}", rand::random::<u128>());
        let node_request = Arc::new(v1::NodeStatsRequest {
            query_id: query_id.clone(),
            requester: caller.to_owned(),
            context: request.context,
            query: request.query.clone(),
        });
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let request = Arc::clone(&node_request);
            async move { Ok(node.client.stats((*request).clone()).await?.into_inner()) }
        })
        .await;
        let is_mean = request
            .query
            .as_ref()
            .is_some_and(|q| q.measure.starts_with("mean:"));
        let mut response = v1::StatsResponse {
            query_id,
            ..Default::default()
        };
        let mut totals = StatsTotals::default();
        for outcome in outcomes {
            match outcome.result {
                Ok(answer) => {
                    response.nodes.push(v1::NodeStatus {
                        node: outcome.node,
                        outcome: NodeOutcome::Ok.into(),
                        ..Default::default()
                    });
                    if response.group_columns.is_empty() {
                        response.group_columns = answer.group_columns.clone();
                    }
                    totals.add(&answer.groups);
                    response.node_answers.push(answer);
                }
                Err(e) => response.nodes.push(v1::NodeStatus {
                    node: outcome.node,
                    outcome: e.outcome.into(),
                    reason: e.reason,
                    ..Default::default()
                }),
            }
        }
        response.groups = totals.combined(is_mean);
        info!(groups = response.groups.len(), "statistics combined");
        Ok(response)
    }

    /// Every node's public catalog.
    pub async fn catalog(
        &self,
        caller: &str,
    ) -> Result<v1::FederationCatalogResponse, CoordinatorError> {
        self.requester(caller)?;
        let outcomes = fan_out(
            &self.nodes,
            self.config.node_timeout,
            |mut node| async move {
                Ok(node
                    .client
                    .catalog(v1::CatalogRequest {})
                    .await?
                    .into_inner())
            },
        )
        .await;
        let (nodes, unreachable) = split_outcomes(outcomes);
        let response = v1::FederationCatalogResponse { nodes, unreachable };
        Ok(response)
    }

    /// The caller's budget at every node.
    pub async fn budget(
        &self,
        caller: &str,
    ) -> Result<v1::FederationBudgetResponse, CoordinatorError> {
        self.requester(caller)?;
        let requester = caller.to_owned();
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let requester = requester.clone();
            async move {
                Ok(node
                    .client
                    .budget(v1::BudgetRequest { requester })
                    .await?
                    .into_inner())
            }
        })
        .await;
        let (nodes, unreachable) = split_outcomes(outcomes);
        let response = v1::FederationBudgetResponse { nodes, unreachable };
        Ok(response)
    }

    /// Public facts of every reachable node.
    pub async fn federation_info(&self) -> v1::FederationInfoResponse {
        let outcomes =
            fan_out(
                &self.nodes,
                self.config.node_timeout,
                |mut node| async move {
                    Ok(node.client.info(v1::NodeInfoRequest {}).await?.into_inner())
                },
            )
            .await;
        let (nodes, unreachable) = split_outcomes(outcomes);
        v1::FederationInfoResponse { nodes, unreachable }
    }
}
