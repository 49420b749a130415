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
    let reloads = tokio::spawn(reload_policy_on_change(Arc::clone(&service)));
    let watching = tokio::spawn(Arc::clone(&service).evaluate_watches_every(WATCH_RECHECK));
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
        metrics: config.metrics.clone(),
    };
    let served = fedq_transport::serve(
        listener,
        Routes::new(node),
        <NodeServer<NodeGrpcAdapter> as NamedService>::NAME,
        options,
        shutdown,
    )
    .await;
    reloads.abort();
    watching.abort();
    served
}

/// How often the store is looked at for new records to evaluate watches
/// against (a look is one cheap query while nothing changed).
const WATCH_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// How often `node.toml` is looked at for a changed policy.
const POLICY_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Puts a changed `[policy]` in force without a restart: at once on SIGHUP,
/// and within [`POLICY_RECHECK`] of `node.toml` changing on disk. A file that
/// does not validate is logged and changes nothing.
async fn reload_policy_on_change(service: Arc<NodeService>) {
    use fedq_proto::toml_file::stamp;
    let path = service.config_path().to_owned();
    let mut seen = stamp(&path);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(POLICY_RECHECK);
    loop {
        #[cfg(unix)]
        let signalled = async {
            match hangup.as_mut() {
                Some(hangup) => hangup.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signalled = std::future::pending::<Option<()>>();
        let forced = tokio::select! {
            _ = signalled => true,
            _ = tick.tick() => false,
        };
        let now = stamp(&path);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        if let Err(e) = service.reload_policy() {
            tracing::warn!(error = %e, "policy not reloaded; the previous one stays in force");
        }
    }
}
