//! Serving the coordinator: mTLS listener, health, graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use fedq_proto::v1::coordinator_server::CoordinatorServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::info;

use crate::config::CoordinatorConfig;
use crate::grpc::CoordinatorGrpcAdapter;
use crate::service::CoordinatorService;

/// Serves until `shutdown` completes, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = fedq_node::tls::server_config(&config.tls)?;
    let grace = config.grace;
    let service = Arc::new(CoordinatorService::new(config)?);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CoordinatorServer<CoordinatorGrpcAdapter>>()
        .await;
    let coordinator = CoordinatorServer::new(CoordinatorGrpcAdapter(service))
        .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
    info!(address = %listener.local_addr()?, "coordinator serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        health_reporter
            .set_not_serving::<CoordinatorServer<CoordinatorGrpcAdapter>>()
            .await;
        info!("coordinator draining");
        let _ = stop_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        .tls_config(tls)?
        .add_service(health_service)
        .add_service(coordinator)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
    fedq_node::shutdown::with_grace(server, stop_rx, grace).await?;
    info!("coordinator stopped");
    Ok(())
}
