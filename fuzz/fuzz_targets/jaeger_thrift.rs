//! Jaeger thrift as it arrives: a binary `Batch` over HTTP, an `emitBatch` datagram over UDP in
//! either protocol. Any bytes: an answer or an error, never a panic or a large allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = osprey_ingest::jaeger_thrift::decode_batch(data);
    let _ = osprey_ingest::jaeger_thrift::decode_agent_message(data, true);
    let _ = osprey_ingest::jaeger_thrift::decode_agent_message(data, false);
});
