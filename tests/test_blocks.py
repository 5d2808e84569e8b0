"""Blocks: the head is cut into Parquet blocks on a local directory or an S3 bucket, and every answer
stays the same: nothing OTLP carries is lost, DuckDB reads the files, a restart replays only what no
block holds, SIGKILL during cuts loses and doubles nothing, and a second server on the same bucket
answers for every trace in it."""

import json
import os
import random
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import OSPREY_BIN, free_port
from otlp_compare import from_json, from_protobuf
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from spans import new_trace_id, request, span
from test_otlp_fields import TRACE_ID, kv
from test_otlp_fields import request as every_field_request

# The test spans are from 2025: a retention long enough to keep them.
KEEP = ("--retention", "3650d")
CUT_FAST = ("--max-block-duration", "1s", *KEEP)


def post(server, message):
    return requests.post(f"{server.http_url}/v1/traces", data=message.SerializeToString(),
                         headers={"Content-Type": "application/x-protobuf"}, timeout=30)


def metric(server, name, tenant="single-tenant"):
    for line in server.get("/metrics").text.splitlines():
        if line.split("{")[0].split(" ")[0] in (name, name + "_total") and (
                "{" not in line or f'tenant="{tenant}"' in line):
            return float(line.split()[-1])
    raise AssertionError(f"no metric {name}")


def wait_until_in_blocks(server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(server, "osprey_head_spans") == 0 and metric(server, "osprey_blocks") >= 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"the head was not cut into blocks:\n{server.log()}")


