//! Blocks with damaged meta.json, trace-id index or Parquet data, opened and queried. See `../entries.rs`.
#![no_main]

#[allow(dead_code)]
#[path = "../entries.rs"]
mod entries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = entries::block_files(data);
});
