//! The coordinator's domain service: key registration, lookup fan-out and
//! combination. It never holds a secret key and cannot decrypt answers.

use std::sync::Arc;

use fedq_crypto::lookup::{FhePublicKey, KeyId};
use fedq_proto::v1;
use tracing::{info, instrument};

use fedq_node::audit::{AuditLog, AuditRecord, Decision};

use crate::config::CoordinatorConfig;
use crate::fanout::{fan_out, NodeOutcome};
use crate::merge::{merge, Merged, NodeAnswers};
use crate::node_client::{connect_nodes, NodeHandle};
use crate::registry::{KeyRegistry, RegistryError};

/// Errors of the coordinator's domain layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller is not a requester of this federation.
    #[error("caller is not a requester of this federation")]
    PermissionDenied,
    /// The key id was never registered by this requester.
    #[error("public key is not registered; run `fedq keys init`")]
    UnknownKey,
    /// The key's registration is older than the coordinator's maximum age.
    #[error("public key is not registered (registration expired); run `fedq keys init`")]
    ExpiredKey,
    /// The audit log could not record the request: nothing is answered.
    #[error("audit log: {0}")]
    Audit(String),
    /// The key registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<CoordinatorError> for tonic::Status {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::InvalidArgument(reason) => tonic::Status::invalid_argument(reason),
            CoordinatorError::PermissionDenied => {
                tonic::Status::permission_denied(error.to_string())
            }
            CoordinatorError::UnknownKey | CoordinatorError::ExpiredKey => {
                tonic::Status::failed_precondition(error.to_string())
            }
            CoordinatorError::Audit(e) => {
                let error_id: u64 = rand::random();
                tracing::warn!(error_id = %format!("{error_id:016x}"), error = %e, "audit failure");
                tonic::Status::internal(format!("internal error {error_id:016x}"))
            }
            CoordinatorError::Registry(e) => {
                let error_id: u64 = rand::random();
                tracing::warn!(error_id = %format!("{error_id:016x}"), error = %e, "internal error");
                tonic::Status::internal(format!("internal error {error_id:016x}"))
            }
        }
    }
}

/// The coordinator.
pub struct CoordinatorService {
    config: CoordinatorConfig,
    registry: KeyRegistry,
    audit: AuditLog,
    nodes: Vec<NodeHandle>,
    requesters: std::sync::RwLock<Vec<String>>,
}

/// Who asked and why, as the coordinator knows it: the caller from mTLS, the
/// rest as the envelope claims (the nodes verify the signature).
struct AuditFacts {
    requester: String,
    purpose: String,
    case_ref: String,
    action: &'static str,
    envelope: Option<fedq_crypto::envelope::Envelope>,
}

impl AuditFacts {
    fn of(caller: &str, context: Option<&v1::RequestContext>, action: &'static str) -> Self {
        let envelope = context.and_then(|c| c.envelope.clone()).and_then(|e| {
            fedq_node::envelope::EnvelopeVerifier::claimed(&fedq_node::envelope::from_wire(Some(e)))
        });
        Self {
            requester: caller.to_owned(),
            purpose: context.map(|c| c.purpose.clone()).unwrap_or_default(),
            case_ref: context
                .map(|c| c.case_reference.clone())
                .unwrap_or_default(),
            action,
            envelope,
        }
    }
}

impl CoordinatorService {
    /// Opens the key registry and prepares node connections.
    pub fn new(config: CoordinatorConfig) -> anyhow::Result<Self> {
        let registry = KeyRegistry::open(&config.key_store)?.with_max_age(config.key_max_age);
        let nodes = connect_nodes(&config.federation.nodes, &config.tls, config.node_timeout)?;
        let audit = AuditLog::open(
            &config.key_store,
            &config.audit_checkpoint,
            &config.audit_key,
        )?;
        let requesters = std::sync::RwLock::new(
            config
                .federation
                .requesters
                .iter()
                .map(|r| r.id.clone())
                .collect(),
        );
        Ok(Self {
            config,
            registry,
            audit,
            nodes,
            requesters,
        })
    }

    /// Admits callers listed in the federation file, re-reading it once when
    /// a caller is not found (requesters are added while the coordinator runs).
    fn requester(&self, caller: &str) -> Result<(), CoordinatorError> {
        let listed = |ids: &[String]| ids.iter().any(|id| id == caller);
        if listed(&self.requesters.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(());
        }
        if let Ok(file) = fedq_node::federation::FederationFile::load(&self.config.federation_path)
        {
            let ids: Vec<String> = file.requesters.into_iter().map(|r| r.id).collect();
            let found = listed(&ids);
            *self.requesters.write().unwrap_or_else(|e| e.into_inner()) = ids;
            if found {
                return Ok(());
            }
        }
        Err(CoordinatorError::PermissionDenied)
    }

