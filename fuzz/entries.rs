//! What each fuzz target does with one input. Included (`#[path]`) by the targets in
//! `fuzz_targets/` and by `crates/osprey/tests/fuzz_corpus.rs`, which replays the kept corpus on
//! stable: the fuzzer and CI run the same code. Any input must end in an answer or an error, never
//! a panic, a hang or a large allocation.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use osprey_ingest::Format;
use osprey_model::otlp::any_value::Value;
use osprey_model::otlp::{AnyValue, ExportTraceServiceRequest, KeyValue, Span};
use osprey_model::TraceId;
use osprey_store::{wal, Head, RecordLocation, SpanParts, SpanSource, TraceQuery};

/// Jaeger thrift as it arrives: a binary `Batch` over HTTP, an `emitBatch` datagram over UDP in
/// either protocol.
pub fn jaeger_thrift(data: &[u8]) {
    let _ = osprey_ingest::jaeger_thrift::decode_batch(data);
    let _ = osprey_ingest::jaeger_thrift::decode_agent_message(data, true);
    let _ = osprey_ingest::jaeger_thrift::decode_agent_message(data, false);
}

/// Zipkin v2 JSON lists and protobuf `ListOfSpans`, as the receiver decodes them.
pub fn zipkin(data: &[u8]) {
    let _ = osprey_model::zipkin::decode_json(data);
    let _ = osprey_model::zipkin::decode_proto(data);
}

/// OTLP/JSON export bodies (`POST /v1/traces` with `application/json`, `/api/transform`).
pub fn otlp_json(data: &[u8]) {
    let _ = osprey_model::otlp_json::decode_request(data);
}

/// TraceQL queries (`/api/search?q=`, `/api/metrics/*`, `osprey query`).
pub fn traceql(data: &[u8]) {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = osprey_query::traceql::parse(query);
    }
}

/// An OTLP protobuf export body through what every receiver does with it: decoding and validation
/// (`osprey_ingest::decode`), then indexing what was accepted into a head, as a stored record is.
pub fn otlp_proto(data: &[u8]) -> u64 {
    index_decoded(Bytes::copy_from_slice(data))
}

/// A `Content-Encoding: gzip` body: un-gzipped under a 1 MiB limit (a bomb is refused, not
/// inflated), then decoded as OTLP protobuf as above.
pub fn gzip(data: &[u8]) -> u64 {
    match osprey_ingest::gunzip(data, 1 << 20) {
        Ok(body) => index_decoded(body),
        Err(_) => 0,
    }
}

/// The spans indexed.
fn index_decoded(body: Bytes) -> u64 {
    let Ok((request, _, payload)) = osprey_ingest::decode(body, Format::Protobuf) else {
        return 0;
    };
    {
        let location = RecordLocation {
            segment: 1,
            offset: 8,
            len: payload.len() as u32,
        };
        let mut head = Head::default();
        head.insert(location, &request);
        for trace in head.traces_newest_first(usize::MAX) {
            let _ = head.spans(trace).count();
            let _ = head.root(trace);
        }
        head.span_count()
    }
}

/// A write-ahead log segment replayed into a head, as on restart. After a first byte that is odd,
/// the input is framed: after the segment header, records of `[u16 LE length][payload]` from the
/// input each get a correct record header (so the fuzzer reaches decoding and indexing past the
/// checksums), and what is left is appended raw, a torn tail. After an even one, the rest is the
/// segment file itself.
pub fn wal_replay(data: &[u8]) -> u64 {
    let dir = scratch_dir("wal");
    let mut segment = Vec::with_capacity(data.len() + 64);
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => {
            segment.extend_from_slice(&wal::segment_header());
            let mut rest = rest;
            while rest.len() >= 2 {
                let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                if len > rest.len() - 2 {
                    break;
                }
                let payload = &rest[2..2 + len];
                segment.extend_from_slice(&wal::record_header(payload));
                segment.extend_from_slice(payload);
                rest = &rest[2 + len..];
            }
            segment.extend_from_slice(rest);
        }
        Some((_, rest)) => segment.extend_from_slice(rest),
        None => {}
    }
    let path = wal::segment_path(&dir, 1);
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(&segment))
        .expect("writing the segment");
    let mut head = Head::default();
    // A segment of another format version is refused, not cut: an error is an answer too.
    let Ok(report) = wal::replay(&dir, 0, |location, payload| {
        head.insert_record(location, payload);
    }) else {
        return 0;
    };
    assert!(report.bytes <= segment.len() as u64, "{report:?}");
    // What replay kept must replay again unchanged (the cut tail is gone, nothing else).
    let again = wal::replay(&dir, 0, |_, _| {}).expect("replaying again");
    assert_eq!(
        (again.records, again.bytes, again.damaged.len()),
        (report.records, report.bytes, 0)
    );
    head.span_count()
}

