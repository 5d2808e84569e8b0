"""Slow and stalled clients: a client that sends its headers slowly (or never; on the gRPC port, any
first bytes) is cut off, one that
trickles an export's body is refused with 408 once `--request-timeout` passes, and neither keeps
other clients from being served."""

import socket
import time

import grpc
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from spans import new_trace_id, request, span


def raw_connection(port, data):
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(data)
    return connection


def read_until_closed(connection, limit_seconds):
    """What the server sends before it closes the connection, and how long that took."""
    started = time.monotonic()
    connection.settimeout(limit_seconds)
    received = b""
    while True:
        chunk = connection.recv(4096)
        if not chunk:
            return received, time.monotonic() - started
        received += chunk


def test_clients_stalling_before_or_in_their_headers_are_cut_off_and_block_nobody(osprey):
    silent = raw_connection(osprey.query_port, b"")
    stalled = raw_connection(osprey.query_port, b"GET /api/services HTTP/1.1\r\nHost: osprey\r\n")
    silent_grpc = raw_connection(osprey.grpc_port, b"")
    # Others are served meanwhile, over HTTP and over gRPC.
    assert osprey.get("/api/services").status_code == 200
    channel = grpc.insecure_channel(f"127.0.0.1:{osprey.grpc_port}")
    trace_service_pb2_grpc.TraceServiceStub(channel).Export(
        trace_service_pb2.ExportTraceServiceRequest(), timeout=10)
    channel.close()
    # The server's deadline for a first byte or whole headers is 30 s; without one the reads below
    # time out after 60 s.
    for connection in (silent, stalled, silent_grpc):
        _, seconds = read_until_closed(connection, 60)
        assert seconds < 45


def test_a_trickled_body_is_refused_with_408_and_frees_its_slot(start_osprey):
    osprey = start_osprey("--request-timeout", "2s", "--max-concurrent-requests", "2")
    head = (
        "POST /v1/traces HTTP/1.1\r\nHost: osprey\r\nContent-Type: application/x-protobuf\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    # Two tricklers take both receiving slots.
    tricklers = [raw_connection(osprey.http_port, head + b"\x0a\x00") for _ in range(2)]
    time.sleep(0.2)
    body = request("patient-client", [span(new_trace_id(), "checkout")]).SerializeToString()
    answer = requests.post(
        f"{osprey.http_url}/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    for trickler in tricklers:
        received, _ = read_until_closed(trickler, 30)
        status_line = received.split(b"\r\n", 1)[0]
        assert status_line == b"HTTP/1.1 408 Request Timeout", received[:200]
        assert b"did not arrive within" in received
