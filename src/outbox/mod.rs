//! Outbox lanes between the rules and the uplinks: a durable, disk-backed FIFO per receiver.
//!
//! A lane has one producer (the pipeline, which calls [`Lane::push_all`] and only then
//! acknowledges the MQTT message) and one consumer (an uplink, which calls
//! [`Lane::peek_batch`], sends the batch, and then [`Lane::confirm`]s it or
//! [`Lane::release`]s it). This doc is the specification; the code follows it.
//!
//! # Invariants
//! - **An entry is deleted only after confirm**, or when a telemetry lane over its quota drops
//!   it during an outage (see *Quota and overflow*), which is counted ([`Metrics::dropped`]) and reported by [`Lane::take_lost`] so the
//!   gateway raises a data-loss alarm on the incident lane. Nothing leaves a lane silently.
//! - **What `push_all` acknowledged survives a crash.** When `push_all` returns, the entries
//!   are in the segment file: written with `write(2)` (they survive a process crash) and, under
//!   [`FsyncPolicy::Batch`], `fdatasync`ed (they survive a power loss too).
//! - **A confirmed entry is not replayed** after a process crash: `confirm` renames the new
//!   ledger into place before it returns. After a power loss, the confirms of the last
//!   second may be replayed (duplicates are harmless downstream: points are idempotent by
//!   series and time, incidents carry ids). Replaying is the safe side: never the reverse.
//! - **FIFO per lane.** Entries are delivered in the order they were pushed. A dropped segment
//!   or a skipped corrupt record leaves a gap; the order of what remains is unchanged.
//! - **The incident lane never drops** ([`Overflow::Wait`]): when its quota is full, `push_all`
//!   waits for the consumer to confirm, which holds back the MQTT acknowledgements, so the
//!   broker keeps the input.
//! - Nothing here panics on what it reads from disk: every length, checksum and sequence
//!   number is checked, and a bad one is a counted, logged skip.
//!
//! # On-disk format
//! A lane lives in its own directory, `{dir}/{lane name}` (characters outside
//! `[A-Za-z0-9._-]` become `_`, so `telemetry:influx` is `telemetry_influx`):
//!
//! ```text
//! {lane}/00000000000000000000.seg   segment: the records from sequence number 0 on
//! {lane}/00000000000000052311.seg   the next segment: its name is its first sequence number
//! {lane}/ledger                     the confirmed position
//! {lane}/ledger.tmp                 only while the ledger is being replaced
//! {lane}/lock                       flock'ed while the lane is open: one process per lane
//! ```
//!
//! A **segment** starts with a 16-byte header, `b"SGOUTBOX"` then the format version (`u32`
//! little-endian, now 1) and 4 reserved zero bytes, followed by records:
//!
//! ```text
//! offset  size  field
//! 0       4     payload length in bytes (u32 LE), at most MAX_RECORD_BYTES (16 MiB)
//! 4       4     CRC-32 (IEEE, crc32fast) of bytes 8.. of this record: sequence, time, payload
//! 8       8     sequence number (u64 LE), +1 per entry over the whole life of the lane
//! 16      8     append time, milliseconds since the Unix epoch (u64 LE)
//! 24      n     payload: the entry as JSON (serde_json)
//! ```
//!
//! Sequence numbers rise strictly within a segment and from one segment to the next. The
//! writer rotates to a new segment when the current one reaches the segment size (8 MiB, or an
//! eighth of the quota when that is smaller), and on every open. Sealed segments are never
//! written again.
//!
//! The **ledger** is 20 bytes: `b"SGLEDGR1"`, the *head* (`u64` LE: the sequence number of the
//! oldest entry not yet confirmed; every entry below it is confirmed or dropped), and a CRC-32
//! of the first 16 bytes. It is replaced atomically: write `ledger.tmp`, `rename` it over
//! `ledger` (in `confirm`, so a process crash never replays a confirmed entry), and then, on the
//! lane's writer thread, `fsync` the ledger and the directory at most once a second and on
//! close (so a power loss may replay the confirms of the last second, never lose an entry).
//!
//! # Fsync policy ([`FsyncPolicy`])
//! - `Batch`: `push_all` returns after the records are written and `fdatasync`ed (and, for a new
//!   segment, its directory too). A power loss loses nothing acknowledged. Cost: one fsync per
//!   `push_all` call (concurrent calls share one: group commit), so the rate of acknowledged
//!   batches is bounded by the disk's fsync rate; see `benches/outbox.rs`.
//! - `Interval(d)`: `push_all` returns after `write(2)`; the writer thread fsyncs every `d`. A
//!   process crash loses nothing (the data is in the kernel's page cache); a power loss or a
//!   kernel crash can lose what was acknowledged in the last `d`.
//!
//! In both, a clean [`Lane::close`] fsyncs the segment, the ledger and the directory.
//!
//! # Recovery (on [`Lane::open`])
//! 1. Read the ledger. Missing: head = 0. Bad magic or CRC: head = 0 and a warning, which
//!    replays what is left on disk (duplicates, never loss).
//! 2. List `*.seg` in sequence order; ignore other files; delete `ledger.tmp`.
//! 3. Scan every segment record by record and check length, CRC and rising sequence.
//!    - A record that runs past the end of the file, with no valid record after it, is a
//!      **torn tail** (a crash in the middle of a write): the file is truncated to the end of
//!      the last good record.
//!    - A record with a bad CRC or an impossible length is **corrupt**: the scan looks for the
//!      next valid record byte by byte (a CRC-valid record with a higher sequence number) and
//!      goes on from there. The records skipped (from the sequence gap; at least 1) are
//!      counted in `outbox_skipped_records{lane}`, logged, and added to [`Lane::take_lost`].
//!      With nothing valid after it, the corrupt tail is truncated like a torn one.
//!    - A segment too short for its header, or with a wrong magic, is skipped whole (and
//!      counted as at least one corrupt record when it is not empty).
//!    - A record whose CRC is valid but whose JSON does not decode is skipped and counted the
//!      same way when it is read.
//! 4. Segments wholly below the head are deleted. The head becomes the larger of the ledger's
//!    head and the first sequence number on disk (segments dropped for quota leave gaps).
//! 5. Writing continues in a new segment after the highest sequence number seen.
//!
//! # Quota and overflow ([`Overflow`])
//! The quota counts the bytes of the lane's segment files. Space comes back only when a whole
//! segment is deleted: when it is wholly confirmed, or dropped.
//! - `Wait` (incidents): `push_all` waits until the batch fits. A lane with no unconfirmed
//!   entry always takes the batch, so a record bigger than the quota cannot block forever.
//! - `DropOldest` (telemetry): a **burst** is met with backpressure, an **outage** with drops.
//!   The lane is in an outage when its consumer has confirmed nothing for
//!   [`LaneOptions::outage_after`] (default 30 s) while entries wait: no confirm since the last
//!   one, or since the lane last went from empty to holding something (and for that long after
//!   the lane opened). A receiver that confirms, however slowly, is healthy.
//!   - Not in an outage, `push_all` waits like `Wait` until the batch fits (or until the
//!     silence becomes an outage). The caller holds the MQTT acknowledgements meanwhile, so the
//!     broker keeps the input: nothing is dropped while the receivers are healthy.
//!   - In an outage, before a write that would pass the quota, the writer deletes the oldest
//!     sealed segments that hold no entry of the batch being sent, counting their unconfirmed
//!     entries as dropped. If only in-flight segments are left, the quota is exceeded by at
//!     most those segments rather than dropping what is being sent.
//!
//! The memory a lane holds is bounded by configuration, never by its backlog: a durable lane
//! keeps at most [`LaneOptions::memory_entries`] decoded entries (the rest is on disk), and a
//! peek decodes at most [`LaneOptions::disk_read_entries`] from disk (a consumer asking for
//! more gets the rest at its next peek; a telemetry lane sets it to `memory_points`, so no more
//! than twice that is decoded at once); an in-memory lane holds at most its capacity.
//!
//! # Draining without a storm
//! A lane may have a drain rate (entries per second, [`LaneOptions::drain_rate`]). `peek_batch`
//! then hands out no more than that: a token bucket holding at most one second of tokens. Set
//! it well above the live rate (2-5x): the surplus is the catch-up speed after an outage, and
//! the receiver is never hit with the whole backlog at once.
//!
//! While the backlog drains in order, the newest entries would wait behind it and dashboards
//! would show the past. So a consumer that is behind after an outage ([`Lane::is_behind`]: the
//! oldest entry is older than [`Timing::live_after`], default 60 s; a burst that is worked
//! through within that is not an outage, and costs no copies) calls [`Lane::set_catching_up`];
//! from then on `push_all` also keeps copies of the newest entries (at most [`LIVE_ENTRIES`]) that the
//! consumer takes with [`Lane::take_live`] and sends between backlog batches, best effort,
//! counted (`seguard_uplink_live_points_total`).
//! Those copies are not confirmed and leave nothing: the entries themselves stay in order in
//! the lane and are sent again when the backlog reaches them (points are idempotent by series
//! and time, so the receiver keeps one). When the lane loses entries (the quota drops the
//! oldest), the copies made before are discarded, since they may be of those entries. A copy
//! already taken can still outlive its entry; the receiver then gets a point that was counted
//! as lost, so the loss count errs on the high side, never the low.
//!
//! # Threads
//! Each durable lane has one writer thread (`outbox-{lane}`) that owns the segment being
//! written: `push_all` encodes on the caller and hands the records over; the writer appends,
//! fsyncs per policy, and answers. Reads of a backlog that is no longer in memory run on
//! tokio's blocking pool. The newest entries (up to [`LaneOptions::memory_entries`]) are also
//! kept decoded in memory, so a consumer that keeps up never reads the disk.
//!
//! [`Lane::new`] makes an in-memory lane with the same interface (bounded by a number of
//! entries, not durable, the same backpressure and outage rule): for tests and for a gateway
//! configured with `[outbox] kind = "memory"`.
//!
//! Size: about 730 lines: this specification (about 150), the lane's interface that every
//! backend shares, and the tests that hold the in-memory lane to the specification.

