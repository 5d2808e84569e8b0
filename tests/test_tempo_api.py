"""The Tempo HTTP API on its own port: what Grafana's Tempo data source calls, answered from the
head and from blocks alike, TraceQL included."""

import base64
import json
import subprocess

import pytest
import requests

from google.protobuf import json_format
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData
from conftest import OSPREY_BIN
from spans import BASE_NS, new_trace_id, request, span
from tempo_messages import TEMPO
from test_blocks import CUT_FAST, post, wait_until_in_blocks

PROTOBUF = {"Accept": "application/protobuf"}


def get(server, path, **kwargs):
    return requests.get(f"{server.tempo_url}{path}", timeout=30, **kwargs)


def decoded(response, message):
    """A 200 JSON answer, checked against Tempo's message definition (unknown fields and wrong types
    fail), and returned as plain JSON."""
    assert response.status_code == 200, response.text
    json_format.Parse(response.text, TEMPO[message]())
    return response.json()


def shop(server):
    """A slow checkout (its payments call 1.8 s), a fast one, a failing login; their hex ids."""
    slow, fast, login = new_trace_id(), new_trace_id(), new_trace_id()
    gw_slow, gw_fast = b"\x01" * 8, b"\x02" * 8
    for message in [
        request("gateway", [
            span(slow, "GET /checkout", 0, 2000, span_id=gw_slow, attributes={"http.route": "/checkout"}),
            span(fast, "GET /checkout", 5000, 120, span_id=gw_fast, attributes={"http.route": "/checkout"}),
            span(login, "POST /login", 9000, 40, span_id=b"\x03" * 8, error=True),
        ]),
        request("payments", [
            span(slow, "SELECT payments", 100, 1800, parent=gw_slow, kind=3, attributes={"db.system": "postgresql"}),
            span(fast, "SELECT payments", 5010, 50, parent=gw_fast, kind=3, attributes={"db.system": "postgresql"}),
        ], resource_attributes={"deployment.environment": "prod"}),
    ]:
        assert post(server, message).status_code == 200
    return slow.hex(), fast.hex(), login.hex()


@pytest.fixture(params=["head", "blocks"])
def stored(request, start_osprey):
    """A server holding the shop, in its head or (cut at once) in blocks."""
    server = start_osprey(*CUT_FAST) if request.param == "blocks" else start_osprey()
    ids = shop(server)
    if request.param == "blocks":
        wait_until_in_blocks(server)
    return server, ids


def search(server, q, **params):
    return decoded(get(server, "/api/search", params={"q": q, **params}), "SearchResponse")


def trace_ids(answer):
    return [t["traceID"] for t in answer["traces"]]


def test_probes_echo_and_build_info(osprey):
    assert get(osprey, "/ready").text == "ready"
    echo = get(osprey, "/api/echo")
    assert (echo.status_code, echo.text) == (200, "echo")
    assert get(osprey, "/api/status/buildinfo").json()["version"]


