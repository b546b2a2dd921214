//! The line-file uplinks' settings: `[[uplink.linefile]]` as written and its validation into a
//! [`LineFileUplink`].

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::LineFileUplink;
use crate::diag::{Check, Problem};
use crate::uplink::influx::config::{DEFAULT_BATCH_MAX_LINES, DEFAULT_QUEUE_MAX_POINTS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLineFile {
    pub name: Option<String>,
    pub dir: Spanned<String>,
    pub rotate_mb: Option<Spanned<u64>>,
    pub keep_files: Option<Spanned<usize>>,
    /// Renamed `batch_max_lines`; refused with a hint.
    pub batch_max_points: Option<Spanned<usize>>,
    pub batch_max_lines: Option<usize>,
    pub flush_interval_ms: Option<u64>,
    pub queue_max_points: Option<usize>,
}

impl Check {
    pub(crate) fn line_file(
        &mut self,
        raw: &Spanned<RawLineFile>,
        index: usize,
        config_dir: &Path,
    ) -> (LineFileUplink, usize) {
        let f = raw.get_ref();
        if f.dir.get_ref().trim().is_empty() {
            self.push(Problem::new(f.dir.span(), "dir must name a directory"));
        }
        let rotate_mb = f.rotate_mb.as_ref().map_or(64, |r| {
            if *r.get_ref() == 0 {
                self.push(Problem::new(r.span(), "rotate_mb must be above 0"));
            }
            *r.get_ref()
        });
        let keep_files = f.keep_files.as_ref().map_or(32, |k| {
            if *k.get_ref() == 0 {
                self.push(
                    Problem::new(k.span(), "keep_files must be above 0")
                        .hint("the oldest file is deleted (and its points counted as dropped) beyond this many"),
                );
            }
            *k.get_ref()
        });
        self.renamed_batch_max_points(&f.batch_max_points);
        let uplink = LineFileUplink {
            name: f.name.clone().unwrap_or_else(|| format!("linefile{index}")),
            dir: config_dir.join(f.dir.get_ref()),
            rotate_bytes: rotate_mb * 1024 * 1024,
            keep_files,
            batch_max_lines: f.batch_max_lines.unwrap_or(DEFAULT_BATCH_MAX_LINES).max(1),
            flush_interval: Duration::from_millis(f.flush_interval_ms.unwrap_or(1000).max(1)),
        };
        (
            uplink,
            f.queue_max_points
                .unwrap_or(DEFAULT_QUEUE_MAX_POINTS)
                .max(1),
        )
    }
}
