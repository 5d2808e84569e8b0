//! Zipkin v2 JSON lists and protobuf `ListOfSpans`. See `../entries.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::zipkin(data);
});
