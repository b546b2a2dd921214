//! The poller: runs one task per line and sends the requests planned in `plan.rs`.
//!
//! A *line* is what requests queue on. A Modbus TCP device is a line of its own, so TCP devices
//! are polled concurrently. The slaves of one serial bus share one line, and so do the slaves
//! behind one RTU-over-TCP converter (host:port): one task sends their requests one at a time.
//!
//! Per request: a timeout (tokio-modbus has none), and up to `retries` re-sends after a
//! transport or protocol error, reconnecting first when the connection broke. A timeout is not
//! retried within the cycle and the rest of that device's cycle is skipped, so a dead slave costs
//! at most one timeout per cycle and the other slaves of its line stay on time (late by at most
//! one timeout). A device that did not answer a whole cycle is polled again after its own
//! exponential backoff (from its interval up to `backoff_max`), never blocking the line longer.
//!
//! Size: about 610 lines, 95 of them tests; the connection and one read are `link.rs`, what a
//! read becomes is `readings.rs`, so what is left is the line's loop and its timing.
//! A broken connection or serial port is reopened, with backoff, when a request needs it, so
//! the poller recovers by itself when a device or the bus comes back.
//!
//! Each device polls a group with its [`AdaptivePlan`]: the shared merged plan until the device
//! refuses a request (exception 02 or 03), which is then split and its pieces read in the same
//! cycle (a [`Splitter`]), or times out while the device answers other reads, which is split
//! for the next cycle. Splits are counted through [`PollObserver::split`], and the requests per
//! cycle of the device's plan reported through [`PollObserver::requests`]. The rules are in
//! `plan.rs`.
//!
//! Output, all on the pipeline channel as [`Batch`]es with `ack: None`:
//! - one batch per polled group with a reading per point, timestamped by the injected clock when
//!   the poll began. A Modbus exception, a timeout, a transport or protocol error, or a value that
//!   does not decode (NaN) makes the affected readings `Quality::Bad` (their value is a short
//!   `Value::Text` reason, never a number) and is counted per device and reason through
//!   [`PollObserver::failed`];
//! - the reading `device_online` (see [`ModbusDevice::online_metric`]), `Value::Bool`, good
//!   quality: `true` on the first answered cycle and whenever the device answers again after
//!   being offline, `false` after `offline_after_cycles` cycles in a row without any answer.
//!   It is emitted only on these transitions, so a rule on it raises and clears a device-offline
//!   alarm; [`PollObserver::online`] hears about the same transitions.
//!
//! The connection below a line and one read over it are `link.rs`; what a read becomes
//! (readings good or bad, `device_online`) is `readings.rs`. This file is `Line`, the loop of
//! one line: connect, poll the devices that are due, split what a device refuses, back off.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::config::{ModbusDevice, Point, Transport};
use super::link::{read_once, Connection, Failure, Payload};
pub use super::observe::{FailReason, PollCounters, PollObserver};
use super::plan::{self, split, AdaptivePlan, ReadRequest, Splitter};
use super::readings::{bad, online_reading, push_readings};
use crate::backoff::Backoff;
use crate::ingest::Batch;
pub use crate::ingest::{system_clock, Clock};
use crate::model::Reading;

// ---------------------------------------------------------------------------------------------
// Runtime.

/// Polls Modbus devices and sends their readings into the pipeline.
pub struct ModbusIngest {
    /// Shared with the config that holds them, not copied.
    pub devices: Vec<Arc<ModbusDevice>>,
    pub observer: Arc<dyn PollObserver>,
    pub clock: Clock,
}

impl ModbusIngest {
    /// Runs one task per line until `stop` fires or the pipeline closes.
    pub async fn run(self, pipeline: mpsc::Sender<Batch>, stop: CancellationToken) {
        let mut tasks = JoinSet::new();
        for (transport, devices) in group_lines(self.devices) {
            let span = tracing::info_span!("modbus_line", line = %transport);
            let line = Line::new(
                transport,
                devices,
                self.observer.clone(),
                self.clock.clone(),
            );
            tasks.spawn(line.run(pipeline.clone(), stop.clone()).instrument(span));
        }
        drop(pipeline);
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "modbus line task failed");
            }
        }
    }
}

