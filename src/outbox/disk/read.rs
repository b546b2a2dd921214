//! Reading a backlog from the segment files: runs on the blocking pool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::de::DeserializeOwned;

use super::{segment, READ_CHUNK};

/// One segment to read from: where to start, and its valid length when the read was planned.
pub(super) struct SegRead {
    pub(super) path: PathBuf,
    pub(super) first_seq: u64,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) known_corrupt: bool,
}

pub(super) struct ReadOutcome<T> {
    pub(super) entries: Vec<(u64, u64, T)>,
    pub(super) corrupt: u64,
    pub(super) corrupt_segments: Vec<u64>,
    pub(super) errors: Vec<io::Error>,
    /// The read went through every planned segment up to `limit`.
    pub(super) complete: bool,
}

impl<T> Default for ReadOutcome<T> {
    fn default() -> Self {
        ReadOutcome {
            entries: Vec::new(),
            corrupt: 0,
            corrupt_segments: Vec::new(),
            errors: Vec::new(),
            complete: false,
        }
    }
}

/// Reads and decodes up to `n` entries with `head <= seq < limit`, in order. Runs on the
/// blocking pool.
pub(super) fn read_plan<T: DeserializeOwned>(
    plan: &[SegRead],
    head: u64,
    limit: u64,
    n: usize,
) -> ReadOutcome<T> {
    let mut out = ReadOutcome::default();
    let mut after: Option<u64> = head.checked_sub(1);
    for seg in plan {
        let mut corrupt_here = 0u64;
        match read_segment(seg, head, limit, n, &mut after, &mut out, &mut corrupt_here) {
            Ok(true) => {}
            Ok(false) => {
                if corrupt_here > 0 {
                    out.corrupt_segments.push(seg.first_seq);
                    if !seg.known_corrupt {
                        out.corrupt += corrupt_here;
                    }
                }
                return out;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // dropped meanwhile
            Err(e) => {
                out.errors.push(e);
                return out;
            }
        }
        if corrupt_here > 0 {
            out.corrupt_segments.push(seg.first_seq);
            if !seg.known_corrupt {
                out.corrupt += corrupt_here;
            }
        }
    }
    out.complete = true;
    out
}

/// Reads one segment; `Ok(false)` when the batch is full or `limit` was reached.
fn read_segment<T: DeserializeOwned>(
    seg: &SegRead,
    head: u64,
    limit: u64,
    n: usize,
    after: &mut Option<u64>,
    out: &mut ReadOutcome<T>,
    corrupt: &mut u64,
) -> io::Result<bool> {
    let mut file = File::open(&seg.path)?;
    let mut offset = seg.start;
    let mut chunk = READ_CHUNK;
    let mut buf = Vec::new();
    while offset < seg.end {
        let len = (seg.end - offset).min(chunk as u64) as usize;
        buf.resize(len, 0);
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut buf)?;
        let mut pos = 0usize;
        // Records before the head are read only to move past them: any sequence is fine there.
        let mut expect_after = if offset == seg.start { None } else { *after };
        loop {
            if pos >= buf.len() {
                break;
            }
            let remaining = seg.end - (offset + pos as u64);
            let at = match segment::parse_at(&buf, pos, expect_after) {
                // A length that runs past the valid end of the segment is a corrupt length.
                segment::At::Incomplete { need: Some(need) } if need as u64 > remaining => {
                    segment::At::Bad
                }
                at => at,
            };
            let found = match at {
                segment::At::Record(f) => f,
                segment::At::Incomplete { need } => {
                    if (buf.len() - pos) as u64 >= remaining {
                        // The planned end cuts a record header: the file changed under us.
                        return Ok(true);
                    }
                    if let Some(need) = need {
                        chunk = chunk.max(need);
                    }
                    break; // read on from this record
                }
                segment::At::Bad => match segment::resync(&buf, pos, expect_after) {
                    Some(f) => {
                        *corrupt += match expect_after {
                            Some(a) => f.seq.saturating_sub(a + 1).max(1),
                            None => 1,
                        };
                        f
                    }
                    None if offset + (buf.len() as u64) < seg.end => {
                        // The next good record may lie past this chunk: read the rest whole.
                        chunk = (seg.end - offset - pos as u64) as usize;
                        break;
                    }
                    None => {
                        *corrupt += 1;
                        return Ok(true);
                    }
                },
            };
            pos = found.end();
            expect_after = Some(found.seq);
            if found.seq < head {
                continue;
            }
            if found.seq >= limit {
                return Ok(false);
            }
            *after = Some(found.seq);
            match serde_json::from_slice::<T>(found.payload(&buf)) {
                Ok(item) => out.entries.push((found.seq, found.time_ms, item)),
                Err(e) => {
                    tracing::error!(seq = found.seq, error = %e, "outbox entry does not decode; skipped");
                    *corrupt += 1;
                }
            }
            if out.entries.len() >= n {
                return Ok(false);
            }
        }
        offset += pos as u64;
    }
    Ok(true)
}
