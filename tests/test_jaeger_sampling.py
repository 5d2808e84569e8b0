"""Jaeger remote sampling: strategies from a file in Jaeger's format, read by a real SDK sampler."""

import json
import os
import subprocess

import requests

from conftest import ROOT

NODE_MODULES = ROOT / "target" / "node" / "node_modules"

STRATEGIES = {
    "service_strategies": [
        {"service": "shop", "type": "probabilistic", "param": 0.5,
         "operation_strategies": [{"operation": "GET /health", "type": "probabilistic", "param": 0}]},
        {"service": "batch", "type": "ratelimiting", "param": 5},
    ],
    "default_strategy": {"type": "probabilistic", "param": 1},
}


def test_sdks_take_their_sampling_rates_from_the_strategies_file(start_osprey, tmp_path):
    path = tmp_path / "strategies.json"
    path.write_text(json.dumps(STRATEGIES))
    osprey = start_osprey("--sampling-strategies", str(path))

    shop = requests.get(f"{osprey.sampling_url}/sampling", params={"service": "shop"}, timeout=10).json()
    assert shop["strategyType"] == "PROBABILISTIC" and shop["probabilisticSampling"] == {"samplingRate": 0.5}
    assert shop["operationSampling"]["perOperationStrategies"] == [
        {"operation": "GET /health", "probabilisticSampling": {"samplingRate": 0}}]
    # The query port answers the same at /api/sampling.
    assert osprey.get("/api/sampling", params={"service": "shop"}).json() == shop
    batch = osprey.get("/api/sampling", params={"service": "batch"}).json()
    assert batch == {"strategyType": "RATE_LIMITING", "rateLimitingSampling": {"maxTracesPerSecond": 5}}
    missing = osprey.get("/api/sampling")
    assert missing.status_code == 400 and "service" in missing.text

    # OpenTelemetry JS's Jaeger remote sampler, polling Osprey's sampling port.
    def sampled(service, *operations):
        result = subprocess.run(
            ["node", str(ROOT / "tests" / "node" / "remote_sampler.js"), osprey.sampling_url, service, *operations],
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    shop_counts = sampled("shop", "GET /checkout", "GET /health")
    assert 400 <= shop_counts["GET /checkout"] <= 600, shop_counts
    assert shop_counts["GET /health"] == 0
    assert sampled("anyone", "GET /")["GET /"] == 1000, "the default strategy: every trace"


def test_without_a_file_every_service_gets_jaegers_default(osprey):
    answer = requests.get(f"{osprey.sampling_url}/sampling", params={"service": "x"}, timeout=10).json()
    assert answer == {"strategyType": "PROBABILISTIC", "probabilisticSampling": {"samplingRate": 0.001}}


def test_a_bad_strategies_file_stops_the_start_with_the_reason(start_osprey, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"default_strategy": {"type": "probabilistic", "param": 3}}')
    try:
        start_osprey("--sampling-strategies", str(path))
    except RuntimeError as e:
        assert "from 0 to 1" in str(e)
    else:
        raise AssertionError("osprey started with a probability of 3")
