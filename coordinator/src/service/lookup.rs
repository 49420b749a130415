//! OPRF round trips and lookups: each node gets its own share; answers are
//! added up without any key.

use std::sync::{Arc, OnceLock};

use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;
use tracing::{info, instrument, warn};

use crate::fanout::fan_out;
use crate::merge::{merge, Merged, NodeAnswers};

use super::{audit_context, AuditFacts, CoordinatorError, CoordinatorService};

impl CoordinatorService {
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
        // Partial evaluations for deconfliction are audited under their own action.
        let action = if request.key == i32::from(v1::OprfKey::Deconfliction) {
            "deconflict"
        } else {
            "oprf"
        };
        let facts = AuditFacts::of(caller, Some(&context), action);
        let detail = format!("evaluations={}", request.kinds.len());
        let work = self.oprf_fan_out(caller, request);
        self.audited(facts, detail, work, |response| {
            let ok = response
                .nodes
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .is_some_and(|s| s.outcome() == NodeOutcome::Ok)
                })
                .count();
            (response.query_id.clone(), ok, response.nodes.len())
        })
        .await
    }

    async fn oprf_fan_out(
        &self,
        caller: &str,
        request: v1::OprfRequest,
    ) -> Result<v1::OprfResponse, CoordinatorError> {
        self.requester(caller)?;
        self.signed_by_caller(caller, request.nodes.iter().map(|b| b.envelope.as_ref()))?;
        let items = request.kinds.len();
        check_item_count(items)?;
        let batches = self.per_node(request.nodes, |b| &b.node, |b| b.blinded.len(), items)?;
        let query_id = format!("{:032x}", rand::random::<u128>());
        tracing::Span::current().record("query_id", query_id.as_str());
        let context = request.context.unwrap_or_default();
        let key = request.key;
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
                    key,
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
                        outcome: NodeOutcome::Ok.into(),
                        ..Default::default()
                    }),
                    response: Some(response),
                },
                Err(e) => v1::OprfNodeResult {
                    status: Some(v1::NodeStatus {
                        node: outcome.node,
                        outcome: e.outcome.into(),
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
        let work = self.lookup_fan_out(caller, request);
        self.audited(facts, detail, work, |(query_id, merged)| {
            let ok = merged.nodes.iter().filter(|(_, r)| r.is_ok()).count();
            (query_id.clone(), ok, merged.nodes.len())
        })
        .await
    }

    async fn lookup_fan_out(
        &self,
        caller: &str,
        request: v1::LookupRequest,
    ) -> Result<(String, Merged), CoordinatorError> {
        self.requester(caller)?;
        self.signed_by_caller(caller, request.nodes.iter().map(|n| n.envelope.as_ref()))?;
        let (key_id, public_key) = self.registered_key(caller, &request.key_id)?;
        let expansion = if request.expansion_key_id.is_empty() {
            None
        } else {
            Some(self.registered_expansion_key(caller, &key_id, &request.expansion_key_id)?)
        };
        // The key's 3.4 MB are read from the store only if a node asks for
        // them, once per lookup.
        let expansion_bytes: OnceLock<Option<Arc<Vec<u8>>>> = OnceLock::new();
        let fetch_expansion = || {
            expansion_bytes
                .get_or_init(|| {
                    let id = expansion.as_ref()?;
                    match self.registry.expansion_key(caller, &key_id, id) {
                        Ok(bytes) => bytes.map(Arc::new),
                        Err(e) => {
                            warn!(error = %e, "cannot read a registered expansion key");
                            None
                        }
                    }
                })
                .clone()
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
            expansion_key_id: expansion
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            expansion_key: Vec::new(),
        });
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let share = shares.get(&node.id).cloned();
            let template = Arc::clone(&template);
            let fetch_expansion = &fetch_expansion;
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
                // The 3 MB expansion key travels only to a node that has not
                // cached it (first use, or since a restart): it says so, and
                // the same request goes again with the key attached.
                let response = if request.expansion_key_id.is_empty() {
                    node.client.lookup(request).await?
                } else {
                    match node.client.lookup(request.clone()).await {
                        Err(status) if wants_expansion_key(&status) => {
                            let Some(bytes) = fetch_expansion() else {
                                return Err(status);
                            };
                            request.expansion_key = bytes.to_vec();
                            node.client.lookup(request).await?
                        }
                        response => response?,
                    }
                }
                .into_inner();
                Ok(NodeAnswers {
                    disclosure: response.disclosure(),
                    answers: response.answers,
                    compute_micros: response.compute_micros,
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
    pub(super) fn per_node<T>(
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
                    fedq_audit::request_name(&id)
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

/// Whether a node refused a lookup only because it has not cached the
/// requester's expansion key ([`fedq_proto::RESEND_METADATA`]).
fn wants_expansion_key(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
        && status
            .metadata()
            .get(fedq_proto::RESEND_METADATA)
            .is_some_and(|value| value == fedq_proto::RESEND_EXPANSION_KEY)
}
