"""The Jaeger-compatible query APIs, the health and metrics endpoints, and `osprey trace`."""

import subprocess

import requests

from conftest import OSPREY_BIN
from spans import new_trace_id, request, span

WINDOW = "query.start_time_min=2025-06-15T00:00:00Z&query.start_time_max=2025-06-16T00:00:00Z"


def send(osprey, service, spans, resource_attributes=None):
    response = requests.post(f"{osprey.http_url}/v1/traces",
                             data=request(service, spans, resource_attributes).SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text


def shop(osprey):
    """A slow checkout, a fast checkout, an erroring login; returns their trace ids (hex)."""
    slow, fast, login = new_trace_id(), new_trace_id(), new_trace_id()
    gw_slow, gw_fast, gw_login = b"\x01" * 8, b"\x02" * 8, b"\x03" * 8
    send(osprey, "gateway", [
        span(slow, "GET /checkout", 0, 2000, span_id=gw_slow, attributes={"http.route": "/checkout"}),
        span(fast, "GET /checkout", 5000, 120, span_id=gw_fast, attributes={"http.route": "/checkout"}),
        span(login, "POST /login", 9000, 40, span_id=gw_login, error=True),
    ])
    send(osprey, "payments", [
        span(slow, "SELECT payments", 100, 1800, parent=gw_slow, kind=3, attributes={"db.system": "postgresql"}),
        span(fast, "SELECT payments", 5010, 50, parent=gw_fast, kind=3, attributes={"db.system": "postgresql"}),
    ], resource_attributes={"deployment.environment": "prod"})
    return slow.hex(), fast.hex(), login.hex()


def found(response):
    assert response.status_code == 200, response.text
    return {s["traceId"] for s in response.json()["summaries"]}


def test_v3_services_operations_and_search(osprey):
    slow, fast, login = shop(osprey)
    assert osprey.get("/api/v3/services").json() == {"services": ["gateway", "payments"]}
    ops = osprey.get("/api/v3/operations?service=gateway").json()["operations"]
    assert ops == [{"name": "GET /checkout", "spanKind": "server"}, {"name": "POST /login", "spanKind": "server"}]
    assert osprey.get("/api/v3/operations?service=payments&spanKind=server").json() == {"operations": []}

    summaries = lambda q: found(osprey.get(f"/api/v3/trace-summaries?{WINDOW}&{q}"))
    assert summaries("query.service_name=gateway") == {slow, fast, login}
    assert summaries("query.serviceName=gateway&query.operationName=POST%20/login") == {login}
    assert summaries("query.service_name=payments&query.duration_min=1s") == {slow}
    assert summaries("query.service_name=payments&query.duration_max=100ms") == {fast}
    assert summaries('query.attributes={"db.system":"postgresql"}&query.duration_min=1s') == {slow}
    assert summaries("query.attributes[deployment.environment]=prod") == {slow, fast}
    assert summaries('query.attributes={"db.system":"mysql"}') == set()
    # Tags the Jaeger view derives from span fields are searchable: `error=true` is the UI's example.
    assert summaries('query.attributes={"error":"true"}') == {login}
    assert summaries('query.attributes={"otel.status_code":"ERROR"}') == {login}
    assert summaries('query.attributes={"span.kind":"client"}') == {slow, fast}
    assert len(summaries("query.service_name=gateway&query.search_depth=2")) == 2
    assert summaries("query.service_name=nobody") == set()
    # The time window applies to the matching span's start.
    later = "query.start_time_min=2025-06-15T15:06:46Z&query.start_time_max=2025-06-16T00:00:00Z"
    assert found(osprey.get(f"/api/v3/trace-summaries?{later}&query.service_name=gateway")) == {login}

    [summary] = osprey.get(f"/api/v3/trace-summaries?{WINDOW}&query.operation_name=POST%20/login").json()["summaries"]
    assert summary == {"traceId": login, "rootServiceName": "gateway", "rootOperationName": "POST /login",
                       "minStartTimeUnixNano": "1750000009000000000", "maxEndTimeUnixNano": "1750000009040000000",
                       "spanCount": 1, "errorSpanCount": 1,
                       "services": [{"name": "gateway", "spanCount": 1, "errorSpanCount": 1}]}

    dependencies = osprey.get("/api/v3/dependencies?start_time=2025-06-15T00:00:00Z&end_time=2025-06-16T00:00:00Z").json()
    assert dependencies == {"dependencies": [{"parent": "gateway", "child": "payments", "callCount": "2"}]}

    traces = osprey.get(f"/api/v3/traces?{WINDOW}&query.service_name=payments&query.duration_min=1s").json()
    trace_ids = {s["traceId"] for rs in traces["result"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert trace_ids == {slow}


def test_v3_errors(osprey):
    _, _, login = shop(osprey)
    missing = osprey.get("/api/v3/traces?query.service_name=gateway")
    assert missing.status_code == 400 and "start_time_min" in missing.json()["error"]["message"]
    none = osprey.get(f"/api/v3/traces?{WINDOW}&query.service_name=nobody")
    assert none.status_code == 404 and none.json() == {"error": {"httpCode": 404, "message": "No traces found"}}
    bad = osprey.get(f"/api/v3/traces?{WINDOW}&query.duration_min=fast")
    assert bad.status_code == 400 and "query.duration_min" in bad.json()["error"]["message"]
    assert osprey.get(f"/api/v3/traces/{new_trace_id().hex()}").status_code == 404
    # A trace by id takes the time hints and raw_traces Jaeger's clients send; bad ones get 400.
    hinted = osprey.get(f"/api/v3/traces/{login}?start_time=2025-06-15T00:00:00Z&end_time=2025-06-16T00:00:00Z&raw_traces=true")
    assert hinted.status_code == 200 and hinted.json()["result"]["resourceSpans"]
    bad_hint = osprey.get(f"/api/v3/traces/{login}?start_time=yesterday")
    assert bad_hint.status_code == 400 and "start_time" in bad_hint.json()["error"]["message"]
    assert osprey.get("/api/v3/traces/not-hex").status_code == 400


def test_jaeger_classic_api(osprey):
    slow, fast, login = shop(osprey)
    assert osprey.get("/api/services").json()["data"] == ["gateway", "payments"]
    # ?prettyPrint=true indents the answer, as Jaeger's query service does, on both APIs.
    assert "\n" not in osprey.get("/api/services").text
    for path in ["/api/services?prettyPrint=true", "/api/v3/services?prettyPrint=true"]:
        pretty = osprey.get(path)
        assert pretty.text.startswith("{\n  ") and "gateway" in pretty.json().get("data", pretty.json().get("services"))
    assert osprey.get("/api/services/gateway/operations").json()["data"] == ["GET /checkout", "POST /login"]
    trace = osprey.get(f"/api/traces/{slow}").json()["data"][0]
    assert trace["traceID"] == slow
    db = next(s for s in trace["spans"] if s["operationName"] == "SELECT payments")
    assert db["duration"] == 1_800_000 and db["references"][0]["refType"] == "CHILD_OF"
    assert trace["processes"][db["processID"]]["serviceName"] == "payments"

    search = osprey.get("/api/traces", params={"service": "payments", "minDuration": "1s",
                                               "start": 1750000000000000, "end": 1750000100000000}).json()
    assert [t["traceID"] for t in search["data"]] == [slow]
    tagged = osprey.get("/api/traces", params={"service": "gateway", "tags": '{"http.route":"/checkout"}'}).json()
    assert {t["traceID"] for t in tagged["data"]} == {slow, fast}
    failing = osprey.get("/api/traces", params={"tags": '{"error":"true"}'}).json()
    assert [t["traceID"] for t in failing["data"]] == [login]

    # A span that sends `error` itself and has an ERROR status shows one `error` tag, not two.
    both = new_trace_id()
    send(osprey, "auth", [span(both, "check", 9500, 5, error=True, attributes={"error": "true"})])
    tags = osprey.get(f"/api/traces/{both.hex()}").json()["data"][0]["spans"][0]["tags"]
    assert [t["key"] for t in tags].count("error") == 1, tags

    missing = osprey.get(f"/api/traces/{new_trace_id().hex()}")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 404
    malformed = osprey.get("/api/traces/xyz")
    assert malformed.status_code == 400 and "malformed trace id" in malformed.json()["errors"][0]["msg"]


def test_health_ready_and_metrics(osprey):
    shop(osprey)
    assert osprey.get("/healthz").status_code == 200
    assert osprey.get("/ready").text == "ready"
    osprey.get("/api/v3/services")
    metrics = osprey.get("/metrics").text
    for line in ['osprey_spans_received_total{protocol="http"} 5', 'osprey_spans_accepted_total{protocol="http"} 5',
                 'osprey_head_spans{tenant="single-tenant"} 5', 'osprey_head_traces{tenant="single-tenant"} 3',
                 "osprey_wal_records_total 2"]:
        assert line in metrics, line
    assert "osprey_wal_fsyncs_total" in metrics and "osprey_wal_written_bytes_total" in metrics
    assert 'osprey_query_duration_seconds_count{endpoint="services"} 1' in metrics


def test_trace_command_prints_the_tree(osprey):
    slow, _, login = shop(osprey)
    out = subprocess.run([str(OSPREY_BIN), "trace", slow, "--server", osprey.query_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "2.000s  2 spans  2 services  0 errors" in lines[0]
    assert lines[2].startswith("gateway: GET /checkout")
    assert lines[3].startswith("  payments: SELECT payments") and "1.800s" in lines[3] and "+100.00ms" in lines[3]
    assert lines[-1] == "most self time: payments: SELECT payments, 1.800s of 2.000s (90%)"

    err = subprocess.run([str(OSPREY_BIN), "trace", login, "--server", osprey.query_url],
                         capture_output=True, text=True, timeout=60)
    assert "✗ ERROR" in err.stdout
    missing = subprocess.run([str(OSPREY_BIN), "trace", new_trace_id().hex(), "--server", osprey.query_url],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_help_documents_the_commands():
    out = subprocess.run([str(OSPREY_BIN), "--help"], capture_output=True, text=True, timeout=60).stdout
    for word in ("serve", "trace", "bench", "--data-dir", "--otlp-grpc-addr", "--fsync"):
        assert word in out, word


def test_transform_turns_an_otlp_json_file_into_jaeger_traces(osprey):
    """`POST /api/transform`: what the Jaeger UI's "upload a trace" sends, answered without storing."""
    def otlp_span(trace, span, name, parent="", error=False):
        return {"traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": 2,
                "startTimeUnixNano": "1750000000000000000", "endTimeUnixNano": "1750000000250000000",
                "status": {"code": 2 if error else 0}}
    first, second = "0a" * 16, "0b" * 16
    document = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "upload"}}]},
        "scopeSpans": [{"scope": {"name": "demo"}, "spans": [
            otlp_span(first, "01" * 8, "root"),
            otlp_span(second, "03" * 8, "failed", error=True),
            otlp_span(first, "02" * 8, "child", parent="01" * 8),
        ]}],
    }]}
    response = requests.post(f"{osprey.query_url}/api/transform", json=document, timeout=30)
    assert response.status_code == 200, response.text
    traces = response.json()["data"]
    assert [t["traceID"] for t in traces] == [first, second]
    assert sorted(s["operationName"] for s in traces[0]["spans"]) == ["child", "root"]
    child = next(s for s in traces[0]["spans"] if s["operationName"] == "child")
    assert child["references"] == [{"refType": "CHILD_OF", "traceID": first, "spanID": "01" * 8}]
    assert child["duration"] == 250_000
    assert traces[1]["processes"]["p1"]["serviceName"] == "upload"
    assert {"key": "error", "type": "bool", "value": True} in traces[1]["spans"][0]["tags"]
    # Nothing was stored.
    assert osprey.get(f"/api/traces/{first}").status_code == 404

    bad = requests.post(f"{osprey.query_url}/api/transform", data=b"{not json", timeout=30)
    assert bad.status_code == 400 and "OTLP JSON" in bad.json()["errors"][0]["msg"]