    /// Registers a requester's public key; returns its id.
    pub fn register_key(&self, caller: &str, bytes: &[u8]) -> Result<KeyId, CoordinatorError> {
        self.requester(caller)?;
        let key = FhePublicKey::from_bytes(bytes)
            .map_err(|e| CoordinatorError::InvalidArgument(e.to_string()))?;
        self.registry.register(caller, &key)?;
        info!(key_id = %key.id(), "public key registered");
        Ok(key.id().clone())
    }

    /// Passes each node its share of a blinded OPRF request and returns every
    /// node's evaluation or status. The coordinator sees blinded elements only.
    #[instrument(skip_all, fields(query_id))]
    pub async fn oprf(
        &self,
        caller: &str,
        request: v1::OprfRequest,
    ) -> Result<v1::OprfResponse, CoordinatorError> {
        let context = audit_context(
            request.context.as_ref(),
            request.nodes.first().and_then(|n| n.envelope.as_ref()),
        );
        let facts = AuditFacts::of(caller, Some(&context), "oprf");
        let detail = format!("evaluations={}", request.kinds.len());
        let result = self.oprf_unaudited(caller, request).await;
        let outcome = result.as_ref().map(|response| {
            let ok = response
                .nodes
                .iter()
                .filter(|n| n.status.as_ref().is_some_and(|s| s.status == "ok"))
                .count();
            (
                response.query_id.clone(),
                format!("{detail} nodes_ok={ok}/{}", response.nodes.len()),
            )
        });
        self.audit(facts, outcome, &detail)?;
        result
    }

