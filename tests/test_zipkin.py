"""Zipkin: spans from a real Zipkin client (py_zipkin, JSON and protobuf) into Osprey's Zipkin port,
read back through Zipkin's query API and Jaeger's, field by field."""

import gzip
import json
import time

import requests
from py_zipkin import Kind
from py_zipkin.encoding import Encoding
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import zipkin_span


def checkout(osprey, encoding):
    """A frontend server span calling the backend, whose span fails; returns the trace id."""
    transport = SimpleHTTPTransport("127.0.0.1", osprey.zipkin_port)
    with zipkin_span(service_name="frontend", span_name="get /checkout", transport_handler=transport,
                     sample_rate=100.0, encoding=encoding, kind=Kind.SERVER) as root:
        root.update_binary_annotations({"http.method": "GET"})
        root.add_annotation("cache miss")
        with zipkin_span(service_name="frontend", span_name="call backend", kind=Kind.CLIENT) as client:
            client.add_sa_binary_annotation(port=9000, service_name="backend", host="10.0.0.2")
            with zipkin_span(service_name="backend", span_name="post /pay", kind=Kind.SERVER) as served:
                served.update_binary_annotations({"error": "timeout"})
                time.sleep(0.01)
        return root.zipkin_attrs.trace_id


def zipkin(osprey, path, **params):
    response = requests.get(f"{osprey.zipkin_url}{path}", params=params, timeout=30)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def test_zipkin_spans_read_back_through_zipkin_and_jaeger(osprey):
    json_trace = checkout(osprey, Encoding.V2_JSON)
    proto_trace = checkout(osprey, Encoding.V2_PROTO3)

    assert zipkin(osprey, "/api/v2/services") == ["backend", "frontend"]
    assert zipkin(osprey, "/api/v2/spans", serviceName="frontend") == ["call backend", "get /checkout"]
    assert zipkin(osprey, "/api/v2/remoteServices", serviceName="frontend") == ["backend"]

    for trace_id in [json_trace, proto_trace]:
        spans = zipkin(osprey, f"/api/v2/trace/{trace_id}")
        assert len(spans) == 3
        root = next(s for s in spans if s["name"] == "get /checkout")
        call = next(s for s in spans if s["name"] == "call backend")
        served = next(s for s in spans if s["name"] == "post /pay")
        assert served["parentId"] == call["id"] and served["localEndpoint"]["serviceName"] == "backend"
        assert served["tags"]["error"] == "timeout"
        assert root["traceId"].endswith(trace_id) and root["kind"] == "SERVER" and "parentId" not in root
        assert call["parentId"] == root["id"] and call["kind"] == "CLIENT"
        assert root["localEndpoint"]["serviceName"] == "frontend"
        assert call["remoteEndpoint"] == {"serviceName": "backend", "ipv4": "10.0.0.2", "port": 9000}
        assert root["tags"]["http.method"] == "GET"
        assert [a["value"] for a in root["annotations"]] == ["cache miss"]
        assert served["duration"] >= 10_000 and root["timestamp"] <= call["timestamp"] <= served["timestamp"]

    # Search: by service and span name, a tag, a bare annotation, an error, a duration.
    def found(**params):
        return {t[0]["traceId"][-len(json_trace):] for t in zipkin(osprey, "/api/v2/traces", **params)}
    both = {json_trace, proto_trace}
    assert found(serviceName="frontend") == both
    assert found(serviceName="frontend", spanName="call backend") == both
    assert found(annotationQuery="http.method=GET") == both
    assert found(annotationQuery="cache miss") == both
    assert found(annotationQuery="error") == both
    assert found(annotationQuery="http.method=POST") == set()
    assert found(serviceName="frontend", minDuration=10_000_000) == set()
    assert len(zipkin(osprey, "/api/v2/traces", serviceName="frontend", limit=1)) == 1
    many = zipkin(osprey, "/api/v2/traceMany", traceIds=f"{json_trace},{proto_trace}")
    assert len(many) == 2

    # Dependencies with error counts, and autocomplete.
    now_ms = int(time.time() * 1000)
    links = zipkin(osprey, "/api/v2/dependencies", endTs=now_ms + 60_000, lookback=3_600_000)
    assert links == [{"parent": "frontend", "child": "backend", "callCount": 2, "errorCount": 2}], links
    assert "http.method" in zipkin(osprey, "/api/v2/autocompleteKeys")
    assert zipkin(osprey, "/api/v2/autocompleteValues", key="http.method") == ["GET"]

    # The same spans, one model: Jaeger's API shows the trace with the error and the parent links.
    jaeger = osprey.get(f"/api/traces/{json_trace}").json()["data"][0]
    served = next(s for s in jaeger["spans"] if s["operationName"] == "post /pay")
    # Zipkin's `error` tag (a message, kept) and the ERROR status it set.
    assert {"key": "error", "type": "string", "value": "timeout"} in served["tags"]
    assert {"key": "otel.status_code", "type": "string", "value": "ERROR"} in served["tags"]
    call = next(s for s in jaeger["spans"] if s["operationName"] == "call backend")
    assert served["references"][0] == {"refType": "CHILD_OF", "traceID": jaeger["traceID"], "spanID": call["spanID"]}


