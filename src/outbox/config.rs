//! The `[outbox]` section of the gateway config: a raw serde struct, and the typed config with
//! its defaults.
//!
//! ```toml
//! [outbox]
//! kind = "disk"                     # default; "memory": lanes in memory, lost on a crash
//! dir = "/var/lib/seguard/outbox"   # one subdirectory per lane
//! telemetry_quota_mb = 1024         # per telemetry lane; the oldest is dropped beyond it in an outage
//! incident_quota_mb = 256           # the incident lane waits (never drops) beyond it
//! fsync = "batch"                   # "batch": before each push returns; "interval": every fsync_interval_ms
//! fsync_interval_ms = 200           # only with fsync = "interval"
//! drain_rate_points_per_s = 50000   # per lane; 0 = unlimited. Keep it well above the live rate;
//!                                   # the newest points are sent ahead of a backlog meanwhile
//! outage_after_s = 30               # a full lane drops only after its receiver confirmed nothing this long
//! live_after_s = 60                 # newest points go ahead of a backlog only when it is older than this
//! memory_points = 4096              # points per lane kept decoded in memory, and the most one
//!                                   # read of a backlog from disk decodes (bounds RSS; a batch
//!                                   # of more lines is read from disk in parts)
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{FsyncPolicy, LaneOptions, Overflow, Timing};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    Batch,
    Interval,
}

/// Where the lanes live: on disk (the default) or, when asked for by name, in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Disk,
    Memory,
}

/// `[outbox]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutboxConfig {
    pub kind: Option<OutboxKind>,
    /// Required only when the config is not in a place with a state directory (see
    /// `config::validate`); the default is `{state dir}/outbox`.
    pub dir: Option<PathBuf>,
    pub telemetry_quota_mb: Option<u64>,
    pub incident_quota_mb: Option<u64>,
    pub fsync: Option<FsyncMode>,
    pub fsync_interval_ms: Option<u64>,
    pub drain_rate_points_per_s: Option<u32>,
    pub outage_after_s: Option<u64>,
    pub live_after_s: Option<u64>,
    pub memory_points: Option<usize>,
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
    pub timing: Timing,
    pub memory_points: usize,
}

pub const DEFAULT_TELEMETRY_QUOTA_MB: u64 = 1024;
pub const DEFAULT_INCIDENT_QUOTA_MB: u64 = 256;
pub const DEFAULT_FSYNC_INTERVAL_MS: u64 = 200;
/// Measured in the burst bench: 4096 kept the disk mode's peak at 76–79 MiB against 95–96 MiB
/// with 8192, at the same rate (BENCHMARKS.md).
pub const DEFAULT_MEMORY_POINTS: usize = 4096;

/// One problem with `[outbox]`: the field, what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfigProblem {
    pub field: &'static str,
    pub message: String,
    pub hint: &'static str,
}

impl RawOutboxConfig {
    /// Every problem at once, or the typed config of a disk outbox in `dir` (the default
    /// directory when `[outbox] dir` is not given). `Ok(None)` for `kind = "memory"`.
    pub fn validate(
        &self,
        default_dir: &Path,
    ) -> Result<Option<OutboxConfig>, Vec<OutboxConfigProblem>> {
        let mut problems = Vec::new();
        if self.kind == Some(OutboxKind::Memory) {
            let disk_only = [
                ("dir", self.dir.is_some()),
                ("telemetry_quota_mb", self.telemetry_quota_mb.is_some()),
                ("incident_quota_mb", self.incident_quota_mb.is_some()),
                ("fsync", self.fsync.is_some()),
                ("fsync_interval_ms", self.fsync_interval_ms.is_some()),
                (
                    "drain_rate_points_per_s",
                    self.drain_rate_points_per_s.is_some(),
                ),
                ("outage_after_s", self.outage_after_s.is_some()),
                ("live_after_s", self.live_after_s.is_some()),
                ("memory_points", self.memory_points.is_some()),
            ];
            for (field, set) in disk_only {
                if set {
                    problems.push(OutboxConfigProblem {
                        field,
                        message: format!("{field} applies to the disk outbox, not to kind = \"memory\""),
                        hint: "remove it; in-memory lanes are bounded by each uplink's queue_max_points",
                    });
                }
            }
            return if problems.is_empty() {
                Ok(None)
            } else {
                Err(problems)
            };
        }
        let dir = self.dir.clone().unwrap_or_else(|| default_dir.to_owned());
        if dir.as_os_str().is_empty() {
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
        let timing = Timing {
            outage_after: self
                .outage_after_s
                .map_or(Timing::default().outage_after, Duration::from_secs),
            live_after: self
                .live_after_s
                .map_or(Timing::default().live_after, Duration::from_secs),
        };
        let memory_points = self.memory_points.unwrap_or(DEFAULT_MEMORY_POINTS);
        if memory_points == 0 {
            problems.push(OutboxConfigProblem {
                field: "memory_points",
                message: "0 points in memory makes every batch a disk read".into(),
                hint: "give a few thousand; the default is 4096",
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(OutboxConfig {
            dir,
            telemetry_quota_bytes: telemetry_mb * 1024 * 1024,
            incident_quota_bytes: incident_mb * 1024 * 1024,
            fsync,
            drain_rate_points_per_s: self.drain_rate_points_per_s.filter(|&r| r > 0),
            timing,
            memory_points,
        }))
    }
}

impl OutboxConfig {
    /// Options for a telemetry lane: bounded, drops the oldest.
    pub fn telemetry_lane(&self) -> LaneOptions {
        let mut options =
            LaneOptions::new(self.telemetry_quota_bytes, Overflow::DropOldest, self.fsync);
        options.drain_rate = self.drain_rate_points_per_s;
        options.timing = self.timing;
        options.memory_entries = self.memory_points;
        // Two batches in flight read from disk one `memory_points` at a time (bounds RSS).
        options.disk_read_entries = self.memory_points;
        options
    }

    /// Options for the incident lane: never drops, no drain limit (incidents go first).
    pub fn incident_lane(&self) -> LaneOptions {
        let mut options = LaneOptions::new(self.incident_quota_bytes, Overflow::Wait, self.fsync);
        options.memory_entries = self.memory_points;
        options
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
        let config = parse("")
            .unwrap()
            .validate(Path::new("/tmp/x"))
            .unwrap()
            .unwrap();
        assert_eq!(config.dir, Path::new("/tmp/x"));
        assert_eq!(config.timing, Timing::default());
        assert_eq!(config.memory_points, DEFAULT_MEMORY_POINTS);
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
        .validate(Path::new("/default"))
        .unwrap()
        .unwrap();
        assert_eq!(config.dir, Path::new("/tmp/x"));
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
                .validate(Path::new("/default"))
                .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            vec!["dir", "telemetry_quota_mb", "fsync_interval_ms"]
        );
    }

    #[test]
    fn memory_only_by_name_and_without_disk_settings() {
        let memory = parse("kind = \"memory\"").unwrap();
        assert_eq!(memory.validate(Path::new("/default")).unwrap(), None);
        let problems = parse("kind = \"memory\"\ndir = \"/x\"\noutage_after_s = 5")
            .unwrap()
            .validate(Path::new("/default"))
            .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, vec!["dir", "outage_after_s"]);
        let timed = parse("outage_after_s = 5\nlive_after_s = 0")
            .unwrap()
            .validate(Path::new("/default"))
            .unwrap()
            .unwrap();
        assert_eq!(
            timed.telemetry_lane().timing.outage_after,
            Duration::from_secs(5)
        );
        assert_eq!(timed.telemetry_lane().timing.live_after, Duration::ZERO);
    }
}
