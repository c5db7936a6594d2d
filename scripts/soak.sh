#!/usr/bin/env bash
# Runs the whole application (scripts/local-app.toml; the X-Ray daemon stand-in in a process of
# its own) under a
# steady load for a bounded time, and reports: failed requests (must be 0), the host's resident
# memory at the start and the end, and segments sent by the host against segments received by
# the stand-in. Not part of the test run.
# Usage: scripts/soak.sh [SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

seconds=${1:-120}
ensure_wasm_target
ensure_debian_packages wrk
build_all release

# The stand-in runs in its own process, so the host's memory is measured alone.
work=$(mktemp -d)
sed -e '/^\[daemon\]/,$d' -e "s#\.\./#$PWD/#g" scripts/local-app.toml >"$work/app.toml"
RUST_LOG=warn ./target/release/xray-host daemon --listen 127.0.0.1:2000 &
daemon=$!
RUST_LOG=warn ./target/release/xray-host run --manifest "$work/app.toml" \
  --admin-listen 127.0.0.1:8079 --table-store "$work/tables.redb" &
host=$!
trap 'kill "$host" "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
wait_for_port 2000 10
wait_for_port 8080 60
sleep 2 # the first sampling rules

rss() { awk '/VmRSS/ { print $2 / 1024 }' "/proc/$host/status"; }
curl -fsS http://127.0.0.1:8080/api/ >/dev/null
start_rss=$(rss)
step "load: GET /api/ for ${seconds}s, 2 threads, 16 connections"
result=$(wrk -t2 -c16 -d"${seconds}s" --latency http://127.0.0.1:8080/api/)
printf '%s\n' "$result" | sed -n '/Latency/,/Requests\/sec/p'
end_rss=$(rss)
sleep 3 # the last segments
sent=$(curl -fsS http://127.0.0.1:8079/stats)
received=$(curl -fsS http://127.0.0.1:2000/status)
errors=$(printf '%s\n' "$result" | awk '/Non-2xx/ { n += $NF } /Socket errors/ { for (i = 4; i <= NF; i += 2) n += $i } END { print n + 0 }')
printf '\nfailed requests: %s\n' "$errors"
printf 'host resident memory: %.1f MiB at the start, %.1f MiB at the end\n' "$start_rss" "$end_rss"
printf 'stand-in resident memory: %.1f MiB\n' "$(awk '/VmRSS/ { print $2 / 1024 }' "/proc/$daemon/status")"
printf 'segments (host): %s\n' "$sent"
printf 'segments (stand-in): %s\n' "$received"
[ "$errors" = 0 ] || exit 1
