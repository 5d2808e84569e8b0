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

/// What the writer does to a segment file: a trait so a test can put a file that fails in its
/// place (a failed fsync cannot be provoked on a healthy disk).
trait SegmentFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl SegmentFile for File {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Write::write_all(self, buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

struct Segment {
    number: u64,
    file: Box<dyn SegmentFile>,
    len: u64,
}

impl Segment {
    fn create(dir: &Path, number: u64) -> io::Result<Segment> {
        let path = segment_path(dir, number);
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let ready = Write::write_all(&mut file, &segment_header())
            .and_then(|()| file.sync_data())
            // Make the new file's directory entry durable too, or a crash could lose the whole
            // segment.
            .and_then(|()| File::open(dir)?.sync_all());
        if let Err(e) = ready {
            // Gone again, so a retry (once the disk has room) can create it anew.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(Segment {
            number,
            file: Box::new(file),
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
    /// Why the log stopped: an fsync failed. The kernel may have dropped the dirty pages it could
    /// not write and will report success for them next time (PostgreSQL's "fsyncgate"), so
    /// nothing written since the last good fsync can be trusted to be on disk, and no further
    /// append is acknowledged until a restart replays what the disk really holds.
    stopped: Option<String>,
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
        stopped: None,
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
        if let Some(why) = &self.stopped {
            fail(group, &io::Error::other(why.clone()));
            return;
        }
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
        if let Err(e) = self.segment.file.write_all(buf) {
            // A write that fails (a full disk) leaves the file as it was once cut back: the log
            // can go on when space returns.
            tracing::error!(error = %e, segment = self.segment.number, "write-ahead log write failed");
            if let Err(cut) = self.segment.file.set_len(self.segment.len) {
                // A torn group left in the file would sit between records and shift every later
                // one's offset: the log cannot go on.
                let why = format!(
                    "the write-ahead log stopped: a failed write could not be cut off segment {} ({cut}); nothing more is acknowledged until the server is restarted",
                    self.segment.number
                );
                tracing::error!(error = %cut, "{why}");
                self.stopped = Some(why);
            }
            fail(group, &e);
            return;
        }
        let synced = if self.options.fsync == FsyncPolicy::Always {
            self.sync()
        } else {
            self.unsynced = true;
            Ok(())
        };
        match synced {
            Ok(()) => {
                self.segment.len += buf.len() as u64;
                self.metrics.wal_bytes.inc_by(buf.len() as u64);
                self.metrics.wal_records.inc_by(group.len() as u64);
                for (p, location) in group.drain(..).zip(locations) {
                    let _ = p.ack.send(Ok(location));
                }
            }
            Err(e) => {
                // `sync` stopped the log; the group's bytes stay where they are (a restart's
                // replay reads what the disk holds, CRC-checked, and no client was told yes).
                fail(group, &e);
            }
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        self.segment = Segment::create(&self.dir, self.segment.number + 1)?;
        Ok(())
    }

    /// fsyncs the active segment; a failure stops the log (see [`Writer::stopped`]).
    fn sync(&mut self) -> io::Result<()> {
        if let Some(why) = &self.stopped {
            return Err(io::Error::other(why.clone()));
        }
        if let Err(e) = self.segment.file.sync_data() {
            let why = format!(
                "the write-ahead log stopped after an fsync of segment {} failed ({e}); nothing more is acknowledged until the server is restarted",
                self.segment.number
            );
            tracing::error!(error = %e, segment = self.segment.number, "write-ahead log fsync failed: the log is stopped until a restart");
            self.stopped = Some(why.clone());
            return Err(io::Error::other(why));
        }
        self.metrics.wal_fsyncs.inc();
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn sync_if_due(&mut self) {
        if let FsyncPolicy::Interval(interval) = self.options.fsync {
            if self.unsynced && self.last_sync.elapsed() >= interval {
                // A failure stops the log (logged in `sync`).
                let _ = self.sync();
            }
        }
    }
}

fn fail(group: &mut Vec<Pending>, error: &io::Error) {
    for p in group.drain(..) {
        let _ = p.ack.send(Err(AppendError::Io(error.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::sync::oneshot;

    use super::*;

    /// A segment file whose fsyncs fail once told to; with `fail_rest`, its writes (after half the
    /// bytes) and cuts fail too.
    struct Failing {
        inner: File,
        fail_syncs: Arc<AtomicBool>,
        fail_rest: Arc<AtomicBool>,
    }

    const EIO: i32 = 5;

    impl SegmentFile for Failing {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            if self.fail_rest.load(Ordering::SeqCst) {
                Write::write_all(&mut self.inner, &buf[..buf.len() / 2])?;
                return Err(io::Error::from_raw_os_error(EIO));
            }
            Write::write_all(&mut self.inner, buf)
        }
        fn sync_data(&self) -> io::Result<()> {
            if self.fail_syncs.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            self.inner.sync_data()
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            if self.fail_rest.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(EIO));
            }
            self.inner.set_len(len)
        }
    }

    fn writer(dir: &Path, fsync: FsyncPolicy) -> (Writer, Arc<AtomicBool>, Arc<AtomicBool>) {
        let mut segment = Segment::create(dir, 1).unwrap();
        let fail_syncs = Arc::new(AtomicBool::new(false));
        let fail_rest = Arc::new(AtomicBool::new(false));
        let inner = File::options()
            .append(true)
            .open(segment_path(dir, 1))
            .unwrap();
        segment.file = Box::new(Failing {
            inner,
            fail_syncs: fail_syncs.clone(),
            fail_rest: fail_rest.clone(),
        });
        let writer = Writer {
            dir: dir.to_path_buf(),
            options: WalOptions {
                fsync,
                ..WalOptions::default()
            },
            metrics: StoreMetrics::default(),
            segment,
            unsynced: false,
            last_sync: Instant::now(),
            stopped: None,
        };
        (writer, fail_syncs, fail_rest)
    }

    /// Commits one record; its acknowledgement.
    fn append(writer: &mut Writer) -> Result<RecordLocation, AppendError> {
        let (ack, answer) = oneshot::channel();
        let mut group = vec![Pending {
            payload: Bytes::from_static(b"span bytes"),
            ack,
        }];
        writer.commit(&mut group, &mut Vec::new());
        answer.blocking_recv().unwrap()
    }

    #[test]
    fn a_failed_fsync_stops_the_log_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, fail_syncs, _) = writer(dir.path(), FsyncPolicy::Always);
        assert!(append(&mut writer).is_ok());
        fail_syncs.store(true, Ordering::SeqCst);
        let refused = append(&mut writer).unwrap_err();
        assert!(refused.to_string().contains("fsync"), "{refused}");
        // The disk recovers, but what the kernel said it wrote cannot be trusted: still refused.
        fail_syncs.store(false, Ordering::SeqCst);
        let still = append(&mut writer).unwrap_err();
        assert!(still.to_string().contains("restarted"), "{still}");
    }

    #[test]
    fn a_failed_periodic_fsync_stops_the_log_too() {
        let dir = tempfile::tempdir().unwrap();
        let interval = std::time::Duration::from_millis(1);
        let (mut writer, fail_syncs, _) = writer(dir.path(), FsyncPolicy::Interval(interval));
        assert!(append(&mut writer).is_ok(), "acknowledged once written");
        fail_syncs.store(true, Ordering::SeqCst);
        std::thread::sleep(interval * 2);
        writer.sync_if_due();
        fail_syncs.store(false, Ordering::SeqCst);
        assert!(append(&mut writer).is_err());
    }

    #[test]
    fn a_torn_write_that_cannot_be_cut_off_stops_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, _, fail_rest) = writer(dir.path(), FsyncPolicy::Always);
        fail_rest.store(true, Ordering::SeqCst);
        assert!(append(&mut writer).is_err());
        fail_rest.store(false, Ordering::SeqCst);
        let refused = append(&mut writer).unwrap_err();
        assert!(
            refused.to_string().contains("could not be cut"),
            "{refused}"
        );
    }
}
