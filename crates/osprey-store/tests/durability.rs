//! The store keeps what it acknowledged across reopen, and cuts damaged tails instead of refusing to start.

use std::io::Write;

use bytes::Bytes;
use osprey_model::otlp::span::{Event, Link};
use osprey_model::otlp::{ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceId;
use osprey_store::{OpenReport, SpanSource, Store, StoreOptions};
use prost::Message;

/// One export of `spans` under an empty resource.
fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource::default()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn request(trace: u8, spans: u8) -> ExportTraceServiceRequest {
    let spans = (1..=spans)
        .map(|i| Span {
            trace_id: vec![trace; 16],
            span_id: vec![i; 8],
            name: format!("op-{i}"),
            start_time_unix_nano: 1_000 * i as u64,
            end_time_unix_nano: 2_000 * i as u64,
            ..Default::default()
        })
        .collect();
    export(spans)
}

/// The store of `dir` with the default options.
async fn open(dir: &tempfile::TempDir) -> (Store, OpenReport) {
    Store::open(dir.path(), StoreOptions::default())
        .await
        .unwrap()
}

async fn append(store: &Store, request: &ExportTraceServiceRequest) {
    store
        .append(request, Bytes::from(request.encode_to_vec()))
        .await
        .unwrap();
}

#[tokio::test]
async fn acknowledged_records_survive_reopen_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(&dir).await;
        append(&store, &request(1, 3)).await;
        append(&store, &request(2, 2)).await;
    }
    let (store, report) = open(&dir).await;
    assert_eq!(report.replay.records, 2);
    assert!(report.replay.damaged.is_empty());
    assert_eq!(store.head_span_count(), 5);
    assert_eq!(trace_of(&store, 1), request(1, 3).resource_spans);
}

/// Trace `id` as the store's sources hold it, pieces in source order.
fn trace_of(store: &Store, id: u8) -> Vec<ResourceSpans> {
    store
        .sources()
        .iter()
        .flat_map(|s| s.trace(&TraceId([id; 16])).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_moves_the_head_into_a_block_and_a_restart_replays_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let saved = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(&dir).await;
        append(&store, &request(1, 3)).await;
        // Keep a copy of the log as it was before the cut, as if the cut's removal never happened.
        for entry in std::fs::read_dir(&wal_dir).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, saved.path().join(path.file_name().unwrap())).unwrap();
        }
        store.flush().await.unwrap();
        assert_eq!(store.head_span_count(), 0);
        assert_eq!(store.blocks().len(), 1);
        append(&store, &request(2, 2)).await;
        let trace = tokio::task::block_in_place(|| trace_of(&store, 1));
        assert_eq!(trace, request(1, 3).resource_spans);
    }
    // A crash between the block's meta and the log's removal: the old segments are back.
    for entry in std::fs::read_dir(saved.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, wal_dir.join(path.file_name().unwrap())).unwrap();
    }
    let (store, report) = open(&dir).await;
    assert_eq!(report.blocks, 1);
    assert_eq!(report.replay.segments_in_blocks, 1);
    assert_eq!(store.head_span_count(), 2, "only trace 2 is replayed");
    let (one, two) = tokio::task::block_in_place(|| (trace_of(&store, 1), trace_of(&store, 2)));
    assert_eq!(one, request(1, 3).resource_spans, "once, from the block");
    assert_eq!(two, request(2, 2).resource_spans);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(&dir).await;
        append(&store, &request(1, 1)).await;
        append(&store, &request(2, 1)).await;
    }
    // Simulate a crash mid-write: garbage after the last complete record of the newest segment.
    let wal_dir = dir.path().join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let first = segments
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 8)
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(first)
        .unwrap()
        .write_all(&[0x10, 0, 0, 0, 1, 2, 3])
        .unwrap();
    let (store, report) = open(&dir).await;
    assert_eq!(report.replay.records, 2);
    assert_eq!(report.replay.damaged.len(), 1);
    assert_eq!(report.replay.damaged[0].bytes_cut, 7);
    assert_eq!(store.head_span_count(), 2);
    // And the cut log keeps working.
    append(&store, &request(3, 1)).await;
    drop(store);
    let (store, report) = open(&dir).await;
    assert!(report.replay.damaged.is_empty());
    assert_eq!(store.head_span_count(), 3);
}

