//! Differentially private statistics at the node: validate against the
//! catalog, compute the bounded exact aggregate in the columnar engine, add
//! OpenDP noise, charge the ledger durably, and only then answer.
//!
//! The ledger charge is what OpenDP's privacy map says the release costs,
//! in zCDP rho. A query that would exceed any of the requester's caps (its
//! own for the epoch, its agency's, its lifetime's) is refused before any
//! work and, atomically, at charge time (concurrent queries cannot both
//! fit). Noise drawn for a refused charge is discarded, never released.

use std::panic::AssertUnwindSafe;

use fedq_crypto::dp::{
    calibrate_integers, release_integers, Calibration, Epsilon, PrivacyBudget, PrivacyLoss, Rho,
};
use fedq_transport::internal::ErrorId;
use futures::FutureExt;
use tracing::{info, instrument};

use super::{Caller, NodeService};
use crate::config::QueryFloor;
use crate::error::NodeError;
use crate::gate::Visit;
use crate::ledger::{epoch_of, BudgetCaps, Charge, Ledger, LedgerError, Shortfall, Spent};
use crate::stats::{parse_filter, parse_group_by, parse_measure, Measure, StatsEngine, StatsQuery};

/// A statistics request in domain terms (CLI forms, parsed here).
#[derive(Debug, Clone)]
pub struct StatsRequest {
    /// Query id chosen by the coordinator.
    pub query_id: String,
    /// Requester charged.
    pub requester: String,
    /// The purpose as the coordinator passes it, unsigned: for logs only;
    /// the ledger and audit take the envelope's.
    pub purpose: String,
    /// The requester's signed envelope, still unverified.
    pub envelope: fedq_crypto::envelope::SignedEnvelope,
    /// Hash of the query as received, which the envelope must carry.
    pub payload_hash: String,
    /// Table name.
    pub table: String,
    /// `count`, `sum:<col>`, `mean:<col>`, `histogram:<col>`.
    pub measure: String,
    /// Group-by columns (at most two).
    pub group_by: Vec<String>,
    /// Filters like `sector=finance`.
    pub filters: Vec<String>,
    /// Epsilon or rho.
    pub budget: Option<PrivacyBudget>,
    /// Only say what the release would add and cost: nothing is read from
    /// the table and nothing is charged.
    pub dry_run: bool,
}

/// One group of a node's noisy answer.
#[derive(Debug, Clone, PartialEq)]
pub struct NoisyGroup {
    /// Group key values.
    pub key: Vec<String>,
    /// Noisy count or clamped sum.
    pub value: f64,
    /// Noise variance of `value`.
    pub variance: f64,
    /// For a mean: the noisy count.
    pub count: f64,
    /// For a mean: the noise variance of `count`.
    pub count_variance: f64,
}

/// A node's answer to a statistics query.
#[derive(Debug, Clone)]
pub struct StatsAnswer {
    /// Names of the key columns.
    pub group_columns: Vec<String>,
    /// Every group of the public domain.
    pub groups: Vec<NoisyGroup>,
    /// OpenDP scale of the noise on `value`.
    pub scale: f64,
    /// Mechanism name.
    pub mechanism: &'static str,
    /// What was charged (for a dry run: what would be).
    pub loss: PrivacyLoss,
    /// Per released value: the 95% interval is `value ± ci95_half_width`.
    pub ci95_half_width: f64,
    /// The epoch charged.
    pub epoch: String,
    /// Rho left before the first cap binds, after this query (for a dry
    /// run: after it, had it run).
    pub left: f64,
    /// True when nothing was read or charged.
    pub dry_run: bool,
}

/// What a requester has spent and may still spend.
#[derive(Debug, Clone)]
pub struct BudgetStatus {
    /// Epoch label.
    pub epoch: String,
    /// The requester's agency, as the federation file lists it.
    pub agency: String,
    /// Spent so far, against each cap.
    pub spent: Spent,
    /// The caps, in zCDP rho.
    pub caps: BudgetCaps,
    /// The delta at which spending also reads as (epsilon, delta)-DP.
    pub delta: f64,
}

