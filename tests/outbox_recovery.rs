//! The durable outbox against crashes, torn writes, corruption and a full disk quota.
//! Every test runs on a real directory; the crash test kills a child process with SIGKILL.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use seguard::metrics::Metrics;
use seguard::outbox::{FsyncPolicy, Lane, LaneOptions, Overflow, Recovery};
use tokio_util::sync::CancellationToken;

/// Fixed-size entries, so a test can find record `k` in a segment: the JSON `"e00000020"` is
/// 11 bytes and a record 24 + 11.
fn entry(k: u64) -> String {
    format!("e{k:08}")
}
const RECORD: u64 = 24 + 11;
const SEGMENT_HEADER: u64 = 16;

fn options(quota: u64, overflow: Overflow) -> LaneOptions {
    LaneOptions::new(quota, overflow, FsyncPolicy::Batch)
}

fn open(dir: &Path, options: LaneOptions) -> (Lane<String>, Recovery, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let (lane, recovery) = Lane::open(dir, "telemetry:test", options, metrics.clone()).unwrap();
    (lane, recovery, metrics)
}

async fn drain_all(lane: &Lane<String>) -> Vec<String> {
    let mut all = Vec::new();
    let stop = CancellationToken::new();
    while !lane.is_empty() {
        let batch = lane.peek_batch(1000, Duration::ZERO, &stop).await;
        lane.confirm(batch.len());
        all.extend(batch);
    }
    all
}

async fn peek_all(lane: &Lane<String>) -> Vec<String> {
    if lane.is_empty() {
        return Vec::new();
    }
    let batch = lane
        .peek_batch(usize::MAX, Duration::ZERO, &CancellationToken::new())
        .await;
    lane.release();
    batch
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("telemetry_test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn reopen_after_clean_shutdown_replays_only_unconfirmed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..10).map(entry)).await;
    let batch = lane
        .peek_batch(4, Duration::ZERO, &CancellationToken::new())
        .await;
    assert_eq!(batch, (0..4).map(entry).collect::<Vec<_>>());
    lane.confirm(4);
    lane.close().await.unwrap();
    drop(lane);

    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.entries, 6);
    assert_eq!(recovery.corrupt_records, 0);
    assert_eq!(
        drain_all(&lane).await,
        (4..10).map(entry).collect::<Vec<_>>()
    );
    lane.push_all([entry(10)]).await;
    assert_eq!(drain_all(&lane).await, vec![entry(10)]);
    lane.close().await.unwrap();
    drop(lane);
    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.entries, 0);
    assert!(lane.is_empty());
    assert_eq!(
        segments(dir.path()).len(),
        0,
        "confirmed segments are deleted"
    );
}

/// A peek decodes at most `disk_read_entries` from disk (a telemetry lane: `memory_points`),
/// whatever it asks for; the rest comes at the next peeks, in order, and from the cache once
/// the read reaches it.
#[tokio::test]
async fn a_peek_decodes_at_most_disk_read_entries_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 30, Overflow::Wait);
    opts.segment_bytes = 4096;
    opts.memory_entries = 100;
    opts.disk_read_entries = 40;
    let (lane, _, _) = open(dir.path(), opts);
    lane.push_all((0..300).map(entry)).await;
    let stop = CancellationToken::new();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    while !lane.is_empty() {
        let batch = lane.peek_batch(150, Duration::ZERO, &stop).await;
        sizes.push(batch.len());
        lane.confirm(batch.len());
        all.extend(batch);
    }
    assert_eq!(all, (0..300).map(entry).collect::<Vec<_>>());
    // 200 on disk below the 100 cached: five reads of 40, then the cache in one peek.
    assert_eq!(sizes, [40, 40, 40, 40, 40, 100]);
}

