"""Grafana Tempo's API messages (grafana/tempo pkg/tempopb/tempo.proto), built as protobuf
descriptors here, so tests decode Osprey's Tempo answers with Tempo's own definitions: field names,
numbers and types. Tempo's copies of the OTLP messages are wire- and JSON-identical to OTLP's, so
the OTLP Python package's are used for them.

`json_format.Parse` refuses unknown fields and wrong types, so a decoded answer has Tempo's shape."""

from descriptors import F, build
from opentelemetry.proto.common.v1 import common_pb2  # noqa: F401 (registers KeyValue)
from opentelemetry.proto.trace.v1 import trace_pb2  # noqa: F401 (registers ResourceSpans)

STRING, UINT32, UINT64, INT64, DOUBLE, MESSAGE, ENUM = (
    F.TYPE_STRING, F.TYPE_UINT32, F.TYPE_UINT64, F.TYPE_INT64, F.TYPE_DOUBLE, F.TYPE_MESSAGE, F.TYPE_ENUM)
KEY_VALUE = ".opentelemetry.proto.common.v1.KeyValue"
RESOURCE_SPANS = ".opentelemetry.proto.trace.v1.ResourceSpans"

# message name → [(field name, number, type, repeated, message or enum type)]
MESSAGES = {
    "Trace": [("resourceSpans", 1, MESSAGE, True, RESOURCE_SPANS)],
    "TraceByIDMetrics": [("inspectedBytes", 1, UINT64, False, None), ("backendReads", 2, UINT64, False, None),
                         ("backendBytes", 3, UINT64, False, None)],
    "TraceByIDResponse": [("trace", 1, MESSAGE, False, ".tempopb.Trace"),
                          ("metrics", 2, MESSAGE, False, ".tempopb.TraceByIDMetrics"),
                          ("status", 3, ENUM, False, ".tempopb.PartialStatus"), ("message", 4, STRING, False, None)],
    "ServiceStats": [("spanCount", 1, UINT32, False, None), ("errorCount", 2, UINT32, False, None)],
    "Span": [("spanID", 1, STRING, False, None), ("name", 2, STRING, False, None),
             ("startTimeUnixNano", 3, UINT64, False, None), ("durationNanos", 4, UINT64, False, None),
             ("attributes", 5, MESSAGE, True, KEY_VALUE)],
    "SpanSet": [("spans", 1, MESSAGE, True, ".tempopb.Span"), ("matched", 2, UINT32, False, None),
                ("attributes", 3, MESSAGE, True, KEY_VALUE)],
    "TraceSearchMetadata": [("traceID", 1, STRING, False, None), ("rootServiceName", 2, STRING, False, None),
                            ("rootTraceName", 3, STRING, False, None), ("startTimeUnixNano", 4, UINT64, False, None),
                            ("durationMs", 5, UINT32, False, None), ("spanSet", 6, MESSAGE, False, ".tempopb.SpanSet"),
                            ("spanSets", 7, MESSAGE, True, ".tempopb.SpanSet"),
                            ("serviceStats", 8, MESSAGE, True, ".tempopb.TraceSearchMetadata.ServiceStatsEntry")],
    "SearchMetrics": [("inspectedTraces", 1, UINT32, False, None), ("inspectedBytes", 2, UINT64, False, None),
                      ("totalBlocks", 3, UINT32, False, None), ("completedJobs", 4, UINT32, False, None),
                      ("totalJobs", 5, UINT32, False, None), ("totalBlockBytes", 6, UINT64, False, None),
                      ("inspectedSpans", 7, UINT64, False, None)],
    "SearchResponse": [("traces", 1, MESSAGE, True, ".tempopb.TraceSearchMetadata"),
                       ("metrics", 2, MESSAGE, False, ".tempopb.SearchMetrics")],
    "MetadataMetrics": [("inspectedBytes", 1, UINT64, False, None), ("totalJobs", 2, UINT32, False, None),
                        ("completedJobs", 3, UINT32, False, None), ("totalBlocks", 4, UINT32, False, None),
                        ("totalBlockBytes", 5, UINT64, False, None)],
    "SearchTagsResponse": [("tagNames", 1, STRING, True, None), ("metrics", 2, MESSAGE, False, ".tempopb.MetadataMetrics")],
    "SearchTagsV2Scope": [("name", 1, STRING, False, None), ("tags", 2, STRING, True, None)],
    "SearchTagsV2Response": [("scopes", 1, MESSAGE, True, ".tempopb.SearchTagsV2Scope"),
                             ("metrics", 2, MESSAGE, False, ".tempopb.MetadataMetrics")],
    "SearchTagValuesResponse": [("tagValues", 1, STRING, True, None),
                                ("metrics", 2, MESSAGE, False, ".tempopb.MetadataMetrics")],
    "TagValue": [("type", 1, STRING, False, None), ("value", 2, STRING, False, None)],
    "SearchTagValuesV2Response": [("tagValues", 1, MESSAGE, True, ".tempopb.TagValue"),
                                  ("metrics", 2, MESSAGE, False, ".tempopb.MetadataMetrics")],
    "Sample": [("timestamp_ms", 2, INT64, False, None), ("value", 1, DOUBLE, False, None)],
    "Exemplar": [("labels", 1, MESSAGE, True, KEY_VALUE), ("value", 2, DOUBLE, False, None),
                 ("timestamp_ms", 3, INT64, False, None)],
    "TimeSeries": [("labels", 1, MESSAGE, True, KEY_VALUE), ("samples", 2, MESSAGE, True, ".tempopb.Sample"),
                   ("exemplars", 4, MESSAGE, True, ".tempopb.Exemplar")],
    "QueryRangeResponse": [("series", 1, MESSAGE, True, ".tempopb.TimeSeries"),
                           ("metrics", 2, MESSAGE, False, ".tempopb.SearchMetrics"),
                           ("status", 3, ENUM, False, ".tempopb.PartialStatus"), ("message", 4, STRING, False, None)],
    "InstantSeries": [("labels", 1, MESSAGE, True, KEY_VALUE), ("value", 2, DOUBLE, False, None)],
    "QueryInstantResponse": [("series", 1, MESSAGE, True, ".tempopb.InstantSeries"),
                             ("metrics", 2, MESSAGE, False, ".tempopb.SearchMetrics"),
                             ("status", 3, ENUM, False, ".tempopb.PartialStatus"), ("message", 4, STRING, False, None)],
}


TEMPO = build(
    "osprey_tests/tempopb/tempo.proto", "tempopb",
    ["opentelemetry/proto/common/v1/common.proto", "opentelemetry/proto/trace/v1/trace.proto"],
    MESSAGES,
    maps={"TraceSearchMetadata": ("ServiceStatsEntry", ("key", 1, STRING, False, None),
                                  ("value", 2, MESSAGE, False, ".tempopb.ServiceStats"))},
    enums={"PartialStatus": [("COMPLETE", 0), ("PARTIAL", 1)]})
