//! gRPC adapter of the node: wire types in, domain call, status out.

use std::sync::Arc;

use fedq_crypto::dp::epsilon_within;
use fedq_crypto::lookup::KeyId;
use fedq_crypto::{Bucket, IdentifierKind};
use fedq_proto::v1::{self, node_server::Node};
use tonic::{Request, Response, Status};

use crate::gate::Disclosure;
use crate::policy::Action;
use crate::service::stats::StatsRequest;
use crate::service::{
    Caller, LookupQuery, Malformed, NodeService, OprfQuery, QueryItem, WatchQuery,
};
use fedq_transport::tls::peer_common_name;

/// Implements the generated `Node` service on top of [`NodeService`].
pub struct NodeGrpcAdapter(pub Arc<NodeService>);

/// A coordinator-chosen query id, bounded before it reaches logs and audit.
fn query_id(id: String) -> Result<String, Status> {
    if id.len() > fedq_proto::limits::MAX_QUERY_ID_BYTES {
        return Err(Status::invalid_argument(format!(
            "query id longer than {} bytes",
            fedq_proto::limits::MAX_QUERY_ID_BYTES
        )));
    }
    Ok(id)
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    peer_common_name(request)
        .map(Caller)
        .ok_or_else(|| Status::unauthenticated("caller is not authenticated"))
}

/// Converts a wire kind into the domain kind.
pub fn kind_from_wire(value: i32) -> Result<IdentifierKind, Status> {
    u8::try_from(value)
        .ok()
        .and_then(IdentifierKind::from_code)
        .ok_or_else(|| Status::invalid_argument("unknown identifier kind"))
}

/// Converts a domain kind into the wire kind.
pub fn kind_to_wire(kind: IdentifierKind) -> i32 {
    i32::from(kind.code())
}

/// Why a wire request did not become a domain query.
pub(crate) enum Unread {
    /// Not even auditable (an oversized query id).
    Status(Status),
    /// Auditable once its envelope is verified.
    Malformed(Box<Malformed>),
}

