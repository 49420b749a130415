//! A gRPC server on a listener: mutual TLS, admission before decoding,
//! bounded connections and work, health, server reflection, and a grace
//! period at shutdown.

use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tracing::info;

use crate::caller::Admission;
use crate::TlsPaths;

/// Connection and concurrency bounds of a server (`[limits]` in its config).
/// The defaults suit a node on a small machine; every one can be raised.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// A TLS handshake not finished within this many seconds is dropped.
    pub handshake_timeout_seconds: u64,
    /// Most requests in flight on one connection (HTTP/2 streams).
    pub max_streams_per_connection: u32,
    /// Most requests in flight in all; beyond it requests are refused at
    /// once (`ResourceExhausted`) rather than queued.
    pub max_requests_in_flight: usize,
    /// Requests without a shorter client deadline end after this many seconds.
    pub request_timeout_seconds: u64,
    /// Refusals audited one by one per requester and minute (and for every
    /// request whose envelope did not verify, together); beyond, they are
    /// counted and the count audited, so that a flood cannot fill the disk.
    pub refusal_audits_per_minute: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_seconds: 10,
            max_streams_per_connection: 8,
            max_requests_in_flight: 64,
            request_timeout_seconds: 600,
            refusal_audits_per_minute: 120,
        }
    }
}

impl ServerLimits {
    /// Problems with these limits, one line each, for config validation.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=300).contains(&self.handshake_timeout_seconds) {
            problems.push("limits.handshake_timeout_seconds: between 1 and 300".to_owned());
        }
        if !(1..=1024).contains(&self.max_streams_per_connection) {
            problems.push("limits.max_streams_per_connection: between 1 and 1024".to_owned());
        }
        if !(1..=65_536).contains(&self.max_requests_in_flight) {
            problems.push("limits.max_requests_in_flight: between 1 and 65536".to_owned());
        }
        if !(1..=86_400).contains(&self.request_timeout_seconds) {
            problems.push("limits.request_timeout_seconds: between 1 and 86400".to_owned());
        }
        if !(1..=1_000_000).contains(&self.refusal_audits_per_minute) {
            problems.push("limits.refusal_audits_per_minute: between 1 and 1000000".to_owned());
        }
        problems
    }
}

/// What [`serve`] needs besides the service.
#[derive(Debug)]
pub struct ServeOptions {
    /// Party name for logs ("node fr", "coordinator").
    pub party: String,
    /// TLS material.
    pub tls: TlsPaths,
    /// Bounds.
    pub limits: ServerLimits,
    /// Who may call, and body sizes per RPC.
    pub admission: Admission,
    /// How long requests in flight may finish after shutdown starts.
    pub grace: Duration,
    /// The Prometheus endpoint, if the config asks for one.
    pub metrics: Option<crate::metrics::MetricsConfig>,
}

/// gRPC server reflection (v1) over fedq's services and health, so that
/// standard tools list and call the API; it describes the schema only,
/// which is public (the `.proto` file ships with fedq).
fn reflection() -> anyhow::Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
> {
    Ok(tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(fedq_proto::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?)
}

/// Accepted connections with Nagle's algorithm off. tonic ignores its own
/// `tcp_nodelay` with an incoming stream; without it, a small answer written
/// in two segments waited for the peer's delayed ACK: ~40 ms per lookup
/// (measured with `fedq-bench lookup`, idle CPU throughout).
fn no_delay(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// Serves `routes` (whose gRPC service is named `service_name`, for health)
/// on `listener` until `shutdown` completes, then drains for the grace period.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    service_name: &'static str,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let limits = &options.limits;
    let tls = crate::tls::server_config(
        &options.tls,
        Duration::from_secs(limits.handshake_timeout_seconds),
    )?;
    if let Some(metrics) = &options.metrics {
        crate::metrics::install(metrics)?;
        info!(address = %metrics.listen, "metrics served");
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(service_name, ServingStatus::Serving)
        .await;
    let routes = routes
        .add_service(health_service)
        .add_service(reflection()?);
    info!(address = %listener.local_addr()?, party = %options.party, "serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let party = options.party.clone();
    let signal = async move {
        shutdown.await;
        health_reporter
            .set_service_status(service_name, ServingStatus::NotServing)
            .await;
        info!(party = %party, "draining");
        let _ = stop_tx.send(());
    };
    let server = tonic::transport::Server::builder()
        .tls_config(tls)?
        .max_concurrent_streams(limits.max_streams_per_connection)
        .timeout(Duration::from_secs(limits.request_timeout_seconds))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .load_shed(true)
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            limits.max_requests_in_flight,
        ))
        .layer(options.admission)
        .add_routes(routes)
        .serve_with_incoming_shutdown(no_delay(listener), signal);
    crate::shutdown::with_grace(server, stop_rx, options.grace).await?;
    info!(party = %options.party, "stopped");
    Ok(())
}