/// The block `block_files` damages: two traces of `traffic` (ids 1 and 2) cut into a block by
/// this code once and kept in `block-fixture/`, so that an input damages the same bytes in every
/// run and a finding replays exactly. (After a change of the block format, write them again from
/// a store of `traffic(1)` and `traffic(2)`; the corpus replay checks that they still open.)
const BLOCK_ID: &str = include_str!("block-fixture/block-id");
const BLOCK_FILES: [(&str, &[u8]); 3] = [
    ("meta.json", include_bytes!("block-fixture/meta.json")),
    ("trace-index", include_bytes!("block-fixture/trace-index")),
    ("data.parquet", include_bytes!("block-fixture/data.parquet")),
];

/// A block whose files were damaged on disk or in the bucket: the input picks a file (meta.json,
/// the trace-id index, the Parquet data) by its first byte; the rest is a list of
/// `[u32 LE offset][byte]` patches, and a final short piece truncates the file at that length.
/// The block is then opened and asked every question a query asks; returns how many of its
/// traces were found.
pub fn block_files(data: &[u8]) -> Option<usize> {
    // The parquet and arrow crates panic on some damaged files; the block reader catches that and
    // answers an error. libFuzzer's panic hook would abort on the caught panic all the same: put
    // the default hook back (a panic that escapes still fails the input, through the fuzzer's own
    // `catch_unwind` and abort).
    static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let (which, patches) = data.split_first()?;
    let target = *which as usize % BLOCK_FILES.len();
    let dir = scratch_dir("block");
    let block_id = BLOCK_ID.trim();
    let block_dir = dir
        .join(osprey_store::DEFAULT_TENANT)
        .join("blocks")
        .join(block_id);
    std::fs::create_dir_all(&block_dir).expect("creating the block directory");
    for (i, (name, original)) in BLOCK_FILES.iter().enumerate() {
        let mut bytes = original.to_vec();
        if i == target {
            damage(&mut bytes, patches);
        }
        std::fs::write(block_dir.join(name), bytes).expect("writing a block file");
    }
    let storage = Arc::new(
        osprey_store::ObjectStorage::open(dir.to_str().expect("a UTF-8 temporary path"))
            .expect("a local store"),
    );
    let runtime = &fixture().runtime;
    let opened = runtime.block_on(osprey_store::Block::open(
        storage,
        osprey_store::DEFAULT_TENANT,
        block_id,
    ));
    let Ok(Some(block)) = opened else {
        return None;
    };
    Some(ask_everything(
        &block,
        &[TraceId([1; 16]), TraceId([2; 16])],
    ))
}

fn damage(bytes: &mut Vec<u8>, patches: &[u8]) {
    let mut chunks = patches.chunks_exact(5);
    for patch in &mut chunks {
        let offset = u32::from_le_bytes([patch[0], patch[1], patch[2], patch[3]]) as usize;
        if !bytes.is_empty() {
            let at = offset % bytes.len();
            bytes[at] = patch[4];
        }
    }
    if let [a, b, ..] = chunks.remainder() {
        let keep = u16::from_le_bytes([*a, *b]) as usize;
        bytes.truncate(keep.min(bytes.len()));
    }
}