impl From<Status> for Unread {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

impl NodeGrpcAdapter {
    fn refuse(&self, caller: &Caller, unread: Unread) -> Status {
        match unread {
            Unread::Status(status) => status,
            Unread::Malformed(malformed) => self.0.refuse_malformed(caller, *malformed).into(),
        }
    }
}

/// The first item whose wire kind is unknown, as a problem to refuse.
fn unknown_kind(kinds: impl IntoIterator<Item = i32>) -> Option<String> {
    kinds
        .into_iter()
        .position(|kind| kind_from_wire(kind).is_err())
        .map(|i| format!("item {i}: unknown identifier kind"))
}

fn lookup_query(node: &str, request: v1::NodeLookupRequest) -> Result<LookupQuery, Unread> {
    let payload_hash = fedq_proto::payload::node_lookup_payload_hash(node, &request);
    let context = request.context.unwrap_or_default();
    let query_id = query_id(request.query_id)?;
    let envelope = crate::envelope::from_wire(context.envelope);
    let problem = unknown_kind(request.items.iter().map(|item| item.kind)).map_or_else(
        || KeyId::parse(&request.key_id).map_err(|_| "malformed key id".to_owned()),
        Err,
    );
    let problem = problem.and_then(|key_id| {
        let expansion = (!request.expansion_key_id.is_empty())
            .then(|| KeyId::parse(&request.expansion_key_id))
            .transpose()
            .map_err(|_| "malformed expansion key id".to_owned())?;
        Ok((key_id, expansion))
    });
    let (key_id, expansion_key_id) = match problem {
        Ok(ids) => ids,
        Err(problem) => {
            return Err(Unread::Malformed(Box::new(Malformed {
                detail: format!("items={}", request.items.len()),
                query_id,
                envelope,
                action: Action::Lookup { kinds: &[] },
                payload_hash,
                problem,
            })))
        }
    };
    let items = request
        .items
        .into_iter()
        .map(|item| {
            Ok(QueryItem {
                kind: kind_from_wire(item.kind)?,
                bucket: Bucket(item.bucket),
                encrypted_tag: item.encrypted_tag,
            })
        })
        .collect::<Result<_, Status>>()?;
    Ok(LookupQuery {
        query_id,
        requester: request.requester,
        key_id,
        public_key: request.public_key,
        envelope,
        payload_hash,
        oprf_key_id: request.oprf_key_id,
        disclose: request.disclose,
        authorization: request.authorization,
        items,
        expansion_key_id,
        expansion_key: request.expansion_key,
    })
}

fn watch_query(node: &str, request: v1::NodeWatchAddRequest) -> Result<WatchQuery, Unread> {
    let item = request.item.clone().unwrap_or_default();
    let payload_hash = fedq_proto::payload::watch_payload_hash(
        node,
        &request.key_id,
        &item,
        &request.oprf_key_id,
        request.until,
    );
    let lookup = lookup_query(
        node,
        v1::NodeLookupRequest {
            query_id: request.query_id,
            requester: request.requester,
            key_id: request.key_id,
            public_key: request.public_key,
            context: request.context,
            items: vec![item],
            disclose: false,
            authorization: String::new(),
            oprf_key_id: request.oprf_key_id,
            // Watches keep format 2 tags: a stored watch cannot depend on a
            // cache.
            expansion_key_id: String::new(),
            expansion_key: Vec::new(),
        },
    )?;
    Ok(WatchQuery {
        lookup: LookupQuery {
            payload_hash,
            ..lookup
        },
        watch_id: request.watch_id,
        until: request.until,
    })
}

fn oprf_query(node: &str, request: v1::NodeOprfRequest) -> Result<OprfQuery, Unread> {
    let context = request.context.unwrap_or_default();
    let query_id = query_id(request.query_id)?;
    let envelope = crate::envelope::from_wire(context.envelope);
    // An unknown key number is not read as the lookup key (prost's default):
    // the requester signed for a key this node does not know.
    let key = v1::OprfKey::try_from(request.key);
    let (payload_hash, action) = match key {
        Ok(v1::OprfKey::Deconfliction) => (
            fedq_proto::payload::deconflict_oprf_payload_hash(
                node,
                &request.kinds,
                &request.blinded,
            ),
            Action::Deconflict { kinds: &[] },
        ),
        _ => (
            crate::envelope::oprf_payload_hash(node, &request.kinds, &request.blinded),
            Action::Oprf { kinds: &[] },
        ),
    };
    let problem = match key {
        Err(_) => Some(format!("unknown OPRF key {}", request.key)),
        Ok(_) => unknown_kind(request.kinds.iter().copied()),
    };
    if let Some(problem) = problem {
        return Err(Unread::Malformed(Box::new(Malformed {
            detail: format!("elements={}", request.blinded.len()),
            query_id,
            envelope,
            action,
            payload_hash,
            problem,
        })));
    }
    Ok(OprfQuery {
        query_id,
        envelope,
        payload_hash,
        deconfliction: key == Ok(v1::OprfKey::Deconfliction),
        kinds: request
            .kinds
            .iter()
            .map(|kind| kind_from_wire(*kind))
            .collect::<Result<_, _>>()?,
        blinded: request.blinded,
    })
}

pub(crate) fn stats_request(request: v1::NodeStatsRequest) -> Result<StatsRequest, Unread> {
    let query = request.query.unwrap_or_default();
    let payload_hash = crate::envelope::stats_payload_hash(&query);
    let query_id = query_id(request.query_id)?;
    let context = request.context.unwrap_or_default();
    let envelope = crate::envelope::from_wire(context.envelope);
    let (epsilon, rho) = match query.budget {
        Some(v1::stats_query::Budget::Epsilon(e)) => (Some(e), None),
        Some(v1::stats_query::Budget::Rho(r)) => (None, Some(r)),
        None => (None, None),
    };
    // Bounded before the policy reads the table name, and before parsing.
    let budget = fedq_proto::limits::check_stats_query(&query).and_then(|()| {
        crate::service::stats::budget_from(epsilon, rho).map_err(|e| match e {
            crate::NodeError::InvalidArgument(reason) => reason,
            other => other.to_string(),
        })
    });
    let budget = match budget {
        Ok(budget) => budget,
        Err(problem) => {
            return Err(Unread::Malformed(Box::new(Malformed {
                detail: format!("filters={}", query.filters.len()),
                query_id,
                envelope,
                action: Action::Stats { table: "" },
                payload_hash,
                problem,
            })))
        }
    };
    Ok(StatsRequest {
        query_id,
        requester: request.requester,
        purpose: context.purpose,
        envelope,
        payload_hash,
        table: query.table,
        measure: query.measure,
        group_by: query.group_by,
        filters: query.filters,
        budget: Some(budget),
        dry_run: query.dry_run,
    })
}

#[tonic::async_trait]
impl Node for NodeGrpcAdapter {
    async fn oprf(
        &self,
        request: Request<v1::NodeOprfRequest>,
    ) -> Result<Response<v1::NodeOprfResponse>, Status> {
        let caller = caller(&request)?;
        let query = oprf_query(self.0.node_id(), request.into_inner())
            .map_err(|u| self.refuse(&caller, u))?;
        let query_id = query.query_id.clone();
        let answer = self.0.oprf(&caller, query).await?;
        Ok(Response::new(v1::NodeOprfResponse {
            query_id,
            evaluated: answer
                .evaluation
                .elements
                .iter()
                .map(|e| e.to_vec())
                .collect(),
            proof: answer.evaluation.proof.to_vec(),
            public_key: answer.public_key,
            key_id: answer.key_id,
            share_index: answer.share_index,
        }))
    }

