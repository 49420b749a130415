//! The coordinator's domain service: key registration, lookup fan-out and
//! combination. It never holds a secret key and cannot decrypt answers.

use std::sync::Arc;

use fedq_crypto::lookup::{FhePublicKey, KeyId};
use fedq_proto::v1;
use tracing::{info, instrument};

use crate::config::CoordinatorConfig;
use crate::fanout::fan_out;
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
    /// The key registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<CoordinatorError> for tonic::Status {
    fn from(error: CoordinatorError) -> Self {
        match error {
            CoordinatorError::InvalidArgument(reason) => tonic::Status::invalid_argument(reason),
            CoordinatorError::PermissionDenied => tonic::Status::permission_denied(error.to_string()),
            CoordinatorError::UnknownKey => tonic::Status::failed_precondition(error.to_string()),
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
    nodes: Vec<NodeHandle>,
}

impl CoordinatorService {
    /// Opens the key registry and prepares node connections.
    pub fn new(config: CoordinatorConfig) -> anyhow::Result<Self> {
        let registry = KeyRegistry::open(&config.key_store)?;
        let nodes = connect_nodes(&config.federation.nodes, &config.tls, config.node_timeout)?;
        Ok(Self { config, registry, nodes })
    }

    fn requester(&self, caller: &str) -> Result<(), CoordinatorError> {
        if self.config.federation.requesters.iter().any(|r| r.id == caller) {
            Ok(())
        } else {
            Err(CoordinatorError::PermissionDenied)
        }
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

    /// Sends a lookup to every node and adds up their answers per item.
    #[instrument(skip_all, fields(query_id))]
    pub async fn lookup(&self, caller: &str, request: v1::LookupRequest) -> Result<(String, Merged), CoordinatorError> {
        self.requester(caller)?;
        let key_id = KeyId::parse(&request.key_id).map_err(|_| CoordinatorError::InvalidArgument("malformed key id".to_owned()))?;
        let public_key = self.registry.get(caller, &key_id)?.ok_or(CoordinatorError::UnknownKey)?;
        let items = request.items.len();
        if items == 0 || items > fedq_proto::MAX_ITEMS_PER_REQUEST {
            return Err(CoordinatorError::InvalidArgument(format!(
                "a lookup needs 1 to {} items",
                fedq_proto::MAX_ITEMS_PER_REQUEST
            )));
        }
        let query_id = format!("{:032x}", rand::random::<u128>());
        tracing::Span::current().record("query_id", query_id.as_str());
        let node_request = Arc::new(v1::NodeLookupRequest {
            query_id: query_id.clone(),
            requester: caller.to_owned(),
            key_id: key_id.as_str().to_owned(),
            public_key,
            context: request.context,
            items: request.items,
        });
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let request = Arc::clone(&node_request);
            async move {
                let response = node.client.lookup((*request).clone()).await?.into_inner();
                Ok(NodeAnswers { answers: response.answers, compute_micros: response.compute_micros })
            }
        })
        .await;
        let merged = merge(items, outcomes);
        let ok = merged.nodes.iter().filter(|(_, r)| r.is_ok()).count();
        info!(items, nodes_ok = ok, nodes = merged.nodes.len(), "lookup combined");
        Ok((query_id, merged))
    }

    /// Public facts of every reachable node.
    pub async fn federation_info(&self) -> v1::FederationInfoResponse {
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| async move {
            Ok(node.client.info(v1::NodeInfoRequest {}).await?.into_inner())
        })
        .await;
        let mut response = v1::FederationInfoResponse::default();
        for outcome in outcomes {
            match outcome.result {
                Ok(info) => response.nodes.push(info),
                Err(e) => response.unreachable.push(v1::NodeStatus {
                    node: outcome.node,
                    status: e.status.to_owned(),
                    reason: e.reason,
                    compute_micros: 0,
                }),
            }
        }
        response
    }
}
