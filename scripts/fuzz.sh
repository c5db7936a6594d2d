#!/usr/bin/env bash
# Fuzzes every parser of outside input (the targets in fuzz/, entry points in
# crates/fuzzing/src/lib.rs) with cargo fuzz (libFuzzer), each for SECONDS (default 600). The
# inputs kept in crates/fuzzing/regressions/<target>/ seed each run; the input of any crash is copied
# there, so that the test suite replays it from then on. Not part of the test run.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

seconds=${1:-600}
shift || true
targets=${*:-trace_header traceparent forwarded_for loopback_authority daemon_address local_rules sampling_responses datagram xray_api guest_span otlp_traces table_item outbound_address otel_env component_pin cgroup_memory_limit deploy_settings ecs_metadata}

ensure_cargo_tool cargo-fuzz "$cargo_fuzz_version" fuzz
# libFuzzer's instrumentation flags are unstable rustc options; the stable toolchain accepts
# them with RUSTC_BOOTSTRAP. No sanitizer: the code under test is safe Rust.
export RUSTC_BOOTSTRAP=1
cd fuzz
# The host's own parsers need the runtime (wasmtime) linked in; the others build without it.
host_targets=" table_item outbound_address otel_env component_pin cgroup_memory_limit "
step "building the fuzz targets"
cargo fuzz build -s none --features host

failed=""
for target in $targets; do
  step "fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  features=()
  case "$host_targets" in *" $target "*) features=(--features host) ;; esac
  if ! cargo fuzz run -s none "${features[@]}" "$target" "corpus/$target" "../crates/fuzzing/regressions/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10; then
    for crash in artifacts/"$target"/*; do
      [ -f "$crash" ] || continue
      cp "$crash" "../crates/fuzzing/regressions/$target/"
      echo "kept $crash as a regression input"
    done
    failed="$failed $target"
  fi
done
if [ -n "$failed" ]; then
  echo "fuzzing found problems in:$failed (inputs kept in crates/fuzzing/regressions/)" >&2
  exit 1
fi
echo "no findings in: $targets"