/// Copies every file below `from` into `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_merges_blocks_and_a_crash_before_deleting_inputs_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let blocks_dir = dir.path().join("blocks");
    {
        let (store, _) = open(&dir).await;
        // Three cuts; trace 1 is sent again in the second (a client retry).
        for batch in [
            vec![request(1, 3)],
            vec![request(1, 3), request(2, 2)],
            vec![request(3, 1)],
        ] {
            for r in &batch {
                append(&store, r).await;
            }
            store.flush().await.unwrap();
        }
        assert_eq!(store.blocks().len(), 3);
        copy_tree(&blocks_dir, saved.path());
        assert!(store.compact_once().await.unwrap());
        assert!(
            !store.compact_once().await.unwrap(),
            "nothing left to merge"
        );
        let blocks = store.blocks();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].meta.compaction_level, 1);
        assert_eq!(
            blocks[0].meta.span_count, 6,
            "the retried trace is kept once"
        );
        let one = tokio::task::block_in_place(|| trace_of(&store, 1));
        assert_eq!(one, request(1, 3).resource_spans);
    }
    // A crash after the merged block was written but before its inputs were deleted.
    copy_tree(saved.path(), &blocks_dir);
    let (store, report) = open(&dir).await;
    assert_eq!(report.blocks, 1, "the inputs are ignored (and deleted)");
    assert_eq!(store.head_span_count(), 0);
    let (one, two) = tokio::task::block_in_place(|| (trace_of(&store, 1), trace_of(&store, 2)));
    assert_eq!(one, request(1, 3).resource_spans);
    assert_eq!(two, request(2, 2).resource_spans);
    let left: Vec<_> = std::fs::read_dir(blocks_dir.join("single-tenant/blocks"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 1);
}

