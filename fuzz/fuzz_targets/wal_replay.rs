//! Write-ahead log segments replayed into a head, as on restart. See `../entries.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::wal_replay(data);
});