def test_shared_client_and_server_halves_stay_two_spans(osprey):
    spans = [
        {"traceId": "00000000000000aa", "id": "00000000000000bb", "kind": "CLIENT", "name": "get /pay",
         "timestamp": 1_750_000_000_000_000, "duration": 5000, "localEndpoint": {"serviceName": "orders"}},
        # The server's own child, reported before the server half, naming the shared id.
        {"traceId": "00000000000000aa", "id": "00000000000000cc", "parentId": "00000000000000bb", "name": "select",
         "timestamp": 1_750_000_000_002_000, "duration": 1000, "localEndpoint": {"serviceName": "payments"}},
        {"traceId": "00000000000000aa", "id": "00000000000000bb", "kind": "SERVER", "name": "get /pay",
         "shared": True, "timestamp": 1_750_000_000_001_000, "duration": 3000,
         "localEndpoint": {"serviceName": "payments"}},
    ]
    response = requests.post(f"{osprey.zipkin_url}/api/v2/spans", data=gzip.compress(json.dumps(spans).encode()),
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 202, response.text
    # Zipkin answers both halves as sent: one id, the server half shared.
    back = zipkin(osprey, "/api/v2/trace/00000000000000aa")
    assert back[0]["traceId"] == "00000000000000aa", "64-bit trace ids come back as sent"
    assert sorted((s.get("kind", ""), s["id"], s.get("shared", False)) for s in back) == [
        ("", "00000000000000cc", False), ("CLIENT", "00000000000000bb", False), ("SERVER", "00000000000000bb", True)]
    # Jaeger's API shows caller, callee and the callee's child in a line.
    jaeger = osprey.get("/api/traces/000000000000000000000000000000aa").json()["data"][0]
    by_name = {(jaeger["processes"][s["processID"]]["serviceName"], s["operationName"]): s for s in jaeger["spans"]}
    client, server, child = by_name[("orders", "get /pay")], by_name[("payments", "get /pay")], by_name[("payments", "select")]
    assert server["references"][0]["spanID"] == client["spanID"] != server["spanID"]
    assert child["references"][0]["spanID"] == server["spanID"]
    # The aggregates link them too: the service graph and the Deep Dependency Graph.
    links = zipkin(osprey, "/api/v2/dependencies", endTs=1_750_000_060_000, lookback=120_000)
    assert links == [{"parent": "orders", "child": "payments", "callCount": 1, "errorCount": 0}]
    ddg = osprey.get("/analytics/v1/dependencies", params={"service": "payments", "start": 1_749_999_999_000,
                                                            "end": 1_750_000_060_000}).json()["dependencies"]
    assert [d["path"] for d in ddg] == [[{"service": "orders", "operation": "get /pay"},
                                         {"service": "payments", "operation": "get /pay"}]]


def test_bad_zipkin_input_gets_400_with_the_reason(osprey):
    for body, reason in [
        (b"{not json", "invalid Zipkin JSON"),
        (json.dumps([{"traceId": "xyz", "id": "1"}]).encode(), "span 0: traceId"),
        (json.dumps([{"traceId": "1", "id": "1", "kind": "SIDEWAYS"}]).encode(), "SIDEWAYS"),
    ]:
        response = requests.post(f"{osprey.zipkin_url}/api/v2/spans", data=body,
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert response.status_code == 400 and reason in response.text, (body, response.text)
    broken = requests.post(f"{osprey.zipkin_url}/api/v2/spans", data=b"\x0a\xff",
                           headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert broken.status_code == 400 and "invalid Zipkin protobuf" in broken.text
    missing = requests.get(f"{osprey.zipkin_url}/api/v2/trace/00000000000000ff", timeout=30)
    assert missing.status_code == 404 and "not found" in missing.text
    assert requests.get(f"{osprey.zipkin_url}/api/v2/spans", timeout=30).status_code == 400


def test_typed_otlp_attributes_are_found_by_their_text_and_the_ui_paths_answer(osprey):
    """An OTLP span's integer tag is found as Zipkin shows it (text), and the Zipkin UI container's
    /zipkin/ prefix, config.json and /health answer."""
    from spans import new_trace_id, request, span
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    trace = new_trace_id()
    failing = span(trace, "charge", 0, 5)
    failing.attributes.append(KeyValue(key="http.status_code", value=AnyValue(int_value=500)))
    response = requests.post(f"{osprey.http_url}/v1/traces", data=request("payments", [failing]).SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200
    window = {"endTs": 1_750_000_060_000, "lookback": 120_000}
    found = zipkin(osprey, "/api/v2/traces", annotationQuery="http.status_code=500", **window)
    assert [t[0]["tags"]["http.status_code"] for t in found] == ["500"]
    assert zipkin(osprey, "/api/v2/traces", annotationQuery="http.status_code=404", **window) == []
    assert zipkin(osprey, "/zipkin/api/v2/services") == ["payments"]
    assert zipkin(osprey, "/zipkin/config.json")["searchEnabled"] is True
    assert zipkin(osprey, "/health")["status"] == "UP"
