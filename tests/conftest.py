"""Fixtures that run the real `osprey` binary on free loopback ports.

Every server a test starts is stopped by the fixture, also when the test fails.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
OSPREY_BIN = Path(os.environ.get("OSPREY_BIN", ROOT / "target" / "debug" / "osprey"))


_handed_out = set()


def free_port(kind=socket.SOCK_STREAM):
    """A port free now and never handed out before in this run: the OS may give a just-closed
    port again, and a server takes a dozen at once."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class Osprey:
    """One `osprey serve` process; `start()` again after `kill()` reuses its data dir and ports."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.grpc_port, self.http_port, self.query_port = free_port(), free_port(), free_port()
        self.tempo_port, self.sampling_port, self.zipkin_port = free_port(), free_port(), free_port()
        self.jaeger_http_port, self.jaeger_grpc_port = free_port(), free_port()
        self.jaeger_compact_port = free_port(socket.SOCK_DGRAM)
        self.jaeger_binary_port = free_port(socket.SOCK_DGRAM)
        self.process = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        # With --tls-cert every port speaks TLS; requests then trust that certificate.
        args = self.extra_args
        self.ca = args[args.index("--tls-cert") + 1] if "--tls-cert" in args else None
        self.scheme = "https" if self.ca else "http"

    @property
    def grpc_endpoint(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self):
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def query_url(self):
        return f"{self.scheme}://127.0.0.1:{self.query_port}"

    @property
    def zipkin_url(self):
        return f"{self.scheme}://127.0.0.1:{self.zipkin_port}"

    @property
    def sampling_url(self):
        return f"{self.scheme}://127.0.0.1:{self.sampling_port}"

    @property
    def tempo_url(self):
        return f"{self.scheme}://127.0.0.1:{self.tempo_port}"

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(OSPREY_BIN), "serve",
                "--data-dir", str(self.data_dir),
                "--otlp-grpc-addr", self.grpc_endpoint,
                "--otlp-http-addr", f"127.0.0.1:{self.http_port}",
                "--query-addr", f"127.0.0.1:{self.query_port}",
                "--tempo-addr", f"127.0.0.1:{self.tempo_port}",
                "--sampling-addr", f"127.0.0.1:{self.sampling_port}",
                "--zipkin-addr", f"127.0.0.1:{self.zipkin_port}",
                "--jaeger-http-addr", f"127.0.0.1:{self.jaeger_http_port}",
                "--jaeger-grpc-addr", f"127.0.0.1:{self.jaeger_grpc_port}",
                "--jaeger-compact-addr", f"127.0.0.1:{self.jaeger_compact_port}",
                "--jaeger-binary-addr", f"127.0.0.1:{self.jaeger_binary_port}",
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"osprey exited with {self.process.returncode}:\n{self.log()}")
            try:
                ready = requests.get(f"{self.query_url}/ready", timeout=1, verify=self.ca or True)
                if ready.status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"osprey did not become ready:\n{self.log()}")

    def kill(self, sig=signal.SIGKILL):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path, **kwargs):
        kwargs.setdefault("verify", self.ca or True)
        return requests.get(f"{self.query_url}{path}", timeout=30, **kwargs)


@pytest.fixture
def start_osprey(tmp_path):
    """A factory: `start_osprey(*extra_args)` starts a server; all are killed at teardown."""
    servers = []

    def start(*extra_args):
        server = Osprey(tmp_path / f"data{len(servers)}", extra_args)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def osprey(start_osprey):
    return start_osprey()
