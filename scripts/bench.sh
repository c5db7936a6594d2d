#!/usr/bin/env bash
# The benchmarks, side by side in one run: the whole application against the original sample's
# stack (Express, Flask and Django with the official X-Ray SDKs), one component under xray-host
# against `wasmtime serve` and a native hyper server, cold start and idle memory, and the
# criterion microbenchmarks of the hot paths. Builds and installs what it needs (wrk, the
# wasmtime CLI of the host's wasmtime version, the original stack's Python and Node packages,
# matplotlib), then prints the table and writes target/bench/results.csv and results.png.
# Not part of the test run. Takes about 15 minutes (plus about 8 for the wasmtime CLI, once).
#
# Usage: scripts/bench.sh [--seconds N] [--rounds N] [--connections N] [--starts N]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

# The wasmtime version the host is built with: `wasmtime serve` is compared on the same engine.
wasmtime_version=48.0.8

ensure_wasm_target
ensure_debian_packages wrk
build_all
step "building the native ceiling"
cargo build --release -p native-backend2
build_standalone_backend2

tools=.local/tools
if ! "$tools/bin/wasmtime" --version 2>/dev/null | grep -q "^wasmtime $wasmtime_version"; then
  step "installing wasmtime-cli $wasmtime_version (about 8 minutes, once)"
  cargo install "wasmtime-cli@$wasmtime_version" --locked --root "$tools"
fi

bench=.local/bench
original=bench/original-stack
if [ ! -x "$bench/venv/bin/gunicorn" ] || ! cmp -s "$original/requirements.txt" "$bench/venv/requirements.txt"; then
  step "installing the original stack's Python packages and matplotlib"
  python3 -m venv "$bench/venv"
  "$bench/venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$original/requirements.txt" matplotlib==3.10.7
  cp "$original/requirements.txt" "$bench/venv/requirements.txt"
fi
if [ ! -d "$bench/node/node_modules/aws-xray-sdk" ] || ! cmp -s "$original/bff/package.json" "$bench/node/package.json"; then
  step "installing the original BFF's Node.js packages"
  mkdir -p "$bench/node"
  cp "$original/bff/package.json" "$bench/node/package.json"
  (cd "$bench/node" && npm install --silent --no-audit --no-fund)
fi

step "criterion: the tracing hot paths and the instantiate-handle-drop path"
XRAY_HOST_BENCH_COMPONENT="$PWD/target/bench/backend2-standalone.wasm" \
  cargo bench -p xray-host --bench hot_paths --bench instantiate

step "load, cold start and memory, side by side"
"$bench/venv/bin/python" bench/run.py "$@"
