#!/usr/bin/env bash
# Builds the host with profile-guided optimization (PGO) on top of the dist profile: an
# instrumented build serves the reference workloads (backend 2 traced and with X-Ray off, the
# whole application in one process), and the counts it writes guide a second build, which
# lays out and inlines the hot paths (wasmtime's component-model calls, hyper, the recorder)
# for what a request does. Result: target/pgo/xray-host. docs/performance.md has the figures.
#
# Usage: scripts/build-pgo.sh
#
# Two full builds of the host and its dependencies, each in a target directory of its own
# (target/pgo-generate, target/pgo-use: the compiler flags differ from every other build, so
# they share nothing with target/dist): about 50 minutes of CPU the first time, and the
# workload about one more. Needs the llvm-tools component (installed here through rustup) and
# curl, which drives the workload, and python3 for the daemon stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_wasm_target
ensure_debian_packages curl python3
step "installing the llvm-tools component (llvm-profdata merges the counts)"
rustup component add llvm-tools
sysroot=$(rustc --print sysroot)
profdata=$(find "$sysroot/lib/rustlib" -name llvm-profdata -type f | head -n 1)
[ -x "$profdata" ] || { echo "llvm-profdata not found under $sysroot after installing llvm-tools" >&2; exit 1; }

step "building the components the workload serves"
cargo build --release --target wasm32-wasip2
build_standalone_backend2

# Runs the instrumented host over the workloads; it writes its counts into $counts as it exits.
run_workload() {
  # The build scripts compiled with the same flags wrote counts of their own: only the host's.
  rm -rf "$counts"
  work=$(mktemp -d)
  pids=""
  cleanup() {
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
  }
  trap cleanup EXIT

  start_udp_sink 2997
  pids="$pids $!"
  export AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2997
  echo '{"version": 2, "default": {"fixed_target": 0, "rate": 1}, "rules": []}' >"$work/all.json"
  common=(--no-watch --sampling-rules "$work/all.json" --cache-dir "$work/cache")

  # Serves `requests` requests to $1 (16 at a time, kept-alive connections), then stops the
  # instrumented host with SIGINT: it writes its counts as it exits.
  drive() {
    local pid=$1 port=$2 path=$3 requests=$4
    wait_for_port "$port" 60 || { echo "the instrumented host did not listen on $port" >&2; exit 1; }
    curl --silent --no-progress-meter --fail --parallel --parallel-max 16 \
      "http://127.0.0.1:$port$path?r=[1-$requests]" >/dev/null
    kill -INT "$pid"
    wait "$pid"
  }

  step "the workload: backend 2, traced, then with X-Ray off"
  for xray in on off; do
    "$instrumented" serve --component target/bench/backend2-standalone.wasm \
      --listen 127.0.0.1:18701 --name "Backend #2" --xray "$xray" --table-store "$work/b2.redb" \
      "${common[@]}" >"$work/backend2-$xray.log" 2>&1 &
    drive $! 18701 / 20000
  done

  step "the workload: the whole application in one process (last access recorded, then not)"
  for record in on off; do
    one_process_manifest 18710 "$record" >"$work/app-$record.toml"
    "$instrumented" run --manifest "$work/app-$record.toml" --table-store "$work/app.redb" \
      "${common[@]}" >"$work/app-$record.log" 2>&1 &
    drive $! 18710 /api/ 8000
  done
}

counts=$PWD/target/pgo-counts
merged=target/pgo-counts.profdata
step "building the instrumented host (dist profile, target/pgo-generate)"
RUSTFLAGS="-Cprofile-generate=$counts" \
  cargo build --profile dist --locked -p xray-host --target-dir target/pgo-generate
instrumented=target/pgo-generate/dist/xray-host

if [ "$merged" -nt "$instrumented" ]; then
  step "the counts in $merged are newer than the instrumented host: kept"
else
  run_workload
  step "merging the counts"
  "$profdata" merge -o "$merged" "$counts"
fi

step "building the host with the counts (dist profile, target/pgo-use)"
RUSTFLAGS="-Cprofile-use=$PWD/$merged" \
  cargo build --profile dist --locked -p xray-host --target-dir target/pgo-use
install -D target/pgo-use/dist/xray-host target/pgo/xray-host
echo "target/pgo/xray-host: the dist build, optimized with the counts of target/pgo-counts.profdata"
