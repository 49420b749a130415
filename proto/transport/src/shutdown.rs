//! Shutdown signals and the grace period for requests in flight.

use std::future::Future;
use std::time::Duration;

/// Completes on SIGTERM or Ctrl-C.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `server`; once `stopping` fires, gives it `grace` to finish draining.
pub async fn with_grace<E>(
    server: impl Future<Output = Result<(), E>>,
    stopping: tokio::sync::oneshot::Receiver<()>,
    grace: Duration,
) -> Result<(), E> {
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        _ = stopping => {}
    }
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "grace period over, stopping with requests in flight"
            );
            Ok(())
        }
    }
}