/// Parses an epsilon or rho given on the wire (exactly one must be positive).
pub fn budget_from(epsilon: Option<f64>, rho: Option<f64>) -> Result<PrivacyBudget, NodeError> {
    let invalid = |e: fedq_crypto::dp::DpError| NodeError::InvalidArgument(e.to_string());
    match (epsilon, rho) {
        (Some(e), None) => Ok(PrivacyBudget::Epsilon(Epsilon::new(e).map_err(invalid)?)),
        (None, Some(r)) => Ok(PrivacyBudget::Rho(Rho::new(r).map_err(invalid)?)),
        _ => Err(NodeError::InvalidArgument(
            "give exactly one of epsilon or rho".to_owned(),
        )),
    }
}

/// Refuses a release below the node's floor: its noise would say nothing,
/// and it would still cost a scan and two durable writes.
fn check_floor(budget: PrivacyBudget, floor: QueryFloor) -> Result<(), NodeError> {
    let (name, asked, least) = match budget {
        PrivacyBudget::Epsilon(e) => ("epsilon", e.get(), floor.epsilon),
        PrivacyBudget::Rho(r) => ("rho", r.get(), floor.rho),
    };
    if asked < least {
        return Err(NodeError::InvalidArgument(format!(
            "{name} {asked:e} is below this node's minimum {least}: the answer would be noise"
        )));
    }
    Ok(())
}

pub(crate) fn parse(request: &StatsRequest) -> Result<StatsQuery, NodeError> {
    // Bounded before parsing: thousands of filters once overflowed the SQL
    // planner's stack and aborted the node.
    fedq_proto::limits::check_stats_query(&fedq_proto::v1::StatsQuery {
        table: request.table.clone(),
        measure: request.measure.clone(),
        group_by: request.group_by.clone(),
        filters: request.filters.clone(),
        budget: None,
        dry_run: false,
    })
    .map_err(NodeError::InvalidArgument)?;
    let mut group_by = Vec::new();
    for g in &request.group_by {
        group_by.extend(parse_group_by(g)?);
    }
    let filters = request
        .filters
        .iter()
        .map(|f| parse_filter(f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StatsQuery {
        table: request.table.clone(),
        measure: parse_measure(&request.measure)?,
        group_by,
        filters,
    })
}

/// The noise of a query: the released value's sensitivity and budget and,
/// for a mean, its count's (a mean spends half the budget on each).
struct NoisePlan {
    value: (u64, PrivacyBudget),
    count: Option<(u64, PrivacyBudget)>,
}

impl NoisePlan {
    fn of(measure: &Measure, bound: u32, per_row_bound: i64, budget: PrivacyBudget) -> Self {
        let bound = u64::from(bound);
        let sum_sensitivity = bound * per_row_bound.unsigned_abs().max(1);
        match measure {
            Measure::Count | Measure::Histogram(_) => Self {
                value: (bound, budget),
                count: None,
            },
            Measure::Sum(_) => Self {
                value: (sum_sensitivity, budget),
                count: None,
            },
            Measure::Mean(_) => {
                let half = budget.split(2);
                Self {
                    value: (sum_sensitivity, half),
                    count: Some((bound, half)),
                }
            }
        }
    }

    /// What the release would add and cost, without drawing noise. OpenDP's
    /// measurements cannot cross the scan's `.await` (they are not `Send`),
    /// so the release builds them again from the same plan.
    fn calibrate(&self) -> Result<(Calibration, PrivacyLoss), NodeError> {
        let value = calibrate_integers(self.value.0, self.value.1)?;
        let loss = match self.count {
            Some((sensitivity, budget)) => value
                .loss
                .compose(calibrate_integers(sensitivity, budget)?.loss),
            None => value.loss,
        };
        Ok((value, loss))
    }
}

fn mechanism(budget: PrivacyBudget) -> &'static str {
    match budget {
        PrivacyBudget::Epsilon(_) => "discrete laplace (pure dp)",
        PrivacyBudget::Rho(_) => "discrete gaussian (zcdp)",
    }
}

