"""OTLP/HTTP by hand: JSON and protobuf, gzip, partial success, and every refusal in its proper form."""

import gzip
import json

import requests
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spans import new_trace_id, request, span

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def post(osprey, body, headers):
    return requests.post(f"{osprey.http_url}/v1/traces", data=body, headers=headers, timeout=30)


def otlp_json(trace_hex, span_hex, **extra):
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "json-svc"}}]},
        "scopeSpans": [{"scope": {"name": "raw"}, "spans": [{
            "traceId": trace_hex, "spanId": span_hex, "name": "json span", "kind": 3,
            "startTimeUnixNano": "1750000000000000000", "endTimeUnixNano": 1750000000250000000,
            "attributes": [{"key": "n", "value": {"intValue": 12}}, {"key": "m", "value": {"intValue": "-3"}}],
            "someFutureField": {"ignored": True}, **extra}]}]}]}


def test_json_with_uppercase_hex_and_int64_as_number_or_string(osprey):
    trace_hex = new_trace_id().hex()
    response = post(osprey, json.dumps(otlp_json(trace_hex.upper(), "A1B2C3D4E5F60718")), JSON)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    stored = osprey.get(f"/api/v3/traces/{trace_hex}").json()["result"]["resourceSpans"]
    stored_span = stored[0]["scopeSpans"][0]["spans"][0]
    assert stored_span["spanId"] == "a1b2c3d4e5f60718"
    assert stored_span["endTimeUnixNano"] == "1750000000250000000"
    assert [a["value"]["intValue"] for a in stored_span["attributes"]] == ["12", "-3"]


def test_gzip_bodies_in_both_encodings(osprey):
    trace_id = new_trace_id()
    body = gzip.compress(request("gz", [span(trace_id, "gz-proto")]).SerializeToString())
    response = post(osprey, body, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    # A protobuf answer to a protobuf request: an ExportTraceServiceResponse, and an empty one (no
    # partial success) — an empty body parses too, so the content type is checked as well.
    assert response.headers["Content-Type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert osprey.get(f"/api/v3/traces/{trace_id.hex()}").json()["result"]["resourceSpans"]

    trace_hex = new_trace_id().hex()
    body = gzip.compress(json.dumps(otlp_json(trace_hex, "0102030405060708")).encode())
    assert post(osprey, body, {**JSON, "Content-Encoding": "gzip"}).status_code == 200
    assert osprey.get(f"/api/v3/traces/{trace_id.hex()}").status_code == 200
    assert osprey.get(f"/api/v3/traces/{trace_hex}").status_code == 200


def test_invalid_ids_are_rejected_one_by_one(osprey):
    good = new_trace_id()
    spans = [span(good, "kept"), span(b"\0" * 16, "zero trace"), span(good[:8], "short trace"),
             span(good, "zero span", span_id=b"\0" * 8)]
    response = post(osprey, request("partial", spans).SerializeToString(), PROTOBUF)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 3
    assert "zero trace" in partial.error_message and "all zero" in partial.error_message
    stored = osprey.get(f"/api/v3/traces/{good.hex()}").json()["result"]["resourceSpans"]
    assert [s["name"] for s in stored[0]["scopeSpans"][0]["spans"]] == ["kept"]

    bad_json = otlp_json("00" * 16, "0102030405060708")
    body = post(osprey, json.dumps(bad_json), JSON).json()
    assert body["partialSuccess"]["rejectedSpans"] in ("1", 1)
    assert "trace id must not be all zero" in body["partialSuccess"]["errorMessage"]


def test_empty_request_is_a_success(osprey):
    assert post(osprey, b"", PROTOBUF).status_code == 200
    assert post(osprey, "{}", JSON).json() == {}


def test_malformed_bodies_get_400_with_a_status_naming_the_problem(osprey):
    response = post(osprey, b"\xff\xff\xff\xff garbage", PROTOBUF)
    assert response.status_code == 400
    status = RpcStatus.FromString(response.content)
    assert status.code == 3 and "invalid OTLP protobuf" in status.message

    response = post(osprey, '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "nothex"}]}]}]}', JSON)
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert "invalid OTLP/JSON" in response.json()["message"]

    response = post(osprey, b"not gzip at all", {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 400 and "gzip" in RpcStatus.FromString(response.content).message

    response = post(osprey, b"{}", {"Content-Type": "text/plain"})
    assert response.status_code == 415 and "Content-Type" in response.json()["message"]


def test_oversize_bodies_get_413_also_after_decompression(start_osprey):
    osprey = start_osprey("--max-request-bytes", "100000")
    response = post(osprey, b"\0" * 200_000, PROTOBUF)
    assert response.status_code == 413
    assert "exceeds the limit of 100000 bytes" in RpcStatus.FromString(response.content).message

    bomb = gzip.compress(b"\0" * 5_000_000)
    assert len(bomb) < 100_000
    response = post(osprey, bomb, {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in RpcStatus.FromString(response.content).message

    # The server is still fine and still takes normal requests.
    assert post(osprey, request("after", [span(new_trace_id(), "ok")]).SerializeToString(), PROTOBUF).ok