def blocks(server, *args):
    out = subprocess.run([str(OSPREY_BIN), "blocks", "--data-dir", str(server.data_dir), "--json", *args],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def sorted_attributes(value):
    """Attribute lists in key order: a block keeps well-known attributes in columns of their own."""
    if isinstance(value, dict):
        return {k: (sorted((sorted_attributes(i) for i in v), key=lambda a: (a.get("key", ""), repr(a)))
                    if k == "attributes" else sorted_attributes(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [sorted_attributes(v) for v in value]
    return value


def with_dedicated_attributes(message):
    """Adds attributes that have dedicated columns, one of them of another type than its column's."""
    s = message.resource_spans[0].scope_spans[0].spans[0]
    s.attributes.extend([kv("http.request.method", string_value="POST"),
                         kv("http.response.status_code", int_value=503),
                         kv("db.system", int_value=7),
                         kv("http.route", string_value="/a"), kv("http.route", string_value="/b")])
    message.resource_spans[0].resource.attributes.append(kv("k8s.pod.name", string_value="payments-7f9c"))
    return message


def test_every_otlp_field_round_trips_through_a_block_and_a_restart(start_osprey):
    server = start_osprey(*CUT_FAST)
    sent = with_dedicated_attributes(every_field_request())
    assert post(server, sent).status_code == 200
    expected = sorted_attributes(from_protobuf(sent))
    wait_until_in_blocks(server)
    stored = server.get(f"/api/v3/traces/{TRACE_ID.hex()}").json()["result"]["resourceSpans"]
    assert sorted_attributes(from_json(stored)) == expected
    # Found by a dedicated column and by a generic one.
    for tags in ({"k8s.pod.name": "payments-7f9c"}, {"http.response.status_code": "503"}, {"db.system": "7"},
                 {"http.route": "/b"}):
        found = server.get("/api/traces", params={"service": "fields", "tags": json.dumps(tags)}).json()["data"]
        assert [t["traceID"] for t in found] == [TRACE_ID.hex()], tags

    server.kill()
    server.start()
    assert metric(server, "osprey_head_spans") == 0, "a restart replays nothing a block holds"
    stored = server.get(f"/api/v3/traces/{TRACE_ID.hex()}").json()["result"]["resourceSpans"]
    assert sorted_attributes(from_json(stored)) == expected
    [block] = blocks(server)
    assert block["span_count"] == 1 and block["trace_count"] == 1 and block["services"] == ["fields"]


def send_traces(server, traces=40, spans_per_trace=5):
    """Traces of a few services, `traces` of them; returns {trace id hex: span count}."""
    sent = {}
    for t in range(traces):
        trace_id = new_trace_id()
        root = os.urandom(8)
        spans = [span(trace_id, "GET /checkout", start_ms=t * 10, duration_ms=100 + t, span_id=root)]
        spans += [span(trace_id, f"step {i}", start_ms=t * 10 + i, duration_ms=5, parent=root, error=(i == 2),
                       attributes={"step": str(i)}, kind=3) for i in range(1, spans_per_trace)]
        assert post(server, request(f"svc-{t % 3}", spans[:1])).status_code == 200
        assert post(server, request("db", spans[1:], {"k8s.pod.name": f"db-{t % 2}"})).status_code == 200
        sent[trace_id.hex()] = spans_per_trace
    return sent


def answers(server, trace_ids):
    """What the APIs say about the data: must not depend on where the spans live."""
    window = {"query.start_time_min": "2020-01-01T00:00:00Z", "query.start_time_max": "2030-01-01T00:00:00Z"}
    out = {
        "services": server.get("/api/services").json()["data"],
        "operations": server.get("/api/v3/operations", params={"service": "db"}).json(),
        "search": server.get("/api/traces", params={"service": "db", "tags": '{"step":"2"}', "limit": 100})
                        .json()["data"],
        "summaries": server.get("/api/v3/trace-summaries", params={**window, "query.service_name": "svc-1",
                                                                   "query.search_depth": 100}).json(),
        "pods": server.get("/api/v3/trace-summaries", params={**window, "query.attributes": '{"k8s.pod.name":"db-1"}',
                                                              "query.search_depth": 100}).json(),
        "dependencies": server.get("/api/dependencies", params={"endTs": 1_900_000_000_000,
                                                                "lookback": 1_000_000_000_000}).json(),
        "graph": server.get("/api/osprey/service-graph", params={"start": "1749999999000000000",
                                                                 "end": "1750000009000000000"}).json(),
        "traces": [server.get(f"/api/traces/{t}").json() for t in trace_ids[:5]],
    }
    for trace in out["search"]:
        trace["spans"].sort(key=lambda s: s["spanID"])
    for answer in out["traces"]:
        for trace in answer["data"]:
            trace["spans"].sort(key=lambda s: s["spanID"])
    return out


def test_queries_answer_the_same_from_the_head_and_from_blocks(start_osprey):
    server = start_osprey("--max-block-duration", "1h", *KEEP)
    sent = send_traces(server)
    before = answers(server, sorted(sent))
    assert len(before["search"]) == 40 and before["dependencies"]["data"]
    server.kill(signal.SIGTERM)
    server.extra_args = list(CUT_FAST)
    server.start()
    wait_until_in_blocks(server)
    assert answers(server, sorted(sent)) == before


def test_duckdb_reads_a_block(start_osprey, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    # Settings from a config file this time (every flag is a key).
    config = tmp_path / "osprey.yaml"
    config.write_text("max-block-duration: 1s\nretention: 3650d\nmax_block_bytes: 64MiB\n")
    server = start_osprey("--config", str(config))
    sent = send_traces(server, traces=25)
    wait_until_in_blocks(server)
    files = str(server.data_dir / "blocks" / "single-tenant" / "blocks" / "*" / "data.parquet")
    db = duckdb.connect()
    count, traces, duration, services = db.execute(
        f"select count(*), count(distinct trace_id), sum(duration_nano), count(distinct service_name) "
        f"from read_parquet('{files}')").fetchone()
    assert (count, traces, services) == (25 * 5, 25, 4)
    assert duration == sum(100 + t for t in range(25)) * 1_000_000 + 25 * 4 * 5_000_000
    roots = db.execute(f"select distinct root_name from read_parquet('{files}')").fetchall()
    assert roots == [("GET /checkout",)]
    assert set(sent) == {bytes(r[0]).hex() for r in
                         db.execute(f"select distinct trace_id from read_parquet('{files}')").fetchall()}


def test_sigkill_during_cuts_loses_and_doubles_nothing(start_osprey):
    server = start_osprey("--max-block-duration", "300ms", "--max-block-bytes", "4KiB", *KEEP)
    acknowledged = {}
    rng = random.Random(7)
    for cycle in range(6):
        stop = threading.Event()
        lock = threading.Lock()

        def client(n):
            while not stop.is_set():
                trace_id = new_trace_id()
                spans = [span(trace_id, f"op {i}", start_ms=i) for i in range(3)]
                try:
                    ok = post(server, request(f"crash-{n}", spans)).status_code == 200
                except requests.RequestException:
                    ok = False
                if ok:
                    with lock:
                        acknowledged[trace_id.hex()] = 3

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 1.5))
        server.kill()
        stop.set()
        for t in threads:
            t.join()
        server.start()
    wait_until_in_blocks(server)
    assert len(acknowledged) > 50
    for trace_id, spans in acknowledged.items():
        data = server.get(f"/api/traces/{trace_id}").json()["data"]
        assert len(data) == 1 and len(data[0]["spans"]) == spans, trace_id
    # Exports in flight at a kill may be stored without their client hearing so: at most one a client.
    stored = sum(b["span_count"] for b in blocks(server))
    assert 3 * len(acknowledged) <= stored <= 3 * (len(acknowledged) + 4 * 6)


@pytest.fixture
def s3(tmp_path, monkeypatch):
    """A real S3-compatible server (moto) on loopback with one bucket; the AWS variables point at it."""
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    process = subprocess.Popen([os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "target", "venv",
                                             "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(endpoint, timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "test",
                           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="traces")
        yield boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    finally:
        process.kill()
        process.wait()


def test_retention_deletes_blocks_past_their_age(start_osprey):
    # Spans from 2025 written now: kept until the block itself is older than the retention.
    server = start_osprey("--max-block-duration", "1s", "--retention", "3s")
    send_traces(server, traces=3)
    deadline = time.monotonic() + 60
    while metric(server, "osprey_retention_deleted_blocks") < 1:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)
    assert metric(server, "osprey_blocks") == 0 and blocks(server) == []
    assert server.get("/api/services").json()["data"] == []


def test_tenants_see_only_their_own_spans(start_osprey):
    server = start_osprey(*CUT_FAST)
    ids = {}
    for tenant in ("acme", "globex"):
        trace_id = new_trace_id()
        ids[tenant] = trace_id.hex()
        message = request(f"{tenant}-api", [span(trace_id, "GET /", attributes={"team": tenant})])
        response = requests.post(f"{server.http_url}/v1/traces", data=message.SerializeToString(), timeout=30,
                                 headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": tenant})
        assert response.status_code == 200, response.text
    # The SDK's gRPC exporter names its tenant in metadata.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    provider = TracerProvider(resource=Resource.create({"service.name": "initech-api"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=server.grpc_endpoint, insecure=True, headers=(("x-scope-orgid", "initech"),))))
    with provider.get_tracer("t").start_as_current_span("GET /tps") as sdk_span:
        ids["initech"] = f"{sdk_span.get_span_context().trace_id:032x}"
    provider.shutdown()
    bad = requests.post(f"{server.http_url}/v1/traces", data=b"", timeout=30,
                        headers={"Content-Type": "application/x-protobuf", "X-Scope-OrgID": "a/b"})
    assert bad.status_code == 400 and "X-Scope-OrgID" in bad.text

    def check():
        for tenant, other in (("acme", "globex"), ("globex", "initech"), ("initech", "acme")):
            headers = {"X-Scope-OrgID": tenant}
            assert server.get("/api/services", headers=headers).json()["data"] == [f"{tenant}-api"]
            assert server.get(f"/api/traces/{ids[tenant]}", headers=headers).status_code == 200
            assert server.get(f"/api/traces/{ids[other]}", headers=headers).status_code == 404
            found = server.get("/api/traces", params={"tags": json.dumps({"team": other})}, headers=headers)
            assert found.json()["data"] == []
        assert server.get("/api/services").json()["data"] == [], "the default tenant has nothing"
        assert server.get("/api/services", headers={"X-Scope-OrgID": "nobody"}).json()["data"] == []
        assert server.get("/api/services", headers={"X-Scope-OrgID": "a/b"}).status_code == 400

    check()  # from the heads
    deadline = time.monotonic() + 60
    while not all(metric(server, "osprey_blocks", t) >= 1 for t in ids):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    check()  # from blocks
    assert [b["services"] for b in blocks(server, "--tenant", "acme")] == [["acme-api"]]
    server.kill()
    server.start()
    check()  # after a restart
    assert metric(server, "osprey_head_spans", "acme") == 0


def test_blocks_in_s3_and_a_second_server_reads_them(start_osprey, s3):
    storage = "s3://traces/osprey"
    writer = start_osprey(*CUT_FAST, "--storage", storage)
    sent = send_traces(writer, traces=10)
    wait_until_in_blocks(writer)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="traces")["Contents"]]
    assert any(k.startswith("osprey/single-tenant/blocks/") and k.endswith("/data.parquet") for k in keys), keys
    assert metric(writer, "osprey_object_store_requests") > 0
    expected = answers(writer, sorted(sent))
    # A server with an empty data directory on the same bucket answers for every trace in it.
    reader = start_osprey("--storage", storage, *KEEP)
    assert answers(reader, sorted(sent)) == expected
    for trace_id, spans in sent.items():
        assert len(reader.get(f"/api/traces/{trace_id}").json()["data"][0]["spans"]) == spans
    assert sum(b["span_count"] for b in blocks(writer, "--storage", storage)) == 50


def test_a_damaged_block_answers_500_with_its_cause_and_the_server_goes_on(start_osprey):
    server = start_osprey(*CUT_FAST)
    sent = send_traces(server, traces=3)
    wait_until_in_blocks(server)
    (data,) = list(server.data_dir.glob("**/data.parquet"))
    # Cut short under the running server, as a failing disk or a careless hand would leave it.
    data.write_bytes(data.read_bytes()[:64])
    trace_id = next(iter(sent))

    jaeger = server.get(f"/api/traces/{trace_id}")
    assert jaeger.status_code == 500, jaeger.text
    (error,) = jaeger.json()["errors"]
    assert error["code"] == 500 and error["msg"].startswith("reading stored spans failed: "), error
    tempo = requests.get(f"{server.tempo_url}/api/traces/{trace_id}", timeout=30)
    assert tempo.status_code == 500 and tempo.text.startswith("reading stored spans failed: "), tempo.text
    v3 = server.get(f"/api/v3/traces/{trace_id}")
    assert v3.status_code == 500 and v3.json()["error"]["httpCode"] == 500, v3.text
    # Every 5xx is logged with its cause.
    assert server.log().count("query API error: reading stored spans failed") >= 3, server.log()
    # Answers that need no span of the block still come, and the server is still up.
    assert server.get("/api/services").status_code == 200
    assert server.get("/ready").status_code == 200
