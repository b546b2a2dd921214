//! The `[outbox]` section of the gateway config: a raw serde struct, and the typed config with
//! its defaults.
//!
//! ```toml
//! [outbox]
//! dir = "/var/lib/seguard/outbox"   # required: one subdirectory per lane
//! telemetry_quota_mb = 1024         # per telemetry lane; the oldest is dropped beyond it
//! incident_quota_mb = 256           # the incident lane waits (never drops) beyond it
//! fsync = "batch"                   # "batch": before each push returns; "interval": every fsync_interval_ms
//! fsync_interval_ms = 200           # only with fsync = "interval"
//! drain_rate_points_per_s = 50000   # per lane; 0 = unlimited. Keep it well above the live rate;
//!                                   # the newest points are sent ahead of a backlog meanwhile
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{FsyncPolicy, LaneOptions, Overflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    Batch,
    Interval,
}

/// `[outbox]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutboxConfig {
    pub dir: PathBuf,
    pub telemetry_quota_mb: Option<u64>,
    pub incident_quota_mb: Option<u64>,
    pub fsync: Option<FsyncMode>,
    pub fsync_interval_ms: Option<u64>,
    pub drain_rate_points_per_s: Option<u32>,
}

/// `[outbox]` validated, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    pub dir: PathBuf,
    pub telemetry_quota_bytes: u64,
    pub incident_quota_bytes: u64,
    pub fsync: FsyncPolicy,
    /// `None`: unlimited.
    pub drain_rate_points_per_s: Option<u32>,
}

pub const DEFAULT_TELEMETRY_QUOTA_MB: u64 = 1024;
pub const DEFAULT_INCIDENT_QUOTA_MB: u64 = 256;
pub const DEFAULT_FSYNC_INTERVAL_MS: u64 = 200;

/// One problem with `[outbox]`: the field, what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfigProblem {
    pub field: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl RawOutboxConfig {
    /// Every problem at once, or the typed config.
    pub fn validate(&self) -> Result<OutboxConfig, Vec<OutboxConfigProblem>> {
        let mut problems = Vec::new();
        if self.dir.as_os_str().is_empty() {
            problems.push(OutboxConfigProblem {
                field: "dir",
                message: "the outbox directory is empty".into(),
                hint: "give a directory on persistent storage, e.g. /var/lib/seguard/outbox",
            });
        }
        let telemetry_mb = self
            .telemetry_quota_mb
            .unwrap_or(DEFAULT_TELEMETRY_QUOTA_MB);
        let incident_mb = self.incident_quota_mb.unwrap_or(DEFAULT_INCIDENT_QUOTA_MB);
        for (field, mb) in [
            ("telemetry_quota_mb", telemetry_mb),
            ("incident_quota_mb", incident_mb),
        ] {
            if mb == 0 {
                problems.push(OutboxConfigProblem {
                    field,
                    message: "a quota of 0 MB holds nothing".into(),
                    hint: "give at least 1 (MB); the default is enough for hours of outage",
                });
            } else if mb > 1 << 30 {
                problems.push(OutboxConfigProblem {
                    field,
                    message: format!("{mb} MB is more than any disk"),
                    hint: "the quota is in megabytes",
                });
            }
        }
        let fsync = match (
            self.fsync.unwrap_or(FsyncMode::Batch),
            self.fsync_interval_ms,
        ) {
            (FsyncMode::Batch, Some(_)) => {
                problems.push(OutboxConfigProblem {
                    field: "fsync_interval_ms",
                    message: "fsync_interval_ms is set but fsync is \"batch\"".into(),
                    hint: "set fsync = \"interval\" or remove fsync_interval_ms",
                });
                FsyncPolicy::Batch
            }
            (FsyncMode::Batch, None) => FsyncPolicy::Batch,
            (FsyncMode::Interval, ms) => {
                let ms = ms.unwrap_or(DEFAULT_FSYNC_INTERVAL_MS);
                if ms == 0 || ms > 60_000 {
                    problems.push(OutboxConfigProblem {
                        field: "fsync_interval_ms",
                        message: format!("{ms} ms is out of range"),
                        hint: "between 1 and 60000; a power loss can lose up to this much",
                    });
                }
                FsyncPolicy::Interval(Duration::from_millis(ms.max(1)))
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(OutboxConfig {
            dir: self.dir.clone(),
            telemetry_quota_bytes: telemetry_mb * 1024 * 1024,
            incident_quota_bytes: incident_mb * 1024 * 1024,
            fsync,
            drain_rate_points_per_s: self.drain_rate_points_per_s.filter(|&r| r > 0),
        })
    }
}

impl OutboxConfig {
    /// Options for a telemetry lane: bounded, drops the oldest.
    pub fn telemetry_lane(&self) -> LaneOptions {
        let mut options =
            LaneOptions::new(self.telemetry_quota_bytes, Overflow::DropOldest, self.fsync);
        options.drain_rate = self.drain_rate_points_per_s;
        options
    }

    /// Options for the incident lane: never drops, no drain limit (incidents go first).
    pub fn incident_lane(&self) -> LaneOptions {
        LaneOptions::new(self.incident_quota_bytes, Overflow::Wait, self.fsync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RawOutboxConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults() {
        let config = parse("dir = \"/tmp/x\"").unwrap().validate().unwrap();
        assert_eq!(config.telemetry_quota_bytes, 1024 * 1024 * 1024);
        assert_eq!(config.incident_quota_bytes, 256 * 1024 * 1024);
        assert_eq!(config.fsync, FsyncPolicy::Batch);
        assert_eq!(config.drain_rate_points_per_s, None);
    }

    #[test]
    fn interval_policy() {
        let config = parse(
            "dir = \"/tmp/x\"\nfsync = \"interval\"\nfsync_interval_ms = 50\ndrain_rate_points_per_s = 20000",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            config.fsync,
            FsyncPolicy::Interval(Duration::from_millis(50))
        );
        assert_eq!(config.telemetry_lane().drain_rate, Some(20000));
        assert_eq!(config.incident_lane().drain_rate, None);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        assert!(parse("dir = \"/tmp/x\"\nfsync_every = 3").is_err());
        assert!(parse("dir = \"/tmp/x\"\nfsync = \"sometimes\"").is_err());
        let problems =
            parse("dir = \"\"\ntelemetry_quota_mb = 0\nfsync = \"batch\"\nfsync_interval_ms = 10")
                .unwrap()
                .validate()
                .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec!["dir", "telemetry_quota_mb", "fsync_interval_ms"]
        );
    }
}
