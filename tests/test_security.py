"""TLS on every listener and bearer tokens (`--tls-cert`, `--tls-key`, `--auth-tokens`), with real
clients: the OpenTelemetry SDK's OTLP exporters (gRPC and HTTP) over TLS with a token, grpcio and
requests for the refusals, tenants kept apart by their tokens, and a certificate replaced on disk
served without a restart."""

import datetime
import ipaddress
import ssl
import subprocess
import time

import grpc
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from google.rpc import status_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import OSPREY_BIN

TOKEN_A = "team-a-token-0123456789"
TOKEN_B = "team-b-token-0123456789"
TOKEN_A_INGEST = "team-a-ingest-only-0123"
TOKEN_METRICS = "prometheus-token-012345"


def write_certificate(directory, common_name):
    """A certificate for 127.0.0.1 and localhost, signed by a CA of its own; returns (cert path,
    key path). The certificate file holds the chain, so it also serves as the CA file clients
    trust (rustls, unlike OpenSSL, refuses a server certificate that is itself a CA)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def signed(subject, public_key, issuer, issuer_key, is_ca):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
            # What strict verification (Python 3.13's default) asks of each certificate.
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=is_ca, crl_sign=is_ca,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, encipher_only=False,
                              decipher_only=False),
                critical=True,
            )
        )
        if not is_ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} CA")])
    ca = signed(ca_name, ca_key.public_key(), ca_name, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = signed(name, key.public_key(), ca_name, ca_key, False)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    # Written to temporary names and renamed, as a Secret update or a renewal replaces them.
    for path, data in [
        (key_path, key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )),
        (cert_path, certificate.public_bytes(serialization.Encoding.PEM)
         + ca.public_bytes(serialization.Encoding.PEM)),
    ]:
        temporary = path.with_suffix(".new")
        temporary.write_bytes(data)
        temporary.replace(path)
    return cert_path, key_path


@pytest.fixture
def secured(start_osprey, tmp_path):
    cert, key = write_certificate(tmp_path, "osprey-test-1")
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        f"- token: {TOKEN_A}\n  tenant: team-a\n  allow: [ingest, query]\n"
        f"- token: {TOKEN_B}\n  tenant: team-b\n  allow: [ingest, query]\n"
        f"- token: {TOKEN_A_INGEST}\n  tenant: team-a\n  allow: [ingest]\n"
        f"- token: {TOKEN_METRICS}\n  tenant: ops\n  allow: [metrics]\n"
    )
    return start_osprey("--tls-cert", str(cert), "--tls-key", str(key), "--auth-tokens", str(tokens))


def finished_spans(service):
    """Spans of one small trace made by the SDK; returns (spans, trace id as hex)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("security-test")
    with tracer.start_as_current_span("checkout") as root:
        with tracer.start_as_current_span("charge"):
            pass
    provider.shutdown()
    return memory.get_finished_spans(), format(root.get_span_context().trace_id, "032x")


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def wait_for_trace(osprey, trace_id, token):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        response = osprey.get(f"/api/traces/{trace_id}", headers=bearer(token))
        if response.status_code == 200:
            return response.json()["data"][0]
        time.sleep(0.1)
    raise AssertionError(f"trace {trace_id} never came back: {response.status_code} {response.text}")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_sdk_exports_over_tls_with_a_token_and_its_tenant_alone_reads_it(
    secured, protocol, monkeypatch
):
    # requests lets these variables override a session's own CA file (the HTTP exporter's
    # certificate_file), so a machine that sets them would test its own bundle, not ours.
    for variable in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]:
        monkeypatch.delenv(variable, raising=False)
    spans, trace_id = finished_spans(f"tls-{protocol}")
    ca = secured.ca
    if protocol == "grpc":
        exporter = GrpcExporter(
            endpoint=f"https://127.0.0.1:{secured.grpc_port}",
            credentials=grpc.ssl_channel_credentials(open(ca, "rb").read()),
            headers=(("authorization", f"Bearer {TOKEN_A}"),),
        )
    else:
        exporter = HttpExporter(
            endpoint=f"{secured.http_url}/v1/traces",
            certificate_file=ca,
            headers=bearer(TOKEN_A),
        )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    trace = wait_for_trace(secured, trace_id, TOKEN_A)
    assert sorted(s["operationName"] for s in trace["spans"]) == ["charge", "checkout"]
    assert trace["processes"][trace["spans"][0]["processID"]]["serviceName"] == f"tls-{protocol}"

    # Tenant B's token finds nothing of tenant A, by id or by search, in Jaeger's API and Tempo's.
    assert secured.get(f"/api/traces/{trace_id}", headers=bearer(TOKEN_B)).status_code == 404
    services = secured.get("/api/services", headers=bearer(TOKEN_B)).json()["data"] or []
    assert f"tls-{protocol}" not in services
    tempo = requests.get(
        f"{secured.tempo_url}/api/traces/{trace_id}", headers=bearer(TOKEN_B), verify=ca, timeout=10
    )
    assert tempo.status_code == 404, tempo.text
    tempo = requests.get(
        f"{secured.tempo_url}/api/traces/{trace_id}", headers=bearer(TOKEN_A), verify=ca, timeout=10
    )
    assert tempo.status_code == 200, tempo.text
    # A token cannot be pointed at another tenant.
    asked = secured.get(
        f"/api/traces/{trace_id}", headers={**bearer(TOKEN_B), "X-Scope-OrgID": "team-a"}
    )
    assert asked.status_code == 403
    assert "team-b" in asked.json()["errors"][0]["msg"]


