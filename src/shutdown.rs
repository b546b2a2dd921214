//! The one shutdown signal of every role: the first Ctrl-C (SIGINT) or SIGTERM. Where a SIGTERM
//! handler cannot be installed, Ctrl-C alone still stops the process.

/// Resolves at the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C still stops");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// How the gateway stops each uplink (`uplink/`): on `flush` the uplink sends what its lane
/// holds and returns; on `hard_stop` it returns at once, what is unconfirmed staying in the lane.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    pub flush: tokio_util::sync::CancellationToken,
    pub hard_stop: tokio_util::sync::CancellationToken,
}
