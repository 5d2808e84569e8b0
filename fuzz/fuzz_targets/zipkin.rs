//! Zipkin v2 spans as they arrive: a JSON list or a protobuf `ListOfSpans`, mapped to OTLP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::zipkin::{self, ZipkinSpan};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(spans) = serde_json::from_slice::<Vec<ZipkinSpan>>(data) {
        let _ = zipkin::to_request(spans);
    }
    if let Ok(list) = zipkin::proto::ListOfSpans::decode(data) {
        let _ = zipkin::to_request(list.spans.into_iter().map(ZipkinSpan::from_proto).collect());
    }
});