/// Groups devices by what they queue on: each TCP device alone, serial slaves by bus, RTU over
/// TCP slaves by host:port.
pub fn group_lines(devices: Vec<Arc<ModbusDevice>>) -> Vec<(Transport, Vec<Arc<ModbusDevice>>)> {
    let mut lines: Vec<(Transport, Vec<Arc<ModbusDevice>>)> = Vec::new();
    for device in devices {
        let shared = !matches!(device.transport, Transport::Tcp { .. });
        let existing = shared
            .then(|| lines.iter_mut().find(|(t, _)| *t == device.transport))
            .flatten();
        match existing {
            Some((_, members)) => members.push(device),
            None => lines.push((device.transport.clone(), vec![device])),
        }
    }
    lines
}

struct SlaveState {
    device: Arc<ModbusDevice>,
    /// Per poll group: when it is due next.
    next_due: Vec<Instant>,
    /// While the device does not answer: no poll before this instant.
    held_until: Option<Instant>,
    backoff: Backoff,
    failed_cycles: u32,
    /// `None` until the first transition is known.
    online: Option<bool>,
    /// Per poll group: the plan this device polls it with (the shared one until a split).
    plans: Vec<AdaptivePlan>,
    /// Requests per cycle last reported to the observer, summed over the groups.
    n_requests: usize,
}

impl SlaveState {
    fn due(&self, group: usize) -> Instant {
        match self.held_until {
            Some(h) => h.max(self.next_due[group]),
            None => self.next_due[group],
        }
    }
}

struct Line {
    connection: Connection,
    slaves: Vec<SlaveState>,
    observer: Arc<dyn PollObserver>,
    clock: Clock,
}

impl Line {
    fn new(
        transport: Transport,
        devices: Vec<Arc<ModbusDevice>>,
        observer: Arc<dyn PollObserver>,
        clock: Clock,
    ) -> Self {
        let now = Instant::now();
        let connect_timeout = devices
            .iter()
            .map(|d| d.timeout)
            .min()
            .unwrap_or(Duration::from_secs(1));
        let backoff_max = devices
            .iter()
            .map(|d| d.backoff_max)
            .max()
            .unwrap_or(Duration::from_secs(30));
        let slaves = devices
            .into_iter()
            .map(|device| {
                let min_interval = device
                    .groups
                    .iter()
                    .map(|g| g.interval)
                    .min()
                    .unwrap_or(Duration::from_secs(1));
                // Spread the first polls of many devices over their interval instead of
                // polling all of them in the same instant every period.
                let phase = f64::from(stable_hash(&device.name) % 1000) / 1000.0;
                let next_due = device
                    .groups
                    .iter()
                    .map(|g| now + g.interval.mul_f64(phase))
                    .collect();
                let n_requests = device.groups.iter().map(|g| g.requests.len()).sum();
                observer.requests(&device.name, n_requests);
                SlaveState {
                    backoff: Backoff::new(min_interval, device.backoff_max.max(min_interval)),
                    plans: device
                        .groups
                        .iter()
                        .map(|_| AdaptivePlan::default())
                        .collect(),
                    n_requests,
                    device,
                    next_due,
                    held_until: None,
                    failed_cycles: 0,
                    online: None,
                }
            })
            .collect();
        Line {
            connection: Connection {
                transport,
                link: None,
                connect_timeout,
                backoff: Backoff::new(connect_timeout.min(Duration::from_millis(100)), backoff_max),
                retry_at: None,
                reported_down: false,
            },
            slaves,
            observer,
            clock,
        }
    }

