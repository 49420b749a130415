//! Blinded OPRF evaluations under the node's active key, with a proof.

use fedq_crypto::IdentifierKind;
use tracing::{info, instrument};

use super::{Caller, NodeService};
use crate::error::NodeError;
use crate::gate::Visit;
use crate::policy::kinds_detail;

/// A batch of blinded identifiers for the node's OPRF, in domain terms.
#[derive(Debug, Clone)]
pub struct OprfQuery {
    /// Id chosen by the coordinator, for logs and audit.
    pub query_id: String,
    /// The requester's signed envelope, still unverified.
    pub envelope: fedq_crypto::envelope::SignedEnvelope,
    /// Hash of the request as received, which the envelope must carry.
    pub payload_hash: String,
    /// The declared kind of each item.
    pub kinds: Vec<IdentifierKind>,
    /// Blinded elements, still untrusted.
    pub blinded: Vec<Vec<u8>>,
}

/// The node's OPRF answer.
#[derive(Debug)]
pub struct OprfAnswer {
    /// Evaluated elements and the batch proof.
    pub evaluation: fedq_crypto::oprf::BlindEvaluation,
    /// The key they were evaluated under.
    pub public_key: fedq_crypto::oprf::NodeOprfPublicKey,
}

impl NodeService {
    /// Evaluates a batch of blinded identifiers under the node's active OPRF
    /// key, with a proof against its public key. Admitted like a lookup
    /// (envelope, policy, per-kind metering) and audited with the count only.
    #[instrument(skip_all, fields(query_id = %query.query_id, node = %self.config.node_id, items = query.blinded.len()))]
    pub async fn oprf(&self, caller: &Caller, query: OprfQuery) -> Result<OprfAnswer, NodeError> {
        let admitted = self.admit(
            caller,
            Visit {
                query_id: &query.query_id,
                envelope: &query.envelope,
                action: crate::policy::Action::Oprf {
                    kinds: &query.kinds,
                },
                payload_hash: &query.payload_hash,
                detail: kinds_detail("evaluations", &query.kinds, false),
            },
        )?;
        let checked = if query.kinds.len() != query.blinded.len() {
            Err(NodeError::InvalidArgument(
                "one declared kind per blinded element is needed".to_owned(),
            ))
        } else if query.blinded.len() > self.config.max_items {
            Err(NodeError::InvalidArgument(format!(
                "a fingerprint request has at most {} items",
                self.config.max_items
            )))
        } else {
            self.refresh_index()
        };
        let index = admitted.check(checked)?;
        let blinded = query.blinded;
        let answer = admitted.check(
            self.pool
                .run(move || {
                    fedq_crypto::oprf::evaluate_blinded(index.oprf_key(), &blinded)
                        .map(|evaluation| OprfAnswer {
                            evaluation,
                            public_key: index.oprf_key().public_key().clone(),
                        })
                        .map_err(|e| NodeError::InvalidArgument(e.to_string()))
                })
                .await,
        )?;
        admitted.record("oprf", "policy admits")?;
        info!(decision = "answer", "oprf evaluated");
        Ok(answer)
    }
}
