//! The store keeps what it acknowledged across reopen, and cuts damaged tails instead of refusing to start.

use std::io::Write;

use bytes::Bytes;
use osprey_model::otlp::{ExportTraceServiceRequest, Resource, ResourceSpans, ScopeSpans, Span};
use osprey_model::TraceId;
use osprey_store::{Store, WalOptions};
use prost::Message;

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
        let (store, _) = Store::open(dir.path(), WalOptions::default()).unwrap();
        append(&store, &request(1, 3)).await;
        append(&store, &request(2, 2)).await;
    }
    let (store, report) = Store::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(report.records, 2);
    assert!(report.damaged.is_empty());
    let head = store.head();
    assert_eq!(head.span_count(), 5);
    let trace = head.trace(&TraceId([1; 16])).unwrap();
    assert_eq!(trace.span_count, 3);
    assert_eq!(head.spans(trace).count(), 3);
    let first = head.spans(trace).next().unwrap();
    let back = store.read_record(head.record(first.record)).unwrap();
    assert_eq!(back, request(1, 3));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open(dir.path(), WalOptions::default()).unwrap();
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
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(first)
        .unwrap()
        .write_all(&[0x10, 0, 0, 0, 1, 2, 3])
        .unwrap();
    let (store, report) = Store::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(report.records, 2);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].bytes_cut, 7);
    assert_eq!(store.head().span_count(), 2);
    // And the cut log keeps working.
    append(&store, &request(3, 1)).await;
    drop(store);
    let (store, report) = Store::open(dir.path(), WalOptions::default()).unwrap();
    assert!(report.damaged.is_empty());
    assert_eq!(store.head().span_count(), 3);
}
