//! gzip-encoded export bodies: un-gzipped under a limit, then decoded as OTLP protobuf. See `../entries.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::gzip(data);
});
