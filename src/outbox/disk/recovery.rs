//! The lane directory's lock, and recovery on open (the steps of the `outbox` module doc).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

use super::{segment, SegMeta, Shared, INDEX_EVERY};
use crate::outbox::{ledger, OutboxError, Recovery};

/// Creates the lane directory and takes its lock file.
pub(super) fn lock_dir(lane: &str, dir: &Path) -> Result<File, OutboxError> {
    let io = |action, path: &Path, source| OutboxError::Io {
        lane: lane.to_owned(),
        action,
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(OutboxError::Locked {
            lane: lane.to_owned(),
            path,
        }),
        Err(fs::TryLockError::Error(e)) => Err(io("lock", &path, e)),
    }
}

/// Recovery on open: the steps of the module doc.
pub(super) fn recover<T>(shared: &Shared<T>) -> Result<Recovery, OutboxError> {
    let dir = &shared.dir;
    fs::create_dir_all(dir).map_err(|e| shared.io("create", dir, e))?;
    let temp = dir.join(ledger::TEMP);
    if temp.exists() {
        fs::remove_file(&temp).map_err(|e| shared.io("remove", &temp, e))?;
    }
    let mut recovery = Recovery::default();
    let ledger_head = match ledger::read(dir).map_err(|e| shared.io("read", dir, e))? {
        ledger::Read::Missing => 0,
        ledger::Read::Head(head) => head,
        ledger::Read::Unreadable => {
            tracing::warn!(lane = %shared.name, "outbox ledger unreadable; replaying everything on disk");
            recovery.ledger_reset = true;
            0
        }
    };
    let mut firsts = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| shared.io("list", dir, e))? {
        let entry = entry.map_err(|e| shared.io("list", dir, e))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut segments = VecDeque::new();
    let mut max_seq: Option<u64> = None;
    let mut changed_dir = false;
    for first in firsts {
        let path = segment::path(dir, first);
        let bytes = fs::read(&path).map_err(|e| shared.io("read", &path, e))?;
        let scan = segment::scan(&bytes, first);
        if scan.bad_header {
            tracing::error!(lane = %shared.name, path = %path.display(), "outbox segment header is damaged; reading its records anyway");
        }
        if scan.corrupt > 0 {
            tracing::error!(lane = %shared.name, path = %path.display(), skipped = scan.corrupt, "outbox segment has corrupt records; skipped them");
        }
        recovery.corrupt_records += scan.corrupt;
        let last = scan.records.last().map(|r| r.0);
        if let Some(last) = last {
            max_seq = Some(max_seq.map_or(last, |m| m.max(last)));
        }
        if !matches!(last, Some(last) if last >= ledger_head) {
            fs::remove_file(&path).map_err(|e| shared.io("remove", &path, e))?;
            changed_dir = true;
            continue;
        }
        if scan.valid_end < bytes.len() as u64 {
            let cut = bytes.len() as u64 - scan.valid_end;
            tracing::warn!(lane = %shared.name, path = %path.display(), bytes = cut, "outbox segment has a torn tail; truncated");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| shared.io("open", &path, e))?;
            file.set_len(scan.valid_end)
                .and_then(|()| file.sync_all())
                .map_err(|e| shared.io("truncate", &path, e))?;
            recovery.truncated_bytes += cut;
        }
        let index = scan
            .records
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u64).is_multiple_of(INDEX_EVERY))
            .map(|(_, r)| *r)
            .collect();
        segments.push_back(SegMeta {
            first_seq: first,
            end_seq: last.map_or(first, |l| l + 1),
            records: scan.records.len() as u64,
            bytes: scan.valid_end,
            index,
            sealed: true,
            known_corrupt: scan.corrupt > 0 || scan.bad_header,
        });
    }
    if changed_dir {
        ledger::sync_dir(dir).map_err(|e| shared.io("sync", dir, e))?;
    }
    let mut state = shared.lock();
    state.next_seq = max_seq.map_or(ledger_head, |m| (m + 1).max(ledger_head));
    state.head = ledger_head;
    state.disk_bytes = segments.iter().map(|s| s.bytes).sum();
    state.segments = segments;
    state.normalize_head();
    let corrupt = recovery.corrupt_records;
    shared.count_corrupt(&mut state, corrupt);
    recovery.entries = state.len();
    recovery.segments = state.segments.len();
    shared.metrics.queue_depth(&shared.name, recovery.entries);
    if recovery.entries > 0 || corrupt > 0 {
        tracing::info!(lane = %shared.name, entries = recovery.entries, segments = recovery.segments, corrupt, truncated_bytes = recovery.truncated_bytes, "outbox recovered");
    }
    Ok(recovery)
}
