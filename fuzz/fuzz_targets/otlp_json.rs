//! OTLP/JSON export bodies (`POST /v1/traces` with `application/json`, `/api/transform`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = osprey_model::otlp_json::decode_request(data);
});