def test_traceql_search_answers_as_tempo_does(stored):
    server, (slow, fast, login) = stored
    answer = search(server, '{ resource.service.name = "payments" && duration > 1s }')
    assert trace_ids(answer) == [slow.lstrip("0")]
    trace = answer["traces"][0]
    assert trace["rootServiceName"] == "gateway"
    assert trace["rootTraceName"] == "GET /checkout"
    assert trace["startTimeUnixNano"] == str(BASE_NS)
    assert trace["durationMs"] == 2000
    assert trace["serviceStats"] == {"gateway": {"spanCount": 1}, "payments": {"spanCount": 1}}
    spanset = trace["spanSets"][0]
    assert trace["spanSet"] == spanset
    assert spanset["matched"] == 1
    (matched,) = spanset["spans"]
    assert matched["name"] == "SELECT payments"
    assert matched["durationNanos"] == str(1800 * 1_000_000)
    assert matched["startTimeUnixNano"] == str(BASE_NS + 100 * 1_000_000)
    assert len(matched["spanID"]) == 16
    assert {"key": "service.name", "value": {"stringValue": "payments"}} in matched["attributes"]
    assert answer["metrics"]["inspectedTraces"] >= 1

    # Structural, status, pipelines; newest first.
    assert trace_ids(search(server, '{ resource.service.name = "gateway" } > { span.db.system = "postgresql" }')) == \
        [fast.lstrip("0"), slow.lstrip("0")]
    errors = search(server, "{ status = error }")
    assert trace_ids(errors) == [login.lstrip("0")]
    assert errors["traces"][0]["serviceStats"] == {"gateway": {"spanCount": 1, "errorCount": 1}}
    assert {"key": "status", "value": {"stringValue": "error"}} in errors["traces"][0]["spanSets"][0]["spans"][0]["attributes"]
    assert trace_ids(search(server, "{ } | count() > 1")) == [fast.lstrip("0"), slow.lstrip("0")]
    assert trace_ids(search(server, '{ name =~ "GET.*" } | avg(duration) > 1s')) == [slow.lstrip("0")]
    assert trace_ids(search(server, '{ .deployment.environment = "prod" } && { trace:duration < 1s }')) == [fast.lstrip("0")]
    by_service = search(server, "{ trace:duration > 1s } | by(resource.service.name)")["traces"][0]
    assert [s["attributes"] for s in by_service["spanSets"]] == [
        [{"key": "by(resource.service.name)", "value": {"stringValue": "gateway"}}],
        [{"key": "by(resource.service.name)", "value": {"stringValue": "payments"}}],
    ]
    # limit, spss and the time range (unix seconds).
    assert trace_ids(search(server, "{ }", limit=1)) == [login.lstrip("0")]
    assert len(search(server, "{ }", spss=1, limit=1)["traces"][0]["spanSets"][0]["spans"]) == 1
    base_s = BASE_NS // 1_000_000_000
    assert len(search(server, "{ }", start=base_s + 8, end=base_s + 20)["traces"]) == 1
    assert search(server, "{ }", start=base_s + 3600, end=base_s + 7200)["traces"] == []

    # The legacy form: logfmt tags on spans or resources, durations of the whole trace.
    legacy = decoded(get(server, "/api/search", params={"tags": "db.system=postgresql", "minDuration": "1s"}),
                     "SearchResponse")
    assert trace_ids(legacy) == [slow.lstrip("0")]
    assert trace_ids(get(server, "/api/search", params={"tags": 'service.name="gateway"', "maxDuration": "100ms"}).json()) \
        == [login.lstrip("0")]


def test_bad_queries_get_400_with_the_position(osprey):
    response = get(osprey, "/api/search", params={"q": '{ span.http.method = }'})
    assert response.status_code == 400
    assert "parse error at line 1, col 22" in response.text, response.text
    assert "expected an attribute, an intrinsic or a value" in response.text
    for params, message in [
        ({"q": '{ .a =~ "(" }'}, "invalid regular expression"),
        ({"q": "{ } | rate()"}, "metrics queries"),
        ({"q": "{ }", "limit": "0"}, "invalid limit"),
        ({"q": "{ }", "start": "yesterday"}, "invalid start"),
        ({"tags": "a=1 a=2"}, "set twice"),
        ({"minDuration": "2s", "maxDuration": "1s"}, "greater than minDuration"),
    ]:
        response = get(osprey, "/api/search", params=params)
        assert response.status_code == 400 and message in response.text, (params, response.text)


def test_trace_by_id_v1_and_v2_json_and_protobuf(stored):
    server, (slow, _, _) = stored
    # v2, as Grafana asks first.
    v2 = get(server, f"/api/v2/traces/{slow}", headers=PROTOBUF)
    assert v2.status_code == 200 and v2.headers["content-type"] == "application/protobuf"
    by_id = TEMPO["TraceByIDResponse"].FromString(v2.content)
    assert sorted(s.name for s in spans_of(by_id.trace)) == ["GET /checkout", "SELECT payments"]
    unknown = "0" * 31 + "1"
    empty = get(server, f"/api/v2/traces/{unknown}", headers=PROTOBUF)
    assert empty.status_code == 200
    assert spans_of(TEMPO["TraceByIDResponse"].FromString(empty.content).trace) == []
    assert decoded(get(server, f"/api/v2/traces/{unknown}"), "TraceByIDResponse")["trace"] == {}
    v2_json = json_format.Parse(get(server, f"/api/v2/traces/{slow}").text, TEMPO["TraceByIDResponse"]())
    assert v2_json.trace == by_id.trace, "JSON and protobuf answers hold the same trace"

    # v1: protobuf is tempopb.Trace (field 1 as in OTLP's TracesData), JSON with base64 ids.
    v1 = get(server, f"/api/traces/{slow}", headers=PROTOBUF)
    assert v1.status_code == 200
    assert len(spans_of(TEMPO["Trace"].FromString(v1.content))) == 2
    assert len(spans_of(TracesData.FromString(v1.content))) == 2
    body = decoded(get(server, f"/api/traces/{slow}"), "Trace")
    spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert {base64.b64decode(s["traceId"]).hex() for s in spans} == {slow}
    root = next(s for s in spans if s["name"] == "GET /checkout")
    assert root["kind"] == "SPAN_KIND_SERVER" and "parentSpanId" not in root
    child = next(s for s in spans if s["name"] == "SELECT payments")
    assert base64.b64decode(child["parentSpanId"]) == b"\x01" * 8
    assert get(server, f"/api/traces/{unknown}").status_code == 404
    assert get(server, "/api/traces/not-hex").status_code == 400


