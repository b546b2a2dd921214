//! The gateway's own telemetry. Each thing worth counting is one function here that increments a
//! Prometheus metric; a drop, a rejection, a failure or a refusal also logs (rate-limited where it
//! can repeat), so none of them is only a log line or only a number. Throughput counters
//! (readings received, uplink points) do not log.
//!
//! Size: about 720 lines by design: one method per counted thing, so every counter and its log
//! line are in one place.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabel {
    pub severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabel {
    pub transition: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UplinkLabel {
    pub uplink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceReasonLabel {
    pub device: String,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabel {
    pub device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LaneLabel {
    pub lane: String,
}

pub struct Metrics {
    registry: Registry,
    readings_received: Family<SourceLabel, Counter>,
    messages_rejected: Family<ReasonLabel, Counter>,
    readings_adjusted: Family<ReasonLabel, Counter>,
    trapped_rule_blind: Counter,
    /// Messages central refused after the broker had confirmed them, by central's reason.
    central_rejections: Family<ReasonLabel, Counter>,
    alarms_raised: Family<SeverityLabel, Counter>,
    alarms_cleared: Counter,
    alarm_transitions: Family<TransitionLabel, Counter>,
    alarms_by_state: Family<StateLabel, Gauge>,
    alarm_rate: Gauge,
    alarm_flood: Gauge,
    fills_checked: Family<OutcomeLabel, Counter>,
    uplink_writes: Family<UplinkLabel, Counter>,
    uplink_points: Family<UplinkLabel, Counter>,
    uplink_live_points: Family<UplinkLabel, Counter>,
    uplink_failures: Family<UplinkLabel, Counter>,
    uplink_rejected_points: Family<UplinkLabel, Counter>,
    uplink_latency: Family<UplinkLabel, Histogram>,
    queue_depth: Family<LaneLabel, Gauge>,
    dropped: Family<LaneLabel, Counter>,
    outbox_skipped: Family<LaneLabel, Counter>,
    outbox_oldest_age: Family<LaneLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    broker_connected: Family<UplinkLabel, Gauge>,
    broker_connects: Family<UplinkLabel, Counter>,
    incidents_published: Counter,
    fills_published: Counter,
    modbus_errors: Family<DeviceReasonLabel, Counter>,
    modbus_online: Family<DeviceLabel, Gauge>,
    modbus_splits: Family<DeviceLabel, Counter>,
    modbus_requests: Family<DeviceLabel, Gauge>,
    config_reloads: Family<OutcomeLabel, Counter>,
    rule_checkpoints: Family<OutcomeLabel, Counter>,
    /// Requests refused by the API's limits (`http_limits.rs` counts them).
    pub http_rejected: HttpRejections,
    log_limiter: crate::log_limit::LogLimiter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seguard");
        let readings_received = Family::default();
        registry.register(
            "readings_received",
            "Readings accepted, by source",
            readings_received.clone(),
        );
        let messages_rejected = Family::default();
        registry.register(
            "messages_rejected",
            "Messages rejected, by reason",
            messages_rejected.clone(),
        );
        let readings_adjusted = Family::default();
        registry.register(
            "readings_adjusted",
            "Readings kept but changed at ingest: text_cleaned (control characters replaced), unknown_code (a code missing from its code table)",
            readings_adjusted.clone(),
        );
        let trapped_rule_blind = Counter::default();
        registry.register(
            "trapped_rule_blind",
            "Times an elevator's trapped rule raised that it cannot see (unknown service mode, or a metric it needs never reported)",
            trapped_rule_blind.clone(),
        );
        let central_rejections = Family::default();
        registry.register(
            "central_rejections",
            "Messages the central service refused (told on {prefix}/{gateway}/rejections), by reason",
            central_rejections.clone(),
        );
        let alarms_raised = Family::default();
        registry.register(
            "alarms_raised",
            "Alarms raised, by severity",
            alarms_raised.clone(),
        );
        let alarms_cleared = Counter::default();
        registry.register("alarms_cleared", "Alarms cleared", alarms_cleared.clone());
        let alarm_transitions = Family::default();
        registry.register(
            "alarm_transitions",
            "Alarm lifecycle events on the incident stream, by transition",
            alarm_transitions.clone(),
        );
        let alarms_by_state = Family::default();
        registry.register(
            "alarms",
            "Alarms by ISA-18.2 state (chattering and unacknowledged counted apart)",
            alarms_by_state.clone(),
        );
        let alarm_rate = Gauge::default();
        registry.register(
            "alarm_rate",
            "Alarms announced within the flood window (10 minutes by default)",
            alarm_rate.clone(),
        );
        let alarm_flood = Gauge::default();
        registry.register(
            "alarm_flood",
            "1 while more alarms are announced than an operator can handle",
            alarm_flood.clone(),
        );
        let fills_checked = Family::default();
        registry.register(
            "fills_checked",
            "Cylinder fills checked against the registry, by outcome (accepted or the first reason)",
            fills_checked.clone(),
        );
        let uplink_writes = Family::default();
        registry.register(
            "uplink_writes",
            "Batches the receiver confirmed",
            uplink_writes.clone(),
        );
        let uplink_live_points = Family::default();
        registry.register(
            "uplink_live_points",
            "Newest points written ahead of a backlog during a catch-up (they are written again in order)",
            uplink_live_points.clone(),
        );
        let uplink_points = Family::default();
        registry.register(
            "uplink_points",
            "Points the receiver confirmed",
            uplink_points.clone(),
        );
        let uplink_failures = Family::default();
        registry.register(
            "uplink_failures",
            "Failed write attempts (retried)",
            uplink_failures.clone(),
        );
        let uplink_rejected_points = Family::default();
        registry.register(
            "uplink_rejected_points",
            "Points the receiver refused as invalid (not retried)",
            uplink_rejected_points.clone(),
        );
        let uplink_latency = Family::<UplinkLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        registry.register(
            "uplink_write_seconds",
            "Time of a successful write",
            uplink_latency.clone(),
        );
        let queue_depth = Family::default();
        registry.register(
            "queue_depth",
            "Entries waiting in an outbox lane",
            queue_depth.clone(),
        );
        let dropped = Family::default();
        registry.register(
            "outbox_dropped",
            "Entries dropped from an outbox lane",
            dropped.clone(),
        );
        let outbox_skipped = Family::default();
        registry.register(
            "outbox_skipped_records",
            "Outbox records skipped as corrupt on disk (lost)",
            outbox_skipped.clone(),
        );
        let outbox_oldest_age = Family::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest entry waiting in an outbox lane",
            outbox_oldest_age.clone(),
        );
        let broker_connected = Family::default();
        registry.register(
            "broker_connected",
            "1 while the MQTT connection is up",
            broker_connected.clone(),
        );
        let broker_connects = Family::default();
        registry.register(
            "broker_connects",
            "Connections made to an MQTT broker",
            broker_connects.clone(),
        );
        let incidents_published = Counter::default();
        registry.register(
            "incidents_published",
            "Incidents the central broker confirmed",
            incidents_published.clone(),
        );
        let fills_published = Counter::default();
        registry.register(
            "fills_published",
            "Fill records the central broker confirmed",
            fills_published.clone(),
        );
        let modbus_errors = Family::default();
        registry.register(
            "modbus_errors",
            "Failed Modbus requests and undecodable values, by device and reason",
            modbus_errors.clone(),
        );
        let modbus_online = Family::default();
        registry.register(
            "modbus_device_online",
            "1 while the Modbus device answers",
            modbus_online.clone(),
        );
        let modbus_splits = Family::default();
        registry.register(
            "modbus_request_splits",
            "Modbus read requests cut in two because the device refused them (exception 02 or 03) or did not answer them while it answered others",
            modbus_splits.clone(),
        );
        let modbus_requests = Family::default();
        registry.register(
            "modbus_requests",
            "Read requests per poll cycle in the Modbus device's current plan, summed over its poll groups",
            modbus_requests.clone(),
        );
        let config_reloads = Family::default();
        registry.register(
            "config_reloads",
            "Config reloads (SIGHUP or POST /api/v1/reload), by outcome: applied or refused",
            config_reloads.clone(),
        );
        let rule_checkpoints = Family::default();
        registry.register(
            "rule_checkpoints",
            "Rule-state checkpoints, by outcome: written, write_failed; at start restored, stale, corrupt or missing",
            rule_checkpoints.clone(),
        );
        let http_rejected = register_http_rejections(&mut registry);
        Metrics {
            registry,
            config_reloads,
            rule_checkpoints,
            http_rejected,
            modbus_errors,
            modbus_online,
            modbus_splits,
            modbus_requests,
            readings_received,
            messages_rejected,
            readings_adjusted,
            trapped_rule_blind,
            central_rejections,
            alarms_raised,
            alarms_cleared,
            alarm_transitions,
            alarms_by_state,
            alarm_rate,
            alarm_flood,
            fills_checked,
            uplink_writes,
            uplink_points,
            uplink_live_points,
            uplink_failures,
            uplink_rejected_points,
            uplink_latency,
            queue_depth,
            dropped,
            outbox_skipped,
            outbox_oldest_age,
            broker_connected,
            broker_connects,
            incidents_published,
            fills_published,
            log_limiter: Default::default(),
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Logs once per `LOG_PERIOD` per key, saying how many were suppressed in between.
    fn log_limited(&self, key: &'static str, log: impl FnOnce(u64)) {
        self.log_limiter.log(key, log);
    }

    pub fn readings_received(&self, source: &'static str, n: usize) {
        self.readings_received
            .get_or_create(&SourceLabel { source })
            .inc_by(n as u64);
    }

    pub fn message_rejected(
        &self,
        reason: &'static str,
        topic: &str,
        detail: &dyn std::fmt::Display,
    ) {
        self.messages_rejected
            .get_or_create(&ReasonLabel { reason })
            .inc();
        self.log_limited(reason, |suppressed| {
            tracing::warn!(reason, topic, %detail, suppressed, "message rejected");
        });
    }

    /// A reading kept with a changed value: `text_cleaned` or `unknown_code`.
    pub fn reading_adjusted(&self, reason: &'static str, topic: &str, metric: &str) {
        self.readings_adjusted
            .get_or_create(&ReasonLabel { reason })
            .inc();
        self.log_limited(reason, |suppressed| {
            tracing::warn!(
                reason,
                topic,
                metric,
                suppressed,
                "reading adjusted at ingest"
            );
        });
    }

    /// Central refused one of our messages; `reason` is one of central's reasons or `other`.
    pub fn central_rejected(&self, reason: &'static str, what: &str, detail: &str) {
        self.central_rejections
            .get_or_create(&ReasonLabel { reason })
            .inc();
        self.log_limited(reason, |suppressed| {
            tracing::error!(
                reason,
                what,
                detail,
                suppressed,
                "central refused a message the broker had confirmed"
            );
        });
    }

    /// An elevator's trapped rule said it is blind (its `trapped_rule_blind` alarm was raised).
    pub fn trapped_rule_blind(&self, equipment: &str, message: &str) {
        self.trapped_rule_blind.inc();
        tracing::error!(equipment, message, "trapped rule blind");
    }

    pub fn central_rejected_count(&self, reason: &'static str) -> u64 {
        self.central_rejections
            .get_or_create(&ReasonLabel { reason })
            .get()
    }

    pub fn alarm_raised(&self, severity: &'static str) {
        self.alarms_raised
            .get_or_create(&SeverityLabel { severity })
            .inc();
    }

    pub fn alarm_cleared(&self) {
        self.alarms_cleared.inc();
    }

    /// Counts every event on the incident stream by its transition (raise, acknowledge...).
    pub fn alarm_transition(&self, transition: &'static str) {
        self.alarm_transitions
            .get_or_create(&TransitionLabel { transition })
            .inc();
    }

    /// The lifecycle's counts after a change: alarm rate, flood, and alarms by state.
    pub fn alarm_stats(&self, stats: &crate::model::AlarmStats) {
        self.alarm_rate.set(stats.announced_in_window as i64);
        self.alarm_flood.set(i64::from(stats.flood));
        for (state, n) in [
            ("active", stats.active),
            ("unacknowledged", stats.unacknowledged),
            ("shelved", stats.shelved),
            ("suppressed", stats.suppressed),
            ("out_of_service", stats.out_of_service),
            ("chattering", stats.chattering),
        ] {
            self.alarms_by_state
                .get_or_create(&StateLabel { state })
                .set(n as i64);
        }
    }

    pub fn config_reload_applied(&self, summary: &str) {
        self.config_reloads
            .get_or_create(&OutcomeLabel { outcome: "applied" })
            .inc();
        tracing::info!(summary, "config reloaded");
    }

    /// Logs every problem at ERROR, then that the running config stays.
    pub fn config_reload_refused(&self, problems: &[String]) {
        self.config_reloads
            .get_or_create(&OutcomeLabel { outcome: "refused" })
            .inc();
        for problem in problems {
            tracing::error!("{problem}");
        }
        tracing::error!(
            problems = problems.len(),
            "reload refused, the running config stays"
        );
    }

    /// A rule-state checkpoint written (not logged: about once a second while alarms move).
    pub fn rule_checkpoint_written(&self) {
        self.rule_checkpoints
            .get_or_create(&OutcomeLabel { outcome: "written" })
            .inc();
    }

    pub fn rule_checkpoint_write_failed(&self, error: &str) {
        self.rule_checkpoints
            .get_or_create(&OutcomeLabel {
                outcome: "write_failed",
            })
            .inc();
        self.log_limited("rule_checkpoint_write_failed", |suppressed| {
            tracing::error!(error, suppressed, "cannot write the rule-state checkpoint; a restart now would lose the rules' timers");
        });
    }

    /// What the gateway did at start with the checkpoint: `restored`, `stale`, `corrupt` or
    /// `missing`; `detail` says why.
    pub fn rule_checkpoint_loaded(&self, outcome: &'static str, detail: &str) {
        self.rule_checkpoints
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        match outcome {
            "corrupt" => tracing::error!(
                detail,
                "rule-state checkpoint unusable: the rules start afresh and raise nothing from it"
            ),
            "stale" => tracing::warn!(
                detail,
                "rule-state checkpoint stale: timers start afresh, open alarms are closed"
            ),
            _ => tracing::info!(outcome, detail, "rule-state checkpoint"),
        }
    }

    pub fn fill_checked(&self, outcome: &'static str) {
        self.fills_checked
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn uplink_written(&self, uplink: &str, points: usize, seconds: f64) {
        let label = UplinkLabel {
            uplink: uplink.to_owned(),
        };
        self.uplink_writes.get_or_create(&label).inc();
        self.uplink_points
            .get_or_create(&label)
            .inc_by(points as u64);
        self.uplink_latency.get_or_create(&label).observe(seconds);
    }

    pub fn uplink_live_written(&self, uplink: &str, points: usize) {
        self.uplink_live_points
            .get_or_create(&UplinkLabel {
                uplink: uplink.to_owned(),
            })
            .inc_by(points as u64);
    }

    pub fn uplink_failed(&self, uplink: &str, error: &dyn std::fmt::Display, retry_in: Duration) {
        self.uplink_failures
            .get_or_create(&UplinkLabel {
                uplink: uplink.to_owned(),
            })
            .inc();
        self.log_limited("uplink_failed", |suppressed| {
            tracing::warn!(uplink, %error, retry_in_ms = retry_in.as_millis() as u64, suppressed, "uplink write failed");
        });
    }

    pub fn uplink_rejected(&self, uplink: &str, points: usize, error: &dyn std::fmt::Display) {
        self.uplink_rejected_points
            .get_or_create(&UplinkLabel {
                uplink: uplink.to_owned(),
            })
            .inc_by(points as u64);
        tracing::error!(uplink, points, %error, "receiver refused points as invalid; they are not retried");
    }

    pub fn queue_depth(&self, lane: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&LaneLabel {
                lane: lane.to_owned(),
            })
            .set(depth as i64);
    }

    pub fn dropped(&self, lane: &str, n: usize) {
        self.dropped
            .get_or_create(&LaneLabel {
                lane: lane.to_owned(),
            })
            .inc_by(n as u64);
        self.log_limited("outbox_dropped", |suppressed| {
            tracing::error!(
                lane,
                n,
                suppressed,
                "outbox lane full: dropped the oldest entries"
            );
        });
    }

    /// Outbox records found corrupt on disk and skipped: lost, so never only a log line.
    pub fn outbox_skipped(&self, lane: &str, n: u64) {
        self.outbox_skipped
            .get_or_create(&LaneLabel {
                lane: lane.to_owned(),
            })
            .inc_by(n);
        self.log_limited("outbox_skipped", |suppressed| {
            tracing::error!(
                lane,
                n,
                suppressed,
                "outbox records corrupt on disk: skipped"
            );
        });
    }

    pub fn dropped_count(&self, lane: &str) -> u64 {
        self.dropped
            .get_or_create(&LaneLabel {
                lane: lane.to_owned(),
            })
            .get()
    }

    pub fn broker_connected(&self, connection: &str, up: bool) {
        let label = UplinkLabel {
            uplink: connection.to_owned(),
        };
        self.broker_connected
            .get_or_create(&label)
            .set(i64::from(up));
        if up {
            self.broker_connects.get_or_create(&label).inc();
        }
    }

    pub fn incidents_published(&self, n: usize) {
        self.incidents_published.inc_by(n as u64);
    }

    pub fn fills_published(&self, n: usize) {
        self.fills_published.inc_by(n as u64);
    }

    pub fn modbus_error(&self, device: &str, reason: &'static str, detail: &dyn std::fmt::Display) {
        self.modbus_errors
            .get_or_create(&DeviceReasonLabel {
                device: device.to_owned(),
                reason,
            })
            .inc();
        self.log_limited("modbus_error", |suppressed| {
            tracing::warn!(device, reason, %detail, suppressed, "modbus request failed");
        });
    }

    pub fn modbus_device_online(&self, device: &str, online: bool) {
        self.modbus_online
            .get_or_create(&DeviceLabel {
                device: device.to_owned(),
            })
            .set(i64::from(online));
        if online {
            tracing::info!(device, "modbus device answers");
        } else {
            tracing::warn!(device, "modbus device offline");
        }
    }

    pub fn modbus_request_split(&self, device: &str, detail: &dyn std::fmt::Display) {
        self.modbus_splits
            .get_or_create(&DeviceLabel {
                device: device.to_owned(),
            })
            .inc();
        self.log_limited("modbus_split", |suppressed| {
            tracing::warn!(device, %detail, suppressed, "modbus request split");
        });
    }

    pub fn modbus_requests(&self, device: &str, n: usize) {
        self.modbus_requests
            .get_or_create(&DeviceLabel {
                device: device.to_owned(),
            })
            .set(n as i64);
    }

    pub fn outbox_oldest_age(&self, lane: &str, seconds: f64) {
        self.outbox_oldest_age
            .get_or_create(&LaneLabel {
                lane: lane.to_owned(),
            })
            .set(seconds);
    }
}

/// An HTTP response carrying a rendered OpenMetrics text, for `GET /metrics`.
pub fn openmetrics_response(text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
/// HTTP requests refused by `http_limits`, by reason; a clone of a family registered in the
/// role's metrics (the gateway's and central's both count them).
pub type HttpRejections = Family<ReasonLabel, Counter>;

/// Registers the refusal counter in a role's registry.
pub fn register_http_rejections(
    registry: &mut prometheus_client::registry::Registry,
) -> HttpRejections {
    let rejected = HttpRejections::default();
    registry.register(
        "http_rejected",
        "HTTP requests refused by the body limit, the timeout or the rate limit, by reason",
        rejected.clone(),
    );
    rejected
}