    async fn lookup(
        &self,
        request: Request<v1::NodeLookupRequest>,
    ) -> Result<Response<v1::NodeLookupResponse>, Status> {
        let caller = caller(&request)?;
        let query = lookup_query(self.0.node_id(), request.into_inner())
            .map_err(|u| self.refuse(&caller, u))?;
        let query_id = query.query_id.clone();
        let answer = self.0.lookup(&caller, query).await?;
        Ok(Response::new(v1::NodeLookupResponse {
            query_id,
            answers: answer.answers.iter().map(|a| a.to_bytes()).collect(),
            compute_micros: answer.compute.as_micros() as u64,
            disclosure: answer.disclosure.unwrap_or(Disclosure::NotAsked).into(),
        }))
    }

    async fn stats(
        &self,
        request: Request<v1::NodeStatsRequest>,
    ) -> Result<Response<v1::NodeStatsResponse>, Status> {
        let caller = caller(&request)?;
        let domain = stats_request(request.into_inner()).map_err(|u| self.refuse(&caller, u))?;
        let query_id = domain.query_id.clone();
        let answer = self.0.stats(&caller, domain).await?;
        Ok(Response::new(v1::NodeStatsResponse {
            query_id,
            group_columns: answer.group_columns,
            groups: answer
                .groups
                .into_iter()
                .map(|g| v1::StatsGroup {
                    key: g.key,
                    value: g.value,
                    variance: g.variance,
                    count: g.count,
                    count_variance: g.count_variance,
                })
                .collect(),
            scale: answer.scale,
            mechanism: answer.mechanism.to_owned(),
            epsilon_charged: answer.loss.epsilon,
            rho_charged: answer.loss.rho,
            ci95_half_width: answer.ci95_half_width,
            epoch: answer.epoch,
            epsilon_left: epsilon_within(answer.left),
            rho_left: answer.left,
            dry_run: answer.dry_run,
            cost_charged: answer.loss.cost,
        }))
    }

    async fn catalog(
        &self,
        request: Request<v1::CatalogRequest>,
    ) -> Result<Response<v1::CatalogResponse>, Status> {
        let caller = caller(&request)?;
        let catalog_json = self.0.catalog_json(&caller)?;
        let (floor, caps) = self.0.budget_limits();
        Ok(Response::new(v1::CatalogResponse {
            node_id: self.0.info().node_id,
            catalog_json,
            min_epsilon: floor.epsilon,
            max_epsilon: epsilon_within(caps.requester),
            min_rho: floor.rho,
            max_rho: caps.requester,
        }))
    }

