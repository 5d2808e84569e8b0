//! `meta.json`: what a block holds, small enough to list every block of a tenant at start-up and to
//! prune blocks before opening them. Written last: a block without it is incomplete and never read.

use serde::{Deserialize, Serialize};

/// The block format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub service: String,
    pub name: String,
    /// OTLP span kind (0–5).
    pub kind: u8,
}

/// Which write-ahead log segments of which server a block was cut from, so that a restart replays
/// only segments no block holds yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalSource {
    /// The writing server's id (`node-id` in its data directory).
    pub node: String,
    pub first_segment: u64,
    pub last_segment: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub format_version: u32,
    pub block_id: String,
    pub tenant: String,
    /// Earliest span start.
    pub start_unix_nano: u64,
    /// Latest span end.
    pub end_unix_nano: u64,
    pub span_count: u64,
    pub trace_count: u64,
    pub services: Vec<String>,
    pub operations: Vec<Operation>,
    /// Size of `data.parquet`.
    pub data_bytes: u64,
    /// Size of `trace-index`.
    pub index_bytes: u64,
    pub row_groups: u32,
    pub created_unix_nano: u64,
    /// 0 when cut from the head; one more than its inputs' highest when made by compaction.
    pub compaction_level: u32,
    /// Log segments this block holds, when cut from a head (compaction keeps its inputs').
    #[serde(default)]
    pub wal: Vec<WalSource>,
    /// The blocks this one was compacted from. While they still exist (a crash between writing this
    /// block and deleting them) readers ignore them, so no span is counted twice.
    #[serde(default)]
    pub replaces: Vec<String>,
}