/// Answers a statistics query and charges it; a dry run only calibrates.
#[instrument(skip_all, fields(query_id = %request.query_id))]
async fn answer(
    engine: &StatsEngine,
    ledger: &Ledger,
    (caps, floor): (BudgetCaps, QueryFloor),
    (requester, agency): (&str, &str),
    audit: &crate::audit::AuditRecord,
    request: &StatsRequest,
) -> Result<StatsAnswer, NodeError> {
    let budget = request.budget.ok_or_else(|| {
        NodeError::InvalidArgument("give exactly one of epsilon or rho".to_owned())
    })?;
    check_floor(budget, floor)?;
    let query = parse(request)?;
    let epoch = epoch_of(chrono::Utc::now());
    // Planned once: the catalog gives the sensitivity before anything is
    // read, and the same plan runs after the budget check.
    let planned = engine.plan(&query)?;
    let sensitivity = planned.sensitivity();
    let plan = NoisePlan::of(
        &query.measure,
        sensitivity.max_rows_per_unit,
        sensitivity.per_row_bound,
        budget,
    );
    let (calibration, cost) = plan.calibrate()?;
    let spent = ledger.spent(requester, agency, &epoch)?;
    if let Some(shortfall) = Shortfall::of(&epoch, agency, &spent, cost, caps) {
        info!(
            decision = "deny",
            rule = "budget",
            "statistics query refused"
        );
        return Err(LedgerError::Exhausted(shortfall).into());
    }
    if request.dry_run {
        return Ok(StatsAnswer {
            group_columns: group_columns(&query),
            groups: Vec::new(),
            scale: calibration.scale,
            mechanism: mechanism(budget),
            loss: cost,
            ci95_half_width: calibration.ci95_half_width,
            left: spent.after(cost).left(caps),
            epoch,
            dry_run: true,
        });
    }
    let exact = engine.run(&planned).await?;
    let counts: Vec<i64> = exact.groups.iter().map(|g| g.count).collect();
    let sums: Vec<i64> = exact.groups.iter().map(|g| g.sum).collect();
    let released = match &query.measure {
        Measure::Count | Measure::Histogram(_) => &counts,
        Measure::Sum(_) | Measure::Mean(_) => &sums,
    };
    let value_release = release_integers(released, plan.value.0, plan.value.1)?;
    let count_release = plan
        .count
        .map(|(sensitivity, half)| release_integers(&counts, sensitivity, half))
        .transpose()?;
    let loss = count_release
        .as_ref()
        .map_or(value_release.loss, |c| value_release.loss.compose(c.loss));
    let total = ledger.charge(
        &Charge {
            requester,
            agency,
            epoch: &epoch,
            loss,
            query_id: &request.query_id,
            // The signed purpose (the verified envelope's), never the
            // unsigned one the coordinator passes along.
            purpose: &audit.purpose,
        },
        caps,
        Some(audit),
    )?;
    let groups = exact
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| NoisyGroup {
            key: g.key.clone(),
            value: value_release.values[i] as f64,
            variance: value_release.variance,
            count: count_release.as_ref().map_or(0.0, |c| c.values[i] as f64),
            count_variance: count_release.as_ref().map_or(0.0, |c| c.variance),
        })
        .collect();
    info!(
        decision = "answer",
        epsilon = loss.epsilon,
        rho = loss.rho,
        "statistics released"
    );
    Ok(StatsAnswer {
        group_columns: group_columns(&query),
        groups,
        scale: value_release.scale,
        mechanism: mechanism(budget),
        loss,
        ci95_half_width: value_release.ci95_half_width,
        left: total.left(caps),
        epoch,
        dry_run: false,
    })
}

