//! Connections from the coordinator to the nodes (mTLS, lazy, one per node).

use std::time::Duration;

use fedq_proto::federation::NodeEntry;
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1::node_client::NodeClient;
use fedq_transport::TlsPaths;
use tonic::transport::{Channel, Endpoint};

/// Why a call to a node gave no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}: {reason}", outcome.word())]
pub struct NodeCallError {
    /// What happened.
    pub outcome: NodeOutcome,
    /// The node's (already sanitised) reason, or ours.
    pub reason: String,
}

impl NodeCallError {
    /// Maps a gRPC status from a node.
    pub fn from_status(status: &tonic::Status) -> Self {
        Self {
            outcome: NodeOutcome::from_code(status.code()),
            reason: status.message().to_owned(),
        }
    }
}

/// One node: its entry and a client.
#[derive(Clone)]
pub struct NodeHandle {
    /// Node id.
    pub id: String,
    /// Jurisdiction.
    pub jurisdiction: String,
    /// host:port, as the federation file lists it (said when unreachable).
    pub address: String,
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
                .tls_config(fedq_transport::tls::client_config(tls, &node.id)?)?
                .connect_timeout(Duration::from_secs(5))
                .timeout(timeout);
            let client = NodeClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
            Ok(NodeHandle {
                id: node.id.clone(),
                jurisdiction: node.jurisdiction.clone(),
                address: node.address.clone(),
                client,
            })
        })
        .collect()
}
