//! Outbox append throughput under each fsync policy, next to the raw `write` + `fdatasync` rate
//! of the same disk measured in the same run. Run with `cargo bench --bench outbox`.
//! Records are readings as the gateway stores them; a push is one MQTT message of 10 readings
//! (and, for comparison, 1,000). Set `SEGUARD_BENCH_DIR` to measure another disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use seguard::metrics::Metrics;
use seguard::model::{Quality, Reading, Source, Value};
use seguard::outbox::{FsyncPolicy, Lane, LaneOptions, Overflow};
use tokio_util::sync::CancellationToken;

fn reading(i: u64) -> Reading {
    Reading {
        equipment: format!("elevator-{:04}", i % 1000),
        metric: "car_position_floor".to_owned(),
        value: Value::Number(i as f64 * 0.25),
        unit: Some("floor".to_owned()),
        time: Utc::now(),
        quality: Quality::Good,
        source: Source::Mqtt,
    }
}

fn bench_dir() -> (tempfile::TempDir, PathBuf) {
    let base = std::env::var_os("SEGUARD_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::tempdir_in(base).expect("a temp dir for the benchmark");
    let path = dir.path().to_owned();
    (dir, path)
}

struct Rate {
    records: u64,
    bytes: u64,
    pushes: u64,
    elapsed: Duration,
}

impl Rate {
    fn print(&self, what: &str) {
        let s = self.elapsed.as_secs_f64();
        println!(
            "{what:<44} {:>10.0} records/s {:>8.1} MB/s {:>9.0} pushes/s",
            self.records as f64 / s,
            self.bytes as f64 / s / 1e6,
            self.pushes as f64 / s
        );
    }
}

/// Raw `write` of the same bytes per push, with or without `fdatasync` after each.
fn raw(dir: &Path, record: &[u8], per_push: usize, fsync: bool) -> Rate {
    let path = dir.join(format!("raw-{per_push}-{fsync}"));
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("a raw file");
    let mut chunk = Vec::new();
    for _ in 0..per_push {
        chunk.extend_from_slice(&[0u8; 24]);
        chunk.extend_from_slice(record);
    }
    let started = Instant::now();
    let mut pushes = 0u64;
    while started.elapsed() < run_time() {
        file.write_all(&chunk).expect("raw write");
        if fsync {
            file.sync_data().expect("raw fsync");
        }
        pushes += 1;
    }
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    Rate {
        records: pushes * per_push as u64,
        bytes: pushes * chunk.len() as u64,
        pushes,
        elapsed,
    }
}

async fn outbox(dir: &Path, fsync: FsyncPolicy, per_push: usize, record_bytes: usize) -> Rate {
    let name = format!("bench-{per_push}-{fsync:?}");
    let (lane, _) = Lane::<Reading>::open(
        dir,
        name,
        LaneOptions::new(8 << 30, Overflow::DropOldest, fsync),
        Arc::new(Metrics::new()),
    )
    .expect("open the lane");
    let lane = Arc::new(lane);
    // A consumer that keeps up, as a healthy uplink does, so the disk use stays small.
    let stop = CancellationToken::new();
    let consumer = tokio::spawn({
        let lane = lane.clone();
        let stop = stop.clone();
        async move {
            loop {
                let batch = lane.peek_batch(5000, Duration::ZERO, &stop).await;
                if batch.is_empty() {
                    break;
                }
                lane.confirm(batch.len());
            }
        }
    });
    let started = Instant::now();
    let mut pushes = 0u64;
    let mut i = 0u64;
    while started.elapsed() < run_time() {
        lane.push_all((i..i + per_push as u64).map(reading)).await;
        i += per_push as u64;
        pushes += 1;
    }
    let elapsed = started.elapsed();
    stop.cancel();
    let _ = consumer.await;
    lane.close().await.expect("close");
    Rate {
        records: i,
        bytes: i * (24 + record_bytes) as u64,
        pushes,
        elapsed,
    }
}

/// Reading a backlog back from disk (after a restart: nothing in memory).
async fn drain(dir: &Path, record_bytes: usize) -> Rate {
    let n = 500_000u64;
    {
        let (lane, _) = Lane::<Reading>::open(
            dir,
            "drain",
            LaneOptions::new(
                8 << 30,
                Overflow::DropOldest,
                FsyncPolicy::Interval(Duration::from_millis(200)),
            ),
            Arc::new(Metrics::new()),
        )
        .expect("open the lane");
        for start in (0..n).step_by(1000) {
            lane.push_all((start..start + 1000).map(reading)).await;
        }
        lane.close().await.expect("close");
    }
    let (lane, recovery) = Lane::<Reading>::open(
        dir,
        "drain",
        LaneOptions::new(8 << 30, Overflow::DropOldest, FsyncPolicy::Batch),
        Arc::new(Metrics::new()),
    )
    .expect("reopen the lane");
    assert_eq!(recovery.entries as u64, n);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut got = 0u64;
    let mut batches = 0u64;
    while got < n {
        let batch = lane.peek_batch(5000, Duration::ZERO, &stop).await;
        got += batch.len() as u64;
        lane.confirm(batch.len());
        batches += 1;
    }
    Rate {
        records: got,
        bytes: got * (24 + record_bytes) as u64,
        pushes: batches,
        elapsed: started.elapsed(),
    }
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it, and
/// then it only proves that it still works, on a small load in a few seconds.
fn smoke_test() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// How long each case runs.
fn run_time() -> Duration {
    if smoke_test() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3)
    }
}

fn main() {
    let (_guard, dir) = bench_dir();
    let record = serde_json::to_vec(&reading(1)).expect("a reading serializes");
    println!(
        "outbox append throughput in {} ({:.1} s per case; record = 24 + {} bytes, a reading as JSON)",
        dir.display(),
        run_time().as_secs_f64(),
        record.len()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for per_push in [10usize, 1000] {
        println!("-- {per_push} records per push");
        raw(&dir, &record, per_push, true).print("raw write + fdatasync (baseline)");
        runtime
            .block_on(outbox(&dir, FsyncPolicy::Batch, per_push, record.len()))
            .print("outbox, fsync = batch");
        raw(&dir, &record, per_push, false).print("raw write, no fsync (baseline)");
        runtime
            .block_on(outbox(
                &dir,
                FsyncPolicy::Interval(Duration::from_millis(200)),
                per_push,
                record.len(),
            ))
            .print("outbox, fsync = interval 200 ms");
    }
    println!("-- backlog read back after a reopen (peek 5000 + confirm)");
    runtime
        .block_on(drain(&dir, record.len()))
        .print("outbox drain from disk");
}