    async fn run(mut self, pipeline: mpsc::Sender<Batch>, stop: CancellationToken) {
        loop {
            let Some((slave, group, due)) = self.next_poll() else {
                stop.cancelled().await;
                break;
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
            let readings = self.poll(slave, group).await;
            self.reschedule(slave, group, due);
            if readings.is_empty() {
                continue;
            }
            let batch = Batch {
                readings,
                ack: None,
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                sent = pipeline.send(batch) => if sent.is_err() { break },
            }
        }
        self.connection.close();
    }

    fn next_poll(&self) -> Option<(usize, usize, Instant)> {
        let mut best: Option<(usize, usize, Instant)> = None;
        for (i, slave) in self.slaves.iter().enumerate() {
            for g in 0..slave.next_due.len() {
                let due = slave.due(g);
                if best.is_none_or(|(_, _, b)| due < b) {
                    best = Some((i, g, due));
                }
            }
        }
        best
    }

    /// Fixed rate: the next poll is one interval after the planned one, skipping whole periods
    /// that already passed, so one late poll does not shift the ones after it.
    fn reschedule(&mut self, slave: usize, group: usize, due: Instant) {
        let s = &mut self.slaves[slave];
        let interval = s.device.groups[group].interval;
        let now = Instant::now();
        let mut next = due + interval;
        if next <= now {
            let behind = (now - next).as_nanos() / interval.as_nanos().max(1) + 1;
            next += interval * u32::try_from(behind).unwrap_or(u32::MAX);
        }
        s.next_due[group] = next;
    }

    /// Polls one group of one slave: every request of its plan (splitting the refused ones),
    /// then the readings.
    async fn poll(&mut self, slave_idx: usize, group_idx: usize) -> Vec<Reading> {
        let time = (self.clock)();
        let started = Instant::now();
        let slave = &mut self.slaves[slave_idx];
        let device = slave.device.clone();
        let group = &device.groups[group_idx];
        let points = &group.points[..];
        let adaptive = &mut slave.plans[group_idx];
        let requests = adaptive.requests(&group.requests, started);
        let on_trial = adaptive.on_trial();
        let mut readings = Vec::with_capacity(points.len() + 1);
        let mut answered = false;
        // After a timeout or a lost connection, the rest of this cycle is not attempted.
        let mut given_up: Option<Failure> = None;
        // Requests of this cycle's plan replaced by their pieces, by index.
        let mut changes: Vec<(usize, Vec<ReadRequest>)> = Vec::new();

        // A request timed out last cycle while nothing else answered: is the device alive? Its
        // first point read alone tells. Answered, the request that times out again is split
        // (below); not answered, it is this cycle's one timeout.
        let mut probe_failed = None;
        if let Some(index) = adaptive.take_probe() {
            if let Some(request) = requests.get(index) {
                let probe = plan::probe(request, points);
                // Rare, so boxed: the line task of every device stays small.
                let answer =
                    Box::pin(request_with_retries(&mut self.connection, &device, &probe)).await;
                match answer {
                    Err(failure) if !failure.answered() => {
                        let result = Err(failure);
                        push_readings(
                            &*self.observer,
                            &device,
                            points,
                            request,
                            &result,
                            time,
                            &mut readings,
                        );
                        probe_failed = Some(index);
                        given_up = result.err();
                    }
                    _ => answered = true,
                }
            }
        }

        for (index, request) in requests.iter().enumerate() {
            if probe_failed == Some(index) {
                continue;
            }
            if let Some(failure) = &given_up {
                let reason = format!("{failure} (skipped)");
                for &i in &request.points {
                    readings.push(bad(&device, &points[i], reason.clone(), time));
                }
                continue;
            }
            let result = request_with_retries(&mut self.connection, &device, request).await;
            let splitter = match &result {
                Err(failure) if failure.refused() => Splitter::new(request, points),
                _ => None,
            };
            if let (Some(splitter), Err(failure)) = (splitter, &result) {
                // Refused as a whole: read its pieces now, down to single points if need be.
                answered = true;
                self.observer
                    .failed(&device.name, failure.reason(), failure);
                let detail = format!("{} refused: {failure}", Addresses(request));
                self.observer.split(&device.name, &detail);
                // Rare, so boxed: the line task of every device stays small.
                let pieces = Box::pin(read_pieces(
                    &mut self.connection,
                    &*self.observer,
                    &device,
                    points,
                    splitter,
                    time,
                    &mut readings,
                ))
                .await;
                match pieces {
                    Ok(pieces) => changes.push((index, pieces)),
                    Err(failure) => given_up = Some(failure),
                }
                continue;
            }
            answered |= result.as_ref().map_or_else(Failure::answered, |_| true);
            push_readings(
                &*self.observer,
                &device,
                points,
                request,
                &result,
                time,
                &mut readings,
            );
            if let Err(failure) = result {
                if failure.ends_cycle() {
                    // On trial, a timeout puts the device's own plan back instead (`settle`).
                    let timed_out = matches!(failure, Failure::Timeout);
                    if timed_out && request.points.len() > 1 && !on_trial {
                        if !answered {
                            // Dead, or refusing this request? The probe will tell.
                            adaptive.set_probe(index);
                        } else if let Some((first, second)) = split(request, points) {
                            // The device answers other requests: this one is too much for it.
                            let detail = format!(
                                "{} timed out while others are answered",
                                Addresses(request)
                            );
                            self.observer.split(&device.name, &detail);
                            changes.push((index, vec![first, second]));
                        }
                    }
                    given_up = Some(failure);
                }
            }
        }
        adaptive.settle(
            &requests,
            changes,
            given_up.is_some(),
            started,
            device.merge_retry,
        );
        let n_requests = slave
            .plans
            .iter()
            .zip(&device.groups)
            .map(|(plan, group)| plan.len(&group.requests))
            .sum();
        if n_requests != slave.n_requests {
            slave.n_requests = n_requests;
            self.observer.requests(&device.name, n_requests);
        }
        self.observer.readings(readings.len());

        let now = Instant::now();
        if answered {
            slave.failed_cycles = 0;
            slave.held_until = None;
            slave.backoff.reset();
            if slave.online != Some(true) {
                if slave.online == Some(false) {
                    tracing::info!(device = %device.name, "modbus device answers again");
                }
                slave.online = Some(true);
                self.observer.online(&device.name, true);
                readings.push(online_reading(&device, true, time));
            }
        } else {
            slave.failed_cycles = slave.failed_cycles.saturating_add(1);
            slave.held_until = Some(now + slave.backoff.next_delay());
            if slave.failed_cycles >= device.offline_after_cycles && slave.online != Some(false) {
                tracing::warn!(device = %device.name, cycles = slave.failed_cycles, "modbus device offline");
                slave.online = Some(false);
                self.observer.online(&device.name, false);
                readings.push(online_reading(&device, false, time));
            }
        }
        readings
    }
}

/// Reads the pieces of a refused request until each is answered or refused alone, and pushes
/// their readings. The pieces that replace the request, or the failure that ended the cycle
/// (the plan then stays; the points not read are skipped).
async fn read_pieces(
    connection: &mut Connection,
    observer: &dyn PollObserver,
    device: &ModbusDevice,
    points: &[Point],
    mut splitter: Splitter,
    time: DateTime<Utc>,
    readings: &mut Vec<Reading>,
) -> Result<Vec<ReadRequest>, Failure> {
    while let Some(piece) = splitter.next().cloned() {
        let result = request_with_retries(connection, device, &piece).await;
        let refused = matches!(&result, Err(f) if f.refused());
        if !splitter.answered(refused, points) {
            if let Err(failure) = &result {
                observer.failed(&device.name, failure.reason(), failure);
                let detail = format!("{} refused: {failure}", Addresses(&piece));
                observer.split(&device.name, &detail);
            }
            continue;
        }
        push_readings(observer, device, points, &piece, &result, time, readings);
        match result {
            Err(failure) if failure.ends_cycle() => {
                let reason = format!("{failure} (skipped)");
                for i in splitter.unread() {
                    readings.push(bad(device, &points[i], reason.clone(), time));
                }
                return Err(failure);
            }
            _ => {}
        }
    }
    Ok(splitter.finish())
}

async fn request_with_retries(
    connection: &mut Connection,
    device: &ModbusDevice,
    request: &ReadRequest,
) -> Result<Payload, Failure> {
    let mut attempt = 0;
    loop {
        let link = connection.get().await?;
        let result = read_once(link, device.unit_id, request, device.timeout).await;
        match &result {
            Err(Failure::Timeout) if connection.close_after_timeout() => connection.close(),
            Err(Failure::Transport(_)) => connection.close(),
            Err(Failure::Protocol(_)) if connection.close_after_timeout() => connection.close(),
            _ => {}
        }
        match result {
            Err(Failure::Transport(_) | Failure::Protocol(_)) if attempt < device.retries => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A request's range for logs: `holding 0..36`.
struct Addresses<'a>(&'a ReadRequest);

impl fmt::Display for Addresses<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = u32::from(self.0.start) + u32::from(self.0.count);
        write!(f, "{} {}..{end}", self.0.table, self.0.start)
    }
}

/// FNV-1a: stable across runs, unlike the std hasher.
fn stable_hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gateway runs one line task per Modbus TCP device, thousands of them: no buffer may grow
    /// them. (About 1.7 KiB in a debug build, which lays futures out loosely.)
    #[test]
    fn a_line_task_stays_small() {
        let device = ModbusDevice {
            name: "a".to_owned(),
            equipment: "a".to_owned(),
            profile: "p".to_owned(),
            transport: Transport::Tcp {
                host: "h".into(),
                port: 502,
            },
            unit_id: 1,
            groups: vec![],
            timeout: Duration::from_millis(100),
            retries: 0,
            offline_after_cycles: 3,
            backoff_max: Duration::from_secs(1),
            merge_retry: Duration::from_secs(3600),
            online_metric: "device_online".to_owned(),
        };
        let line = Line::new(
            device.transport.clone(),
            vec![Arc::new(device)],
            Arc::new(PollCounters::default()),
            system_clock(),
        );
        let (pipeline, _batches) = mpsc::channel(1);
        let task = line.run(pipeline, CancellationToken::new());
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "a line task takes {size} bytes");
    }

    #[test]
    fn tcp_devices_get_their_own_line_and_shared_lines_group() {
        use super::super::config::{Parity, PollGroup, SerialLine};
        let device = |name: &str, transport: Transport| {
            Arc::new(ModbusDevice {
                name: name.to_owned(),
                equipment: name.to_owned(),
                profile: "p".to_owned(),
                transport,
                unit_id: 1,
                groups: vec![PollGroup {
                    name: None,
                    interval: Duration::from_secs(1),
                    points: Arc::new([]),
                    requests: Arc::new([]),
                }],
                timeout: Duration::from_millis(100),
                retries: 0,
                offline_after_cycles: 3,
                backoff_max: Duration::from_secs(1),
                merge_retry: Duration::from_secs(3600),
                online_metric: "device_online".to_owned(),
            })
        };
        let tcp = Transport::Tcp {
            host: "h".into(),
            port: 502,
        };
        let bus = Transport::Rtu(SerialLine {
            name: "b".into(),
            path: "/dev/x".into(),
            baud: 9600,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
        });
        let converter = Transport::RtuOverTcp {
            host: "c".into(),
            port: 4001,
        };
        let lines = group_lines(vec![
            device("a", tcp.clone()),
            device("b", tcp.clone()),
            device("c", bus.clone()),
            device("d", converter.clone()),
            device("e", bus.clone()),
            device("f", converter.clone()),
        ]);
        let names: Vec<Vec<&str>> = lines
            .iter()
            .map(|(_, ds)| ds.iter().map(|d| d.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            vec![vec!["a"], vec!["b"], vec!["c", "e"], vec!["d", "f"]]
        );
    }
}
