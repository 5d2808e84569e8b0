//! Replay of existing segments on open, cutting any damaged tail; and reading back whole segments
//! when a generation becomes a block.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::record::{self, Next, HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, SEGMENT_VERSION};
use super::{segment_path, RecordLocation};

/// A damaged tail that replay cut off.
#[derive(Debug, Clone)]
pub struct Damage {
    pub segment: u64,
    /// The segment was truncated to this length.
    pub offset: u64,
    pub bytes_cut: u64,
    pub reason: &'static str,
}

#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub damaged: Vec<Damage>,
    /// Segments deleted unread because blocks already hold them.
    pub segments_in_blocks: usize,
    /// The highest segment number found (0 when the log was empty).
    pub last_segment: u64,
}

pub(super) fn segment_numbers(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".wal").and_then(|n| n.parse().ok()) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// How a segment read ended.
enum End {
    Clean,
    Damaged(&'static str),
}

/// Hands every intact record of one segment to `on_record`; returns where the intact part ends.
fn read_segment(
    dir: &Path,
    segment: u64,
    on_record: &mut impl FnMut(RecordLocation, Vec<u8>),
) -> io::Result<(u64, End, u64)> {
    let path = segment_path(dir, segment);
    let mut reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
    let mut magic = [0u8; SEGMENT_HEADER_LEN as usize];
    let got = reader.read(&mut magic[..])?;
    let mut offset = if got == magic.len() && &magic[..4] == SEGMENT_MAGIC {
        let version = u32::from_le_bytes(magic[4..].try_into().expect("4 bytes"));
        if version != SEGMENT_VERSION {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "write-ahead log segment {segment}: format version {version} is not supported"
                ),
            ));
        }
        SEGMENT_HEADER_LEN
    } else {
        // A segment from before segments had a header: records from byte 0 (or a torn header,
        // which the record reader then reports as damage).
        reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
        0
    };
    let mut records = 0;
    loop {
        match record::read_next(&mut reader)? {
            Next::Record(payload) => {
                let location = RecordLocation {
                    segment,
                    offset: offset + HEADER_LEN,
                    len: payload.len() as u32,
                };
                offset += HEADER_LEN + payload.len() as u64;
                on_record(location, payload);
                records += 1;
            }
            Next::End => return Ok((offset, End::Clean, records)),
            Next::Damaged(reason) => return Ok((offset, End::Damaged(reason), records)),
        }
    }
}

/// Replays the log in `dir`. Segments up to `in_blocks_through` are already held by blocks: they are
/// deleted, not read.
pub fn replay(
    dir: &Path,
    in_blocks_through: u64,
    mut on_record: impl FnMut(RecordLocation, &[u8]),
) -> io::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for segment in segment_numbers(dir)? {
        report.last_segment = segment;
        if segment <= in_blocks_through {
            std::fs::remove_file(segment_path(dir, segment))?;
            report.segments_in_blocks += 1;
            continue;
        }
        report.segments += 1;
        let path = segment_path(dir, segment);
        let file_len = std::fs::metadata(&path)?.len();
        let (offset, end, records) = read_segment(dir, segment, &mut |location, payload| {
            on_record(location, &payload)
        })?;
        report.records += records;
        if let End::Damaged(reason) = end {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(offset)?;
            report.damaged.push(Damage {
                segment,
                offset,
                bytes_cut: file_len - offset,
                reason,
            });
        }
        report.bytes += offset;
    }
    Ok(report)
}

/// Reads every record of segments `first..=last` that exist (closed segments: replay already cut
/// their damage, and the writer has moved on from them).
pub fn read_segments(
    dir: &Path,
    first: u64,
    last: u64,
    mut on_record: impl FnMut(RecordLocation, Vec<u8>),
) -> io::Result<()> {
    for segment in segment_numbers(dir)? {
        if (first..=last).contains(&segment) {
            read_segment(dir, segment, &mut on_record)?;
        }
    }
    Ok(())
}
