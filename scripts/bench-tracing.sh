#!/usr/bin/env bash
# Measures what tracing costs: GET / on Backend #1 under xray-host with X-Ray off, with the
# default sampling (1 request per second and 5 %), and with every request sampled, one after
# the other in one run, with wrk (2 threads, 32 connections, 10 s each by default).
# Segments go to a local UDP sink standing in for the daemon; the table write is off
# (RECORD_LAST_ACCESS=off), so the figures are the tracing's. Not part of the test run.
#
# Usage: scripts/bench-tracing.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

duration=${1:-10}
ensure_wasm_target
ensure_debian_packages wrk
build_all release

work=$(mktemp -d)
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The daemon stand-in: a UDP socket that reads and discards.
sink_port=2999
start_udp_sink "$sink_port"
pids="$pids $!"

echo '{"version": 2, "default": {"fixed_target": 0, "rate": 1}}' >"$work/all.json"

run() {
  label=$1
  shift
  port=18181
  AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:$sink_port RUST_LOG=warn \
    ./target/release/xray-host serve --component target/wasm32-wasip2/release/backend1.wasm \
    --listen 127.0.0.1:$port --name "Backend #1" --env RECORD_LAST_ACCESS=off "$@" &
  host=$!
  wait_for_port $port 30
  wrk -t2 -c32 -d2s "http://127.0.0.1:$port/" >/dev/null # warm-up
  result=$(wrk -t2 -c32 -d"${duration}s" --latency "http://127.0.0.1:$port/")
  rps=$(printf '%s\n' "$result" | awk '/Requests\/sec/ { print $2 }')
  p50=$(printf '%s\n' "$result" | awk '$1 == "50%" { print $2 }')
  p99=$(printf '%s\n' "$result" | awk '$1 == "99%" { print $2 }')
  kill -TERM "$host"
  wait "$host" 2>/dev/null || true
  printf '%-28s %10s %10s %10s\n' "$label" "$rps" "$p50" "$p99"
}

printf '%-28s %10s %10s %10s\n' "backend1 GET /" "req/s" "p50" "p99"
run "X-Ray off (--xray off)" --xray off
run "X-Ray on, default sampling"
run "X-Ray on, every request" --sampling-rules "$work/all.json"