mod batch_wait;
mod config;
mod disk;
mod ledger;
mod memory;
mod outage;
mod rate;
mod segment;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

pub use config::{FsyncMode, OutboxConfig, OutboxConfigProblem, OutboxKind, RawOutboxConfig};

/// What a lane does when its quota is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Telemetry: make room by dropping the oldest entries, counted.
    DropOldest,
    /// Incidents: wait for room.
    Wait,
}

/// When written records are forced to stable storage. See the module doc for what each risks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `push_all` returns after an fsync: survives power loss.
    Batch,
    /// Fsync every interval: survives a process crash, a power loss may lose the last interval.
    Interval(Duration),
}

/// Tuning of a durable lane; `LaneOptions::new` gives the defaults.
#[derive(Debug, Clone)]
pub struct LaneOptions {
    pub quota_bytes: u64,
    pub overflow: Overflow,
    pub fsync: FsyncPolicy,
    /// Entries per second that `peek_batch` hands out at most; `None` is unlimited.
    pub drain_rate: Option<u32>,
    /// A segment is sealed at this size. Capped at an eighth of the quota so that dropping a
    /// segment frees a small part of it.
    pub segment_bytes: u64,
    /// How many of the newest entries are also kept decoded in memory.
    pub memory_entries: usize,
    /// The most a peek decodes from disk (the rest of what it asks for waits for the next).
    pub disk_read_entries: usize,
    pub timing: Timing,
}

