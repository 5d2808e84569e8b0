"""Small hand-built OTLP requests for the tests that need exact control over what is sent."""

import os

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

BASE_NS = 1_750_000_000_000_000_000


def attr(key, value):
    return KeyValue(key=key, value=AnyValue(string_value=value))


def new_trace_id():
    return os.urandom(16)


def span(trace_id, name, start_ms=0, duration_ms=10, parent=None, span_id=None, error=False, attributes=None,
         kind=Span.SPAN_KIND_SERVER, base_ns=BASE_NS):
    return Span(
        trace_id=trace_id,
        span_id=span_id or os.urandom(8),
        parent_span_id=parent or b"",
        name=name,
        kind=kind,
        start_time_unix_nano=base_ns + int(start_ms * 1_000_000),
        end_time_unix_nano=base_ns + int((start_ms + duration_ms) * 1_000_000),
        attributes=[attr(k, v) for k, v in (attributes or {}).items()],
        status=Status(code=Status.STATUS_CODE_ERROR if error else Status.STATUS_CODE_UNSET),
    )


def request(service, spans, resource_attributes=None):
    attributes = [attr("service.name", service)] + [attr(k, v) for k, v in (resource_attributes or {}).items()]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=attributes),
        scope_spans=[ScopeSpans(spans=spans)],
    )])
