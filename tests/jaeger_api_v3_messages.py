"""Jaeger's api_v3 gRPC messages (jaegertracing/jaeger-idl proto/api_v3/query_service.proto), built as
protobuf descriptors here so the tests call Osprey's `jaeger.api_v3.QueryService` with Jaeger's own
field names, numbers and types; traces come back as OTLP `TracesData` (the OTLP package's)."""

from google.protobuf import duration_pb2, timestamp_pb2  # noqa: F401 (registers Timestamp, Duration)

from descriptors import F, build
from opentelemetry.proto.trace.v1 import trace_pb2

STRING, BOOL, INT32, UINT64, FIXED64, MESSAGE = (
    F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_INT32, F.TYPE_UINT64, F.TYPE_FIXED64, F.TYPE_MESSAGE)
TIMESTAMP, DURATION = ".google.protobuf.Timestamp", ".google.protobuf.Duration"

MESSAGES = {
    "GetTraceRequest": [("trace_id", 1, STRING, False, None), ("start_time", 2, MESSAGE, False, TIMESTAMP),
                        ("end_time", 3, MESSAGE, False, TIMESTAMP), ("raw_traces", 4, BOOL, False, None)],
    "TraceQueryParameters": [("service_name", 1, STRING, False, None), ("operation_name", 2, STRING, False, None),
                             ("attributes", 3, MESSAGE, True, ".jaeger.api_v3.TraceQueryParameters.AttributesEntry"),
                             ("start_time_min", 4, MESSAGE, False, TIMESTAMP), ("start_time_max", 5, MESSAGE, False, TIMESTAMP),
                             ("duration_min", 6, MESSAGE, False, DURATION), ("duration_max", 7, MESSAGE, False, DURATION),
                             ("search_depth", 8, INT32, False, None), ("raw_traces", 9, BOOL, False, None)],
    "FindTracesRequest": [("query", 1, MESSAGE, False, ".jaeger.api_v3.TraceQueryParameters")],
    "GetServicesRequest": [],
    "GetServicesResponse": [("services", 1, STRING, True, None)],
    "GetOperationsRequest": [("service", 1, STRING, False, None), ("span_kind", 2, STRING, False, None)],
    "Operation": [("name", 1, STRING, False, None), ("span_kind", 2, STRING, False, None)],
    "GetOperationsResponse": [("operations", 1, MESSAGE, True, ".jaeger.api_v3.Operation")],
    "GetDependenciesRequest": [("start_time", 1, MESSAGE, False, TIMESTAMP), ("end_time", 2, MESSAGE, False, TIMESTAMP)],
    "Dependency": [("parent", 1, STRING, False, None), ("child", 2, STRING, False, None),
                   ("call_count", 3, UINT64, False, None)],
    "DependenciesResponse": [("dependencies", 1, MESSAGE, True, ".jaeger.api_v3.Dependency")],
    "ServiceSummary": [("name", 1, STRING, False, None), ("span_count", 2, INT32, False, None),
                       ("error_span_count", 3, INT32, False, None)],
    "TraceSummary": [("trace_id", 1, STRING, False, None), ("root_service_name", 2, STRING, False, None),
                     ("root_operation_name", 3, STRING, False, None), ("min_start_time_unix_nano", 4, FIXED64, False, None),
                     ("max_end_time_unix_nano", 5, FIXED64, False, None), ("span_count", 6, INT32, False, None),
                     ("error_span_count", 7, INT32, False, None), ("orphan_span_count", 8, INT32, False, None),
                     ("services", 9, MESSAGE, True, ".jaeger.api_v3.ServiceSummary")],
    "FindTraceSummariesRequest": [("query", 1, MESSAGE, False, ".jaeger.api_v3.TraceQueryParameters")],
    "FindTraceSummariesResponse": [("summaries", 1, MESSAGE, True, ".jaeger.api_v3.TraceSummary")],
}


API_V3 = build(
    "osprey_tests/jaeger/api_v3/query_service.proto", "jaeger.api_v3",
    ["google/protobuf/timestamp.proto", "google/protobuf/duration.proto"],
    MESSAGES,
    maps={"TraceQueryParameters": ("AttributesEntry", ("key", 1, STRING, False, None),
                                   ("value", 2, STRING, False, None))})
API_V3["TracesData"] = trace_pb2.TracesData
