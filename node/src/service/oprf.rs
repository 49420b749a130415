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
    /// Under the node's share of the deconfliction key (envelope action
    /// `deconflict`) rather than its own OPRF key.
    pub deconfliction: bool,
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
    /// The public key they were evaluated under (32 bytes).
    pub public_key: Vec<u8>,
    /// Its id (lookups) or its share text (deconfliction).
    pub key_id: String,
    /// Deconfliction: the share's index; 0 for the lookup key.
    pub share_index: u32,
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
                action: if query.deconfliction {
                    crate::policy::Action::Deconflict {
                        kinds: &query.kinds,
                    }
                } else {
                    crate::policy::Action::Oprf {
                        kinds: &query.kinds,
                    }
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
        let work = if query.deconfliction {
            let share = admitted.check(self.deconfliction.clone().ok_or_else(|| {
                NodeError::NotConfigured(
                    "this node holds no share of a deconfliction key".to_owned(),
                )
            }))?;
            self.pool
                .run(move || {
                    fedq_crypto::toprf::evaluate_partial(&share, &blinded)
                        .map(|evaluation| OprfAnswer {
                            evaluation,
                            public_key: share.public().to_bytes().to_vec(),
                            key_id: share.public().to_text(),
                            share_index: u32::from(share.index()),
                        })
                        .map_err(|e| NodeError::InvalidArgument(e.to_string()))
                })
                .await
        } else {
            self.pool
                .run(move || {
                    fedq_crypto::oprf::evaluate_blinded(index.oprf_key(), &blinded)
                        .map(|evaluation| OprfAnswer {
                            evaluation,
                            public_key: index.oprf_key().public_key().to_bytes().to_vec(),
                            key_id: index.oprf_key().key_id().to_string(),
                            share_index: 0,
                        })
                        .map_err(|e| NodeError::InvalidArgument(e.to_string()))
                })
                .await
        };
        let answer = admitted.check(work)?;
        let action = if query.deconfliction {
            "deconflict"
        } else {
            "oprf"
        };
        admitted.record(action, "policy admits")?;
        info!(decision = "answer", action, "oprf evaluated");
        Ok(answer)
    }
}
