//! The write-ahead log: every accepted export is appended here, and acknowledged only once durable.
//!
//! The log is a directory of numbered segment files (`00000000000000000001.wal`, …) of checksummed
//! records. One writer thread owns the active segment and commits in groups: it takes every append that
//! is waiting, writes them in one `write`, syncs once, then acknowledges them all, so an fsync's cost is
//! shared by all concurrent clients. On open, existing segments are replayed and a damaged tail is cut.
//!
//! When a head generation is cut, the log is rotated: the generation owns every segment before the new
//! one, and they are removed once its block is durable.

mod record;
mod replay;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::metrics::StoreMetrics;
pub use record::{header as record_header, segment_header};
pub use replay::{read_segments, replay, Damage, ReplayReport};

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync before acknowledging (group commit). Nothing acknowledged is lost on power failure.
    Always,
    /// Acknowledge once written to the OS, fsync at this interval: a crash of the machine (not of the
    /// process) can lose up to one interval of acknowledged data.
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Appends waiting for the writer beyond this number are refused with [`AppendError::Full`].
    pub queue_len: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            fsync: FsyncPolicy::Always,
            segment_bytes: 128 << 20,
            queue_len: 1024,
        }
    }
}

/// Where a record's payload lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordLocation {
    pub segment: u64,
    /// Byte offset of the payload (after the record header) in the segment file.
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the write-ahead log queue is full")]
    Full,
    #[error("blocks are being written more slowly than spans arrive")]
    BlocksBehind,
    #[error("record of {0} bytes exceeds the write-ahead log's record limit")]
    TooLarge(usize),
    #[error("an empty record cannot be told from a zero-filled tail, so none is written")]
    Empty,
    #[error("write-ahead log I/O error: {0}")]
    Io(String),
    #[error("the write-ahead log is closed")]
    Closed,
}

/// What the writer thread is asked to do, in order.
enum Command {
    Append(Pending),
    /// Close the active segment and start the next; answers the new segment's number.
    Rotate(oneshot::Sender<io::Result<u64>>),
}

struct Pending {
    payload: Bytes,
    ack: oneshot::Sender<Result<RecordLocation, AppendError>>,
}

pub struct Wal {
    dir: PathBuf,
    queue: mpsc::SyncSender<Command>,
    readers: Mutex<HashMap<u64, Arc<File>>>,
}

/// Where segment `segment` of the log in `dir` lives.
pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.wal"))
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, deletes the segments up to `in_blocks_through`
    /// (blocks hold them), hands every intact record of the rest to `on_record` in write order, cuts
    /// damaged tails, and starts the writer on a fresh segment.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        metrics: StoreMetrics,
        in_blocks_through: u64,
        on_record: impl FnMut(RecordLocation, &[u8]),
    ) -> io::Result<(Wal, ReplayReport)> {
        std::fs::create_dir_all(dir)?;
        let report = replay::replay(dir, in_blocks_through, on_record)?;
        let (queue, pending) = mpsc::sync_channel(options.queue_len.max(1));
        writer::start(
            dir,
            report.last_segment.max(in_blocks_through) + 1,
            options,
            metrics,
            pending,
        )?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            queue,
            readers: Mutex::new(HashMap::new()),
        };
        Ok((wal, report))
    }

    /// Appends one record; resolves once it is durable per the fsync policy.
    pub async fn append(&self, payload: Bytes) -> Result<RecordLocation, AppendError> {
        if payload.len() > record::MAX_PAYLOAD {
            return Err(AppendError::TooLarge(payload.len()));
        }
        if payload.is_empty() {
            return Err(AppendError::Empty);
        }
        let (ack, acked) = oneshot::channel();
        match self
            .queue
            .try_send(Command::Append(Pending { payload, ack }))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(AppendError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(AppendError::Closed),
        }
        acked.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Closes the active segment and starts the next; returns the new segment's number. Every append
    /// acknowledged before this returns lies in an earlier segment.
    pub async fn rotate(&self) -> io::Result<u64> {
        let (reply, answer) = oneshot::channel();
        let mut command = Command::Rotate(reply);
        // The queue may be full of appends; a rotation waits its turn rather than failing.
        loop {
            match self.queue.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Full(c)) => {
                    command = c;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(io::Error::other("the write-ahead log is closed"))
                }
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("the write-ahead log is closed")))
    }

    /// Deletes the segments numbered `first..end` (their records are in durable blocks).
    pub fn remove_segments(&self, first: u64, end: u64) -> io::Result<()> {
        self.readers.lock().retain(|s, _| !(first..end).contains(s));
        for number in replay::segment_numbers(&self.dir)? {
            if (first..end).contains(&number) {
                std::fs::remove_file(segment_path(&self.dir, number))?;
            }
        }
        File::open(&self.dir)?.sync_all()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads one record's payload back.
    pub fn read(&self, location: RecordLocation) -> io::Result<Vec<u8>> {
        let file = {
            let mut readers = self.readers.lock();
            match readers.get(&location.segment) {
                Some(file) => file.clone(),
                None => {
                    let file = Arc::new(File::open(segment_path(&self.dir, location.segment))?);
                    readers.insert(location.segment, file.clone());
                    file
                }
            }
        };
        let mut payload = vec![0u8; location.len as usize];
        file.read_exact_at(&mut payload, location.offset)?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, options: WalOptions) -> (Wal, Vec<Vec<u8>>) {
        let mut replayed = Vec::new();
        let (wal, _) = Wal::open(dir, options, StoreMetrics::default(), 0, |_, payload| {
            replayed.push(payload.to_vec())
        })
        .unwrap();
        (wal, replayed)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tiny_segments_rotate_and_replay_in_write_order() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            segment_bytes: 100,
            ..WalOptions::default()
        };
        let payloads: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 40]).collect();
        let (wal, _) = open(dir.path(), options.clone());
        let mut segments = Vec::new();
        for payload in &payloads {
            let location = wal.append(Bytes::from(payload.clone())).await.unwrap();
            assert_eq!(wal.read(location).unwrap(), *payload);
            segments.push(location.segment);
        }
        assert!(segments.windows(2).all(|w| w[0] <= w[1]), "{segments:?}");
        assert!(
            segments.last() > segments.first(),
            "{segments:?}: no rotation"
        );
        drop(wal);
        let (_, replayed) = open(dir.path(), options);
        assert_eq!(replayed, payloads);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_queue_refuses_at_once_and_loses_nothing_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let options = WalOptions {
            queue_len: 1,
            ..WalOptions::default()
        };
        let (wal, _) = open(dir.path(), options.clone());
        let results = futures::future::join_all(
            (0..200u32).map(|i| wal.append(Bytes::from(i.to_le_bytes().to_vec()))),
        )
        .await;
        let full = results
            .iter()
            .filter(|r| matches!(r, Err(AppendError::Full)))
            .count();
        let acknowledged: Vec<Vec<u8>> = results
            .iter()
            .zip(0..200u32)
            .filter(|(r, _)| r.is_ok())
            .map(|(_, i)| i.to_le_bytes().to_vec())
            .collect();
        assert!(
            full > 0,
            "an fsync per group and room for one: some must be refused"
        );
        assert_eq!(full + acknowledged.len(), 200, "{results:?}");
        drop(wal);
        let (_, mut replayed) = open(dir.path(), options);
        replayed.sort();
        let mut expected = acknowledged;
        expected.sort();
        assert_eq!(replayed, expected);
    }
}
