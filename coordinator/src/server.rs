//! Serving the coordinator: its gRPC service behind `fedq-transport`'s mTLS,
//! admission (listed requesters only, bodies bounded per RPC) and limits,
//! and witnessing the nodes' audit checkpoints meanwhile.

use std::future::Future;
use std::sync::Arc;

use fedq_proto::v1::coordinator_server::CoordinatorServer;
use fedq_transport::caller::Admission;
use fedq_transport::ServeOptions;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::config::CoordinatorConfig;
use crate::grpc::CoordinatorGrpcAdapter;
use crate::service::CoordinatorService;

/// Serves until `shutdown` completes, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = Arc::new(CoordinatorService::new(config.clone())?);
    let witnessing = tokio::spawn(Arc::clone(&service).witness_every(config.witness_interval));
    let purging = tokio::spawn(
        Arc::clone(&service).purge_deconfliction_every(std::time::Duration::from_secs(60)),
    );
    let collecting =
        tokio::spawn(Arc::clone(&service).collect_watch_results_every(WATCH_COLLECT_INTERVAL));
    let coordinator = CoordinatorServer::new(CoordinatorGrpcAdapter(service.clone()))
        .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
    let admission = Admission::new(
        move |caller| service.is_requester(caller),
        fedq_proto::limits::coordinator_request_bytes,
    );
    let options = ServeOptions {
        party: "coordinator".to_owned(),
        tls: config.tls.clone(),
        limits: config.limits.clone(),
        admission,
        grace: config.grace,
        metrics: config.metrics.clone(),
    };
    let served = fedq_transport::serve(
        listener,
        Routes::new(coordinator),
        <CoordinatorServer<CoordinatorGrpcAdapter> as NamedService>::NAME,
        options,
        shutdown,
    )
    .await;
    witnessing.abort();
    purging.abort();
    collecting.abort();
    served
}

/// How often the nodes' watch results are collected: an alert reaches a
/// follower within about this long after the node evaluated it.
const WATCH_COLLECT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
