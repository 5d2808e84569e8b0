"""The demo shop, run for real against Osprey: traces cross six processes with correct links, the
injected slow database calls are where the time went, and injected errors carry error status."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import OSPREY_BIN, ROOT

DEMO_BIN = Path(os.environ.get("OSPREY_DEMO_BIN", ROOT / "target" / "debug" / "osprey-demo"))
SERVICES = {"gateway", "auth", "orders", "inventory", "payments", "database"}
WINDOW = "query.start_time_min=2000-01-01T00:00:00Z&query.start_time_max=2100-01-01T00:00:00Z"
SERVER, CLIENT = 2, 3
ERROR = 2


def attributes(span_or_resource):
    out = {}
    for kv in span_or_resource.get("attributes", []):
        value = kv.get("value") or {}
        out[kv["key"]] = next(iter(value.values()), None) if value else None
    return out


def spans_of(osprey, trace_id):
    response = osprey.get(f"/api/v3/traces/{trace_id}")
    assert response.status_code == 200, response.text
    spans = []
    for rs in response.json()["result"]["resourceSpans"]:
        service = attributes(rs["resource"])["service.name"]
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                spans.append({**span, "service": service, "attrs": attributes(span),
                              "start": int(span["startTimeUnixNano"]), "end": int(span["endTimeUnixNano"])})
    return spans


def self_times(spans):
    """Span id → self time (duration minus the union of its children's intervals)."""
    out = {}
    for span in spans:
        children = sorted((max(c["start"], span["start"]), min(c["end"], span["end"]))
                          for c in spans if c.get("parentSpanId") == span["spanId"])
        covered, reach = 0, span["start"]
        for start, end in children:
            start = max(start, reach)
            if end > start:
                covered, reach = covered + end - start, end
        out[span["spanId"]] = span["end"] - span["start"] - covered
    return out


def children_of(pid):
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.fixture
def demo_run(osprey):
    """Runs `osprey-demo up` against the test's Osprey: 40 checkouts with faults, then it stops."""
    process = subprocess.Popen(
        [str(DEMO_BIN), "up", "--osprey-endpoint", f"http://{osprey.grpc_endpoint}", "--base-port", "0",
         "--requests", "40", "--rate", "10", "--slow-db-share", "0.25", "--payment-error-share", "0.2",
         "--slow-inventory-share", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            # `up` starts each service in a process group of its own: stop them, then `up`.
            for child in children_of(process.pid):
                os.kill(child, signal.SIGKILL)
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "checkouts:" in output, output
    return osprey


def test_demo_traces_tell_the_slow_payment_story(demo_run):
    osprey = demo_run
    summaries = osprey.get(f"/api/v3/trace-summaries?{WINDOW}&query.service_name=gateway"
                           "&query.search_depth=1000").json()["summaries"]
    assert len(summaries) == 40
    assert all(s["rootServiceName"] == "gateway" and s["rootOperationName"] == "POST /checkout" for s in summaries)

    slow, failed = set(), set()
    for summary in summaries:
        trace_id = summary["traceId"]
        spans = spans_of(osprey, trace_id)
        by_id = {s["spanId"]: s for s in spans}
        [root] = [s for s in spans if not s.get("parentSpanId")]
        assert root["service"] == "gateway" and root["kind"] == SERVER

        for span in spans:
            if span is root:
                continue
            parent = by_id.get(span["parentSpanId"])
            assert parent is not None, f"{trace_id}: {span['service']} {span['name']} has no parent in the trace"
            if span["kind"] == SERVER:
                # Crossing a process boundary: the parent is the caller's CLIENT span, naming this service.
                assert parent["kind"] == CLIENT and parent["service"] != span["service"], (trace_id, span["name"])
                assert parent["attrs"]["peer.service"] == span["service"]
                assert span["attrs"]["http.request.method"] and span["attrs"]["url.path"]
                assert "http.response.status_code" in span["attrs"]
                # Baggage set by the gateway reached every service.
                assert span["attrs"]["customer.id"].startswith("customer-")

        db_call = next(s for s in spans if s["service"] == "payments" and s["kind"] == CLIENT)
        assert db_call["attrs"]["db.system"] == "postgresql"
        assert db_call["attrs"]["db.query.text"].startswith("SELECT balance FROM payments")

        payments = next(s for s in spans if s["service"] == "payments" and s["kind"] == SERVER)
        if payments.get("status", {}).get("code") == ERROR:
            failed.add(trace_id)
            assert root["status"]["code"] == ERROR
            assert any(e["name"] == "exception" for e in payments.get("events", []))
        else:
            assert {s["service"] for s in spans} == SERVICES
            assert root.get("status", {}).get("code", 0) != ERROR

        if "FOR UPDATE" in db_call["attrs"]["db.query.text"]:
            slow.add(trace_id)
            own = self_times(spans)
            heaviest = by_id[max(own, key=own.get)]
            assert (heaviest["service"], heaviest["name"]) == ("database", "SELECT payments"), trace_id
            assert own[heaviest["spanId"]] >= 1_700_000_000
            assert root["end"] - root["start"] >= 1_800_000_000

    # Faults hit exact shares: every 4th charge is slow, every 5th fails.
    assert len(slow) == 10
    assert len(failed) == 8
    # The story's search: slow checkouts are exactly the ones with a slow database call.
    slow_search = osprey.get(f"/api/v3/trace-summaries?{WINDOW}&query.service_name=gateway"
                             "&query.duration_min=1.5s&query.search_depth=1000").json()["summaries"]
    assert {s["traceId"] for s in slow_search} == slow

    tree = subprocess.run([str(OSPREY_BIN), "trace", sorted(slow)[0], "--server", osprey.query_url],
                          capture_output=True, text=True, timeout=60)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.splitlines()[-1].startswith("most self time: database: SELECT payments, 1.8")
