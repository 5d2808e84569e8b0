"""Fields the SDKs never send (bytes and map attributes, dropped counts, schema URLs, link flags…) are
kept too: a hand-built OTLP protobuf request comes back field for field."""

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otlp_compare import from_json, from_protobuf

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def kv(key, **value):
    return KeyValue(key=key, value=AnyValue(**value))


def every_value():
    nested = KeyValueList(values=[kv("inner", string_value="x"), kv("n", int_value=-7)])
    return [
        kv("s", string_value="text ✓"),
        kv("b", bool_value=True),
        kv("f", bool_value=False),
        kv("i", int_value=-9223372036854775808),
        kv("zero", int_value=0),
        kv("d", double_value=3.25),
        kv("raw", bytes_value=b"\x00\x01\xfe\xff"),
        kv("arr", array_value=ArrayValue(values=[AnyValue(string_value="a"), AnyValue(int_value=2),
                                                 AnyValue(array_value=ArrayValue(values=[AnyValue(bool_value=True)]))])),
        kv("map", kvlist_value=KeyValueList(values=[kv("nested", kvlist_value=nested), kv("d", double_value=0.5)])),
        KeyValue(key="unset"),
    ]


def request():
    span = Span(
        trace_id=TRACE_ID,
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        trace_state="congo=t61rcWkgMzE",
        flags=0x301,
        name="every field",
        kind=Span.SPAN_KIND_CONSUMER,
        start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=1_700_000_001_987_654_321,
        attributes=every_value(),
        dropped_attributes_count=3,
        events=[Span.Event(time_unix_nano=1_700_000_000_500_000_000, name="e", attributes=every_value(),
                           dropped_attributes_count=1)],
        dropped_events_count=4,
        links=[Span.Link(trace_id=bytes.fromhex("11" * 16), span_id=bytes.fromhex("22" * 8),
                         trace_state="a=b", attributes=every_value(), dropped_attributes_count=2, flags=0x101)],
        dropped_links_count=5,
        status=Status(code=Status.STATUS_CODE_ERROR, message="it broke"),
    )
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", string_value="fields"), *every_value()],
                          dropped_attributes_count=6),
        schema_url="https://opentelemetry.io/schemas/1.21.0",
        scope_spans=[ScopeSpans(
            scope=InstrumentationScope(name="hand", version="0.0.1", attributes=every_value(),
                                       dropped_attributes_count=7),
            schema_url="https://opentelemetry.io/schemas/1.22.0",
            spans=[span],
        )],
    )])


def test_every_otlp_field_round_trips(osprey):
    sent = request()
    response = requests.post(f"{osprey.http_url}/v1/traces", data=sent.SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"

    stored = osprey.get(f"/api/v3/traces/{TRACE_ID.hex()}").json()["result"]["resourceSpans"]
    assert from_json(stored) == from_protobuf(sent)
    span = stored[0]["scopeSpans"][0]["spans"][0]
    assert span["droppedLinksCount"] == 5 and span["links"][0]["flags"] == 0x101
    assert stored[0]["schemaUrl"] == "https://opentelemetry.io/schemas/1.21.0"
