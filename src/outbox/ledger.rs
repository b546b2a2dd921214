//! The ledger: the confirmed position of a lane, replaced atomically (temp file + rename).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"SGLEDGR1";
pub const FILE: &str = "ledger";
pub const TEMP: &str = "ledger.tmp";
const BYTES: usize = 20;

pub fn encode(head: u64) -> [u8; BYTES] {
    let mut out = [0u8; BYTES];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&head.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != BYTES || &bytes[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
    if crc32fast::hash(&bytes[..16]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// What the ledger file says.
pub enum Read {
    Missing,
    Head(u64),
    Unreadable,
}

pub fn read(dir: &Path) -> io::Result<Read> {
    match fs::read(dir.join(FILE)) {
        Ok(bytes) => Ok(decode(&bytes).map_or(Read::Unreadable, Read::Head)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(e),
    }
}

/// Writes the temp file and renames it over the ledger, without fsync: durable against a
/// process crash at once, against power loss after [`sync`].
pub fn replace(dir: &Path, head: u64) -> io::Result<()> {
    let temp = dir.join(TEMP);
    let mut file = File::create(&temp)?;
    file.write_all(&encode(head))?;
    drop(file);
    fs::rename(&temp, dir.join(FILE))
}

/// Forces the ledger and the directory entry of its last rename to stable storage.
pub fn sync(dir: &Path) -> io::Result<()> {
    match File::open(dir.join(FILE)) {
        Ok(file) => file.sync_all()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_any_flipped_bit() {
        let bytes = encode(123_456_789);
        assert_eq!(decode(&bytes), Some(123_456_789));
        for byte in 0..BYTES {
            for bit in 0..8 {
                let mut bad = bytes;
                bad[byte] ^= 1 << bit;
                assert_eq!(decode(&bad), None, "byte {byte} bit {bit}");
            }
        }
        assert_eq!(decode(&bytes[..19]), None);
    }
}