#[tokio::test]
async fn order_is_fifo_across_segments_reopens_and_partial_confirms() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 30, Overflow::Wait);
    opts.segment_bytes = 4096;
    opts.memory_entries = 100; // most reads come from disk
    let (mut lane, _, _) = open(dir.path(), opts.clone());
    let mut next = 0u64;
    let mut expected = 0u64;
    let stop = CancellationToken::new();
    for round in 0..20u64 {
        let n = 1 + (round * 37) % 150;
        lane.push_all((next..next + n).map(entry)).await;
        next += n;
        let batch = lane.peek_batch(53, Duration::ZERO, &stop).await;
        let confirm = batch.len() / 2 + 1;
        let want: Vec<String> = (expected..expected + batch.len() as u64)
            .map(entry)
            .collect();
        assert_eq!(batch, want, "round {round}");
        lane.confirm(confirm);
        expected += confirm as u64;
        if round % 5 == 4 {
            lane.close().await.unwrap();
            drop(lane);
            lane = open(dir.path(), opts.clone()).0;
        }
    }
    assert!(segments(dir.path()).len() > 1, "the test spans segments");
    assert_eq!(
        drain_all(&lane).await,
        (expected..next).map(entry).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_torn_final_record_is_truncated_and_every_complete_record_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..50).map(entry)).await;
    drop(lane); // no clean shutdown
    let segment = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&segment).unwrap().len();
    assert_eq!(len, SEGMENT_HEADER + 50 * RECORD);
    // Cut the last record in its payload, as a crash in the middle of `write` would.
    OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let (lane, recovery, metrics) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.entries, 49);
    assert_eq!(recovery.truncated_bytes, RECORD - 7);
    assert_eq!(
        recovery.corrupt_records, 0,
        "a torn tail was never acknowledged"
    );
    assert_eq!(lane.take_lost(), 0);
    assert!(!metrics.render().contains("outbox_skipped_records_total{"));
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        SEGMENT_HEADER + 49 * RECORD
    );
    // Writing goes on after the torn record, with no gap in what is delivered.
    lane.push_all([entry(100)]).await;
    let mut want: Vec<String> = (0..49).map(entry).collect();
    want.push(entry(100));
    assert_eq!(peek_all(&lane).await, want);
    drop(lane);
    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(drain_all(&lane).await, want);
}

#[tokio::test]
async fn a_torn_segment_header_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..3).map(entry)).await;
    drop(lane);
    // A crash right after creating the next segment file: a few header bytes.
    let torn = dir
        .path()
        .join("telemetry_test")
        .join(format!("{:020}.seg", 3));
    fs::write(&torn, b"SGOU").unwrap();
    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.entries, 3);
    assert!(!torn.exists(), "an empty segment is removed");
    assert_eq!(
        drain_all(&lane).await,
        (0..3).map(entry).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn flipped_bits_skip_only_the_corrupt_records_and_count_them() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..50).map(entry)).await;
    lane.close().await.unwrap();
    drop(lane);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let at = |k: u64| (SEGMENT_HEADER + k * RECORD) as usize;
    bytes[at(20) + 24 + 4] ^= 0x10; // payload of record 20
    bytes[at(30) + 9] ^= 0x01; // sequence number of record 30
    bytes[at(40) + 1] ^= 0x80; // length of record 40: 2^15 more than it is
    fs::write(&segment, &bytes).unwrap();

    let (lane, recovery, metrics) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.corrupt_records, 3);
    assert_eq!(recovery.truncated_bytes, 0);
    assert_eq!(recovery.entries, 47);
    assert!(metrics
        .render()
        .contains("seguard_outbox_skipped_records_total{lane=\"telemetry:test\"} 3"));
    assert_eq!(
        lane.take_lost(),
        3,
        "the gateway is told to raise data loss"
    );
    assert_eq!(lane.take_lost(), 0, "and only once");
    let want: Vec<String> = (0..50)
        .filter(|k| ![20, 30, 40].contains(k))
        .map(entry)
        .collect();
    assert_eq!(drain_all(&lane).await, want);
}

#[tokio::test]
async fn garbage_over_several_records_and_a_corrupt_tail_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..50).map(entry)).await;
    drop(lane);
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let at = |k: u64| (SEGMENT_HEADER + k * RECORD) as usize;
    // Records 10, 11 and 12 overwritten (the garbage starts inside 10, ends inside 12).
    for b in &mut bytes[at(10) + 5..at(12) + 30] {
        *b = 0xA5;
    }
    // The last record complete in length but with a bad checksum.
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    fs::write(&segment, &bytes).unwrap();

    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(recovery.corrupt_records, 4);
    let want: Vec<String> = (0..49)
        .filter(|k| !(10..=12).contains(k))
        .map(entry)
        .collect();
    assert_eq!(drain_all(&lane).await, want);
}

