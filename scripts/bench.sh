#!/usr/bin/env bash
# The benchmarks, side by side in one run: the whole application against the original sample's
# stack (Express, Flask and Django with the official X-Ray SDKs), one component under xray-host
# against `wasmtime serve` and a native hyper server, cold start and idle memory, and the
# criterion microbenchmarks of the hot paths. Builds and installs what it needs (wrk, the
# wasmtime CLI of the host's wasmtime version, the original stack's Python and Node packages,
# matplotlib), then prints the table and writes target/bench/results.csv and results.png.
# Not part of the test run. Takes about 15 minutes (plus, once, about 8 for the wasmtime CLI
# and 30 for the host's PGO build).
#
# Usage: scripts/bench.sh [--profile dist|pgo|release] [--seconds N] [--rounds N] [--connections N]
#                         [--starts N]
#                         [--only export-modes|observability-modes|polyglot-components|whole-application]
#
# --profile: the host's build. `pgo` (the default) is what the Dockerfile ships: the dist
# profile (fat LTO, one codegen unit) optimized with the counts of a workload
# (scripts/build-pgo.sh, target/pgo/xray-host), about 50 minutes of CPU for a first build.
# `dist` is the same without the counts (about 25). `release` is what the tests build, so it
# is usually built already: use it for a quick comparison of variants of the host against
# each other (every row of a section runs the same binary), not for the figures against other
# servers.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

# The wasmtime version the host is built with: `wasmtime serve` is compared on the same engine.
wasmtime_version=48.0.8

profile=pgo
if [ "${1:-}" = "--profile" ]; then
  profile=${2:?--profile takes dist, pgo or release}
  shift 2
fi
case "$profile" in
  dist | pgo | release) ;;
  *) echo "--profile takes dist, pgo or release, not $profile" >&2; exit 2 ;;
esac
export XRAY_HOST_BENCH_PROFILE=$profile

ensure_wasm_target
ensure_debian_packages wrk
# The host as shipped (PGO, target/pgo/xray-host, which bench/run.py runs) unless --profile
# says otherwise; the components and the native ceiling stay release.
if [ "$profile" = pgo ]; then
  # Builds the components too.
  scripts/build-pgo.sh
else
  build_all "$profile"
fi
# The JavaScript BFF and the Python backends, for the whole application in the original's
# languages.
scripts/build-components.sh python js
step "building the native ceiling"
cargo build --release -p native-backend2
build_standalone_backend2

tools=.local/tools
if ! "$tools/bin/wasmtime" --version 2>/dev/null | grep -q "^wasmtime $wasmtime_version"; then
  step "installing wasmtime-cli $wasmtime_version (about 8 minutes, once)"
  cargo install wasmtime-cli --locked --version "$wasmtime_version" --root "$tools"
fi

bench=.local/bench
original=bench/original-stack
# bench/requirements.txt: the original stack's requirements and matplotlib, hashed.
ensure_python_env "$bench" bench/requirements.txt \
  "the original stack's Python packages and matplotlib"
ensure_node_packages "$bench" "$original/bff/package.json" "the original BFF's Node.js packages"

# The criterion figures go into the serverless section, which `--only` leaves out.
case " $* " in
  *" --only "*) ;;
  *)
    step "criterion: the tracing hot paths and one request through the instance pool"
    cargo bench -p xray --bench hot_paths
    XRAY_HOST_BENCH_COMPONENT="$PWD/target/bench/backend2-standalone.wasm" \
      cargo bench -p xray-host-runtime --bench instantiate
    ;;
esac

step "load, cold start and memory, side by side"
"$bench/venv/bin/python" bench/run.py "$@"