def test_monitor_tab_metrics_come_from_stored_spans(osprey):
    """The Jaeger UI's Monitor tab: calls a second, error share and latency quantiles per service."""
    trace = new_trace_id()
    send(osprey, "gateway", [
        span(trace, "GET /a", 0, 10), span(trace, "GET /a", 1000, 20),
        span(trace, "GET /b", 2000, 30, error=True), span(trace, "GET /b", 3000, 40),
        span(trace, "call db", 3500, 5, kind=3),
    ])
    base_ms = 1_750_000_000_000
    window = {"service": "gateway", "endTs": base_ms + 5000, "lookback": 5000, "step": 5000, "ratePer": 10000}

    calls = osprey.get("/api/metrics/calls", params=window).json()
    assert calls["name"] == "service_call_rate" and calls["type"] == "GAUGE"
    (series,) = calls["metrics"]
    assert series["labels"] == [{"name": "service_name", "value": "gateway"}]
    # Points at endTs - lookback and endTs, each over the ratePer (10 s) before it; server spans only.
    assert [p["timestamp"] for p in series["metricPoints"]] == ["2025-06-15T15:06:40Z", "2025-06-15T15:06:45Z"]
    assert [p["gaugeValue"]["doubleValue"] for p in series["metricPoints"]] == [0.1, 0.4]

    errors = osprey.get("/api/metrics/errors", params=window).json()
    assert [p["gaugeValue"]["doubleValue"] for p in errors["metrics"][0]["metricPoints"]] == [0, 0.25]

    latencies = osprey.get("/api/metrics/latencies", params={**window, "quantile": 0.5}).json()
    assert latencies["name"] == "service_latencies" and latencies["help"].startswith("0.50th quantile latency")
    p50 = latencies["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"]
    assert 18 <= p50 <= 22, p50

    by_operation = osprey.get("/api/metrics/calls", params={**window, "groupByOperation": "true"}).json()
    labels = [m["labels"] for m in by_operation["metrics"]]
    assert labels == [[{"name": "operation", "value": "GET /a"}, {"name": "service_name", "value": "gateway"}],
                      [{"name": "operation", "value": "GET /b"}, {"name": "service_name", "value": "gateway"}]]
    clients = osprey.get("/api/metrics/calls", params={**window, "spanKind": "client"}).json()
    assert [p["gaugeValue"]["doubleValue"] for p in clients["metrics"][0]["metricPoints"]] == [0, 0.1]

    for params, message in [({"endTs": 1}, "service"), ({**window}, "quantile"),
                            ({**window, "quantile": 2}, "quantile"), ({**window, "spanKind": "sideways"}, "spanKind")]:
        response = osprey.get("/api/metrics/latencies", params=params)
        assert response.status_code == 400 and message in response.json()["errors"][0]["msg"], response.text


