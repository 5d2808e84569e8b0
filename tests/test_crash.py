"""Crash safety: SIGKILL the server mid-stream, many times; every acknowledged span is there afterwards.

Clients export over both OTLP/HTTP and OTLP/gRPC from several threads and note each export the server
acknowledged. Some restarts also find garbage appended to the newest log segment, as a torn write at
power loss would leave; the server must cut it, say so, and start.
"""

import random
import threading
import time

import grpc
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spans import new_trace_id, request, span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_EXPORT = 40
CYCLES = 8


def export_body(trace_id):
    spans = [span(trace_id, f"op-{i}", start_ms=i, attributes={"payload": "x" * 64}) for i in range(SPANS_PER_EXPORT)]
    return request("crash", spans).SerializeToString()


def http_client(osprey, acked, stop):
    session = requests.Session()
    while not stop.is_set():
        trace_id = new_trace_id()
        try:
            r = session.post(f"{osprey.http_url}/v1/traces", data=export_body(trace_id),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        except requests.RequestException:
            return
        if r.status_code == 200:
            acked.append(trace_id)


def grpc_client(osprey, acked, stop):
    with grpc.insecure_channel(osprey.grpc_endpoint) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=lambda b: b,
                                   response_deserializer=ExportTraceServiceResponse.FromString)
        while not stop.is_set():
            trace_id = new_trace_id()
            try:
                call(export_body(trace_id), timeout=10)
            except grpc.RpcError:
                return
            acked.append(trace_id)


def stored_span_counts(osprey):
    window = "query.start_time_min=2025-01-01T00:00:00Z&query.start_time_max=2026-01-01T00:00:00Z"
    r = osprey.get(f"/api/v3/trace-summaries?{window}&query.service_name=crash&query.search_depth=1000000")
    assert r.status_code == 200, r.text
    return {s["traceId"]: s["spanCount"] for s in r.json()["summaries"]}


def newest_segment(osprey):
    segments = sorted((osprey.data_dir / "wal").glob("*.wal"))
    return next(s for s in reversed(segments) if s.stat().st_size > 0)


def test_acknowledged_spans_survive_repeated_sigkill(start_osprey):
    rng = random.Random(7)
    osprey = start_osprey()
    acked = []
    for cycle in range(CYCLES):
        stop = threading.Event()
        clients = [threading.Thread(target=http_client, args=(osprey, acked, stop)) for _ in range(3)]
        clients += [threading.Thread(target=grpc_client, args=(osprey, acked, stop)) for _ in range(3)]
        for c in clients:
            c.start()
        time.sleep(rng.uniform(0.3, 1.0))
        osprey.kill()  # SIGKILL, while the clients are mid-stream
        stop.set()
        for c in clients:
            c.join(timeout=30)
        if cycle % 3 == 1:
            with open(newest_segment(osprey), "ab") as segment:
                segment.write(b"\x40\x00\x00\x00torn")
        osprey.start()
        counts = stored_span_counts(osprey)
        lost = [t.hex() for t in acked if counts.get(t.hex(), 0) < SPANS_PER_EXPORT]
        assert not lost, f"cycle {cycle}: {len(lost)} acknowledged exports lost, e.g. {lost[:3]}"
    assert len(acked) > CYCLES * 10, "too few exports were acknowledged to test anything"
    assert osprey.log().count("cut a damaged write-ahead log tail") >= CYCLES // 3