#[tokio::test]
async fn a_damaged_ledger_replays_instead_of_losing() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    lane.push_all((0..10).map(entry)).await;
    let batch = lane
        .peek_batch(3, Duration::ZERO, &CancellationToken::new())
        .await;
    lane.confirm(batch.len());
    lane.close().await.unwrap();
    drop(lane);
    let ledger = dir.path().join("telemetry_test").join("ledger");
    let mut bytes = fs::read(&ledger).unwrap();
    bytes[10] ^= 1;
    fs::write(&ledger, bytes).unwrap();
    let (lane, recovery, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert!(recovery.ledger_reset);
    assert_eq!(
        drain_all(&lane).await,
        (0..10).map(entry).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_full_telemetry_quota_in_an_outage_drops_the_oldest_counts_it_and_spares_the_batch_in_flight(
) {
    let dir = tempfile::tempdir().unwrap();
    let quota = 64 * 1024;
    // Fsync per interval: the quota logic is the same, and 3,700 fsyncs would take 15 s.
    let mut options = LaneOptions::new(
        quota,
        Overflow::DropOldest,
        FsyncPolicy::Interval(Duration::from_millis(20)),
    );
    // The consumer confirms nothing below: an outage at once.
    options.timing.outage_after = Duration::ZERO;
    let (lane, _, metrics) = open(dir.path(), options);
    lane.push_all((0..100).map(entry)).await;
    let stop = CancellationToken::new();
    let in_flight = lane.peek_batch(100, Duration::ZERO, &stop).await;
    assert_eq!(in_flight, (0..100).map(entry).collect::<Vec<_>>());
    // 20 times the quota, in pushes of 10 like MQTT messages.
    let total = 20 * quota / RECORD;
    for start in (100..total).step_by(10) {
        lane.push_all((start..(start + 10).min(total)).map(entry))
            .await;
        assert!(
            lane.disk_bytes() <= quota + quota / 8 + 10 * RECORD,
            "disk use {} over the quota",
            lane.disk_bytes()
        );
    }
    // The receiver confirms the batch it was sending all along.
    lane.confirm(in_flight.len());
    let rest = drain_all(&lane).await;
    let dropped = metrics.dropped_count("telemetry:test");
    assert!(dropped > 0);
    assert_eq!(lane.take_lost(), dropped);
    assert_eq!(
        100 + dropped + rest.len() as u64,
        total,
        "every entry is delivered or counted"
    );
    // What is kept: the rest of the segment that was being sent, then the newest, in order.
    let numbers: Vec<u64> = rest.iter().map(|e| e[1..].parse().unwrap()).collect();
    assert_eq!(numbers.first(), Some(&100));
    assert_eq!(numbers.last(), Some(&(total - 1)));
    let gaps = numbers.windows(2).filter(|w| w[0] + 1 != w[1]).count();
    assert_eq!(gaps, 1, "one gap: the dropped oldest");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn a_full_telemetry_quota_with_a_healthy_consumer_waits_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let quota = 64 * 1024;
    let (lane, _, metrics) = open(
        dir.path(),
        LaneOptions::new(
            quota,
            Overflow::DropOldest,
            FsyncPolicy::Interval(Duration::from_millis(20)),
        ),
    );
    let lane = Arc::new(lane);
    // A consumer slower than the producer: small batches with a pause, always confirmed.
    let total = 20 * quota / RECORD;
    let consumer = tokio::spawn({
        let lane = lane.clone();
        async move {
            let stop = CancellationToken::new();
            let mut got = Vec::new();
            while (got.len() as u64) < total {
                let batch = lane.peek_batch(200, Duration::ZERO, &stop).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                lane.confirm(batch.len());
                got.extend(batch);
            }
            got
        }
    });
    let mut max_bytes = 0;
    for start in (0..total).step_by(10) {
        lane.push_all((start..(start + 10).min(total)).map(entry))
            .await;
        max_bytes = max_bytes.max(lane.disk_bytes());
    }
    let got = consumer.await.unwrap();
    assert_eq!(
        metrics.dropped_count("telemetry:test"),
        0,
        "a burst drops nothing"
    );
    assert_eq!(lane.take_lost(), 0);
    assert_eq!(
        got,
        (0..total).map(entry).collect::<Vec<_>>(),
        "all, in order"
    );
    assert!(
        max_bytes <= quota + 10 * RECORD,
        "the producer waited for room: at most {max_bytes} bytes on disk"
    );
}

#[tokio::test]
async fn a_full_incident_lane_waits_and_never_drops() {
    let dir = tempfile::tempdir().unwrap();
    let quota = 16 * 1024;
    let metrics = Arc::new(Metrics::new());
    let (lane, _) = Lane::<String>::open(
        dir.path(),
        "incidents",
        options(quota, Overflow::Wait),
        metrics.clone(),
    )
    .unwrap();
    let lane = Arc::new(lane);
    let fits = (quota - SEGMENT_HEADER * 2) / RECORD;
    lane.push_all((0..fits).map(entry)).await;
    let pusher = tokio::spawn({
        let lane = lane.clone();
        async move { lane.push_all((fits..fits + 100).map(entry)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !pusher.is_finished(),
        "push must wait while the lane is full"
    );
    let stop = CancellationToken::new();
    let mut got = Vec::new();
    while got.len() < (fits + 100) as usize {
        let batch = lane.peek_batch(50, Duration::ZERO, &stop).await;
        lane.confirm(batch.len());
        got.extend(batch);
    }
    pusher.await.unwrap();
    assert_eq!(got, (0..fits + 100).map(entry).collect::<Vec<_>>());
    assert_eq!(metrics.dropped_count("incidents"), 0);
    assert_eq!(lane.take_lost(), 0);
}

#[tokio::test]
async fn backlog_and_the_age_of_the_oldest_entry_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(lane.oldest_age(), None);
    lane.push_all((0..5).map(entry)).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    lane.push_all((5..10).map(entry)).await;
    assert!(lane.oldest_age().unwrap() >= Duration::from_millis(120));
    drop(lane);
    let (lane, _, _) = open(dir.path(), options(1 << 20, Overflow::Wait));
    assert_eq!(lane.len(), 10);
    assert!(lane.oldest_age().unwrap() >= Duration::from_millis(120));
    let stop = CancellationToken::new();
    let batch = lane.peek_batch(5, Duration::ZERO, &stop).await;
    lane.confirm(batch.len());
    assert!(lane.oldest_age().unwrap() < Duration::from_millis(100));
}

#[tokio::test]
async fn the_drain_rate_paces_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(1 << 24, Overflow::DropOldest);
    opts.drain_rate = Some(2000);
    let (lane, _, _) = open(dir.path(), opts);
    lane.push_all((0..3000).map(entry)).await;
    let started = Instant::now();
    let got = drain_all(&lane).await;
    let elapsed = started.elapsed();
    assert_eq!(got.len(), 3000);
    // One second of burst (2000), then 1000 more at 2000/s: about 0.5 s.
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

/// The child of `a_sigkilled_writer_loses_nothing_it_acknowledged`: pushes and confirms forever,
/// printing what each call returned, until it is killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("SEGUARD_OUTBOX_CRASH_DIR") else {
        return;
    };
    let fsync = match std::env::var("SEGUARD_OUTBOX_CRASH_FSYNC").as_deref() {
        Ok("interval") => FsyncPolicy::Interval(Duration::from_millis(50)),
        _ => FsyncPolicy::Batch,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut opts = LaneOptions::new(1 << 30, Overflow::Wait, fsync);
        opts.segment_bytes = 16 * 1024;
        let (lane, _) = Lane::<String>::open(
            Path::new(&dir),
            "telemetry:test",
            opts,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let lane = Arc::new(lane);
        let start: u64 = std::env::var("SEGUARD_OUTBOX_CRASH_START")
            .unwrap()
            .parse()
            .unwrap();
        let _consumer = tokio::spawn({
            let lane = lane.clone();
            async move {
                let stop = CancellationToken::new();
                loop {
                    let batch = lane.peek_batch(25, Duration::ZERO, &stop).await;
                    let last = batch.last().unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "confirming {last}").unwrap();
                    out.flush().unwrap();
                    lane.confirm(batch.len());
                    writeln!(out, "confirmed {last}").unwrap();
                    out.flush().unwrap();
                }
            }
        });
        let mut next = start;
        loop {
            lane.push_all((next..next + 10).map(entry)).await;
            next += 10;
            let mut out = std::io::stdout().lock();
            writeln!(out, "acked {}", entry(next - 1)).unwrap();
            out.flush().unwrap();
            if next.is_multiple_of(100) {
                tokio::task::yield_now().await;
            }
        }
    });
}

/// What the child printed before it was killed.
struct Printed {
    acked: u64,
    /// Every entry up to this one was confirmed (printed after `confirm`).
    confirmed: Option<u64>,
    /// No entry after this one was confirmed (printed before `confirm`).
    confirming: Option<u64>,
}

fn run_and_kill(dir: &Path, fsync: &str, start: u64, after: Duration) -> Printed {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("SEGUARD_OUTBOX_CRASH_DIR", dir)
        .env("SEGUARD_OUTBOX_CRASH_FSYNC", fsync)
        .env("SEGUARD_OUTBOX_CRASH_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut acked, mut confirmed, mut confirming) = (None, None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let number = |s: &str| s.trim_start_matches('e').parse::<u64>().ok();
            if let Some(rest) = line.strip_prefix("acked ") {
                acked = number(rest);
            } else if let Some(rest) = line.strip_prefix("confirmed ") {
                confirmed = number(rest);
            } else if let Some(rest) = line.strip_prefix("confirming ") {
                confirming = number(rest);
            }
        }
        (acked, confirmed, confirming)
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (acked, confirmed, confirming) = reader.join().unwrap();
    Printed {
        acked: acked.expect("the child acknowledged something"),
        confirmed,
        confirming,
    }
}

#[tokio::test]
async fn a_sigkilled_writer_loses_nothing_it_acknowledged() {
    for fsync in ["batch", "interval"] {
        let dir = tempfile::tempdir().unwrap();
        let mut start = 0u64;
        let mut delivered_upto: Option<u64> = None;
        for (round, ms) in [300u64, 170, 420, 250].into_iter().enumerate() {
            let printed = run_and_kill(dir.path(), fsync, start, Duration::from_millis(ms));
            let (lane, recovery, _) = open(dir.path(), options(1 << 30, Overflow::Wait));
            let left = peek_all(&lane).await;
            let numbers: Vec<u64> = left.iter().map(|e| e[1..].parse().unwrap()).collect();
            assert!(
                numbers.windows(2).all(|w| w[0] + 1 == w[1]),
                "{fsync} round {round}: FIFO without gaps, {recovery:?}"
            );
            assert_eq!(recovery.corrupt_records, 0, "{fsync} round {round}");
            if let Some(&first) = numbers.first() {
                assert!(
                    !matches!(printed.confirmed, Some(c) if first <= c),
                    "{fsync} round {round}: confirmed {:?} came back at {first}",
                    printed.confirmed
                );
                assert!(
                    !matches!(delivered_upto, Some(d) if first <= d),
                    "{fsync} round {round}: old entries came back"
                );
            }
            let kept_or_confirmed = numbers.last().copied().max(printed.confirming);
            assert!(
                kept_or_confirmed >= Some(printed.acked),
                "{fsync} round {round}: acknowledged {} but kept or confirmed only {kept_or_confirmed:?}",
                printed.acked
            );
            assert!(
                printed.acked >= start + 100,
                "{fsync} round {round}: the child ran"
            );
            let last = kept_or_confirmed.unwrap();
            // Deliver what is left, and go on with the next numbers from a fresh start.
            delivered_upto = Some(
                drain_all(&lane)
                    .await
                    .last()
                    .map_or(last, |e| e[1..].parse().unwrap()),
            );
            lane.close().await.unwrap();
            drop(lane);
            start = delivered_upto.unwrap() + 1;
            start += 10 - start % 10;
        }
    }
}

#[tokio::test]
async fn a_second_open_of_the_same_lane_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _, _) = open(dir.path(), options(1 << 20, Overflow::DropOldest));
    let second = Lane::<String>::open(
        dir.path(),
        "telemetry:test".to_owned(),
        options(1 << 20, Overflow::DropOldest),
        Arc::new(Metrics::new()),
    );
    let error = second.err().expect("a second open is refused").to_string();
    assert!(error.contains("locked by another process"), "{error}");
    first.close().await.unwrap();
    drop(first);
    let (reopened, _, _) = open(dir.path(), options(1 << 20, Overflow::DropOldest));
    reopened.close().await.unwrap();
}
