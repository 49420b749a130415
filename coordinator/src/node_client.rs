//! Connections from the coordinator to the nodes (mTLS, lazy, one per node).

use std::time::Duration;

use fedq_node::config::TlsPaths;
use fedq_node::federation::NodeEntry;
use fedq_proto::v1::node_client::NodeClient;
use tonic::transport::{Channel, Endpoint};

/// Why a call to a node gave no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{status}: {reason}")]
pub struct NodeCallError {
    /// Short status word: timeout, unavailable, refused, invalid, error.
    pub status: &'static str,
    /// The node's (already sanitised) reason, or ours.
    pub reason: String,
}

impl NodeCallError {
    /// Maps a gRPC status from a node.
    pub fn from_status(status: &tonic::Status) -> Self {
        use tonic::Code;
        let word = match status.code() {
            Code::DeadlineExceeded => "timeout",
            Code::Unavailable => "unavailable",
            Code::PermissionDenied
            | Code::Unauthenticated
            | Code::ResourceExhausted
            | Code::FailedPrecondition => "refused",
            Code::InvalidArgument => "invalid",
            Code::Aborted => "stale",
            _ => "error",
        };
        Self {
            status: word,
            reason: status.message().to_owned(),
        }
    }

    /// Only transport-level failures are worth one retry.
    pub fn retryable(&self) -> bool {
        self.status == "unavailable"
    }
}

/// One node: its entry and a client.
#[derive(Clone)]
pub struct NodeHandle {
    /// Node id.
    pub id: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// gRPC client.
    pub client: NodeClient<Channel>,
}

/// Builds a lazily connecting client per node.
pub fn connect_nodes(
    nodes: &[NodeEntry],
    tls: &TlsPaths,
    timeout: Duration,
) -> anyhow::Result<Vec<NodeHandle>> {
    nodes
        .iter()
        .map(|node| {
            let endpoint = Endpoint::from_shared(format!("https://{}", node.address))?
                .tls_config(fedq_node::tls::client_config(tls, &node.id)?)?
                .connect_timeout(Duration::from_secs(5))
                .timeout(timeout);
            let client = NodeClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
            Ok(NodeHandle {
                id: node.id.clone(),
                jurisdiction: node.jurisdiction.clone(),
                client,
            })
        })
        .collect()
}