/// When a lane counts as in an outage, and when as catching up after one (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A full `DropOldest` lane drops only after its consumer confirmed nothing for this long;
    /// before, `push_all` waits (backpressure).
    pub outage_after: Duration,
    /// Live copies of the newest entries are kept only while the oldest entry is older than
    /// this: a backlog left by an outage, not a burst.
    pub live_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            outage_after: Duration::from_secs(30),
            live_after: Duration::from_secs(60),
        }
    }
}

impl LaneOptions {
    pub fn new(quota_bytes: u64, overflow: Overflow, fsync: FsyncPolicy) -> Self {
        LaneOptions {
            quota_bytes,
            overflow,
            fsync,
            drain_rate: None,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            memory_entries: DEFAULT_MEMORY_ENTRIES,
            disk_read_entries: usize::MAX,
            timing: Timing::default(),
        }
    }
}

pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
pub const DEFAULT_MEMORY_ENTRIES: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox lane {lane}: cannot {action} {path}: {source}")]
    Io {
        lane: String,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox lane {lane}: its writer thread is gone")]
    WriterGone { lane: String },
    #[error(
        "outbox lane {lane}: {path} is locked by another process; \
         two gateways must not share one outbox directory"
    )]
    Locked { lane: String, path: PathBuf },
}

