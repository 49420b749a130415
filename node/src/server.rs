//! Serving the node: its gRPC service behind `fedq-transport`'s mTLS,
//! admission (only `allowed_callers`, bodies bounded per RPC) and limits.

use std::future::Future;
use std::sync::Arc;

use fedq_proto::v1::node_server::NodeServer;
use fedq_transport::caller::Admission;
use fedq_transport::{ServeOptions, TlsPaths};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::config::NodeConfig;
use crate::grpc::NodeGrpcAdapter;
use crate::service::NodeService;

/// Serves the node on `listener` until `shutdown` completes, then drains
/// requests in flight for at most the configured grace period.
pub async fn serve(
    listener: TcpListener,
    service: Arc<NodeService>,
    config: &NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let node = NodeServer::new(NodeGrpcAdapter(service))
        .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
    let allowed = config.allowed_callers.clone();
    let admission = Admission::new(
        move |caller| allowed.iter().any(|a| a == caller),
        fedq_proto::limits::node_request_bytes,
    );
    let options = ServeOptions {
        party: format!("node {}", config.node_id),
        tls: TlsPaths::clone(&config.tls),
        limits: config.limits.clone(),
        admission,
        grace: config.grace,
    };
    fedq_transport::serve(
        listener,
        Routes::new(node),
        <NodeServer<NodeGrpcAdapter> as NamedService>::NAME,
        options,
        shutdown,
    )
    .await
}
