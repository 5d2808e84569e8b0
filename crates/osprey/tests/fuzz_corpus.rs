//! Every input of the fuzzing corpus (fuzz/corpus/<target>/, seeds and what the fuzzer kept) run
//! through the same decoders as the fuzz targets, on stable: a finding fixed once stays fixed.

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "../../../fuzz/entries.rs"]
mod entries;

/// The inputs kept for `target`.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

/// Every kept input of every target through its entry point, as the fuzz target runs it; one test,
/// because the targets share scratch directories (and a store) per process. A failing input is
/// named.
#[test]
fn every_target_replays_its_corpus() {
    type Entry = fn(&[u8]);
    let targets: [(&str, Entry); 9] = [
        ("jaeger_thrift", entries::jaeger_thrift),
        ("zipkin", entries::zipkin),
        ("otlp_json", entries::otlp_json),
        ("traceql", entries::traceql),
        ("otlp_proto", |data| {
            let _ = entries::otlp_proto(data);
        }),
        ("gzip", |data| {
            let _ = entries::gzip(data);
        }),
        ("wal_replay", |data| {
            let _ = entries::wal_replay(data);
        }),
        ("block_files", |data| {
            let _ = entries::block_files(data);
        }),
        ("query_params", |data| {
            let _ = entries::query_params(data);
        }),
    ];
    // On a thread with the server's 8 MiB stack (the test harness gives 2): deep TraceQL and
    // nested JSON recurse as far as the server allows them to.
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            for (target, entry) in targets {
                for (path, data) in corpus(target) {
                    if std::panic::catch_unwind(|| entry(&data)).is_err() {
                        panic!("{} fails (see the panic above)", path.display());
                    }
                }
            }
        })
        .expect("a thread")
        .join()
        .expect("every input replays");
    entries::remove_scratch();
}

/// The seeds are real inputs: each decodes (a corpus of garbage alone would test little).
#[test]
fn the_seeds_decode() {
    let seed = |target: &str, name: &str| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target)
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(entries::otlp_proto(&seed("otlp_proto", "seed-export")), 3);
    assert_eq!(entries::gzip(&seed("gzip", "seed-export")), 3);
    assert_eq!(entries::wal_replay(&seed("wal_replay", "seed-framed")), 6);
    assert_eq!(entries::wal_replay(&seed("wal_replay", "seed-segment")), 3);
    for file in ["meta", "index", "data"] {
        let intact = entries::block_files(&seed("block_files", &format!("seed-{file}-intact")));
        assert_eq!(
            intact,
            Some(2),
            "{file}: both traces of the block are found"
        );
    }
    for (path, data) in corpus("query_params") {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            let (status, body) = entries::query_params(&data).expect("an answer");
            let body = String::from_utf8_lossy(&body);
            assert_eq!(status, 200, "{}: {body}", path.display());
        }
    }
    for (path, data) in corpus("jaeger_thrift") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let decoded = match name.as_str() {
            "seed-batch-binary" => osprey_ingest::jaeger_thrift::decode_batch(&data),
            "seed-agent-compact" => osprey_ingest::jaeger_thrift::decode_agent_message(&data, true),
            "seed-agent-binary" => osprey_ingest::jaeger_thrift::decode_agent_message(&data, false),
            _ => continue,
        };
        assert!(decoded.is_ok(), "{name}: {decoded:?}");
    }
    for (path, data) in corpus("traceql") {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            let query = std::str::from_utf8(&data).unwrap();
            assert!(osprey_query::traceql::parse(query).is_ok(), "{query}");
        }
    }
}
