#!/usr/bin/env bash
# Sets up and runs the whole reference application on this machine, with no AWS account:
# the frontend and the BFF on http://127.0.0.1:8080/ (one origin, as behind the ALB), backend 1
# on :8081 and backend 2 on :8082, and the X-Ray daemon stand-in with its trace console on
# http://127.0.0.1:2000/, all served by one xray-host process (scripts/local-app.toml).
# Ctrl-C stops it. scripts/deploy-local.sh rebuilds one component and swaps it in while it runs.
#
#   scripts/dev.sh              the Rust components
#   scripts/dev.sh --polyglot   the original's languages: the BFF in JavaScript, the backends in
#                               Python (scripts/local-app-polyglot.toml; builds and installs the
#                               pinned toolchains on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

manifest=scripts/local-app.toml
case "${1:-}" in
  --polyglot) manifest=scripts/local-app-polyglot.toml ;;
  "") ;;
  *) echo "usage: scripts/dev.sh [--polyglot]" >&2; exit 2 ;;
esac

ensure_wasm_target
build_all release
if [ "$manifest" = scripts/local-app-polyglot.toml ]; then
  scripts/build-components.sh python js
fi

step "starting the application"
./target/release/xray-host run --manifest "$manifest" --admin-listen 127.0.0.1:8079 &
host_pid=$!
trap 'kill -TERM "$host_pid" 2>/dev/null || true' INT TERM

# A Python or JavaScript component is compiled on the first start (seconds each; cached after).
if wait_for_port 8080 180; then
  step "the application is running: open http://127.0.0.1:8080/ (the API: http://127.0.0.1:8080/api/)"
  step "its traces: open http://127.0.0.1:2000/ (the local X-Ray console; the AWS CLI works against it with --endpoint-url http://127.0.0.1:2000)"
else
  echo "the application did not start listening on 127.0.0.1:8080; see the log above" >&2
fi
wait "$host_pid"
