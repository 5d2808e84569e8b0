//! The on-disk format. A segment opens with `SEGMENT_MAGIC` and a format version (u32 LE), then holds
//! records `[payload length: u32 LE][CRC-32 (IEEE) of payload: u32 LE][payload]`.
//!
//! Length first so a reader can skip or bound a record before reading it; the checksum catches torn and
//! corrupted writes, which replay then cuts off.

use std::io::{self, Read};

pub const HEADER_LEN: u64 = 8;

/// The first bytes of every segment. As a little-endian length it would be over [`MAX_PAYLOAD`], so
/// a segment written before segments had a header (records from byte 0) is still told apart.
pub const SEGMENT_MAGIC: &[u8; 4] = b"OSPW";
pub const SEGMENT_VERSION: u32 = 1;
/// Magic and version.
pub const SEGMENT_HEADER_LEN: u64 = 8;

pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[..4].copy_from_slice(SEGMENT_MAGIC);
    header[4..].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header
}

/// Records larger than this are refused on write and treated as corruption on read (a garbage length
/// must not make replay allocate gigabytes).
pub const MAX_PAYLOAD: usize = 256 << 20;

pub fn header(payload: &[u8]) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

/// What reading at a record boundary found.
#[derive(Debug)]
pub enum Next {
    Record(Vec<u8>),
    /// Clean end of the segment.
    End,
    /// A partial or corrupt record: everything from here on is to be cut.
    Damaged(&'static str),
}

/// Reads as much of `buf` as the reader has; returns how many bytes that was.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub fn read_next(reader: &mut impl Read) -> io::Result<Next> {
    let mut header = [0u8; HEADER_LEN as usize];
    match read_full(reader, &mut header)? {
        0 => return Ok(Next::End),
        n if n < header.len() => return Ok(Next::Damaged("torn record header")),
        _ => {}
    }
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    if len > MAX_PAYLOAD {
        return Ok(Next::Damaged("record length out of range"));
    }
    // Nothing writes empty records; a zero header is what a file extended but never written (a crash
    // before its data reached the disk) reads as, and its checksum would pass.
    if len == 0 {
        return Ok(Next::Damaged("empty record (zero-filled tail)"));
    }
    let mut payload = vec![0u8; len];
    if read_full(reader, &mut payload)? < len {
        return Ok(Next::Damaged("torn record payload"));
    }
    if crc32fast::hash(&payload) != crc {
        return Ok(Next::Damaged("record checksum mismatch"));
    }
    Ok(Next::Record(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(&header(p));
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn reads_back_records_then_end() {
        let bytes = encoded(&[b"one", b"two", b"three"]);
        let mut reader = &bytes[..];
        for expected in [&b"one"[..], b"two", b"three"] {
            match read_next(&mut reader).unwrap() {
                Next::Record(p) => assert_eq!(p, expected),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(read_next(&mut reader).unwrap(), Next::End));
    }

    #[test]
    fn a_zero_filled_tail_is_damage() {
        let mut bytes = encoded(&[b"one"]);
        bytes.extend_from_slice(&[0; 64]);
        let mut reader = &bytes[..];
        assert!(matches!(read_next(&mut reader).unwrap(), Next::Record(_)));
        assert!(matches!(read_next(&mut reader).unwrap(), Next::Damaged(_)));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_detected() {
        let bytes = encoded(&[b"payload"]);
        for cut in 1..bytes.len() {
            let mut reader = &bytes[..cut];
            assert!(
                matches!(read_next(&mut reader).unwrap(), Next::Damaged(_)),
                "cut {cut}"
            );
        }
        for i in 4..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0x40;
            let mut reader = &flipped[..];
            assert!(
                matches!(read_next(&mut reader).unwrap(), Next::Damaged(_)),
                "flip {i}"
            );
        }
    }
}
