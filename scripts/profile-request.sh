#!/usr/bin/env bash
# Where a traced request's time goes in xray-host: runs the host under valgrind's callgrind
# (which counts instructions, so the figures repeat on a noisy machine), serving backend 2's
# standalone build with every request traced to a local UDP sink, sends REQUESTS sequential
# requests after a warm-up (only those are counted), and prints the functions with the largest
# inclusive and exclusive costs per request. Not part of the test run.
#
# Usage: scripts/profile-request.sh [REQUESTS]   (default 2000; the output file is kept in
# target/bench/callgrind.out for callgrind_annotate or kcachegrind)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

requests=${1:-2000}
ensure_wasm_target
ensure_debian_packages valgrind
# The host as shipped: profile dist (fat LTO, one codegen unit), in target/dist.
build_all dist
build_standalone_backend2

work=$(mktemp -d)
pids=""
cleanup() {
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A UDP sink standing in for the daemon.
start_udp_sink 2998
pids="$pids $!"
echo '{"version": 2, "default": {"fixed_target": 0, "rate": 1}, "rules": []}' >"$work/all.json"

port=18401
serve=(./target/dist/xray-host serve --component target/bench/backend2-standalone.wasm
  --listen "127.0.0.1:$port" --name "Backend #2" --no-watch --sampling-rules "$work/all.json"
  --cache-dir "$work/cache" --table-store "$work/t.redb")
# Compile once outside valgrind, so the profiled run loads from the cache.
AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2998 "${serve[@]}" >/dev/null 2>&1 &
host=$!
wait_for_port "$port" 60
kill -TERM "$host"
wait "$host" 2>/dev/null || true

step "serving under callgrind"
out=target/bench/callgrind.out
AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2998 RUST_LOG=info valgrind --tool=callgrind \
  --instr-atstart=no --callgrind-out-file="$out" "${serve[@]}" >"$work/host.log" 2>&1 &
host=$!
pids="$pids $host"
wait_for_port "$port" 300
python3 - "$port" 200 <<'PY'
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    connection.request("GET", "/")
    assert connection.getresponse().read()
PY
callgrind_control -i on "$host" >/dev/null
python3 - "$port" "$requests" <<'PY'
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 200 and response.read()
PY
callgrind_control -i off "$host" >/dev/null
kill -TERM "$host"
wait "$host" 2>/dev/null || true

total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "instructions per request: $(( total / requests ))"
step "largest inclusive costs (the request path from the top)"
callgrind_annotate --inclusive=yes "$out" | sed -n '/file:function/,$p' | head -45 || true
step "largest exclusive costs (where the instructions are spent)"
callgrind_annotate "$out" | sed -n '/file:function/,$p' | head -30 || true
