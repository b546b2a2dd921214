//! The escalation timer: every instance polls the store for due dispatch checks and escalates
//! them; the store's compare-and-set lets exactly one instance act on each.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::config::CentralConfig;
use super::store::Store;
use super::{now_ms, CentralMetrics};

/// Due dispatches read per poll, and how many of them escalate side by side.
const DUE_AT_ONCE: i64 = 500;
const ESCALATING_AT_ONCE: usize = 4;

/// How often an instance looks after open regional situations (`store/situations.rs`).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Every `poll_interval`, escalates the dispatches whose check is due. Runs in every instance;
/// the store's compare-and-set lets exactly one of them act on each due check.
pub async fn run_timers(
    config: Arc<CentralConfig>,
    store: Store,
    metrics: Arc<CentralMetrics>,
    stop: CancellationToken,
) {
    let mut last_sweep = std::time::Instant::now();
    loop {
        match store.due_dispatches(now_ms(), DUE_AT_ONCE).await {
            // A flood makes hundreds due together: a few escalate side by side (PostgreSQL
            // has a pool of connections; the instances skip the rows each other holds).
            Ok(due) => {
                let mut lanes = tokio::task::JoinSet::new();
                let per_lane = due.len().div_ceil(ESCALATING_AT_ONCE).max(1);
                for chunk in due.chunks(per_lane) {
                    let (config, store, metrics) = (config.clone(), store.clone(), metrics.clone());
                    let chunk = chunk.to_vec();
                    lanes.spawn(async move {
                        for d in chunk {
                            match store.escalate(&config, &d, now_ms()).await {
                                Ok(Some(level)) => metrics.escalated(level),
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::warn!(dispatch = %d.id, error = %e, "escalation check failed; retrying")
                                }
                            }
                        }
                    });
                }
                while lanes.join_next().await.is_some() {}
            }
            Err(e) => tracing::warn!(error = %e, "cannot read due dispatches; retrying"),
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = std::time::Instant::now();
            if let Err(e) = store.sweep_situations(&config.flood, now_ms()).await {
                tracing::warn!(error = %e, "cannot look after regional situations; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.dispatch.poll_interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}
