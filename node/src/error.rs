//! The node's error type and its one mapping to gRPC statuses.
//!
//! Status text that leaves the node is fixed and lowercase and never holds data
//! values or internal causes; unexpected errors become "internal error" with an
//! error id that is also logged here.

use fedq_crypto::lookup::LookupError;

use crate::ledger::LedgerError;
use crate::stats::StatsError;
use crate::store::StoreError;

/// Errors of the node's domain layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The request is malformed; the reason is safe to send.
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller has no valid certificate.
    #[error("caller is not authenticated")]
    Unauthenticated,
    /// The caller may not make this request.
    #[error("{0}")]
    PermissionDenied(String),
    /// A limit was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// Ciphertext or key decoding failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A statistics query failed.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// The privacy ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// An OpenDP mechanism could not be built.
    #[error(transparent)]
    Dp(#[from] fedq_crypto::dp::DpError),
    /// The request's envelope did not verify; the reason is safe to send.
    #[error("{0}")]
    Unverified(String),
    /// The audit log could not record the request: nothing is answered.
    #[error("audit log: {0}")]
    Audit(String),
    /// The lookup's tags were derived under an OPRF key this node has since
    /// rotated away from: the requester must obtain fresh tags.
    #[error("{0}")]
    StaleOprfKey(String),
    /// The node is not set up for what was asked (no deconfliction share).
    #[error("{0}")]
    NotConfigured(String),
    /// A compressed lookup names an expansion key this node has not cached
    /// and does not carry it: the coordinator sends the request again with
    /// the key.
    #[error("expansion key not cached here: send it with the request")]
    ExpansionKeyNotCached,
    /// Work for this request failed unexpectedly (a panic caught on the
    /// pool); the cause is in the log under this id.
    #[error("internal error {0}")]
    Internal(fedq_transport::internal::ErrorId),
    /// The caller gave up (cancelled, or its deadline passed): the rest of
    /// the work was skipped.
    #[error("request abandoned by its caller")]
    Abandoned,
    /// The evaluation pool is gone (shutting down).
    #[error("node is shutting down")]
    ShuttingDown,
}

impl From<NodeError> for tonic::Status {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::InvalidArgument(reason) => tonic::Status::invalid_argument(reason),
            NodeError::Lookup(e) => tonic::Status::invalid_argument(e.to_string()),
            NodeError::Unauthenticated => {
                tonic::Status::unauthenticated("caller is not authenticated")
            }
            NodeError::PermissionDenied(reason) => tonic::Status::permission_denied(reason),
            NodeError::Unverified(reason) => tonic::Status::unauthenticated(reason),
            NodeError::ResourceExhausted(reason) => tonic::Status::resource_exhausted(reason),
            NodeError::ShuttingDown => tonic::Status::unavailable("node is shutting down"),
            NodeError::Abandoned => tonic::Status::cancelled("request abandoned by its caller"),
            NodeError::NotConfigured(reason) => tonic::Status::failed_precondition(reason),
            NodeError::ExpansionKeyNotCached => {
                let mut status = tonic::Status::failed_precondition(
                    NodeError::ExpansionKeyNotCached.to_string(),
                );
                status.metadata_mut().insert(
                    fedq_proto::RESEND_METADATA,
                    tonic::metadata::MetadataValue::from_static(fedq_proto::RESEND_EXPANSION_KEY),
                );
                status
            }
            NodeError::StaleOprfKey(reason) => {
                tonic::Status::new(fedq_proto::outcome::NodeOutcome::STALE_CODE, reason)
            }
            NodeError::Stats(StatsError::Invalid(reason)) => {
                tonic::Status::invalid_argument(reason)
            }
            NodeError::Stats(StatsError::NotImported(table)) => tonic::Status::failed_precondition(
                format!("table {table} has not been imported at this node"),
            ),
            NodeError::Ledger(LedgerError::Exhausted(shortfall)) => {
                tonic::Status::resource_exhausted(shortfall.to_string())
            }
            NodeError::Dp(e) => tonic::Status::invalid_argument(e.to_string()),
            NodeError::Internal(id) => id.status(),
            other => fedq_transport::internal::internal_status(&other),
        }
    }
}
