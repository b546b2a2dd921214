//! What the poller reports besides readings: why a request gave no good value
//! ([`FailReason`]), the observer it reports to ([`PollObserver`]: the gateway's metrics, or
//! [`PollCounters`] in tests and benches), and the clock that stamps its readings.

use std::fmt;
use std::sync::Mutex;

/// Why a request (or one point) gave no good value. The label of the per-device error counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// No answer within the request timeout (or no connection within it).
    Timeout,
    /// The device answered with a Modbus exception code.
    Exception,
    /// The connection or serial port failed.
    Transport,
    /// The answer did not match the request.
    Protocol,
    /// No connection, and the reconnect backoff has not yet run out.
    Disconnected,
    /// The registers arrived but do not make a value (NaN, infinity, bad text).
    Decode,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Timeout => "timeout",
            FailReason::Exception => "exception",
            FailReason::Transport => "transport",
            FailReason::Protocol => "protocol",
            FailReason::Disconnected => "disconnected",
            FailReason::Decode => "decode",
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the poller reports what it counts. The gateway implements it with its Prometheus
/// metrics; tests use [`PollCounters`].
pub trait PollObserver: Send + Sync + 'static {
    /// Readings sent to the pipeline, good and bad (not `device_online`).
    fn readings(&self, n: usize);
    /// One failed request, or one point that did not decode.
    fn failed(&self, device: &str, reason: FailReason, detail: &dyn fmt::Display);
    /// The device went offline (`false`) or answers again (`true`).
    fn online(&self, device: &str, online: bool);
    /// A refused (or timed-out) request of the device was cut in two.
    fn split(&self, device: &str, detail: &dyn fmt::Display);
    /// The device's plan now sends `n` requests per cycle of each of its groups, summed.
    fn requests(&self, device: &str, n: usize);
}

/// A [`PollObserver`] that keeps counts in memory.
#[derive(Debug, Default)]
pub struct PollCounters {
    inner: Mutex<CountersInner>,
}

#[derive(Debug, Default)]
struct CountersInner {
    readings: u64,
    failures: std::collections::HashMap<(String, FailReason), u64>,
    transitions: Vec<(String, bool)>,
    splits: std::collections::HashMap<String, u64>,
    requests: std::collections::HashMap<String, usize>,
}

impl PollCounters {
    pub fn readings_count(&self) -> u64 {
        self.lock().readings
    }

    /// Failures of `device` for `reason` so far.
    pub fn failures(&self, device: &str, reason: FailReason) -> u64 {
        self.lock()
            .failures
            .get(&(device.to_owned(), reason))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of `device` cut in two so far.
    pub fn splits(&self, device: &str) -> u64 {
        self.lock().splits.get(device).copied().unwrap_or(0)
    }

    /// Requests per cycle of `device`'s plan, as last reported.
    pub fn requests(&self, device: &str) -> Option<usize> {
        self.lock().requests.get(device).copied()
    }

    /// Every online/offline transition so far, in order.
    pub fn transitions(&self) -> Vec<(String, bool)> {
        self.lock().transitions.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountersInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PollObserver for PollCounters {
    fn readings(&self, n: usize) {
        self.lock().readings += n as u64;
    }

    fn failed(&self, device: &str, reason: FailReason, _detail: &dyn fmt::Display) {
        *self
            .lock()
            .failures
            .entry((device.to_owned(), reason))
            .or_default() += 1;
    }

    fn online(&self, device: &str, online: bool) {
        self.lock().transitions.push((device.to_owned(), online));
    }

    fn split(&self, device: &str, _detail: &dyn fmt::Display) {
        *self.lock().splits.entry(device.to_owned()).or_default() += 1;
    }

    fn requests(&self, device: &str, n: usize) {
        self.lock().requests.insert(device.to_owned(), n);
    }
}

/// The gateway's metrics: readings per source, failures per device and reason, and the
/// device's online state.
impl PollObserver for crate::metrics::Metrics {
    fn readings(&self, n: usize) {
        self.readings_received("modbus", n);
    }

    fn failed(&self, device: &str, reason: FailReason, detail: &dyn fmt::Display) {
        self.modbus_error(device, reason.as_str(), detail);
    }

    fn online(&self, device: &str, online: bool) {
        self.modbus_device_online(device, online);
    }

    fn split(&self, device: &str, detail: &dyn fmt::Display) {
        self.modbus_request_split(device, detail);
    }

    fn requests(&self, device: &str, n: usize) {
        self.modbus_requests(device, n);
    }
}

pub use crate::ingest::{system_clock, Clock};
