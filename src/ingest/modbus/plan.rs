//! Request planning: which read requests fetch a poll group's points. Pure, so it is
//! table-tested; the poller does the I/O.
//!
//! **The merged plan.** [`plan_requests`] merges points across at most `max_gap` unused
//! registers. The config plans every group once when it is validated, and devices of one
//! profile and merge limits share that plan through `Arc`.
//!
//! **Adaptive splitting.** Many devices refuse a read that touches an address they do not map
//! (exception 02, illegal data address, or 03, illegal data value), while every smaller read
//! succeeds. A refused request that covers more than one point is split in two, and both
//! pieces are read at once, in the same cycle, down to single points if needed
//! ([`Splitter`]), so a device with holes is read correctly from its first cycle. The cut
//! ([`split`]) is made at the widest run of unused registers between the request's points,
//! the one nearest the middle among equals: the holes the planner read across are the likely
//! cause, and the widest is the likeliest, so a map with a few unmapped blocks needs one cut
//! per block. Between contiguous points (a configured register the device does not have) the
//! cut halves the points, which finds an absent point in log2(n) steps. A point refused alone
//! is absent: its reading is bad with the exception. Pieces that ended refused side by side
//! are read again as one request, which the device refuses as it did them, so a profile that
//! names many absent registers does not cost one request each.
//!
//! Some devices do not answer such a read at all. A timeout splits a request (for the next
//! cycle) only when the device answered another request in the same cycle; otherwise a dead
//! device and a refusing one look alike, so the next cycle begins with a probe: the request's
//! first point read alone. When the probe is answered and the request then times out again,
//! it is split. A dead device thus keeps its plan and costs its line one timeout per cycle, as
//! before (the rest of its cycle is skipped after a timeout, probe or not), and a device that
//! comes back is not split by its probe. Such a device converges more slowly than one that
//! answers exceptions: a cut every cycle or two, each costing that cycle's readings after it.
//!
//! **Memory of the plan.** The pieces replace the refused request in the device's own plan
//! ([`AdaptivePlan`]); other devices of the profile keep the shared one. After `merge_retry`
//! the device tries the merged plan for one cycle (a firmware update may have filled its
//! holes): a refusal splits again at once; a timeout puts its own plan back; a cycle with no
//! split gives the device the shared plan again.
//!
//! Size: about 730 lines, more than half of them the table tests that pin the plans.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::config::{Point, Table};

/// One read request: a contiguous block of one table covering some points of a poll group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    pub table: Table,
    /// 0-based protocol address of the first register (or bit).
    pub start: u16,
    pub count: u16,
    /// Indexes into the poll group's points, in address order.
    pub points: Vec<usize>,
}

/// Merges points into as few requests as possible: points of one table join the current
/// request while the unused registers between them number at most `max_gap` and the request
/// stays within `max_count` (and the protocol's limit for the table). Points that share
/// registers (bits of one register) share a request. Pure, so it is table-tested.
pub fn plan_requests(points: &[Point], max_gap: u16, max_count: u16) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].table, points[i].address));
    let mut requests: Vec<ReadRequest> = Vec::new();
    // End (exclusive) of the current request, as u32 so the last register does not wrap.
    let mut end = 0u32;
    for i in order {
        let p = &points[i];
        let span = p.span();
        let limit = u32::from(max_count.min(p.table.max_per_request()).max(1));
        if let Some(current) = requests.last_mut() {
            let start = u32::from(current.start);
            let new_end = end.max(span.end);
            if current.table == p.table
                && span.start <= end + u32::from(max_gap)
                && new_end - start <= limit
            {
                current.count = (new_end - start) as u16;
                current.points.push(i);
                end = new_end;
                continue;
            }
        }
        requests.push(ReadRequest {
            table: p.table,
            start: p.address,
            count: (span.end - span.start) as u16,
            points: vec![i],
        });
        end = span.end;
    }
    requests
}

