//! Replay of existing segments on open, cutting any damaged tail.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader};
use std::path::Path;

use super::record::{self, Next, HEADER_LEN};
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
    /// The highest segment number found (0 when the log was empty).
    pub last_segment: u64,
}

fn segment_numbers(dir: &Path) -> io::Result<Vec<u64>> {
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

pub fn replay(
    dir: &Path,
    mut on_record: impl FnMut(RecordLocation, &[u8]),
) -> io::Result<ReplayReport> {
    let mut report = ReplayReport::default();
    for segment in segment_numbers(dir)? {
        report.segments += 1;
        report.last_segment = segment;
        let path = segment_path(dir, segment);
        let file_len = std::fs::metadata(&path)?.len();
        let mut reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
        let mut offset = 0u64;
        loop {
            match record::read_next(&mut reader)? {
                Next::Record(payload) => {
                    let location = RecordLocation {
                        segment,
                        offset: offset + HEADER_LEN,
                        len: payload.len() as u32,
                    };
                    on_record(location, &payload);
                    offset += HEADER_LEN + payload.len() as u64;
                    report.records += 1;
                }
                Next::End => break,
                Next::Damaged(reason) => {
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
                    break;
                }
            }
        }
        report.bytes += offset;
    }
    Ok(report)
}
