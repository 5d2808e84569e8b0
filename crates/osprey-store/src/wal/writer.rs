//! The writer thread: group commit into the active segment.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::record::{header, segment_header, HEADER_LEN, SEGMENT_HEADER_LEN};
use super::{segment_path, AppendError, Command, FsyncPolicy, Pending, RecordLocation, WalOptions};
use crate::metrics::StoreMetrics;

/// How many bytes one group commit gathers at most before writing.
const GROUP_BYTES: usize = 16 << 20;

struct Segment {
    number: u64,
    file: File,
    len: u64,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> io::Result<Segment> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(segment_path(dir, number))?;
        file.write_all(&segment_header())?;
        file.sync_data()?;
        // Make the new file's directory entry durable too, or a crash could lose the whole segment.
        File::open(dir)?.sync_all()?;
        Ok(Segment {
            number,
            file,
            len: SEGMENT_HEADER_LEN,
        })
    }
}

struct Writer {
    dir: PathBuf,
    options: WalOptions,
    metrics: StoreMetrics,
    segment: Segment,
    /// Written but not yet fsynced (only under [`FsyncPolicy::Interval`]).
    unsynced: bool,
    last_sync: Instant,
}

pub(super) fn start(
    dir: &Path,
    first_segment: u64,
    options: WalOptions,
    metrics: StoreMetrics,
    pending: Receiver<Command>,
) -> io::Result<()> {
    let segment = Segment::create(dir, first_segment)?;
    let mut writer = Writer {
        dir: dir.to_path_buf(),
        options,
        metrics,
        segment,
        unsynced: false,
        last_sync: Instant::now(),
    };
    std::thread::Builder::new()
        .name("osprey-wal".into())
        .spawn(move || writer.run(pending))?;
    Ok(())
}

impl Writer {
    fn run(&mut self, pending: Receiver<Command>) {
        let mut group: Vec<Pending> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let command = match self.options.fsync {
                FsyncPolicy::Always => match pending.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
                FsyncPolicy::Interval(interval) => match pending.recv_timeout(interval) {
                    Ok(c) => c,
                    Err(RecvTimeoutError::Timeout) => {
                        self.sync_if_due();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = self.sync();
                        return;
                    }
                },
            };
            let mut rotate = None;
            match command {
                Command::Append(first) => {
                    let mut bytes = first.payload.len();
                    group.push(first);
                    while bytes < GROUP_BYTES {
                        match pending.try_recv() {
                            Ok(Command::Append(p)) => {
                                bytes += p.payload.len();
                                group.push(p);
                            }
                            // Commit what came before, then rotate: order is kept.
                            Ok(Command::Rotate(reply)) => {
                                rotate = Some(reply);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(&mut group, &mut buf);
                }
                Command::Rotate(reply) => rotate = Some(reply),
            }
            if let Some(reply) = rotate {
                let _ = reply.send(self.rotate().map(|()| self.segment.number));
            }
            self.sync_if_due();
        }
    }

    fn commit(&mut self, group: &mut Vec<Pending>, buf: &mut Vec<u8>) {
        let group_len: u64 = group
            .iter()
            .map(|p| HEADER_LEN + p.payload.len() as u64)
            .sum();
        if self.segment.len > SEGMENT_HEADER_LEN
            && self.segment.len + group_len > self.options.segment_bytes
        {
            if let Err(e) = self.rotate() {
                fail(group, &e);
                return;
            }
        }
        buf.clear();
        let mut locations = Vec::with_capacity(group.len());
        for p in group.iter() {
            buf.extend_from_slice(&header(&p.payload));
            locations.push(RecordLocation {
                segment: self.segment.number,
                offset: self.segment.len + buf.len() as u64,
                len: p.payload.len() as u32,
            });
            buf.extend_from_slice(&p.payload);
        }
        let written = self.segment.file.write_all(buf).and_then(|()| {
            if self.options.fsync == FsyncPolicy::Always {
                self.sync()
            } else {
                self.unsynced = true;
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.segment.len += buf.len() as u64;
                self.metrics.wal_bytes.inc_by(buf.len() as u64);
                self.metrics.wal_records.inc_by(group.len() as u64);
                for (p, location) in group.drain(..).zip(locations) {
                    let _ = p.ack.send(Ok(location));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, segment = self.segment.number, "write-ahead log write failed");
                // Cut whatever part of the group reached the file, so the segment ends on a record boundary.
                let _ = self.segment.file.set_len(self.segment.len);
                fail(group, &e);
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        self.segment = Segment::create(&self.dir, self.segment.number + 1)?;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.segment.file.sync_data()?;
        self.metrics.wal_fsyncs.inc();
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync_if_due(&mut self) {
        if let FsyncPolicy::Interval(interval) = self.options.fsync {
            if self.unsynced && self.last_sync.elapsed() >= interval {
                if let Err(e) = self.sync() {
                    tracing::error!(error = %e, "write-ahead log fsync failed");
                }
            }
        }
    }
}

fn fail(group: &mut Vec<Pending>, error: &io::Error) {
    for p in group.drain(..) {
        let _ = p.ack.send(Err(AppendError::Io(error.to_string())));
    }
}
