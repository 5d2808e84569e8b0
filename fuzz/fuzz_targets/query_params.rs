//! Query API requests (paths and parameters) on the query, Tempo and Zipkin ports. See `../entries.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::query_params(data);
});
