//! Serving: mTLS listener, health service, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use fedq_proto::v1::node_server::NodeServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

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
    let tls = crate::tls::server_config(&config.tls)?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<NodeServer<NodeGrpcAdapter>>()
        .await;
    let node = NodeServer::new(NodeGrpcAdapter(service))
        .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
    info!(address = %listener.local_addr()?, node = %config.node_id, "node serving");
    let grace = config.grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        health_reporter
            .set_not_serving::<NodeServer<NodeGrpcAdapter>>()
            .await;
        info!("node draining");
        let _ = stop_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        .tls_config(tls)?
        .add_service(health_service)
        .add_service(node)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    crate::shutdown::with_grace(server, stop_rx, grace).await?;
    info!("node stopped");
    Ok(())
}
