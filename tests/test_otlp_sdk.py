"""The OpenTelemetry Python SDK's own OTLP exporters send spans of every shape; every field comes back."""

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otlp_compare import from_json, from_protobuf


def make_exporter(kind, osprey):
    if kind == "grpc":
        return GrpcExporter(endpoint=osprey.grpc_endpoint, insecure=True)
    return HttpExporter(endpoint=f"{osprey.http_url}/v1/traces")


def emit_every_shape(provider):
    """One trace with a remote parent (carrying trace state), every span kind, attribute type, events,
    links and statuses. Returns its trace id."""
    tracer = provider.get_tracer(
        "shop.checkout", "2.4.1", schema_url="https://opentelemetry.io/schemas/1.24.0",
        attributes={"scope.attr": "yes"},
    )
    remote_parent = SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C,
        span_id=0xEEE19B7EC3C1B174,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "opaque-value"), ("other", "x")]),
    )
    linked = SpanContext(trace_id=0xABCDEF, span_id=0x1234, is_remote=True)
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote_parent))
    with tracer.start_as_current_span(
        "GET /checkout", context=context, kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET", "http.response.status_code": 200, "ratio": 0.25,
            "cached": False, "tags": ["a", "b"], "ints": [1, 2, 3], "floats": [1.5, -2.0],
            "bools": [True, False], "empty.string": "",
        },
        links=[Link(linked, attributes={"link.reason": "batch"})],
    ) as root:
        root.add_event("request.received", attributes={"bytes": 512, "ok": True})
        root.add_event("bare event")
        for kind in (SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
            with tracer.start_as_current_span(f"child {kind.name}", kind=kind):
                pass
        with tracer.start_as_current_span("charge card", kind=SpanKind.CLIENT) as failing:
            failing.set_status(Status(StatusCode.ERROR, "card declined"))
            failing.record_exception(ValueError("declined"))
        with tracer.start_as_current_span("ok span") as ok:
            ok.set_status(Status(StatusCode.OK))
    return remote_parent.trace_id


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_spans_come_back_with_every_field(osprey, protocol):
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({
            "service.name": f"checkout-{protocol}", "deployment.environment": "test",
            "host.cpu.count": 2, "k8s.pod.labels": ["app", "tier"],
        }),
    )
    provider.add_span_processor(SimpleSpanProcessor(make_exporter(protocol, osprey)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace_id = emit_every_shape(provider)
    provider.shutdown()

    sent = from_protobuf(encode_spans(memory.get_finished_spans()))
    assert len(sent) == 7

    response = osprey.get(f"/api/v3/traces/{trace_id:032x}")
    assert response.status_code == 200, response.text
    stored = from_json(response.json()["result"]["resourceSpans"])
    assert stored.keys() == sent.keys()
    for key, expected in sent.items():
        assert stored[key] == expected, f"span {key} differs"

    # Fields the comparison relies on really were there to compare.
    root = next(v["span"] for v in stored.values() if v["span"]["name"] == "GET /checkout")
    assert root["traceState"] == "vendor=opaque-value,other=x"
    assert root["parentSpanId"] == "eee19b7ec3c1b174"
    assert root["links"][0]["attributes"][0]["key"] == "link.reason"
    assert {e["name"] for e in root["events"]} == {"request.received", "bare event"}
    failing = next(v["span"] for v in stored.values() if v["span"]["name"] == "charge card")
    assert failing["status"] == {"code": 2, "message": "card declined"}
    scope = next(iter(stored.values()))["scope"]
    assert scope["name"] == "shop.checkout" and scope["version"] == "2.4.1"

    # The Jaeger view of the same trace.
    jaeger = osprey.get(f"/api/traces/{trace_id:032x}").json()
    assert jaeger["errors"] is None
    [jtrace] = jaeger["data"]
    assert len(jtrace["spans"]) == 7
    assert {p["serviceName"] for p in jtrace["processes"].values()} == {f"checkout-{protocol}"}
    jfailing = next(s for s in jtrace["spans"] if s["operationName"] == "charge card")
    tags = {t["key"]: t for t in jfailing["tags"]}
    assert tags["error"]["value"] is True
    assert tags["otel.status_description"]["value"] == "card declined"
    assert tags["span.kind"]["value"] == "client"
    assert jfailing["logs"][0]["fields"][0] == {"key": "event", "type": "string", "value": "exception"}