    async fn budget(
        &self,
        request: Request<v1::BudgetRequest>,
    ) -> Result<Response<v1::BudgetResponse>, Status> {
        let caller = caller(&request)?;
        let status = self.0.budget(&caller, &request.into_inner().requester)?;
        let spent = status.spent;
        let epsilon_at_delta = fedq_crypto::dp::approximate_dp(spent.requester.cost, status.delta)
            .map_err(crate::error::NodeError::from)?;
        Ok(Response::new(v1::BudgetResponse {
            node_id: self.0.info().node_id,
            epoch: status.epoch,
            epsilon_spent: spent.requester.epsilon,
            epsilon_cap: epsilon_within(status.caps.requester),
            rho_spent: spent.requester.cost,
            rho_cap: status.caps.requester,
            agency: status.agency,
            agency_rho_spent: spent.agency,
            agency_rho_cap: status.caps.agency,
            lifetime_rho_spent: spent.lifetime,
            lifetime_rho_cap: status.caps.lifetime,
            rho_left: spent.left(status.caps),
            delta: status.delta,
            epsilon_at_delta,
        }))
    }

    async fn checkpoint(
        &self,
        request: Request<v1::NodeCheckpointRequest>,
    ) -> Result<Response<v1::NodeCheckpointResponse>, Status> {
        let caller = caller(&request)?;
        let head = self.0.signed_head(&caller)?;
        Ok(Response::new(v1::NodeCheckpointResponse {
            node_id: self.0.node_id().to_owned(),
            seq: head.seq,
            hash: head.hash,
            signature: head.signature.to_vec(),
            public_key: head.public_key.to_bytes().to_vec(),
        }))
    }

    async fn watch_add(
        &self,
        request: Request<v1::NodeWatchAddRequest>,
    ) -> Result<Response<v1::NodeWatchAddResponse>, Status> {
        let caller = caller(&request)?;
        let query = watch_query(self.0.node_id(), request.into_inner())
            .map_err(|u| self.refuse(&caller, u))?;
        self.0.watch_add(&caller, query).await?;
        Ok(Response::new(v1::NodeWatchAddResponse {}))
    }

    async fn watch_cancel(
        &self,
        request: Request<v1::NodeWatchCancelRequest>,
    ) -> Result<Response<v1::NodeWatchCancelResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        self.0
            .watch_cancel(&caller, &request.requester, &request.watch_id)?;
        Ok(Response::new(v1::NodeWatchCancelResponse {}))
    }

    async fn watch_results(
        &self,
        request: Request<v1::NodeWatchResultsRequest>,
    ) -> Result<Response<v1::NodeWatchResultsResponse>, Status> {
        let caller = caller(&request)?;
        let results = self.0.watch_results(&caller, request.into_inner().after)?;
        Ok(Response::new(v1::NodeWatchResultsResponse {
            node_id: self.0.node_id().to_owned(),
            results: results
                .into_iter()
                .map(|r| v1::WatchResult {
                    seq: r.seq,
                    watch_id: r.watch_id,
                    answer: r.answer,
                    evaluated_at: r.evaluated_at,
                })
                .collect(),
        }))
    }

    async fn info(
        &self,
        request: Request<v1::NodeInfoRequest>,
    ) -> Result<Response<v1::NodeInfoResponse>, Status> {
        caller(&request)?;
        let info = self.0.info();
        Ok(Response::new(v1::NodeInfoResponse {
            node_id: info.node_id,
            jurisdiction: info.jurisdiction,
            bucket_bits: u32::from(info.bucket_bits),
            tag_bits: u32::from(info.tag_bits),
            padded_candidates: info.padded_candidates as u32,
            kinds: IdentifierKind::ALL
                .iter()
                .map(|&k| kind_to_wire(k))
                .collect(),
        }))
    }
}