def test_deep_dependency_graph_paths(osprey):
    """The Jaeger UI's Deep Dependency Graph: the call paths through a service, with example traces."""
    slow, fast, login = shop(osprey)
    window = {"start": 1_750_000_000_000 - 1000, "end": 1_750_000_000_000 + 100_000}
    answer = osprey.get("/analytics/v1/dependencies", params={"service": "payments", **window})
    assert answer.status_code == 200, answer.text
    (dependency,) = answer.json()["dependencies"]
    assert dependency["path"] == [{"service": "gateway", "operation": "GET /checkout"},
                                  {"service": "payments", "operation": "SELECT payments"}]
    assert {a["value"] for a in dependency["attributes"]} == {slow, fast}
    assert {a["key"] for a in dependency["attributes"]} == {"exemplar_trace_id"}
    by_operation = osprey.get("/analytics/v1/dependencies",
                              params={"service": "gateway", "operation": "POST /login", **window}).json()
    assert [d["path"] for d in by_operation["dependencies"]] == [[{"service": "gateway", "operation": "POST /login"}]]
    assert osprey.get("/analytics/v1/dependencies", params={"service": "nobody", **window}).json() == {"dependencies": []}
    missing = osprey.get("/analytics/v1/dependencies")
    assert missing.status_code == 400 and "service" in missing.json()["errors"][0]["msg"]
