//! Every input of the fuzzing corpus (fuzz/corpus/<target>/, seeds and what the fuzzer kept) run
//! through the same decoders as the fuzz targets, on stable: a finding fixed once stays fixed.

use std::path::PathBuf;

use osprey_model::zipkin;

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

#[test]
fn jaeger_thrift_corpus() {
    for (_, data) in corpus("jaeger_thrift") {
        let _ = osprey_ingest::jaeger_thrift::decode_batch(&data);
        let _ = osprey_ingest::jaeger_thrift::decode_agent_message(&data, true);
        let _ = osprey_ingest::jaeger_thrift::decode_agent_message(&data, false);
    }
}

#[test]
fn zipkin_corpus() {
    for (_, data) in corpus("zipkin") {
        let _ = zipkin::decode_json(&data);
        let _ = zipkin::decode_proto(&data);
    }
}

#[test]
fn otlp_json_corpus() {
    for (_, data) in corpus("otlp_json") {
        let _ = osprey_model::otlp_json::decode_request(&data);
    }
}

#[test]
fn traceql_corpus() {
    for (_, data) in corpus("traceql") {
        if let Ok(query) = std::str::from_utf8(&data) {
            let _ = osprey_query::traceql::parse(query);
        }
    }
}

/// The seeds are real inputs: each decodes (a corpus of garbage alone would test little).
#[test]
fn the_seeds_decode() {
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
