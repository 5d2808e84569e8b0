"""OTLP/gRPC refusals carry the proper status codes; overload is signalled in each protocol's own form."""

import gzip
import threading

import grpc
import pytest
import requests
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spans import new_trace_id, request, span

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def raw_export(osprey, body, compression=None):
    with grpc.insecure_channel(osprey.grpc_endpoint,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.unary_unary(EXPORT, request_serializer=lambda b: b,
                                   response_deserializer=ExportTraceServiceResponse.FromString)
        return call(body, timeout=30, compression=compression)


def test_partial_success_over_grpc(osprey):
    good = new_trace_id()
    body = request("grpc-partial", [span(good, "kept"), span(b"\0" * 16, "dropped")]).SerializeToString()
    response = raw_export(osprey, body, compression=grpc.Compression.Gzip)
    assert response.partial_success.rejected_spans == 1
    assert "trace id must not be all zero" in response.partial_success.error_message
    assert osprey.get(f"/api/v3/traces/{good.hex()}").status_code == 200


def test_malformed_message_is_invalid_argument(osprey):
    with pytest.raises(grpc.RpcError) as error:
        raw_export(osprey, b"\xff\xff\xff\xff garbage")
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid OTLP protobuf" in error.value.details()


@pytest.mark.parametrize("compression", [None, grpc.Compression.Gzip])
def test_oversize_message_is_resource_exhausted(start_osprey, compression):
    osprey = start_osprey("--max-request-bytes", "100000")
    with pytest.raises(grpc.RpcError) as error:
        raw_export(osprey, b"\0" * 2_000_000, compression=compression)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def hammer(send, attempts_per_thread=40, threads=12):
    """Sends concurrently from several threads; returns every outcome."""
    outcomes, lock = [], threading.Lock()

    def worker():
        for _ in range(attempts_per_thread):
            outcome = send()
            with lock:
                outcomes.append(outcome)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return outcomes


def test_overload_is_throttled_with_retry_hints_and_loses_nothing(start_osprey):
    # One byte of in-flight budget: any two exports that overlap collide.
    osprey = start_osprey("--max-inflight-bytes", "1")
    channel = grpc.insecure_channel(osprey.grpc_endpoint)
    call = channel.unary_unary(EXPORT, request_serializer=lambda b: b,
                               response_deserializer=ExportTraceServiceResponse.FromString)

    def send_grpc():
        trace_id = new_trace_id()
        try:
            call(request("load", [span(trace_id, "s")]).SerializeToString(), timeout=30)
            return ("ok", trace_id)
        except grpc.RpcError as e:
            return (e.code(), e.trailing_metadata())

    outcomes = hammer(send_grpc)
    channel.close()
    throttled = [o for o in outcomes if o[0] == grpc.StatusCode.UNAVAILABLE]
    assert throttled, "no export was throttled"
    assert all(o[0] in ("ok", grpc.StatusCode.UNAVAILABLE) for o in outcomes)
    details = dict(throttled[0][1])["grpc-status-details-bin"]
    status = RpcStatus.FromString(details)
    retry = RetryInfo()
    assert status.details[0].Unpack(retry) and retry.retry_delay.seconds >= 1

    def send_http():
        trace_id = new_trace_id()
        r = requests.post(f"{osprey.http_url}/v1/traces",
                          data=gzip.compress(request("load", [span(trace_id, "s")]).SerializeToString()),
                          headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                          timeout=30)
        return ("ok", trace_id) if r.status_code == 200 else (r.status_code, r.headers.get("Retry-After"))

    http_outcomes = hammer(send_http)
    assert any(o == (429, "1") for o in http_outcomes), "no HTTP export was throttled with Retry-After"
    assert all(o[0] in ("ok", 429) for o in http_outcomes)

    for outcome in outcomes + http_outcomes:
        if outcome[0] == "ok":
            assert osprey.get(f"/api/v3/traces/{outcome[1].hex()}").status_code == 200
    metrics = osprey.get("/metrics").text
    assert 'osprey_requests_rejected_total{reason="throttled"}' in metrics
