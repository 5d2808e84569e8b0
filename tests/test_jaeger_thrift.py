"""Jaeger clients' thrift: a Batch over HTTP (14268) and agent emitBatch datagrams over UDP (compact
6831, binary 6832), encoded by a real thrift library from Jaeger's IDL, read back through Jaeger's
APIs field by field."""

import os
import socket
import time

import requests
import thriftpy2
from thriftpy2.protocol import TBinaryProtocolFactory, TCompactProtocolFactory
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TMemoryBuffer

from conftest import ROOT

IDL = ROOT / "tests" / "thrift"
jaeger = thriftpy2.load(str(IDL / "jaeger.thrift"), module_name="jaeger_thrift")
agent = thriftpy2.load(str(IDL / "agent.thrift"), module_name="agent_thrift")

BASE_US = 1_750_000_000_000_000


def tag(key, value):
    if isinstance(value, bool):
        return jaeger.Tag(key=key, vType=jaeger.TagType.BOOL, vBool=value)
    if isinstance(value, int):
        return jaeger.Tag(key=key, vType=jaeger.TagType.LONG, vLong=value)
    if isinstance(value, float):
        return jaeger.Tag(key=key, vType=jaeger.TagType.DOUBLE, vDouble=value)
    return jaeger.Tag(key=key, vType=jaeger.TagType.STRING, vStr=value)


def signed(value):
    """A 64-bit id as thrift's signed i64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def batch(service, trace_low):
    """A server span with a failed child call that also follows another trace's span."""
    trace_high = signed(0xA1B2C3D4E5F60718)
    root = jaeger.Span(traceIdLow=trace_low, traceIdHigh=trace_high, spanId=1, parentSpanId=0,
                       operationName="GET /stock", flags=1, startTime=BASE_US, duration=250_000,
                       tags=[tag("span.kind", "server"), tag("http.status_code", 200), tag("ratio", 0.5),
                             tag("otel.library.name", "jaeger-client")],
                       logs=[jaeger.Log(timestamp=BASE_US + 10, fields=[tag("event", "cache miss"), tag("key", "sku-1")])])
    child = jaeger.Span(traceIdLow=trace_low, traceIdHigh=trace_high, spanId=signed(0xFEDCBA9876543210),
                        parentSpanId=1, operationName="SELECT stock", flags=1, startTime=BASE_US + 1000,
                        duration=200_000, tags=[tag("span.kind", "client"), tag("error", True)],
                        # The parent again as a CHILD_OF reference, as jaeger-client-go sends it.
                        references=[jaeger.SpanRef(refType=jaeger.SpanRefType.CHILD_OF, traceIdLow=trace_low,
                                                   traceIdHigh=trace_high, spanId=1),
                                    jaeger.SpanRef(refType=jaeger.SpanRefType.FOLLOWS_FROM, traceIdLow=7,
                                                   traceIdHigh=0, spanId=9)])
    process = jaeger.Process(serviceName=service, tags=[tag("hostname", "node-1")])
    return jaeger.Batch(process=process, spans=[root, child])


def trace_hex(trace_low):
    return f"a1b2c3d4e5f60718{trace_low & (1 << 64) - 1:016x}"


def encoded(message, compact=False):
    buffer = TMemoryBuffer()
    protocol = (TCompactProtocolFactory() if compact else TBinaryProtocolFactory()).get_protocol(buffer)
    message(protocol)
    return buffer.getvalue()


def agent_datagram(b, compact):
    def write(protocol):
        protocol.write_message_begin("emitBatch", TMessageType.ONEWAY, 1)
        agent.Agent.emitBatch_args(batch=b).write(protocol)
        protocol.write_message_end()
    return encoded(write, compact)


def check_trace(osprey, service, trace_low):
    trace = osprey.get(f"/api/traces/{trace_hex(trace_low)}").json()["data"][0]
    by_name = {s["operationName"]: s for s in trace["spans"]}
    root, child = by_name["GET /stock"], by_name["SELECT stock"]
    assert trace["processes"][root["processID"]] == {
        "serviceName": service, "tags": [{"key": "hostname", "type": "string", "value": "node-1"}]}
    assert root["startTime"] == BASE_US and root["duration"] == 250_000
    assert {"key": "http.status_code", "type": "int64", "value": 200} in root["tags"]
    assert {"key": "ratio", "type": "float64", "value": 0.5} in root["tags"]
    assert {"key": "span.kind", "type": "string", "value": "server"} in root["tags"]
    assert {"key": "otel.scope.name", "type": "string", "value": "jaeger-client"} in root["tags"]
    assert root["logs"] == [{"timestamp": BASE_US + 10, "fields": [
        {"key": "event", "type": "string", "value": "cache miss"}, {"key": "key", "type": "string", "value": "sku-1"}]}]
    assert child["spanID"] == "fedcba9876543210"
    assert child["references"][0] == {"refType": "CHILD_OF", "traceID": trace_hex(trace_low), "spanID": "0000000000000001"}
    assert child["references"][1]["refType"] == "FOLLOWS_FROM" and child["references"][1]["spanID"] == "0000000000000009"
    assert len(child["references"]) == 2, "the parent's CHILD_OF reference is not a link too"
    assert {"key": "error", "type": "bool", "value": True} in child["tags"]
    assert {"key": "otel.status_code", "type": "string", "value": "ERROR"} in child["tags"]


def wait_for_trace(osprey, trace_low):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if osprey.get(f"/api/traces/{trace_hex(trace_low)}").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_hex(trace_low)} never arrived:\n{osprey.log()[-2000:]}")


def test_thrift_over_http(osprey):
    body = encoded(batch("inventory", 11).write)
    response = requests.post(f"http://127.0.0.1:{osprey.jaeger_http_port}/api/traces", data=body,
                             headers={"Content-Type": "application/x-thrift"}, timeout=30)
    assert response.status_code == 202, response.text
    check_trace(osprey, "inventory", 11)
    # The same trace through api_v3 as OTLP: typed attributes, the status, events and links.
    spans = [s for rs in osprey.get(f"/api/v3/traces/{trace_hex(11)}").json()["result"]["resourceSpans"]
             for ss in rs["scopeSpans"] for s in ss["spans"]]
    child = next(s for s in spans if s["name"] == "SELECT stock")
    assert child["status"]["code"] == 2 and child["kind"] == 3
    assert child["links"][0]["spanId"] == "0000000000000009"

    bad = requests.post(f"http://127.0.0.1:{osprey.jaeger_http_port}/api/traces", data=b"\x0c\x00\x01\x0b\x00\x01\xff\xff\xff\xff",
                        headers={"Content-Type": "application/x-thrift"}, timeout=30)
    assert bad.status_code == 400 and "Unable to process request body" in bad.text and "negative length" in bad.text


def test_agent_datagrams_over_udp(osprey):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        # Garbage first: refused quietly, and the port keeps working.
        udp.sendto(os.urandom(64), ("127.0.0.1", osprey.jaeger_compact_port))
        udp.sendto(agent_datagram(batch("cart", 21), compact=True), ("127.0.0.1", osprey.jaeger_compact_port))
        udp.sendto(agent_datagram(batch("checkout", signed(0xF000000000000022)), compact=False),
                   ("127.0.0.1", osprey.jaeger_binary_port))
    wait_for_trace(osprey, 21)
    check_trace(osprey, "cart", 21)
    wait_for_trace(osprey, signed(0xF000000000000022))
    check_trace(osprey, "checkout", signed(0xF000000000000022))
    assert osprey.process.poll() is None