/// The traces of `trace_ids` found.
fn ask_everything(source: &dyn SpanSource, trace_ids: &[TraceId]) -> usize {
    let _ = source.time_range();
    let mut found = 0;
    for id in trace_ids {
        found += source.trace(id).is_ok_and(|spans| !spans.is_empty()) as usize;
        let _ = source.trace_spans(id, &mut |_| {});
    }
    let everything = TraceQuery {
        limit: 100,
        ..Default::default()
    };
    let by_attribute = TraceQuery {
        service: Some("checkout".into()),
        attributes: vec![("http.response.status_code".into(), "500".into())],
        min_duration_ns: Some(1),
        limit: 100,
        ..Default::default()
    };
    let _ = source.search(&everything);
    let _ = source.search(&by_attribute);
    let _ = source.scan(0, u64::MAX, &mut |_, _| {});
    let all_parts = SpanParts::ALL;
    let _ = source.traces(0, u64::MAX, None, all_parts, &mut |_, _| true);
    let _ = source.traces(0, u64::MAX, Some(&by_attribute), all_parts, &mut |_, _| {
        true
    });
    let member = source.membership();
    for id in trace_ids {
        let _ = member(id);
    }
    for service in source.services() {
        let _ = source.operations(&service);
    }
    found
}

/// A query API request: the first byte picks the port's router (query, Tempo, Zipkin), the rest
/// is the path and query string (bytes a URI cannot hold are percent-encoded), answered in
/// process by a store of a few traces in a block and in the head.
/// The answer's status and body.
pub fn query_params(data: &[u8]) -> Option<(u16, Bytes)> {
    let fixture = fixture();
    let (which, target) = data.split_first()?;
    let mut uri = String::with_capacity(target.len() + 1);
    if target.first() != Some(&b'/') {
        uri.push('/');
    }
    for &byte in target {
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    let request = axum::http::Request::get(&uri)
        .body(axum::body::Body::empty())
        .ok()?;
    let router = fixture.routers[*which as usize % fixture.routers.len()].clone();
    fixture.runtime.block_on(async move {
        use tower::ServiceExt;
        let response = router
            .oneshot(request)
            .await
            .expect("routers are infallible");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .ok()?;
        Some((status, body))
    })
}

/// A store made once per process: three traces of varied attributes, two cut into a block, one in
/// the head; the routers of the query ports over it; and the runtime both targets use.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    routers: Vec<axum::Router>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(make_fixture)
}

fn make_fixture() -> Fixture {
    // 8 MiB stacks, as the server's (`osprey serve`): TraceQL evaluation recurses.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = scratch_dir("store");
    let tenants = runtime.block_on(async {
        let (tenants, _) = osprey_store::Tenants::open(&dir, Default::default())
            .await
            .expect("opening the store");
        let store = tenants
            .get_or_open(osprey_store::DEFAULT_TENANT)
            .await
            .expect("the default tenant");
        for trace in 1..=3u8 {
            let request = traffic(trace);
            store
                .append(
                    &request,
                    Bytes::from(prost::Message::encode_to_vec(&request)),
                )
                .await
                .expect("appending");
            if trace == 2 {
                store.flush().await.expect("cutting a block");
            }
        }
        Arc::new(tenants)
    });
    let state = osprey_api::ApiState::new(tenants, Arc::default(), Default::default());
    let routers = vec![
        osprey_api::router(state.clone(), Arc::default()),
        osprey_api::tempo_router(state.clone()),
        osprey_api::zipkin_router(state),
    ];
    Fixture { runtime, routers }
}

/// Trace `trace`: a server span of `checkout` with a child, attributes of every value type.
fn traffic(trace: u8) -> ExportTraceServiceRequest {
    use osprey_model::fixtures::{request, span, string_attribute};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    let start = now - 60_000_000_000 + u64::from(trace) * 1_000_000;
    let typed = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    };
    let root = Span {
        kind: 2,
        attributes: vec![
            string_attribute("http.request.method", "GET"),
            typed("http.response.status_code", Value::IntValue(500)),
            typed("ratio", Value::DoubleValue(0.25)),
            typed("cached", Value::BoolValue(trace.is_multiple_of(2))),
            typed("raw", Value::BytesValue(vec![trace, 0, 255])),
        ],
        ..span(trace, 1, None, "GET /cart", start, start + 5_000_000)
    };
    let child = Span {
        kind: 3,
        ..span(
            trace,
            2,
            Some(1),
            "SELECT cart",
            start + 1_000_000,
            start + 4_000_000,
        )
    };
    request("checkout", vec![root, child])
}

/// A directory of this process's own under the temporary directory, emptied.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = scratch_root().join(name);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("osprey-fuzz-{}", std::process::id()))
}

/// Removes this process's scratch directories (the corpus replay calls it when done; a fuzzing
/// run leaves them for the next input).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch_root());
}