/// A piece of `request`: its points `positions` (positions in `request.points`).
fn piece(request: &ReadRequest, positions: &[usize], points: &[Point]) -> ReadRequest {
    let indexes: Vec<usize> = positions.iter().map(|&k| request.points[k]).collect();
    let start = indexes.iter().map(|&i| points[i].span().start).min();
    let end = indexes.iter().map(|&i| points[i].span().end).max();
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
    ReadRequest {
        table: request.table,
        start: start as u16,
        count: (end - start) as u16,
        points: indexes,
    }
}

/// Cuts `request` in two, or `None` when it holds a single point (or only points that share
/// registers, like bits of one register). The cut lies at the widest run of unused registers
/// between consecutive points, nearest the middle of the points among equally wide runs.
pub fn split(request: &ReadRequest, points: &[Point]) -> Option<(ReadRequest, ReadRequest)> {
    let n = request.points.len();
    let mut best: Option<(u32, usize, usize)> = None; // (gap, distance from the middle, cut)
    let mut end = 0u32;
    for k in 0..n {
        let span = points[request.points[k]].span();
        if k > 0 && span.start >= end {
            let gap = span.start - end;
            let distance = (2 * k).abs_diff(n);
            if best.is_none_or(|(g, d, _)| gap > g || (gap == g && distance < d)) {
                best = Some((gap, distance, k));
            }
        }
        end = end.max(span.end);
    }
    let (_, _, cut) = best?;
    let positions: Vec<usize> = (0..n).collect();
    Some((
        piece(request, &positions[..cut], points),
        piece(request, &positions[cut..], points),
    ))
}

/// The probe of a request that timed out: its first point read alone.
pub fn probe(request: &ReadRequest, points: &[Point]) -> ReadRequest {
    piece(request, &[0], points)
}

/// Splits one refused request within a cycle: the poller reads [`Splitter::next`] and reports
/// whether the device refused it, until nothing is left; [`Splitter::finish`] gives the pieces
/// that replace the request in the device's plan.
#[derive(Debug)]
pub struct Splitter {
    /// Pieces still to read, the next one last.
    todo: Vec<ReadRequest>,
    /// Pieces read for good, in address order, and whether the device refused them.
    done: Vec<(ReadRequest, bool)>,
    /// Cuts made so far.
    splits: u32,
}

impl Splitter {
    /// Starts with the two halves of `refused`, or `None` when it cannot be split.
    pub fn new(refused: &ReadRequest, points: &[Point]) -> Option<Splitter> {
        let (first, second) = split(refused, points)?;
        Some(Splitter {
            todo: vec![second, first],
            done: Vec::new(),
            splits: 1,
        })
    }

    /// The piece to read now.
    pub fn next(&self) -> Option<&ReadRequest> {
        self.todo.last()
    }

    /// Takes the answer to [`Splitter::next`]: `true` when the piece stays as it is (its
    /// readings count, good or bad), `false` when it was refused and cut in two, to be read
    /// next.
    pub fn answered(&mut self, refused: bool, points: &[Point]) -> bool {
        let Some(piece) = self.todo.pop() else {
            return true;
        };
        if refused {
            if let Some((first, second)) = split(&piece, points) {
                self.todo.push(second);
                self.todo.push(first);
                self.splits += 1;
                return false;
            }
        }
        self.done.push((piece, refused));
        true
    }

    /// Cuts made so far.
    pub fn splits(&self) -> u32 {
        self.splits
    }

    /// Points of the pieces not read yet (when the cycle stops early).
    pub fn unread(&self) -> impl Iterator<Item = usize> + '_ {
        self.todo
            .iter()
            .rev()
            .flat_map(|r| r.points.iter().copied())
    }

    /// The pieces in address order; refused pieces side by side are joined into one request.
    pub fn finish(self) -> Vec<ReadRequest> {
        let mut pieces: Vec<(ReadRequest, bool)> = Vec::with_capacity(self.done.len());
        for (piece, refused) in self.done {
            match pieces.last_mut() {
                Some((last, true)) if refused => {
                    let end = u32::from(piece.start) + u32::from(piece.count);
                    let last_end = u32::from(last.start) + u32::from(last.count);
                    last.count = (end.max(last_end) - u32::from(last.start)) as u16;
                    last.points.extend(piece.points);
                }
                _ => pieces.push((piece, refused)),
            }
        }
        pieces.into_iter().map(|(piece, _)| piece).collect()
    }
}