/// What [`Lane::open`] found on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries not yet confirmed, replayed from disk.
    pub entries: usize,
    pub segments: usize,
    /// Records skipped as corrupt (also counted in `outbox_skipped_records`).
    pub corrupt_records: u64,
    /// Bytes cut off torn or corrupt segment tails.
    pub truncated_bytes: u64,
    /// The ledger was unreadable, so everything on disk is replayed.
    pub ledger_reset: bool,
}

/// How many of the newest entries a lane that is catching up keeps for live sending.
pub const LIVE_ENTRIES: usize = 10_000;

/// One outbox lane. Cheap to share behind an `Arc`; one producer and one consumer.
pub struct Lane<T> {
    name: String,
    backend: Backend<T>,
    live: Live<T>,
}

/// Copies of the newest entries while the consumer is behind (see the module doc).
struct Live<T> {
    /// Copies are kept only while the oldest entry is older than this.
    after: Duration,
    catching_up: AtomicBool,
    newest: Mutex<LiveCopies<T>>,
}

struct LiveCopies<T> {
    copies: VecDeque<T>,
    /// The lane's `lost_total` when the copies were last checked against it.
    lost_seen: u64,
}

impl<T> Live<T> {
    fn new(after: Duration) -> Self {
        Live {
            after,
            catching_up: AtomicBool::new(false),
            newest: Mutex::new(LiveCopies {
                copies: VecDeque::new(),
                lost_seen: 0,
            }),
        }
    }
}

