//! Time series to local files of InfluxDB line protocol, for sites (and `seguard demo`) without
//! an InfluxDB. Files rotate by size and can be imported later with `influx write -f FILE`.
//!
//! Layout: `DIR/telemetry-<UTC start time>-<n>.lp`, one line-protocol point per line, newest file
//! last. A batch is appended and fsynced before it leaves the outbox lane.
//!
//! **Invariant:** when more than `keep_files` files exist, the oldest is deleted and its points
//! are counted as dropped: data leaves only counted.

pub mod config;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::metrics::Metrics;
use crate::outbox::Lane;
use crate::shutdown::Stop;
use crate::uplink::influx::{Encoder, Point};

#[derive(Debug, Clone, PartialEq)]
pub struct LineFileUplink {
    pub name: String,
    pub dir: PathBuf,
    pub rotate_bytes: u64,
    pub keep_files: usize,
    pub batch_max_lines: usize,
    pub flush_interval: std::time::Duration,
}

/// The files of `dir`, oldest first (their names sort by time).
pub fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("telemetry-") && n.ends_with(".lp"))
        })
        .collect();
    files.sort();
    Ok(files)
}

struct Writer {
    uplink: LineFileUplink,
    current: Option<(File, u64)>,
    /// Orders files opened within the same microsecond.
    files_opened: u64,
}

impl Writer {
    fn append(&mut self, body: &[u8]) -> std::io::Result<Option<usize>> {
        fs::create_dir_all(&self.uplink.dir)?;
        let rotate = self
            .current
            .as_ref()
            .is_none_or(|(_, size)| *size >= self.uplink.rotate_bytes);
        let mut dropped_lines = None;
        if rotate {
            let name = format!(
                "telemetry-{}-{:04}.lp",
                chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                self.files_opened % 10_000
            );
            self.files_opened += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.uplink.dir.join(name))?;
            self.current = Some((file, 0));
            let existing = files(&self.uplink.dir)?;
            if existing.len() > self.uplink.keep_files {
                let oldest = &existing[0];
                let lines = fs::read(oldest).map(|b| b.iter().filter(|c| **c == b'\n').count())?;
                fs::remove_file(oldest)?;
                dropped_lines = Some(lines);
            }
        }
        let (file, size) = self
            .current
            .as_mut()
            .expect("a file is open after rotation");
        file.write_all(body)?;
        file.sync_data()?;
        *size += body.len() as u64;
        Ok(dropped_lines)
    }
}

/// One line-file uplink: its settings, the lane it drains, and what it reports to.
pub struct LineFileWriter {
    uplink: LineFileUplink,
    lane: Arc<Lane<Point>>,
    encoder: Arc<Encoder>,
    metrics: Arc<Metrics>,
}

impl LineFileWriter {
    pub fn new(
        uplink: LineFileUplink,
        lane: Arc<Lane<Point>>,
        encoder: Arc<Encoder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        LineFileWriter {
            uplink,
            lane,
            encoder,
            metrics,
        }
    }

    /// Drains the lane into files until `flush` fires and the lane is empty, or `hard_stop`
    /// fires.
    pub async fn run(self, stop: Stop) {
        let LineFileWriter {
            uplink,
            lane,
            encoder,
            metrics,
        } = self;
        let Stop { flush, hard_stop } = stop;
        let name = uplink.name.clone();
        let (batch_max, linger) = (uplink.batch_max_lines, uplink.flush_interval);
        let mut writer = Some(Writer {
            uplink,
            current: None,
            files_opened: 0,
        });
        loop {
            let batch = lane.peek_batch(batch_max, linger, &flush).await;
            if batch.is_empty() {
                break;
            }
            let body = encoder.encode(&batch);
            let mut w = writer.take().expect("writer is returned after each batch");
            let started = std::time::Instant::now();
            let (w, result) = tokio::task::spawn_blocking(move || {
                let result = w.append(&body);
                (w, result)
            })
            .await
            .expect("file writer task does not panic");
            writer = Some(w);
            match result {
                Ok(dropped) => {
                    metrics.uplink_written(&name, batch.len(), started.elapsed().as_secs_f64());
                    if let Some(lines) = dropped {
                        metrics.dropped(&format!("file:{name}"), lines);
                    }
                    lane.confirm(batch.len());
                }
                Err(e) => {
                    let delay = std::time::Duration::from_secs(1);
                    metrics.uplink_failed(&name, &e, delay);
                    lane.release();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = hard_stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_counts_what_old_files_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = Writer {
            uplink: LineFileUplink {
                name: "t".into(),
                dir: dir.path().join("lp"),
                rotate_bytes: 10,
                keep_files: 2,
                batch_max_lines: 10,
                flush_interval: std::time::Duration::from_millis(1),
            },
            current: None,
            files_opened: 0,
        };
        // 4 bytes: stays in the first file; 12 bytes: pushes it past 10, the next batch rotates.
        assert_eq!(writer.append(b"a 1\n").unwrap(), None);
        assert_eq!(writer.append(b"b 1\nc 1\nd 1\n").unwrap(), None);
        assert_eq!(writer.append(b"e 1\n").unwrap(), None, "second file");
        assert_eq!(writer.append(b"f 1\ng 1\nh 1\n").unwrap(), None);
        // The third file makes three: the oldest, with 4 lines, goes and is counted.
        assert_eq!(writer.append(b"i 1\n").unwrap(), Some(4));
        let kept = files(&dir.path().join("lp")).unwrap();
        assert_eq!(kept.len(), 2);
        let text: Vec<String> = kept
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(text, ["e 1\nf 1\ng 1\nh 1\n", "i 1\n"]);
    }
}
