//! TraceQL queries (`/api/search?q=`, `/api/metrics/*`, `osprey query`): parsed or refused with a
//! position, never a panic or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = osprey_query::traceql::parse(query);
    }
});
