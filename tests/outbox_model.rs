//! Model-based property test of the durable outbox: random pushes, peeks, confirms, releases,
//! crashes (the lane dropped without `close`, then reopened from disk) and clean restarts, run
//! against a `VecDeque` model. With fsync per batch, after every step and every reopen the lane
//! holds exactly the model: no confirmed entry comes back, no acknowledged entry is lost, and
//! the order is kept.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use seguard::metrics::Metrics;
use seguard::outbox::{FsyncPolicy, Lane, LaneOptions, Overflow};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
enum Op {
    Push(u8),
    Peek(u8),
    /// Confirm this share (in 1/8) of the peeked batch.
    Confirm(u8),
    Release,
    Crash,
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..40).prop_map(Op::Push),
        3 => (1u8..60).prop_map(Op::Peek),
        3 => (0u8..=8).prop_map(Op::Confirm),
        1 => Just(Op::Release),
        1 => Just(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

fn open(dir: &Path, memory_entries: usize) -> Lane<u64> {
    let mut options = LaneOptions::new(1 << 30, Overflow::Wait, FsyncPolicy::Batch);
    // Small segments, so rotation and deletion happen often; a small cache, so reads go to
    // the disk as well as to memory.
    options.segment_bytes = 4096;
    options.memory_entries = memory_entries;
    Lane::open(dir, "model", options, Arc::new(Metrics::new()))
        .unwrap()
        .0
}

/// Everything the lane holds, in order, without confirming it.
async fn contents(lane: &Lane<u64>) -> Vec<u64> {
    if lane.is_empty() {
        return Vec::new();
    }
    let all = lane
        .peek_batch(usize::MAX, Duration::ZERO, &CancellationToken::new())
        .await;
    lane.release();
    all
}

async fn run(ops: Vec<Op>, memory_entries: usize) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut lane = Some(open(dir.path(), memory_entries));
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut next = 0u64;
    let mut peeked: Option<usize> = None;
    let stop = CancellationToken::new();
    for (step, op) in ops.into_iter().enumerate() {
        let l = lane.as_ref().unwrap();
        match op {
            Op::Push(n) => {
                let items: Vec<u64> = (next..next + u64::from(n)).collect();
                next += u64::from(n);
                l.push_all(items.clone()).await;
                model.extend(items);
            }
            Op::Peek(max) => {
                if model.is_empty() {
                    continue;
                }
                let batch = l.peek_batch(usize::from(max), Duration::ZERO, &stop).await;
                let want: Vec<u64> = model.iter().take(usize::from(max)).copied().collect();
                prop_assert_eq!(&batch, &want, "step {}: peek", step);
                peeked = Some(batch.len());
            }
            Op::Confirm(eighths) => {
                let Some(len) = peeked.take() else { continue };
                let n = len * usize::from(eighths) / 8;
                if n == 0 {
                    l.release();
                    continue;
                }
                l.confirm(n);
                model.drain(..n);
            }
            Op::Release => {
                l.release();
                peeked = None;
            }
            Op::Crash => {
                drop(lane.take());
                lane = Some(open(dir.path(), memory_entries));
                peeked = None;
            }
            Op::Restart => {
                let old = lane.take().unwrap();
                old.close().await.unwrap();
                drop(old);
                lane = Some(open(dir.path(), memory_entries));
                peeked = None;
            }
        }
        let l = lane.as_ref().unwrap();
        prop_assert_eq!(l.len(), model.len(), "step {}: len", step);
        if matches!(op, Op::Crash | Op::Restart) {
            let got = contents(l).await;
            let want: Vec<u64> = model.iter().copied().collect();
            prop_assert_eq!(got, want, "step {}: after reopen", step);
        }
    }
    let l = lane.take().unwrap();
    let got = contents(&l).await;
    prop_assert_eq!(
        got,
        model.iter().copied().collect::<Vec<u64>>(),
        "at the end"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_lane_behaves_like_a_queue_through_crashes_and_restarts(
        ops in proptest::collection::vec(op(), 1..60),
        memory_entries in prop_oneof![Just(0usize), Just(16), Just(100_000)],
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(ops, memory_entries))?;
    }
}
