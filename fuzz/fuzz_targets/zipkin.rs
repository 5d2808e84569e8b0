//! Zipkin v2 spans as they arrive: a JSON list or a protobuf `ListOfSpans`, mapped to OTLP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use osprey_model::zipkin;

fuzz_target!(|data: &[u8]| {
    let _ = zipkin::decode_json(data);
    let _ = zipkin::decode_proto(data);
});
