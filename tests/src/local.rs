//! Running a whole federation inside one process, over real mTLS sockets on
//! loopback: used by `fedq demo`, the integration tests and the benchmarks.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use fedq_node::{NodeConfig, NodeService};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use fedq_client::init::ReservedPorts;
use fedq_coordinator::config::CoordinatorConfig;

/// A running party; dropping it does not stop it, [`Running::stop`] does.
pub struct Running {
    /// Party name (node id or "coordinator").
    pub name: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Signals shutdown and waits for the party to drain and stop.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.context("server task panicked")?
    }
}

/// The socket for `addr`: the one `fedq federation init` held for it, or a
/// new one.
async fn listen(
    addr: std::net::SocketAddr,
    ports: &ReservedPorts,
) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = match ports.take(addr) {
        Some(held) => {
            held.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(held)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    };
    listener.with_context(|| format!("cannot listen on {addr}"))
}

/// Starts a node from its config; returns once it listens.
pub async fn start_node(
    config_path: &Path,
    ports: &ReservedPorts,
) -> anyhow::Result<(Running, Arc<NodeService>)> {
    let config = NodeConfig::load(config_path)?;
    let listener = listen(config.listen, ports).await?;
    let service = Arc::new(
        tokio::task::spawn_blocking({
            let config = config.clone();
            move || NodeService::new(config)
        })
        .await??,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let service = Arc::clone(&service);
        async move {
            fedq_node::server::serve(listener, service, &config, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    let name = service.info().node_id;
    Ok((
        Running {
            name,
            stop: Some(stop),
            task,
        },
        service,
    ))
}

/// Starts the coordinator from its config; returns once it listens.
pub async fn start_coordinator(
    config_path: &Path,
    ports: &ReservedPorts,
) -> anyhow::Result<Running> {
    let config = CoordinatorConfig::load(config_path)?;
    let listener = listen(config.listen, ports).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        fedq_coordinator::server::serve(listener, config, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Running {
        name: "coordinator".to_owned(),
        stop: Some(stop),
        task,
    })
}
