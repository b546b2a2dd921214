//! How a receiver waits for a batch, the same for memory and disk lanes: first for one entry,
//! then up to `linger` for `max` of them, so that a quiet lane sends at once and a busy one in
//! full batches.

use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Waits until `len()` is above zero, then until it reaches `max`, `linger` passes or
/// `shutdown` fires. False when `shutdown` fires while the lane is still empty. `added` is
/// notified on every push.
pub(super) async fn wait_for_batch(
    added: &Notify,
    len: impl Fn() -> usize,
    max: usize,
    linger: Duration,
    shutdown: &CancellationToken,
) -> bool {
    loop {
        let pushed = added.notified();
        if len() > 0 {
            break;
        }
        tokio::select! {
            _ = pushed => {}
            _ = shutdown.cancelled() => return false,
        }
    }
    let deadline = tokio::time::Instant::now() + linger;
    loop {
        let pushed = added.notified();
        if len() >= max || shutdown.is_cancelled() {
            return true;
        }
        tokio::select! {
            _ = pushed => {}
            _ = tokio::time::sleep_until(deadline) => return true,
            _ = shutdown.cancelled() => return true,
        }
    }
}
