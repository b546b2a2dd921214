//! The escalation timer: every instance polls the store for due dispatch checks and escalates
//! them; the store's compare-and-set lets exactly one instance act on each.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::config::CentralConfig;
use super::store::Store;
use super::{now_ms, CentralMetrics};

/// Every `poll_interval`, escalates the dispatches whose check is due. Runs in every instance;
/// the store's compare-and-set lets exactly one of them act on each due check.
pub async fn run_timers(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    stop: CancellationToken,
) {
    loop {
        match store.due_dispatches(now_ms(), 50).await {
            Ok(due) => {
                for d in due {
                    match store.escalate(&config, &d, now_ms()).await {
                        Ok(Some(level)) => metrics.escalated(level),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(dispatch = %d.id, error = %e, "escalation check failed; retrying")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due dispatches; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.dispatch.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}