enum Backend<T> {
    Memory(memory::MemoryLane<T>),
    Disk(disk::DiskLane<T>),
}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Lane<T> {
    /// An in-memory lane of at most `capacity` entries: not durable. A full `DropOldest` lane
    /// waits for room until its consumer confirmed nothing for `timing.outage_after`, then drops.
    pub fn new(
        name: impl Into<String>,
        capacity: usize,
        overflow: Overflow,
        timing: Timing,
        metrics: Arc<Metrics>,
    ) -> Self {
        let name = name.into();
        Lane {
            backend: Backend::Memory(memory::MemoryLane::new(
                name.clone(),
                capacity,
                overflow,
                timing.outage_after,
                metrics,
            )),
            name,
            live: Live::new(timing.live_after),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Entries pushed and not yet confirmed or dropped.
    pub fn len(&self) -> usize {
        match &self.backend {
            Backend::Memory(m) => m.len(),
            Backend::Disk(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the oldest unconfirmed entry has been waiting (since it was pushed; for a
    /// durable lane this survives restarts). `None` when the lane is empty.
    pub fn oldest_age(&self) -> Option<Duration> {
        match &self.backend {
            Backend::Memory(m) => m.oldest_age(),
            Backend::Disk(d) => d.oldest_age(),
        }
    }

    /// Bytes the lane holds on disk (0 in memory).
    pub fn disk_bytes(&self) -> u64 {
        match &self.backend {
            Backend::Memory(_) => 0,
            Backend::Disk(d) => d.disk_bytes(),
        }
    }

    /// Entries lost since the last call (dropped for the quota, or skipped as corrupt), and
    /// resets the count. The gateway polls it and raises a data-loss alarm when it is not 0.
    /// The same entries are counted in `outbox_dropped{lane}` / `outbox_skipped_records{lane}`.
    pub fn take_lost(&self) -> u64 {
        match &self.backend {
            Backend::Memory(m) => m.take_lost(),
            Backend::Disk(d) => d.take_lost(),
        }
    }

    /// Appends entries in order. Returns when they are held per the lane's durability: in
    /// memory, or on disk per its [`FsyncPolicy`]. A telemetry lane drops its oldest unsent
    /// entries to make room; an incident lane waits for room. On a disk error it logs, counts,
    /// and retries with backoff: it never returns before the entries are held, so the caller
    /// never acknowledges input the outbox does not have.
    pub async fn push_all(&self, items: impl IntoIterator<Item = T>) {
        let items: Vec<T> = items.into_iter().collect();
        let catching_up = self.live.catching_up.load(Ordering::Relaxed);
        let mut copied = 0;
        if catching_up {
            let mut newest = self.live.newest.lock().expect("live lock");
            let skip = items.len().saturating_sub(LIVE_ENTRIES);
            copied = items.len() - skip;
            newest.copies.extend(items[skip..].iter().cloned());
            let excess = newest.copies.len().saturating_sub(LIVE_ENTRIES);
            newest.copies.drain(..excess);
        }
        match &self.backend {
            Backend::Memory(m) => m.push_all(items).await,
            Backend::Disk(d) => d.push_all(items).await,
        }
        if catching_up {
            // When entries were lost to make room for this batch, the copies made before it
            // may be of them: only this batch's copies are kept.
            let lost_total = self.lost_total();
            let mut newest = self.live.newest.lock().expect("live lock");
            if newest.lost_seen != lost_total {
                newest.lost_seen = lost_total;
                let older = newest.copies.len().saturating_sub(copied);
                newest.copies.drain(..older);
            }
        }
    }

    /// Entries lost (dropped or skipped) since the lane opened.
    fn lost_total(&self) -> u64 {
        match &self.backend {
            Backend::Memory(m) => m.lost_total(),
            Backend::Disk(d) => d.lost_total(),
        }
    }

    /// Whether the lane is catching up after an outage: its oldest entry is older than
    /// [`Timing::live_after`]. A burst that the consumer works through is not.
    pub fn is_behind(&self) -> bool {
        self.oldest_age().is_some_and(|age| age >= self.live.after)
    }

    /// The consumer says whether it is behind ([`Lane::is_behind`]) or current. While it is
    /// behind, `push_all` keeps copies of the newest entries for [`Lane::take_live`].
    pub fn set_catching_up(&self, behind: bool) {
        let was_behind = self.live.catching_up.swap(behind, Ordering::Relaxed);
        if was_behind && !behind {
            self.live.newest.lock().expect("live lock").copies.clear();
        }
    }

    /// Up to `max` of the newest entries pushed since the last call while catching up, oldest
    /// first. Copies to send now, best effort; the entries stay in the lane.
    pub fn take_live(&self, max: usize) -> Vec<T> {
        let newest = &mut self.live.newest.lock().expect("live lock").copies;
        let skip = newest.len().saturating_sub(max);
        newest.drain(..skip);
        newest.drain(..).collect()
    }

    /// Waits for at least one entry, then up to `linger` for `max` entries, and returns copies of
    /// the oldest ones (at most `max`, fewer under a drain rate). They stay in the lane until
    /// [`Lane::confirm`]. Returns an empty batch only when `shutdown` fires while the lane is
    /// empty (or while it waits for drain tokens).
    pub async fn peek_batch(
        &self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<T> {
        match &self.backend {
            Backend::Memory(m) => m.peek_batch(max, linger, shutdown).await,
            Backend::Disk(d) => d.peek_batch(max, linger, shutdown).await,
        }
    }

    /// The receiver confirmed the first `n` entries of the last peeked batch: remove them.
    pub fn confirm(&self, n: usize) {
        match &self.backend {
            Backend::Memory(m) => m.confirm(n),
            Backend::Disk(d) => d.confirm(n),
        }
    }

    /// The consumer gave up on its peeked batch without sending it; it stays queued.
    pub fn release(&self) {
        match &self.backend {
            Backend::Memory(m) => m.release(),
            Backend::Disk(d) => d.release(),
        }
    }

    /// Clean shutdown: fsyncs the segment, the ledger and the directory and stops the writer
    /// thread. Pushing after `close` is an error that `push_all` retries forever, so close a
    /// lane only after its producer stopped. Does nothing for an in-memory lane.
    pub async fn close(&self) -> Result<(), OutboxError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Disk(d) => d.close().await,
        }
    }
}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Lane<T> {
    /// Opens (or creates) the durable lane `name` under `dir` and recovers what is on disk, per
    /// the module doc. Reads every segment, so it takes time in proportion to the backlog:
    /// call it before serving, or from `spawn_blocking`.
    pub fn open(
        dir: &Path,
        name: impl Into<String>,
        options: LaneOptions,
        metrics: Arc<Metrics>,
    ) -> Result<(Lane<T>, Recovery), OutboxError> {
        let name = name.into();
        let live_after = options.timing.live_after;
        let (lane, recovery) = disk::DiskLane::open(dir, name.clone(), options, metrics)?;
        Ok((
            Lane {
                name,
                backend: Backend::Disk(lane),
                live: Live::new(live_after),
            },
            recovery,
        ))
    }
}

/// What `/readyz` and `/metrics` show of a lane, whatever its entry type.
pub trait LaneStatus: Send + Sync {
    fn lane_name(&self) -> &str;
    /// Entries not yet confirmed.
    fn backlog(&self) -> usize;
    fn oldest_age(&self) -> Option<Duration>;
    fn disk_bytes(&self) -> u64;
}

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> LaneStatus for Lane<T> {
    fn lane_name(&self) -> &str {
        Lane::name(self)
    }
    fn backlog(&self) -> usize {
        Lane::len(self)
    }
    fn oldest_age(&self) -> Option<Duration> {
        Lane::oldest_age(self)
    }
    fn disk_bytes(&self) -> u64 {
        Lane::disk_bytes(self)
    }
}

/// The directory name of a lane: characters outside `[A-Za-z0-9._-]` become `_`.
pub fn lane_dir_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane whose consumer counts as in an outage at once: a full telemetry lane drops.
    fn lane(capacity: usize, overflow: Overflow) -> (Lane<u32>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (
            Lane::new(
                "test",
                capacity,
                overflow,
                Timing {
                    outage_after: Duration::ZERO,
                    live_after: Duration::ZERO,
                },
                metrics.clone(),
            ),
            metrics,
        )
    }

    #[tokio::test]
    async fn a_full_telemetry_lane_waits_for_a_healthy_consumer_and_drops_only_in_an_outage() {
        let metrics = Arc::new(Metrics::new());
        let outage_after = Duration::from_millis(300);
        let lane = Arc::new(Lane::new(
            "test",
            3,
            Overflow::DropOldest,
            Timing {
                outage_after,
                live_after: Duration::ZERO,
            },
            metrics.clone(),
        ));
        lane.push_all([1, 2, 3]).await;
        let pusher = tokio::spawn({
            let lane = lane.clone();
            async move { lane.push_all([4]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pusher.is_finished(), "a burst waits: backpressure");
        let stop = CancellationToken::new();
        assert_eq!(lane.peek_batch(1, Duration::ZERO, &stop).await, vec![1]);
        lane.confirm(1);
        pusher.await.unwrap();
        assert_eq!(
            metrics.dropped_count("test"),
            0,
            "nothing dropped in a burst"
        );
        assert_eq!(lane.len(), 3);
        // The consumer goes silent: after outage_after the lane drops to take the input.
        let started = std::time::Instant::now();
        lane.push_all([5]).await;
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(metrics.dropped_count("test"), 1, "an outage drops, counted");
        assert_eq!(lane.take_lost(), 1);
        assert_eq!(
            lane.peek_batch(10, Duration::ZERO, &stop).await,
            vec![3, 4, 5]
        );
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_the_drop() {
        let (lane, metrics) = lane(3, Overflow::DropOldest);
        lane.push_all([1, 2, 3, 4, 5]).await;
        let batch = lane
            .peek_batch(10, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(batch, vec![3, 4, 5]);
        assert_eq!(metrics.dropped_count("test"), 2);
    }

    #[tokio::test]
    async fn drop_oldest_spares_the_batch_being_sent() {
        let (lane, metrics) = lane(3, Overflow::DropOldest);
        lane.push_all([1, 2, 3]).await;
        let batch = lane
            .peek_batch(2, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(batch, vec![1, 2]);
        lane.push_all([4]).await;
        lane.confirm(2);
        let rest = lane
            .peek_batch(10, Duration::ZERO, &CancellationToken::new())
            .await;
        assert_eq!(rest, vec![4]);
        assert_eq!(
            metrics.dropped_count("test"),
            1,
            "3 was dropped, not the in-flight 1 and 2"
        );
    }

    #[tokio::test]
    async fn entries_stay_until_confirmed() {
        let (lane, _) = lane(10, Overflow::Wait);
        lane.push_all([1, 2, 3]).await;
        let shutdown = CancellationToken::new();
        assert_eq!(
            lane.peek_batch(2, Duration::ZERO, &shutdown).await,
            vec![1, 2]
        );
        lane.release();
        assert_eq!(
            lane.peek_batch(2, Duration::ZERO, &shutdown).await,
            vec![1, 2]
        );
        lane.confirm(2);
        assert_eq!(lane.peek_batch(2, Duration::ZERO, &shutdown).await, vec![3]);
    }

    #[tokio::test]
    async fn a_full_wait_lane_blocks_until_confirmed() {
        let (lane, metrics) = lane(2, Overflow::Wait);
        let lane = Arc::new(lane);
        lane.push_all([1, 2]).await;
        let pusher = tokio::spawn({
            let lane = lane.clone();
            async move { lane.push_all([3]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !pusher.is_finished(),
            "push must wait while the lane is full"
        );
        let shutdown = CancellationToken::new();
        lane.peek_batch(1, Duration::ZERO, &shutdown).await;
        lane.confirm(1);
        pusher.await.unwrap();
        assert_eq!(
            lane.peek_batch(10, Duration::ZERO, &shutdown).await,
            vec![2, 3]
        );
        assert_eq!(metrics.dropped_count("test"), 0);
    }

    #[tokio::test]
    async fn live_copies_only_while_catching_up_and_leave_the_lane_whole() {
        let (lane, _) = lane(100_000, Overflow::DropOldest);
        lane.push_all([1, 2]).await;
        assert!(lane.take_live(10).is_empty(), "not behind: no copies");
        lane.set_catching_up(true);
        lane.push_all([3, 4, 5]).await;
        assert_eq!(lane.take_live(2), vec![4, 5], "the newest, oldest first");
        assert!(lane.take_live(10).is_empty(), "taken once");
        assert_eq!(lane.len(), 5, "copies leave nothing");
        lane.push_all(0..(LIVE_ENTRIES as u32 + 10)).await;
        let live = lane.take_live(usize::MAX);
        assert_eq!(live.len(), LIVE_ENTRIES, "bounded");
        assert_eq!(live.last(), Some(&(LIVE_ENTRIES as u32 + 9)));
        lane.push_all([6]).await;
        lane.set_catching_up(false);
        assert!(
            lane.take_live(10).is_empty(),
            "current again: copies dropped"
        );
        let stop = CancellationToken::new();
        assert_eq!(
            lane.peek_batch(5, Duration::ZERO, &stop).await,
            vec![1, 2, 3, 4, 5]
        );
    }

    #[tokio::test]
    async fn a_drop_discards_the_live_copies_made_before_it() {
        let (lane, _) = lane(4, Overflow::DropOldest);
        lane.set_catching_up(true);
        lane.push_all([1, 2, 3]).await;
        lane.push_all([4, 5]).await; // drops 1
        assert_eq!(lane.take_live(10), vec![4, 5], "no copy of a dropped entry");
        lane.push_all([6]).await; // drops 2
        lane.push_all([7]).await; // drops 3
        assert_eq!(lane.take_live(10), vec![7]);
        assert_eq!(lane.take_lost(), 3);
    }
}
