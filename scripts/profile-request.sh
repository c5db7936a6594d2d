#!/usr/bin/env bash
# Where a request's time goes, per request, for xray-host traced, xray-host with X-Ray off and
# `wasmtime serve`, all serving backend 2's standalone build (the same file), or for the whole
# application in one process (`xray-host run`, GET /api/), with sequential requests after a
# warm-up (only those are counted):
#
# - callgrind (the default): instructions per request, and the functions with the largest
#   inclusive and exclusive costs. Instructions repeat on a noisy machine, unlike time.
# - --syscalls: system calls per request by name (strace -c, attached after the warm-up to
#   every thread), and context switches per request (the kernel's counts of every thread).
#
# Traced requests go to a local UDP sink standing in for the daemon, every one sampled. Not
# part of the test run; docs/performance.md holds the figures.
#
# Usage: scripts/profile-request.sh [--profile dist|release] [--target traced|off|serve]
#                                   [--syscalls] [REQUESTS]
#   --profile  the host's build profile: dist (default) as shipped, or release as the tests
#              build it (already built, so quick)
#   --target   what serves: xray-host traced (default), xray-host --xray off, wasmtime serve
#              (the wasmtime CLI scripts/bench.sh installs under .local/tools), or application:
#              the BFF and both backends as shipped in one traced `xray-host run`, as
#              bench/run.py's one-process row (the DynamoDB write off)
#   REQUESTS   counted requests (default 2000); callgrind's output stays in
#              target/bench/callgrind-<target>.out for callgrind_annotate or kcachegrind
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

profile=dist
target=traced
mode=callgrind
requests=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=${2:?--profile takes dist or release}; shift 2 ;;
    --target) target=${2:?--target takes traced, off, serve or application}; shift 2 ;;
    --syscalls) mode=syscalls; shift ;;
    [0-9]*) requests=$1; shift ;;
    *) echo "unknown argument $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
done
case "$profile" in dist | release) ;; *) echo "--profile takes dist or release" >&2; exit 2 ;; esac

wasmtime=.local/tools/bin/wasmtime
ensure_wasm_target
if [ "$mode" = callgrind ]; then
  ensure_debian_packages valgrind
else
  ensure_debian_packages strace
fi
build_all "$profile"
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
path=/
component=target/bench/backend2-standalone.wasm
host=(./target/"$profile"/xray-host serve --component "$component" --listen "127.0.0.1:$port"
  --name "Backend #2" --no-watch --sampling-rules "$work/all.json" --cache-dir "$work/cache"
  --table-store "$work/t.redb")
case "$target" in
  traced) serve=("${host[@]}") ;;
  off) serve=("${host[@]}" --xray off) ;;
  serve)
    if ! [ -x "$wasmtime" ]; then
      echo "no $wasmtime: scripts/bench.sh installs it (cargo install wasmtime-cli, about 8 minutes)" >&2
      exit 2
    fi
    # As scripts/bench.sh runs it: the pooling allocator, WASI CLI imports, default reuse.
    # Except under callgrind: valgrind cannot reserve the pool's terabytes of address space
    # ("mmap failed to reserve"), so there each instance is allocated on demand; with 128
    # requests per instance that is a small part of a request's cost.
    if [ "$mode" = callgrind ]; then
      serve=("$wasmtime" serve -Scli --addr "127.0.0.1:$port" "$component")
    else
      serve=("$wasmtime" serve -Scli -Opooling-allocator --addr "127.0.0.1:$port" "$component")
    fi
    ;;
  application)
    path=/api/
    one_process_manifest "$port" off >"$work/app.toml"
    serve=(./target/"$profile"/xray-host run --manifest "$work/app.toml" --no-watch
      --sampling-rules "$work/all.json" --cache-dir "$work/cache" --table-store "$work/t.redb")
    ;;
  *) echo "--target takes traced, off, serve or application" >&2; exit 2 ;;
esac

# Sends $2 sequential GET $path on one keep-alive connection to port $1.
send_requests() {
  python3 - "$1" "$2" "$path" <<'PY'
import http.client, sys
connection = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    connection.request("GET", sys.argv[3])
    response = connection.getresponse()
    assert response.status == 200 and response.read()
PY
}

# Waits (up to 10 minutes: compiling under valgrind is slow) for process $1 to listen on port
# $2; fails at once, with its log, if it exits first.
wait_for_server() {
  for _ in $(seq 600); do
    if wait_for_port "$2" 1; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then
      echo "the server exited before it listened; its log:" >&2
      tail -20 "$work/server.log" >&2
      return 1
    fi
  done
  echo "the server did not listen on port $2 within 10 minutes" >&2
  return 1
}

# Context switches (voluntary + involuntary) of every thread of process $1 so far.
context_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches/ { total += $2 } END { print total + 0 }'
}

if [ "$target" != serve ]; then
  # Compile once outside the tools, so the measured run loads from the cache.
  AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2998 "${serve[@]}" >/dev/null 2>&1 &
  first=$!
  wait_for_port "$port" 120
  kill -TERM "$first"
  wait "$first" 2>/dev/null || true
fi

if [ "$mode" = callgrind ]; then
  step "serving ($target) under callgrind"
  out=target/bench/callgrind-$target.out
  AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2998 RUST_LOG=info valgrind --tool=callgrind \
    --instr-atstart=no --callgrind-out-file="$out" "${serve[@]}" >"$work/server.log" 2>&1 &
  server=$!
  pids="$pids $server"
  wait_for_server "$server" "$port"
  send_requests "$port" 200
  callgrind_control -i on "$server" >/dev/null
  send_requests "$port" "$requests"
  callgrind_control -i off "$server" >/dev/null
  kill -TERM "$server"
  wait "$server" 2>/dev/null || true

  total=$(callgrind_annotate "$out" | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  echo "$target: instructions per request: $(( total / requests ))"
  step "largest inclusive costs (the request path from the top)"
  callgrind_annotate --inclusive=yes "$out" | sed -n '/file:function/,$p' | head -45 || true
  step "largest exclusive costs (where the instructions are spent)"
  callgrind_annotate "$out" | sed -n '/file:function/,$p' | head -30 || true
else
  step "serving ($target), system calls under strace -c"
  AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2998 "${serve[@]}" >"$work/server.log" 2>&1 &
  server=$!
  pids="$pids $server"
  wait_for_server "$server" "$port"
  send_requests "$port" 500
  # Context switches first, without strace, whose stops would add their own.
  switches_before=$(context_switches "$server")
  send_requests "$port" "$requests"
  switches_after=$(context_switches "$server")
  # -f with -p attaches to every thread of the process, the ones it starts later included.
  strace -c -f -p "$server" -o "$work/strace.txt" 2>"$work/strace.log" &
  tracer=$!
  pids="$pids $tracer"
  sleep 1
  send_requests "$port" "$requests"
  kill -INT "$tracer"
  wait "$tracer" 2>/dev/null || true
  # strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk -v requests="$requests" -v target="$target" '
    $1 ~ /^[0-9.]+$/ && $4 ~ /^[0-9]+$/ {
      if ($NF == "total") total = $4 / requests
      else printf "  %-24s %8.2f per request\n", $NF, $4 / requests
    }
    END { printf "%s: system calls per request: %.2f\n", target, total }
  ' "$work/strace.txt"
  awk -v a="$switches_after" -v b="$switches_before" -v r="$requests" -v target="$target" \
    'BEGIN { printf "%s: context switches per request: %.2f\n", target, (a - b) / r }'
fi
