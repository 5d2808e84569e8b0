"""The Jaeger UI's own request sequence (jaeger-ui's api/jaeger.ts and api/v3/client.ts, as they
build their URLs), replayed against Osprey: search form, a search by the UI's example tag
`error=true`, the trace page, System Architecture, the Monitor tab, the Deep Dependency Graph and
trace upload."""

import json
import time

import requests

from test_query_api import shop


def test_the_jaeger_ui_sequence_works_end_to_end(osprey):
    slow, fast, login = shop(osprey)
    base_ms = 1_750_000_000_000

    # Search form: services, then the service's operations (the classic path) and server operations.
    assert osprey.get("/api/services").json()["data"] == ["gateway", "payments"]
    assert osprey.get("/api/services/gateway/operations").json()["data"] == ["GET /checkout", "POST /login"]
    server_ops = osprey.get("/api/operations", params={"service": "gateway", "spanKind": "server"}).json()["data"]
    assert {op["name"] for op in server_ops} == {"GET /checkout", "POST /login"}

    # Search through api_v3 as the UI's v3 client sends it: camelCase names, ISO times, the tags
    # box's JSON in query.attributes; error=true is the UI's own example.
    params = {"query.serviceName": "gateway", "query.startTimeMin": "2025-06-15T00:00:00.000Z",
              "query.startTimeMax": "2025-06-16T00:00:00.000Z", "query.searchDepth": "20",
              "query.attributes": json.dumps({"error": "true"})}
    summaries = osprey.get("/api/v3/trace-summaries", params=params).json()["summaries"]
    assert [s["traceId"] for s in summaries] == [login]
    assert summaries[0]["errorSpanCount"] == 1 and int(summaries[0]["minStartTimeUnixNano"]) > 0

    # The trace page: the classic trace (timeline, critical path, graph, statistics, flamegraph).
    trace = osprey.get(f"/api/traces/{slow}").json()["data"][0]
    assert len(trace["spans"]) == 2 and len(trace["processes"]) == 2

    # System Architecture.
    dependencies = osprey.get("/api/dependencies", params={"endTs": base_ms + 60_000, "lookback": 3_600_000}).json()
    assert dependencies["data"] == [{"parent": "gateway", "child": "payments", "callCount": 2}]

    # The Monitor tab: calls, errors and three latency quantiles, grouped by operation, server spans.
    monitor = {"endTs": base_ms + 60_000, "lookback": 60_000, "step": 60_000, "ratePer": 120_000,
               "spanKind": "server"}
    calls = osprey.get("/api/metrics/calls?service=gateway", params={**monitor, "groupByOperation": "true"}).json()
    assert {m["labels"][0]["value"] for m in calls["metrics"]} == {"GET /checkout", "POST /login"}
    errors = osprey.get("/api/metrics/errors?service=gateway", params=monitor).json()
    assert errors["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] == 1 / 3
    for quantile in (0.95, 0.75, 0.5):
        latencies = osprey.get("/api/metrics/latencies?service=gateway", params={**monitor, "quantile": quantile}).json()
        assert latencies["metrics"][0]["metricPoints"][-1]["gaugeValue"]["doubleValue"] > 0

    # The Deep Dependency Graph of the focal service, as the UI asks (start and end 0).
    ddg = osprey.get("/analytics/v1/dependencies", params={"service": "payments", "start": 0, "end": 0})
    assert ddg.status_code == 200 and "dependencies" in ddg.json()

    # Trace upload: the UI posts an OTLP JSON file to /api/transform.
    upload = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "file"}}]},
                                 "scopeSpans": [{"spans": [{"traceId": "0c" * 16, "spanId": "0d" * 8, "name": "uploaded",
                                                            "startTimeUnixNano": str(time.time_ns()),
                                                            "endTimeUnixNano": str(time.time_ns() + 1000)}]}]}]}
    transformed = requests.post(f"{osprey.query_url}/api/transform", data=json.dumps(upload), timeout=30).json()
    assert transformed["data"][0]["spans"][0]["operationName"] == "uploaded"