def spans_of(traces):
    """The spans of OTLP's TracesData or Tempo's Trace (field 1 named `resourceSpans` there)."""
    tempo = "resourceSpans" in traces.DESCRIPTOR.fields_by_name
    resource_spans = traces.resourceSpans if tempo else traces.resource_spans
    return [s for rs in resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_tags_and_tag_values(stored):
    server, _ = stored
    scopes = {s["name"]: s["tags"] for s in decoded(get(server, "/api/v2/search/tags"), "SearchTagsV2Response")["scopes"]}
    assert "db.system" in scopes["span"] and "http.route" in scopes["span"]
    assert set(scopes["resource"]) == {"service.name", "deployment.environment"}
    assert "span:duration" in scopes["intrinsic"] and "rootServiceName" in scopes["intrinsic"]
    assert [s["name"] for s in get(server, "/api/v2/search/tags", params={"scope": "resource"}).json()["scopes"]] == ["resource"]
    narrowed = get(server, "/api/v2/search/tags", params={"scope": "span", "q": '{ resource.service.name = "payments" }'}).json()
    assert narrowed["scopes"] == [{"name": "span", "tags": ["db.system"]}]
    assert "db.system" in decoded(get(server, "/api/search/tags"), "SearchTagsResponse")["tagNames"]
    assert get(server, "/api/search/tags", params={"scope": "nope"}).status_code == 400

    values = decoded(get(server, "/api/v2/search/tag/resource.service.name/values"), "SearchTagValuesV2Response")["tagValues"]
    assert sorted(values, key=lambda v: v["value"]) == [{"type": "string", "value": "gateway"},
                                                        {"type": "string", "value": "payments"}]
    narrowed = get(server, "/api/v2/search/tag/name/values", params={"q": '{ resource.service.name = "payments" }'}).json()
    assert narrowed["tagValues"] == [{"type": "string", "value": "SELECT payments"}]
    assert {"type": "keyword", "value": "error"} in get(server, "/api/v2/search/tag/status/values").json()["tagValues"]
    assert decoded(get(server, "/api/search/tag/service.name/values"), "SearchTagValuesResponse") == \
        {"tagValues": ["gateway", "payments"]}
    assert get(server, "/api/v2/search/tag/span.(/values").status_code == 400


def test_tenants_see_only_their_own(osprey):
    shop(osprey)
    other = {"X-Scope-OrgID": "team-b"}
    assert get(osprey, "/api/search", params={"q": "{ }"}, headers=other).json()["traces"] == []
    assert get(osprey, "/api/search", params={"q": "{ }"}).json()["traces"] != []
    assert get(osprey, "/api/search", params={"q": "{ }"}, headers={"X-Scope-OrgID": "bad/tenant"}).status_code == 400


def test_metrics_query_range_and_instant(stored):
    server, (_, _, login) = stored
    base_s = BASE_NS // 1_000_000_000
    window = {"start": base_s - 5, "end": base_s + 10}
    response = get(server, "/api/metrics/query_range",
                   params={"q": "{ } | count_over_time() by (resource.service.name)", "step": "5s", **window})
    series = {s["labels"][0]["value"]["stringValue"]: s for s in decoded(response, "QueryRangeResponse")["series"]}
    assert [s["labels"][0]["key"] for s in series.values()] == ["resource.service.name"] * 2
    # Intervals are right-closed and stamped with their end, from one step before the aligned
    # start: (-10 s, -5 s], (-5 s, 0], (0, 5 s], (5 s, 10 s].
    assert [(p["timestampMs"], p["value"]) for p in series["gateway"]["samples"]] == [
        (str((base_s + t) * 1000), n) for t, n in ((-5, 0), (0, 1), (5, 1), (10, 1))]
    assert [p["value"] for p in series["payments"]["samples"]] == [0, 0, 1, 1]

    rate = decoded(get(server, "/api/metrics/query_range", params={"q": "{ } | rate()", "step": "5", **window}),
                   "QueryRangeResponse")
    assert rate["series"][0]["labels"] == [{"key": "__name__", "value": {"stringValue": "rate"}}]
    assert [p["value"] for p in rate["series"][0]["samples"]] == [0, 0.2, 0.4, 0.4]

    # Exemplars link points to traces (Grafana draws them on the chart).
    errors = decoded(get(server, "/api/metrics/query_range", params={
        "q": "{ status = error } | count_over_time()", "step": "5s", "exemplars": 5, **window}), "QueryRangeResponse")
    (exemplar,) = errors["series"][0]["exemplars"]
    assert {"key": "trace:id", "value": {"stringValue": login}} in exemplar["labels"]
    assert exemplar["value"] == 1 and exemplar["timestampMs"] == str((base_s + 9) * 1000)

    quantiles = get(server, "/api/metrics/query_range", params={
        "q": '{ resource.service.name = "payments" } | quantile_over_time(duration, .99)', "step": "15s", **window}).json()
    assert {"key": "p", "value": {"doubleValue": 0.99}} in quantiles["series"][0]["labels"]
    assert 1.0 < quantiles["series"][0]["samples"][0]["value"] <= 2.147483648

    # Spans without the `by` attribute count under a nil label, as in Tempo.
    by_db = decoded(get(server, "/api/metrics/query", params={
        "q": "{ } | count_over_time() by (span.db.system)", **window}), "QueryInstantResponse")["series"]
    assert sorted((s["labels"][0]["value"]["stringValue"], s["value"]) for s in by_db) == [("nil", 3), ("postgresql", 2)]

    instant = get(server, "/api/metrics/query", params={"q": "{ status = error } | count_over_time()", **window})
    assert [s["value"] for s in decoded(instant, "QueryInstantResponse")["series"]] == [1]

    # Metrics queries combined by arithmetic: error spans as a percentage of all (1 of 5).
    share = get(server, "/api/metrics/query", params={
        "q": "100 * ({ status = error } | count_over_time()) / ({ } | count_over_time())", **window})
    (ratio,) = decoded(share, "QueryInstantResponse")["series"]
    assert ratio["labels"] == [{"key": "__name__", "value": {"stringValue": "(count_over_time / count_over_time)"}}]
    assert ratio["value"] == 20

    for params, message in [
        ({"q": "{ }"}, "metrics query"),
        ({"q": "{ } | rate(", **window}, "parse error at line 1, col 12"),
        ({"q": "{ } | rate()", "step": "1ms", **window}, "invalid step"),
        ({"q": "({ } | rate()) % ({ } | rate())", **window}, "combine with + - * / only"),
        ({"q": "{ } | rate()", "start": base_s + 10, "end": base_s}, "invalid start"),
    ]:
        response = get(server, "/api/metrics/query_range", params=params)
        assert response.status_code == 400 and message in response.text, (params, response.text)


def test_osprey_query_prints_matching_traces(osprey):
    slow, _, login = shop(osprey)

    def query(*args):
        return subprocess.run([str(OSPREY_BIN), "query", *args, "--server", osprey.tempo_url],
                              capture_output=True, text=True, timeout=60)

    table = query("{ status = error }")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["TRACE", "ID", "START", "DURATION", "ROOT", "SERVICE", "ROOT", "NAME", "MATCHED", "SPANS"]
    assert row.startswith(login) and "gateway" in row and "POST /login" in row and "40.0 ms" in row
    answer = json.loads(query('{ duration > 1s && resource.service.name = "payments" }', "--json").stdout)
    assert [t["traceID"] for t in answer["traces"]] == [slow.lstrip("0")]
    assert query("{ } ", "--since", "1h").stdout == "no traces match\n"
    bad = query("{ .a = }")
    assert bad.returncode != 0 and "parse error at line 1, col 8" in bad.stderr