/// Spans `first..first + count` of each of `traces` traces (ids 1..=traces as big-endian u32), one
/// export; span `n` starts at `n` µs.
fn spans_of_traces(traces: u32, first: u32, count: u32) -> ExportTraceServiceRequest {
    let trace_id = |t: u32| {
        let mut id = [0u8; 16];
        id[12..].copy_from_slice(&t.to_be_bytes());
        id.to_vec()
    };
    let spans = (1..=traces)
        .flat_map(|t| {
            (first..first + count).map(move |n| Span {
                trace_id: trace_id(t),
                span_id: (u64::from(t) << 32 | u64::from(n)).to_be_bytes().to_vec(),
                name: format!("op-{n}"),
                start_time_unix_nano: 1_000 * u64::from(n),
                end_time_unix_nano: 1_000 * u64::from(n) + 500,
                ..Default::default()
            })
        })
        .collect();
    export(spans)
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_streams_traces_split_across_blocks_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir).await;
    // 1,500 traces, each cut into three blocks of 3 spans (4,500 rows a block, so merged batches end
    // inside traces); the third block repeats the first block's spans too.
    const TRACES: u32 = 1_500;
    for (first, again) in [(0, None), (3, None), (6, Some(0))] {
        append(&store, &spans_of_traces(TRACES, first, 3)).await;
        if let Some(again) = again {
            append(&store, &spans_of_traces(TRACES, again, 3)).await;
        }
        store.flush().await.unwrap();
    }
    assert_eq!(store.blocks().len(), 3);
    assert!(store.compact_once().await.unwrap());
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].meta.span_count, u64::from(TRACES) * 9);
    assert_eq!(blocks[0].meta.trace_count, u64::from(TRACES));
    // The first, a middle and the last trace, and those around each data page's end (4,096 rows a
    // page; 9 rows a trace): a lookup reads only the pages the page index says hold the trace.
    let at_page_ends = (1..=3u32).flat_map(|page| {
        let t = page * 4096 / 9 + 1;
        [t - 1, t, t + 1]
    });
    for t in [1u32, 700, 1_500].into_iter().chain(at_page_ends) {
        let mut id = [0u8; 16];
        id[12..].copy_from_slice(&t.to_be_bytes());
        let pieces = tokio::task::block_in_place(|| {
            store
                .sources()
                .iter()
                .flat_map(|s| s.trace(&TraceId(id)).unwrap())
                .collect::<Vec<_>>()
        });
        let starts: Vec<u64> = pieces
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.start_time_unix_nano)
            .collect();
        assert_eq!(
            starts,
            (0..9).map(|n| 1_000 * n).collect::<Vec<_>>(),
            "trace {t}: every span once, in start order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_two_row_groups_scans_see_whole_traces_and_lookups_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir).await;
    // 66,600 rows of 9-span traces: the trace holding row 65,536 runs on past it, so the first row
    // group ends at row 65,538 and must still reach a scan as one piece.
    const TRACES: u32 = 7_400;
    let mut sent = spans_of_traces(TRACES, 0, 9);
    // An event and a link in the first row group only: a lookup in the second leaves those columns
    // out (no value there) and must still give back what was sent, as a lookup in the first must.
    let spans = &mut sent.resource_spans[0].scope_spans[0].spans;
    spans[0].events.push(Event {
        name: "retry".into(),
        time_unix_nano: 7,
        ..Default::default()
    });
    spans[0].links.push(Link {
        trace_id: vec![9; 16],
        span_id: vec![9; 8],
        ..Default::default()
    });
    let (first, last) = (spans[0].clone(), spans[spans.len() - 1].clone());
    append(&store, &sent).await;
    store.flush().await.unwrap();
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].meta.row_groups, 2);
    for span in [first, last] {
        let id = TraceId::from_bytes(&span.trace_id).unwrap();
        let found: Vec<Span> = tokio::task::block_in_place(|| blocks[0].trace(&id))
            .unwrap()
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .filter(|s| s.span_id == span.span_id)
            .collect();
        assert_eq!(found, [span]);
    }
    let mut pieces: std::collections::HashMap<TraceId, Vec<usize>> = Default::default();
    tokio::task::block_in_place(|| {
        for source in store.sources() {
            source
                .scan(0, u64::MAX, &mut |id, spans| {
                    pieces.entry(*id).or_default().push(spans.len())
                })
                .unwrap();
        }
    });
    assert_eq!(pieces.len(), TRACES as usize);
    let split: Vec<_> = pieces.iter().filter(|(_, p)| **p != [9]).collect();
    assert!(split.is_empty(), "traces seen in pieces: {split:?}");
}

/// A kill during a cut leaves a block directory without `meta.json`: ignored while it may still be
/// being written, deleted once it is [`ABANDONED_AFTER`] old.
#[tokio::test(flavor = "multi_thread")]
async fn an_abandoned_incomplete_block_is_deleted_once_old_enough() {
    use osprey_store::retention::{remove_abandoned_blocks, ABANDONED_AFTER};
    let dir = tempfile::tempdir().unwrap();
    let incomplete = dir
        .path()
        .join("blocks/single-tenant/blocks/01abandoned0000000000000000000000");
    std::fs::create_dir_all(&incomplete).unwrap();
    std::fs::write(incomplete.join("data.parquet"), b"PAR1 half an upload").unwrap();

    let (store, report) = open(&dir).await;
    assert_eq!(report.incomplete_blocks.len(), 1, "a fresh one is kept");
    assert!(incomplete.exists());
    drop(store);

    let storage =
        osprey_store::ObjectStorage::open(dir.path().join("blocks").to_str().unwrap()).unwrap();
    let ids = report.incomplete_blocks.clone();
    assert!(
        remove_abandoned_blocks(&storage, "single-tenant", &ids, ABANDONED_AFTER)
            .await
            .is_empty(),
        "younger than the grace period: kept"
    );
    assert!(incomplete.join("data.parquet").exists());
    let removed =
        remove_abandoned_blocks(&storage, "single-tenant", &ids, std::time::Duration::ZERO).await;
    assert_eq!(removed, ids);
    assert!(!incomplete.join("data.parquet").exists());
    let (_, report) = open(&dir).await;
    assert!(report.incomplete_blocks.is_empty());
}
