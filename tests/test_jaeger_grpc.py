"""Jaeger's api_v3 over gRPC (port 16685), called with Jaeger's message definitions: what Jaeger's own
tools and Grafana's Jaeger data source use."""

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from jaeger_api_v3_messages import API_V3
from test_query_api import shop

SERVICE = "/jaeger.api_v3.QueryService/"


def call(osprey, method, request, response, stream=False, metadata=()):
    with grpc.insecure_channel(f"127.0.0.1:{osprey.jaeger_grpc_port}") as channel:
        kind = channel.unary_stream if stream else channel.unary_unary
        rpc = kind(SERVICE + method, request_serializer=lambda m: m.SerializeToString(),
                   response_deserializer=API_V3[response].FromString)
        answer = rpc(request, timeout=30, metadata=metadata)
        return list(answer) if stream else answer


def query(**fields):
    return API_V3["TraceQueryParameters"](
        start_time_min=timestamp_pb2.Timestamp(seconds=1_750_000_000 - 3600),
        start_time_max=timestamp_pb2.Timestamp(seconds=1_750_000_000 + 3600), **fields)


def test_api_v3_over_grpc(osprey):
    slow, fast, login = shop(osprey)
    services = call(osprey, "GetServices", API_V3["GetServicesRequest"](), "GetServicesResponse")
    assert list(services.services) == ["gateway", "payments"]
    operations = call(osprey, "GetOperations", API_V3["GetOperationsRequest"](service="gateway", span_kind="server"),
                      "GetOperationsResponse")
    assert [(o.name, o.span_kind) for o in operations.operations] == [("GET /checkout", "server"), ("POST /login", "server")]

    (trace,) = call(osprey, "GetTrace", API_V3["GetTraceRequest"](trace_id=slow), "TracesData", stream=True)
    names = sorted(s.name for rs in trace.resource_spans for ss in rs.scope_spans for s in ss.spans)
    assert names == ["GET /checkout", "SELECT payments"]

    found = call(osprey, "FindTraces", API_V3["FindTracesRequest"](query=query(
        service_name="payments", duration_min=duration_pb2.Duration(seconds=1))), "TracesData", stream=True)
    assert [rs.scope_spans[0].spans[0].trace_id.hex() for t in found for rs in t.resource_spans][:1] == [slow]
    errors = call(osprey, "FindTraces", API_V3["FindTracesRequest"](query=query(attributes={"error": "true"})),
                  "TracesData", stream=True)
    assert len(errors) == 1

    (summaries,) = call(osprey, "FindTraceSummaries", API_V3["FindTraceSummariesRequest"](query=query(
        service_name="gateway")), "FindTraceSummariesResponse", stream=True)
    assert {s.trace_id for s in summaries.summaries} == {slow, fast, login}
    login_summary = next(s for s in summaries.summaries if s.trace_id == login)
    assert (login_summary.root_operation_name, login_summary.error_span_count) == ("POST /login", 1)
    assert login_summary.min_start_time_unix_nano == 1_750_000_009_000_000_000

    dependencies = call(osprey, "GetDependencies", API_V3["GetDependenciesRequest"](
        start_time=timestamp_pb2.Timestamp(seconds=1_750_000_000 - 60),
        end_time=timestamp_pb2.Timestamp(seconds=1_750_000_000 + 60)), "DependenciesResponse")
    assert [(d.parent, d.child, d.call_count) for d in dependencies.dependencies] == [("gateway", "payments", 2)]

    # The protocol's own errors: a bad or unknown id, a search without its time window, a tenant.
    for request, code in [(API_V3["GetTraceRequest"](trace_id="xyz"), grpc.StatusCode.INVALID_ARGUMENT),
                          (API_V3["GetTraceRequest"](trace_id="ab" * 16), grpc.StatusCode.NOT_FOUND)]:
        try:
            call(osprey, "GetTrace", request, "TracesData", stream=True)
        except grpc.RpcError as e:
            assert e.code() == code, e
        else:
            raise AssertionError(f"{request} answered")
    try:
        call(osprey, "FindTraces", API_V3["FindTracesRequest"](query=API_V3["TraceQueryParameters"](service_name="x")),
             "TracesData", stream=True)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "start_time_min" in e.details()
    other = call(osprey, "GetServices", API_V3["GetServicesRequest"](), "GetServicesResponse",
                 metadata=[("x-scope-orgid", "other-team")])
    assert list(other.services) == []
