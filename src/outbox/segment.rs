//! Segment files: the header, the record framing, and the checked parser that recovery and
//! reads share. Format in the module doc of `outbox`.

use std::path::{Path, PathBuf};

pub const MAGIC: &[u8; 8] = b"SGOUTBOX";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: u64 = 16;
pub const RECORD_HEADER_BYTES: usize = 24;
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

pub fn header() -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

pub fn header_is_valid(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_BYTES as usize
        && &bytes[..8] == MAGIC
        && bytes[8..12] == VERSION.to_le_bytes()
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

pub fn path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(file_name(first_seq))
}

/// The first sequence number from a segment's file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends one framed record to `out`.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, time_ms: u64, payload: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record found in a buffer: its position there and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: usize,
    pub seq: u64,
    pub time_ms: u64,
    pub payload_len: usize,
}

impl Found {
    pub fn end(&self) -> usize {
        self.offset + RECORD_HEADER_BYTES + self.payload_len
    }
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.offset + RECORD_HEADER_BYTES..self.end()]
    }
}

/// What is at `offset` in `buf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Record(Found),
    /// The buffer ends inside the record (header or payload); `need` is its full size when known.
    Incomplete {
        need: Option<usize>,
    },
    /// Not a valid record: impossible length, bad CRC, or a sequence number not above `after`.
    Bad,
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Parses the record at `offset`; `after` is the sequence number it must exceed, if any.
pub fn parse_at(buf: &[u8], offset: usize, after: Option<u64>) -> At {
    let rest = buf.len().saturating_sub(offset);
    if rest < RECORD_HEADER_BYTES {
        return At::Incomplete { need: None };
    }
    let (Some(len), Some(crc), Some(seq), Some(time_ms)) = (
        u32_at(buf, offset),
        u32_at(buf, offset + 4),
        u64_at(buf, offset + 8),
        u64_at(buf, offset + 16),
    ) else {
        return At::Incomplete { need: None };
    };
    let len = len as usize;
    if len > MAX_RECORD_BYTES {
        return At::Bad;
    }
    if after.is_some_and(|a| seq <= a) {
        return At::Bad;
    }
    let total = RECORD_HEADER_BYTES + len;
    if rest < total {
        return At::Incomplete { need: Some(total) };
    }
    if crc32fast::hash(&buf[offset + 8..offset + total]) != crc {
        return At::Bad;
    }
    At::Record(Found {
        offset,
        seq,
        time_ms,
        payload_len: len,
    })
}

/// The first valid, complete record strictly after `from` whose sequence number exceeds `after`.
/// Cheap checks (length bound, sequence) run before the CRC, so a scan through garbage is fast.
pub fn resync(buf: &[u8], from: usize, after: Option<u64>) -> Option<Found> {
    let mut offset = from + 1;
    while offset + RECORD_HEADER_BYTES <= buf.len() {
        if let At::Record(found) = parse_at(buf, offset, after) {
            return Some(found);
        }
        offset += 1;
    }
    None
}

/// The result of scanning a whole segment.
#[derive(Debug, Default)]
pub struct Scan {
    /// Valid records, in order, as (sequence, offset, append time).
    pub records: Vec<(u64, u64, u64)>,
    /// Where the last valid record ends: everything after it is a torn or corrupt tail.
    pub valid_end: u64,
    /// Records skipped as corrupt (a lower bound).
    pub corrupt: u64,
    /// The header was missing or wrong: nothing in the file can be trusted.
    pub bad_header: bool,
}

/// Scans a segment read whole. `first_seq` is from its file name.
pub fn scan(buf: &[u8], first_seq: u64) -> Scan {
    let mut scan = Scan::default();
    if buf.len() < HEADER_BYTES as usize {
        // A crash while the segment was created: nothing was ever written to it.
        return scan;
    }
    // A damaged header does not damage the records: each carries its own CRC.
    scan.bad_header = !header_is_valid(buf);
    let mut offset = HEADER_BYTES as usize;
    // A record's sequence number must be at least the segment's first.
    let mut after: Option<u64> = first_seq.checked_sub(1);
    scan.valid_end = HEADER_BYTES;
    while offset < buf.len() {
        let found = match parse_at(buf, offset, after) {
            At::Record(found) => found,
            At::Incomplete { need: Some(_) } | At::Bad => match resync(buf, offset, after) {
                Some(found) => {
                    let expected = after.map_or(first_seq, |a| a + 1);
                    scan.corrupt += found.seq.saturating_sub(expected).max(1);
                    found
                }
                None => {
                    // Nothing valid after it: a torn tail if it runs past the end, otherwise a
                    // complete but corrupt last record.
                    if matches!(parse_at(buf, offset, after), At::Bad) {
                        scan.corrupt += 1;
                    }
                    break;
                }
            },
            At::Incomplete { need: None } => break,
        };
        scan.records
            .push((found.seq, found.offset as u64, found.time_ms));
        after = Some(found.seq);
        offset = found.end();
        scan.valid_end = offset as u64;
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut buf = header().to_vec();
        for (seq, payload) in records {
            encode_record(&mut buf, *seq, 1000 + seq, payload);
        }
        buf
    }

    fn seqs(scan: &Scan) -> Vec<u64> {
        scan.records.iter().map(|r| r.0).collect()
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let buf = segment(&[(5, b"a"), (6, b"bb"), (7, b"")]);
        let scan = scan(&buf, 5);
        assert_eq!(seqs(&scan), vec![5, 6, 7]);
        assert_eq!(scan.valid_end, buf.len() as u64);
        assert_eq!(scan.corrupt, 0);
    }

    #[test]
    fn every_truncation_keeps_the_complete_records_and_counts_nothing() {
        let buf = segment(&[(0, b"first"), (1, b"second"), (2, b"third")]);
        let ends: Vec<u64> = scan(&buf, 0).records.iter().map(|r| r.1).collect();
        for cut in HEADER_BYTES as usize..buf.len() {
            let scan = scan(&buf[..cut], 0);
            let complete = ends
                .iter()
                .skip(1)
                .chain(std::iter::once(&(buf.len() as u64)))
                .filter(|&&end| end as usize <= cut)
                .count();
            assert_eq!(scan.records.len(), complete, "cut at {cut}");
            assert_eq!(scan.corrupt, 0, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_skips_one_record_and_keeps_the_others() {
        let buf = segment(&[(0, b"first"), (1, b"second-record"), (2, b"third")]);
        let second = scan(&buf, 0).records[1].1 as usize;
        let third = scan(&buf, 0).records[2].1 as usize;
        for byte in second..third {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                let scan = scan(&bad, 0);
                assert_eq!(seqs(&scan), vec![0, 2], "byte {byte} bit {bit}");
                assert_eq!(scan.corrupt, 1, "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_damaged_header_is_reported_and_the_records_kept() {
        let mut buf = segment(&[(0, b"x"), (1, b"y")]);
        buf[0] = b'X';
        let scan = scan(&buf, 0);
        assert!(scan.bad_header);
        assert_eq!(seqs(&scan), vec![0, 1]);
        assert!(
            !super::scan(&buf[..7], 0).bad_header,
            "a torn header is empty"
        );
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_file_name(&file_name(52311)), Some(52311));
        assert_eq!(parse_file_name("ledger"), None);
        assert_eq!(parse_file_name("12.seg"), None);
    }
}