    async fn oprf_unaudited(
        &self,
        caller: &str,
        request: v1::OprfRequest,
    ) -> Result<v1::OprfResponse, CoordinatorError> {
        self.requester(caller)?;
        let items = request.kinds.len();
        check_item_count(items)?;
        let batches = self.per_node(request.nodes, |b| &b.node, |b| b.blinded.len(), items)?;
        let query_id = format!("{:032x}", rand::random::<u128>());
        tracing::Span::current().record("query_id", query_id.as_str());
        let context = request.context.unwrap_or_default();
        let kinds = Arc::new(request.kinds);
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let batch = batches.get(&node.id).cloned();
            let mut context = context.clone();
            let (kinds, query_id) = (Arc::clone(&kinds), query_id.clone());
            async move {
                let batch = batch.ok_or_else(|| {
                    tonic::Status::invalid_argument("the request has nothing for this node")
                })?;
                context.envelope = batch.envelope;
                let request = v1::NodeOprfRequest {
                    query_id,
                    requester: caller.to_owned(),
                    context: Some(context),
                    kinds: kinds.to_vec(),
                    blinded: batch.blinded,
                };
                Ok(node.client.oprf(request).await?.into_inner())
            }
        })
        .await;
        let nodes = outcomes
            .into_iter()
            .map(|outcome| match outcome.result {
                Ok(response) => v1::OprfNodeResult {
                    status: Some(v1::NodeStatus {
                        node: outcome.node,
                        status: "ok".to_owned(),
                        ..Default::default()
                    }),
                    response: Some(response),
                },
                Err(e) => v1::OprfNodeResult {
                    status: Some(v1::NodeStatus {
                        node: outcome.node,
                        status: e.status.to_owned(),
                        reason: e.reason,
                        ..Default::default()
                    }),
                    response: None,
                },
            })
            .collect();
        Ok(v1::OprfResponse { query_id, nodes })
    }

    /// Sends each node its share of a lookup and adds up their answers per item.
    #[instrument(skip_all, fields(query_id))]
    pub async fn lookup(
        &self,
        caller: &str,
        request: v1::LookupRequest,
    ) -> Result<(String, Merged), CoordinatorError> {
        let context = audit_context(
            request.context.as_ref(),
            request.nodes.first().and_then(|n| n.envelope.as_ref()),
        );
        let facts = AuditFacts::of(caller, Some(&context), "lookup");
        let detail = format!(
            "items={}{}",
            request.nodes.first().map_or(0, |n| n.items.len()),
            if request.disclose {
                " disclose=asked"
            } else {
                ""
            }
        );
        let result = self.lookup_unaudited(caller, request).await;
        let outcome = result.as_ref().map(|(query_id, merged)| {
            let ok = merged.nodes.iter().filter(|(_, r)| r.is_ok()).count();
            (
                query_id.clone(),
                format!("{detail} nodes_ok={ok}/{}", merged.nodes.len()),
            )
        });
        self.audit(facts, outcome, &detail)?;
        result
    }

    async fn lookup_unaudited(
        &self,
        caller: &str,
        request: v1::LookupRequest,
    ) -> Result<(String, Merged), CoordinatorError> {
        self.requester(caller)?;
        let key_id = KeyId::parse(&request.key_id)
            .map_err(|_| CoordinatorError::InvalidArgument("malformed key id".to_owned()))?;
        let public_key = match self.registry.status(caller, &key_id)? {
            crate::registry::KeyStatus::Registered(key) => key,
            crate::registry::KeyStatus::Expired { .. } => return Err(CoordinatorError::ExpiredKey),
            crate::registry::KeyStatus::Unknown => return Err(CoordinatorError::UnknownKey),
        };
        let items = request.nodes.first().map_or(0, |n| n.items.len());
        check_item_count(items)?;
        let shares = self.per_node(request.nodes, |n| &n.node, |n| n.items.len(), items)?;
        let query_id = format!("{:032x}", rand::random::<u128>());
        tracing::Span::current().record("query_id", query_id.as_str());
        let template = Arc::new(v1::NodeLookupRequest {
            query_id: query_id.clone(),
            requester: caller.to_owned(),
            key_id: key_id.as_str().to_owned(),
            public_key,
            context: request.context,
            items: Vec::new(),
            disclose: request.disclose,
            authorization: request.authorization,
            oprf_key_id: String::new(),
        });
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let share = shares.get(&node.id).cloned();
            let template = Arc::clone(&template);
            async move {
                let share = share.ok_or_else(|| {
                    tonic::Status::invalid_argument("the request has nothing for this node")
                })?;
                let mut request = (*template).clone();
                let mut context = request.context.take().unwrap_or_default();
                context.envelope = share.envelope;
                request.context = Some(context);
                request.items = share.items;
                request.oprf_key_id = share.oprf_key_id;
                let response = node.client.lookup(request).await?.into_inner();
                Ok(NodeAnswers {
                    answers: response.answers,
                    compute_micros: response.compute_micros,
                    disclosure: response.disclosure,
                })
            }
        })
        .await;
        let merged = merge(items, outcomes);
        let ok = merged.nodes.iter().filter(|(_, r)| r.is_ok()).count();
        info!(
            items,
            nodes_ok = ok,
            nodes = merged.nodes.len(),
            "lookup combined"
        );
        Ok((query_id, merged))
    }

    /// Keys a request's per-node shares by node id: every share must name a
    /// node of this federation, once, and hold `items` entries.
    fn per_node<T>(
        &self,
        shares: Vec<T>,
        node: impl Fn(&T) -> &String,
        len: impl Fn(&T) -> usize,
        items: usize,
    ) -> Result<std::collections::HashMap<String, T>, CoordinatorError> {
        let mut by_node = std::collections::HashMap::with_capacity(shares.len());
        for share in shares {
            let id = node(&share).clone();
            if !self.nodes.iter().any(|n| n.id == id) {
                return Err(CoordinatorError::InvalidArgument(format!(
                    "node {} is not in this federation",
                    fedq_node::audit::request_name(&id)
                )));
            }
            if len(&share) != items {
                return Err(CoordinatorError::InvalidArgument(
                    "every node's share must hold the same number of items".to_owned(),
                ));
            }
            if by_node.insert(id, share).is_some() {
                return Err(CoordinatorError::InvalidArgument(
                    "a node appears twice in the request".to_owned(),
                ));
            }
        }
        Ok(by_node)
    }

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
            fedq_node::audit::request_name(&query.table),
            fedq_node::audit::request_name(&query.measure)
        );
        let result = self.stats_unaudited(caller, request).await;
        let outcome = result.as_ref().map(|response| {
            let ok = response.nodes.iter().filter(|n| n.status == "ok").count();
            (
                response.query_id.clone(),
                format!("{detail} nodes_ok={ok}/{}", response.nodes.len()),
            )
        });
        self.audit(facts, outcome, &detail)?;
        result
    }

    /// Appends the audit entry of one request before its answer leaves; an
    /// answer whose entry cannot be written is not sent.
    fn audit(
        &self,
        facts: AuditFacts,
        outcome: Result<(String, String), &CoordinatorError>,
        detail: &str,
    ) -> Result<(), CoordinatorError> {
        let (query_id, detail, decision, reason) = match outcome {
            Ok((query_id, detail)) => (
                query_id,
                detail,
                Decision::Admitted,
                "forwarded to the nodes".to_owned(),
            ),
            Err(e) => (
                String::new(),
                detail.to_owned(),
                Decision::Refused,
                e.to_string(),
            ),
        };
        let record = AuditRecord {
            time: chrono::Utc::now(),
            query_id,
            requester: facts.requester,
            agency: facts
                .envelope
                .as_ref()
                .map(|e| e.agency.clone())
                .unwrap_or_default(),
            role: facts
                .envelope
                .as_ref()
                .map(|e| e.role.clone())
                .unwrap_or_default(),
            purpose: facts.purpose,
            legal_basis: facts
                .envelope
                .as_ref()
                .map(|e| e.legal_basis.clone())
                .unwrap_or_default(),
            case_ref: facts.case_ref,
            action: facts.action.to_owned(),
            detail,
            decision,
            reason,
        };
        self.audit
            .append(&record)
            .map(drop)
            .map_err(|e| CoordinatorError::Audit(e.to_string()))
    }

    async fn stats_unaudited(
        &self,
        caller: &str,
        request: v1::StatsRequest,
    ) -> Result<v1::StatsResponse, CoordinatorError> {
        self.requester(caller)?;
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
        let mut sums: Vec<(Vec<String>, f64, f64, f64, f64)> = Vec::new();
        for outcome in outcomes {
            match outcome.result {
                Ok(answer) => {
                    response.nodes.push(v1::NodeStatus {
                        node: outcome.node,
                        status: "ok".to_owned(),
                        ..Default::default()
                    });
                    if response.group_columns.is_empty() {
                        response.group_columns = answer.group_columns.clone();
                    }
                    for group in &answer.groups {
                        match sums.iter_mut().find(|s| s.0 == group.key) {
                            Some(s) => {
                                s.1 += group.value;
                                s.2 += group.variance;
                                s.3 += group.count;
                                s.4 += group.count_variance;
                            }
                            None => sums.push((
                                group.key.clone(),
                                group.value,
                                group.variance,
                                group.count,
                                group.count_variance,
                            )),
                        }
                    }
                    response.node_answers.push(answer);
                }
                Err(e) => response.nodes.push(v1::NodeStatus {
                    node: outcome.node,
                    status: e.status.to_owned(),
                    reason: e.reason,
                    ..Default::default()
                }),
            }
        }
        for (key, value, variance, count, count_variance) in sums {
            let (estimate, variance) = if is_mean {
                // Delta method for a ratio of independent noisy totals; the count
                // is floored at 1 so an empty group does not divide by zero.
                let n = count.max(1.0);
                let mean = value / n;
                (
                    mean,
                    variance / (n * n) + mean * mean * count_variance / (n * n),
                )
            } else {
                (value, variance)
            };
            let half = 1.96 * variance.sqrt();
            response.groups.push(v1::CombinedGroup {
                key,
                estimate,
                ci95_low: estimate - half,
                ci95_high: estimate + half,
                variance,
            });
        }
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

/// The context an audit entry reads its claims from: the request's, with
/// the envelope of its first node share (the shares differ only in payload).
fn audit_context(
    context: Option<&v1::RequestContext>,
    envelope: Option<&v1::SignedEnvelope>,
) -> v1::RequestContext {
    v1::RequestContext {
        envelope: envelope.cloned(),
        ..context.cloned().unwrap_or_default()
    }
}

fn check_item_count(items: usize) -> Result<(), CoordinatorError> {
    if items == 0 || items > fedq_proto::MAX_ITEMS_PER_REQUEST {
        return Err(CoordinatorError::InvalidArgument(format!(
            "a request needs 1 to {} items",
            fedq_proto::MAX_ITEMS_PER_REQUEST
        )));
    }
    Ok(())
}

/// Separates the nodes that answered from those that did not, which are
/// listed with their status, never dropped.
fn split_outcomes<T>(outcomes: Vec<NodeOutcome<T>>) -> (Vec<T>, Vec<v1::NodeStatus>) {
    let mut answered = Vec::with_capacity(outcomes.len());
    let mut unreachable = Vec::new();
    for outcome in outcomes {
        match outcome.result {
            Ok(answer) => answered.push(answer),
            Err(e) => unreachable.push(v1::NodeStatus {
                node: outcome.node,
                status: e.status.to_owned(),
                reason: e.reason,
                ..Default::default()
            }),
        }
    }
    (answered, unreachable)
}