def test_a_wrong_token_is_refused_in_each_protocols_form(secured):
    ca = secured.ca
    # OTLP/gRPC: UNAUTHENTICATED, with no token and with a wrong one.
    channel = grpc.secure_channel(
        f"127.0.0.1:{secured.grpc_port}", grpc.ssl_channel_credentials(open(ca, "rb").read())
    )
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    request = trace_service_pb2.ExportTraceServiceRequest()
    for metadata in [(), (("authorization", "Bearer not-a-token"),)]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.Export(request, metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, refused.value
    # An ingest token is good for ingest.
    stub.Export(request, metadata=(("authorization", f"Bearer {TOKEN_A_INGEST}"),), timeout=10)
    channel.close()

    # Jaeger's api_v3 over gRPC: a query right is needed.
    channel = grpc.secure_channel(
        f"127.0.0.1:{secured.jaeger_grpc_port}", grpc.ssl_channel_credentials(open(ca, "rb").read())
    )
    get_services = channel.unary_unary(
        "/jaeger.api_v3.QueryService/GetServices",
        request_serializer=lambda message: message,
        response_deserializer=lambda data: data,
    )
    for metadata, code in [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {TOKEN_A_INGEST}"),), grpc.StatusCode.PERMISSION_DENIED),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            get_services(b"", metadata=metadata, timeout=10)
        assert refused.value.code() == code, refused.value
    get_services(b"", metadata=(("authorization", f"Bearer {TOKEN_A}"),), timeout=10)
    channel.close()

    # OTLP/HTTP: 401 with a google.rpc.Status in the request's encoding.
    response = requests.post(
        f"{secured.http_url}/v1/traces",
        data=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", **bearer("not-a-token")},
        verify=ca,
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 16 and "not valid" in status.message

    # The query API: 401 without a token, 403 for an ingest-only one, in Jaeger's error shape.
    response = secured.get("/api/services")
    assert response.status_code == 401
    assert "bearer token is required" in response.json()["errors"][0]["msg"]
    response = secured.get("/api/services", headers=bearer(TOKEN_A_INGEST))
    assert response.status_code == 403
    # Zipkin's query API and span intake, and the Tempo API, take tokens too.
    zipkin = requests.get(f"{secured.zipkin_url}/api/v2/services", verify=ca, timeout=10)
    assert zipkin.status_code == 401
    zipkin = requests.post(
        f"{secured.zipkin_url}/api/v2/spans", json=[], headers=bearer(TOKEN_B), verify=ca, timeout=10
    )
    assert zipkin.status_code == 202, zipkin.text
    assert requests.get(f"{secured.tempo_url}/api/search", verify=ca, timeout=10).status_code == 401

    # Health checks and the UI's pages answer without a token (they hold no trace data).
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/search").status_code == 200
    assert secured.get("/ui/js/api.js").status_code == 200
    # /metrics covers every tenant: it takes a token with the metrics right, not a query token.
    assert secured.get("/metrics").status_code == 401
    assert secured.get("/metrics", headers=bearer(TOKEN_A)).status_code == 403
    assert secured.get("/metrics", headers=bearer(TOKEN_METRICS)).status_code == 200


def test_the_command_line_reads_over_tls_with_a_token(secured, monkeypatch):
    for variable in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]:
        monkeypatch.delenv(variable, raising=False)
    spans, trace_id = finished_spans("cli-over-tls")
    exporter = HttpExporter(
        endpoint=f"{secured.http_url}/v1/traces", certificate_file=secured.ca, headers=bearer(TOKEN_A)
    )
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    wait_for_trace(secured, trace_id, TOKEN_A)

    def osprey(*args, token=TOKEN_A):
        access = ["--ca-cert", str(secured.ca)] + (["--token", token] if token else [])
        return subprocess.run([str(OSPREY_BIN), *args, *access], capture_output=True, text=True,
                              timeout=60)

    shown = osprey("trace", trace_id, "--server", secured.query_url)
    assert shown.returncode == 0, shown.stderr
    assert "checkout" in shown.stdout and "charge" in shown.stdout, shown.stdout
    found = osprey("query", '{ resource.service.name = "cli-over-tls" }', "--server", secured.tempo_url)
    assert found.returncode == 0, found.stderr
    assert trace_id in found.stdout, found.stdout
    # Without a token the server's refusal is what the user reads; another tenant's token finds nothing.
    refused = osprey("trace", trace_id, "--server", secured.query_url, token=None)
    assert refused.returncode != 0 and "answered 401" in refused.stderr, refused.stderr
    other = osprey("trace", trace_id, "--server", secured.query_url, token=TOKEN_B)
    assert other.returncode != 0 and "not found" in other.stderr, other.stderr
    # A server whose certificate nobody vouches for is not talked to.
    untrusted = subprocess.run([str(OSPREY_BIN), "trace", trace_id, "--server", secured.query_url,
                                "--token", TOKEN_A], capture_output=True, text=True, timeout=60)
    assert untrusted.returncode != 0 and "TLS" in untrusted.stderr, untrusted.stderr


def test_plain_text_is_refused_on_a_tls_port(secured):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{secured.query_port}/healthz", timeout=5)


def test_a_renewed_certificate_is_served_without_a_restart(secured, tmp_path):
    def served_subject():
        pem = ssl.get_server_certificate(("127.0.0.1", secured.query_port))
        return x509.load_pem_x509_certificate(pem.encode()).subject.rfc4514_string()

    assert served_subject() == "CN=osprey-test-1"
    write_certificate(tmp_path, "osprey-test-2")
    deadline = time.monotonic() + 20
    while served_subject() != "CN=osprey-test-2":
        assert time.monotonic() < deadline, "the renewed certificate was not picked up"
        time.sleep(0.5)
    assert "TLS certificate reloaded" in secured.log()
    # Still a working server, with the new certificate.
    assert secured.get("/healthz").status_code == 200


def test_without_configuration_it_runs_open_and_says_so(osprey):
    log = osprey.log()
    assert "no --auth-tokens" in log
    assert "plain text" in log
    assert osprey.get("/api/services").status_code == 200


def test_the_ui_asks_for_a_token_once_and_shows_only_its_tenant(secured, monkeypatch):
    from playwright.sync_api import sync_playwright

    from test_ui import CHROMIUM, CHROMIUM_ARGS

    for variable in ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]:
        monkeypatch.delenv(variable, raising=False)
    traces = {}
    for service, token in [("ui-team-a", TOKEN_A), ("ui-team-b", TOKEN_B)]:
        spans, trace_id = finished_spans(service)
        traces[service] = trace_id
        exporter = HttpExporter(
            endpoint=f"{secured.http_url}/v1/traces", certificate_file=secured.ca, headers=bearer(token)
        )
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        wait_for_trace(secured, trace_id, token)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            prompts = []

            def answer(dialog):
                prompts.append(dialog.message)
                dialog.accept(TOKEN_A)

            page.on("dialog", answer)
            page.goto(f"{secured.query_url}/search")
            page.wait_for_selector("select[name=service] option[value=ui-team-a]", state="attached")
            services = page.locator("select[name=service] option").evaluate_all(
                "options => options.map(o => o.value)"
            )
            assert "ui-team-b" not in services
            assert len(prompts) == 1, prompts
            assert "access token" in prompts[0]
            # Kept for the next page: no second prompt.
            page.goto(f"{secured.query_url}/search")
            page.wait_for_selector("select[name=service] option[value=ui-team-a]", state="attached")
            assert len(prompts) == 1
            # The trace's JSON link opens the answer, fetched with the token a plain link lacks.
            trace_id = traces["ui-team-a"]
            page.goto(f"{secured.query_url}/trace/{trace_id}")
            with page.context.expect_page() as opened:
                page.get_by_role("link", name="JSON").click()
            tab = opened.value
            tab.wait_for_function("document.body && document.body.innerText.includes('resourceSpans')")
            assert trace_id in tab.inner_text("body") or "ui-team-a" in tab.inner_text("body")
            assert "401" not in tab.inner_text("body")

            # A kept token that may not read (ingest only) is answered 403: the UI asks for another.
            context = browser.new_context(ignore_https_errors=True)
            context.add_init_script(f"localStorage.setItem('osprey.token', '{TOKEN_A_INGEST}')")
            page = context.new_page()
            prompts.clear()
            page.on("dialog", answer)
            page.goto(f"{secured.query_url}/search")
            page.wait_for_selector("select[name=service] option[value=ui-team-a]", state="attached")
            assert len(prompts) == 1 and "403" in prompts[0], prompts
        finally:
            browser.close()