/// When the merged plan is tried again; a retry too far off to count is a century away.
fn retry_time(now: Instant, retry: Duration) -> Instant {
    now.checked_add(retry)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// The plan one device polls one group with: the group's shared plan until a request of it had
/// to be split, then the device's own (see the module doc).
#[derive(Debug, Default)]
pub struct AdaptivePlan {
    /// `None` while the shared plan serves: most devices never hold a plan of their own.
    own: Option<Box<OwnPlan>>,
    /// A request (index in the plan) that timed out while the device answered nothing else:
    /// the next cycle first reads its first point alone.
    probe: Option<usize>,
}

#[derive(Debug)]
struct OwnPlan {
    requests: Arc<[ReadRequest]>,
    /// When the merged plan is tried again.
    retry_at: Instant,
    /// While the merged plan is on trial: the plan to go back to when it times out.
    fallback: Option<Arc<[ReadRequest]>>,
}

impl AdaptivePlan {
    /// The requests of the next cycle. Once `retry_at` has passed, the merged plan is tried.
    pub fn requests(&mut self, shared: &Arc<[ReadRequest]>, now: Instant) -> Arc<[ReadRequest]> {
        match self.own.as_deref_mut() {
            None => shared.clone(),
            Some(own) if own.fallback.is_none() && self.probe.is_none() && now >= own.retry_at => {
                own.fallback = Some(own.requests.clone());
                shared.clone()
            }
            Some(own) if own.fallback.is_some() => shared.clone(),
            Some(own) => own.requests.clone(),
        }
    }

    /// Whether this cycle tries the merged plan again.
    pub fn on_trial(&self) -> bool {
        self.own.as_ref().is_some_and(|own| own.fallback.is_some())
    }

    /// Takes the probe due this cycle: the index of the request whose first point to read.
    pub fn take_probe(&mut self) -> Option<usize> {
        self.probe.take()
    }

    /// Asks for a probe of request `index` next cycle.
    pub fn set_probe(&mut self, index: usize) {
        self.probe = Some(index);
    }

    /// Ends a cycle that read `used`: `changes` replace requests of `used` (by index) with
    /// their pieces; `timed_out` says the cycle stopped on a timeout. `retry` is the wait before
    /// the merged plan is tried again.
    pub fn settle(
        &mut self,
        used: &Arc<[ReadRequest]>,
        changes: Vec<(usize, Vec<ReadRequest>)>,
        timed_out: bool,
        now: Instant,
        retry: Duration,
    ) {
        if let Some(own) = self.own.as_deref_mut() {
            if let Some(fallback) = own.fallback.take() {
                own.retry_at = retry_time(now, retry);
                if timed_out {
                    own.requests = fallback;
                    return;
                }
                if changes.is_empty() {
                    // The merged plan is answered again: back to the shared one.
                    self.own = None;
                    return;
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        let mut requests: Vec<ReadRequest> = Vec::with_capacity(used.len() + changes.len());
        let mut changes = changes.into_iter().peekable();
        for (index, request) in used.iter().enumerate() {
            match changes.next_if(|(i, _)| *i == index) {
                Some((_, pieces)) => requests.extend(pieces),
                None => requests.push(request.clone()),
            }
        }
        match self.own.as_deref_mut() {
            Some(own) => own.requests = requests.into(),
            None => {
                self.own = Some(Box::new(OwnPlan {
                    requests: requests.into(),
                    retry_at: retry_time(now, retry),
                    fallback: None,
                }))
            }
        }
    }

    /// Requests per cycle of the plan now in force.
    pub fn len(&self, shared: &Arc<[ReadRequest]>) -> usize {
        match self.own.as_deref() {
            Some(own) if own.fallback.is_none() => own.requests.len(),
            _ => shared.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::modbus::decode::DataType;
    use crate::ingest::modbus::decode::{Order, Scaling};

    fn point(table: Table, address: u16, data_type: DataType) -> Point {
        Point {
            metric: format!("{table}_{address}"),
            unit: None,
            table,
            address,
            data_type,
            order: Order::Abcd,
            scaling: Scaling::IDENTITY,
            group: None,
            labels: vec![],
        }
    }

    /// (table, start, count, point indexes) per request.
    type Planned = (Table, u16, u16, Vec<usize>);
    /// (name, points, max_gap, max_count, expected plan).
    type Case = (&'static str, Vec<Point>, u16, u16, Vec<Planned>);

    fn plan(points: &[Point], gap: u16, count: u16) -> Vec<Planned> {
        plan_requests(points, gap, count)
            .into_iter()
            .map(|r| (r.table, r.start, r.count, r.points))
            .collect()
    }

    #[test]
    fn merge_plans() {
        use DataType::*;
        use Table::*;
        let cases: Vec<Case> = vec![
            (
                "contiguous registers make one request",
                vec![
                    point(Holding, 0, U16),
                    point(Holding, 1, F32),
                    point(Holding, 3, U64),
                ],
                0,
                100,
                vec![(Holding, 0, 7, vec![0, 1, 2])],
            ),
            (
                "a gap within max_gap is read across",
                vec![point(Holding, 0, U16), point(Holding, 5, U16)],
                4,
                100,
                vec![(Holding, 0, 6, vec![0, 1])],
            ),
            (
                "a gap beyond max_gap splits",
                vec![point(Holding, 0, U16), point(Holding, 6, U16)],
                4,
                100,
                vec![(Holding, 0, 1, vec![0]), (Holding, 6, 1, vec![1])],
            ),
            (
                "max_count splits, a wide value is never cut",
                vec![
                    point(Holding, 0, F32),
                    point(Holding, 2, F32),
                    point(Holding, 4, F32),
                ],
                0,
                5,
                vec![(Holding, 0, 4, vec![0, 1]), (Holding, 4, 2, vec![2])],
            ),
            (
                "tables never merge, and come out in table order",
                vec![
                    point(Input, 0, U16),
                    point(Holding, 1, U16),
                    point(Holding, 0, U16),
                ],
                10,
                100,
                vec![(Holding, 0, 2, vec![2, 1]), (Input, 0, 1, vec![0])],
            ),
            (
                "bits of one register share it",
                vec![
                    point(Holding, 7, Bit(0)),
                    point(Holding, 7, Bit(3)),
                    point(Holding, 8, U16),
                ],
                0,
                100,
                vec![(Holding, 7, 2, vec![0, 1, 2])],
            ),
            (
                "coils merge by bit address",
                vec![
                    point(Coil, 0, Bool),
                    point(Coil, 3, Bool),
                    point(Coil, 40, Bool),
                ],
                8,
                100,
                vec![(Coil, 0, 4, vec![0, 1]), (Coil, 40, 1, vec![2])],
            ),
            (
                "the last register of the table does not wrap",
                vec![point(Holding, 65534, U16), point(Holding, 65535, U16)],
                0,
                100,
                vec![(Holding, 65534, 2, vec![0, 1])],
            ),
            (
                "unsorted input is sorted by address",
                vec![
                    point(Holding, 10, U16),
                    point(Holding, 0, U16),
                    point(Holding, 5, U16),
                ],
                5,
                100,
                vec![(Holding, 0, 11, vec![1, 2, 0])],
            ),
            (
                "a max_count of 125 holds a 125-register string",
                vec![point(Holding, 0, Text(125)), point(Holding, 125, U16)],
                0,
                125,
                vec![(Holding, 0, 125, vec![0]), (Holding, 125, 1, vec![1])],
            ),
            ("nothing to read", vec![], 0, 100, vec![]),
        ];
        for (name, points, gap, count, expected) in cases {
            assert_eq!(plan(&points, gap, count), expected, "{name}");
        }
    }

    /// A device that refuses (exception 02 or 03) a read touching one of `holes`, or longer than
    /// `max_read` registers.
    struct Device {
        holes: Vec<u16>,
        max_read: u16,
    }

    impl Device {
        fn refuses(&self, r: &ReadRequest) -> bool {
            let range = r.start..r.start + r.count;
            r.count > self.max_read || self.holes.iter().any(|h| range.contains(h))
        }
    }

    /// What splitting the one merged request of `points` (default merge limits) against
    /// `device` ends with.
    #[derive(Debug, PartialEq)]
    struct Settled {
        /// (start, count) of the pieces that replace the merged request.
        plan: Vec<(u16, u16)>,
        /// Addresses of the points whose piece stayed refused: bad, with the exception.
        absent: Vec<u16>,
        splits: u32,
        /// Pieces read after the merged request was refused.
        reads: usize,
    }

    fn settle(points: &[Point], device: &Device) -> Settled {
        let merged = plan_requests(points, 8, 100);
        assert_eq!(merged.len(), 1, "one merged request");
        assert!(device.refuses(&merged[0]), "the merged request is refused");
        let mut splitter = Splitter::new(&merged[0], points).expect("splittable");
        let (mut absent, mut reads) = (Vec::new(), 0);
        while let Some(piece) = splitter.next().cloned() {
            reads += 1;
            let refused = device.refuses(&piece);
            if splitter.answered(refused, points) && refused {
                absent.extend(piece.points.iter().map(|&i| points[i].address));
            }
        }
        let splits = splitter.splits();
        let plan = splitter
            .finish()
            .iter()
            .map(|r| (r.start, r.count))
            .collect();
        absent.sort_unstable();
        Settled {
            plan,
            absent,
            splits,
            reads,
        }
    }

    fn u16s(addresses: impl IntoIterator<Item = u16>) -> Vec<Point> {
        addresses
            .into_iter()
            .map(|a| point(Table::Holding, a, DataType::U16))
            .collect()
    }

    #[test]
    fn refused_requests_split_into_what_the_device_answers() {
        use DataType::*;
        use Table::*;
        let all = |n: u16| Device {
            holes: vec![],
            max_read: n,
        };
        let holes = |holes: Vec<u16>| Device {
            holes,
            max_read: 125,
        };
        // (name, points, device, expected)
        let cases: Vec<(&str, Vec<Point>, Device, Settled)> = vec![
            (
                "holding 0-35 with two unmapped blocks: one cut per block, at the widest first",
                u16s((0..10).chain(12..20).chain(26..36)),
                holes(vec![10, 11, 20, 21, 22, 23, 24, 25]),
                Settled {
                    plan: vec![(0, 10), (12, 8), (26, 10)],
                    absent: vec![],
                    splits: 2,
                    reads: 4,
                },
            ),
            (
                "an absent register among contiguous ones is found by halving",
                u16s(0..8),
                holes(vec![5]),
                Settled {
                    plan: vec![(0, 4), (4, 1), (5, 1), (6, 2)],
                    absent: vec![5],
                    splits: 3,
                    reads: 6,
                },
            ),
            (
                "equal gaps say nothing: halves by points, down to the hole",
                u16s((0..=20).step_by(2)),
                holes(vec![13]),
                Settled {
                    plan: vec![(0, 9), (10, 1), (12, 1), (14, 1), (16, 5)],
                    absent: vec![],
                    splits: 4,
                    reads: 8,
                },
            ),
            (
                "refused pieces side by side are read again as one request",
                u16s(0..4),
                holes(vec![2, 3]),
                Settled {
                    plan: vec![(0, 2), (2, 2)],
                    absent: vec![2, 3],
                    splits: 2,
                    reads: 4,
                },
            ),
            (
                "a device that refuses every point keeps the request whole",
                u16s(0..3),
                holes(vec![0, 1, 2]),
                Settled {
                    plan: vec![(0, 3)],
                    absent: vec![0, 1, 2],
                    splits: 2,
                    reads: 4,
                },
            ),
            (
                "bits of one register stay together, a wide value is never cut",
                vec![
                    point(Holding, 7, Bit(0)),
                    point(Holding, 7, Bit(3)),
                    point(Holding, 9, F32),
                ],
                holes(vec![8]),
                Settled {
                    plan: vec![(7, 1), (9, 2)],
                    absent: vec![],
                    splits: 1,
                    reads: 2,
                },
            ),
            (
                "a device that takes at most 4 registers a read (exception 03)",
                u16s(0..10),
                all(4),
                Settled {
                    plan: vec![(0, 2), (2, 3), (5, 2), (7, 3)],
                    absent: vec![],
                    splits: 3,
                    reads: 6,
                },
            ),
            (
                "coils split by bit address",
                vec![
                    point(Coil, 0, Bool),
                    point(Coil, 1, Bool),
                    point(Coil, 5, Bool),
                ],
                holes(vec![3]),
                Settled {
                    plan: vec![(0, 2), (5, 1)],
                    absent: vec![],
                    splits: 1,
                    reads: 2,
                },
            ),
        ];
        for (name, points, device, expected) in cases {
            assert_eq!(settle(&points, &device), expected, "{name}");
        }
    }

    #[test]
    fn a_single_point_cannot_be_split_and_its_probe_is_itself() {
        let points = vec![
            point(Table::Holding, 4, DataType::Bit(0)),
            point(Table::Holding, 4, DataType::Bit(1)),
            point(Table::Holding, 6, DataType::U16),
        ];
        let one = plan_requests(&points[..2], 0, 100);
        assert!(split(&one[0], &points).is_none());
        assert!(Splitter::new(&one[0], &points).is_none());
        let both = plan_requests(&points, 8, 100);
        let probe = probe(&both[0], &points);
        assert_eq!((probe.start, probe.count, probe.points), (4, 1, vec![0]));
    }

    #[test]
    fn a_device_keeps_its_own_plan_until_the_merged_one_works_again() {
        let points = u16s([0, 1, 5, 6]);
        let shared: Arc<[ReadRequest]> = plan_requests(&points, 8, 100).into();
        let (first, second) = split(&shared[0], &points).expect("splittable");
        let retry = Duration::from_secs(3600);
        let t0 = Instant::now();
        let mut plan = AdaptivePlan::default();

        // Shared until a split, which only this device's plan holds.
        let used = plan.requests(&shared, t0);
        assert!(Arc::ptr_eq(&used, &shared));
        plan.settle(
            &used,
            vec![(0, vec![first.clone(), second.clone()])],
            false,
            t0,
            retry,
        );
        assert_eq!(plan.len(&shared), 2);
        assert_eq!(shared.len(), 1);
        let own = plan.requests(&shared, t0 + Duration::from_secs(1));
        assert_eq!(&own[..], &[first.clone(), second.clone()]);
        assert!(!plan.on_trial());

        // After `retry` the merged plan is on trial; a timeout puts the own plan back.
        let later = t0 + retry;
        assert!(Arc::ptr_eq(&plan.requests(&shared, later), &shared));
        assert!(plan.on_trial());
        plan.settle(&shared, vec![], true, later, retry);
        assert!(!plan.on_trial());
        assert_eq!(&plan.requests(&shared, later)[..], &own[..]);

        // A refusal on trial splits again: the own plan, retried an hour later.
        let later = later + retry;
        let trial = plan.requests(&shared, later);
        plan.settle(&trial, vec![(0, vec![first, second])], false, later, retry);
        assert_eq!(plan.len(&shared), 2);
        assert!(!Arc::ptr_eq(&plan.requests(&shared, later), &shared));

        // A trial answered whole: the shared plan again.
        let later = later + retry;
        let trial = plan.requests(&shared, later);
        plan.settle(&trial, vec![], false, later, retry);
        assert_eq!(plan.len(&shared), 1);
        assert!(Arc::ptr_eq(&plan.requests(&shared, later + retry), &shared));

        // A retry beyond what a clock can hold is no panic.
        let mut far = AdaptivePlan::default();
        far.settle(
            &shared,
            vec![(0, own.to_vec())],
            false,
            later,
            Duration::MAX,
        );
        assert_eq!(far.len(&shared), 2);

        // A probe is asked for once and taken once; no trial starts while one is due.
        let mut probed = AdaptivePlan::default();
        probed.settle(&shared, vec![(0, own.to_vec())], false, later, retry);
        probed.set_probe(1);
        let due = later + retry;
        assert!(!Arc::ptr_eq(&probed.requests(&shared, due), &shared));
        assert!(!probed.on_trial());
        assert_eq!(probed.take_probe(), Some(1));
        assert_eq!(probed.take_probe(), None);
        assert!(Arc::ptr_eq(&probed.requests(&shared, due), &shared));
        assert!(probed.on_trial());
    }
}