fn group_columns(query: &StatsQuery) -> Vec<String> {
    use crate::stats::GroupBy;
    let mut names: Vec<String> = query
        .group_by
        .iter()
        .map(|g| match g {
            GroupBy::Column(c) => c.clone(),
            // An empty name is the table's only date column, asked as plain `month`.
            GroupBy::Month(c) if c.is_empty() => "month".to_owned(),
            GroupBy::Year(c) if c.is_empty() => "year".to_owned(),
            GroupBy::Month(c) => format!("{c}:month"),
            GroupBy::Year(c) => format!("{c}:year"),
        })
        .collect();
    if let Measure::Histogram(c) = &query.measure {
        names.push(c.clone());
    }
    names
}

impl NodeService {
    /// Answers a differentially private statistics query, charging the
    /// requester's budget at this node before the answer leaves.
    pub async fn stats(
        &self,
        caller: &Caller,
        request: StatsRequest,
    ) -> Result<StatsAnswer, NodeError> {
        let admitted = self.admit(
            caller,
            Visit {
                query_id: &request.query_id,
                envelope: &request.envelope,
                action: crate::policy::Action::Stats {
                    table: &request.table,
                },
                payload_hash: &request.payload_hash,
                detail: format!(
                    "table={} measure={}",
                    crate::audit::request_name(&request.table),
                    crate::audit::request_name(&request.measure)
                ),
            },
        )?;
        admitted.check(admitted.told(&request.requester))?;
        let record = admitted.record_for_ledger();
        let work = answer(
            &self.stats,
            &self.ledger,
            (self.config.budget_caps, self.config.budget_floor),
            (&admitted.envelope().requester, &admitted.envelope().agency),
            &record,
            &request,
        );
        // The engine runs on the async runtime (DataFusion): a panic in it
        // becomes this request's internal error, not a lost connection.
        let result = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(result) => result,
            Err(_) => Err(NodeError::Internal(ErrorId::log(
                &"panic in a statistics query",
            ))),
        };
        match &result {
            // Appending the record re-signs the head.
            Ok(answer) if answer.dry_run => {
                admitted.record("stats", "dry run: nothing read or charged")?;
            }
            Ok(_) => {
                // The entry is in the log with the charge; re-sign the head.
                self.gate
                    .audit()
                    .checkpoint()
                    .map_err(|e| NodeError::Audit(e.to_string()))?;
            }
            Err(e) => admitted.refuse(&e.to_string())?,
        }
        result
    }

    /// What a requester has spent and may spend at this node. The agency
    /// is the federation file's (spending is charged to it there).
    pub fn budget(&self, caller: &Caller, requester: &str) -> Result<BudgetStatus, NodeError> {
        self.authorise(caller)?;
        let agency = self.gate.agency_of(requester).ok_or_else(|| {
            NodeError::InvalidArgument(format!(
                "{} is not a requester of this federation",
                crate::audit::request_name(requester)
            ))
        })?;
        let epoch = epoch_of(chrono::Utc::now());
        Ok(BudgetStatus {
            spent: self.ledger.spent(requester, &agency, &epoch)?,
            epoch,
            agency,
            caps: self.config.budget_caps,
            delta: self.config.budget_delta,
        })
    }

    /// What one query may ask here: the minimum, and the requester's
    /// monthly cap in rho.
    pub fn budget_limits(&self) -> (QueryFloor, BudgetCaps) {
        (self.config.budget_floor, self.config.budget_caps)
    }

    /// The public catalog, as JSON (tables that have been imported only).
    pub fn catalog_json(&self, caller: &Caller) -> Result<String, NodeError> {
        self.authorise(caller)?;
        let tables: Vec<_> = self
            .config
            .catalog
            .iter()
            .filter(|t| self.stats.has_table(&t.name))
            .collect();
        serde_json::to_string(&tables).map_err(|e| NodeError::InvalidArgument(e.to_string()))
    }
}
