#!/usr/bin/env bash
# Builds one component and deploys it to the application running locally (scripts/dev.sh):
# the host sees the new file and swaps it in without a restart; this script then asks the
# host's admin endpoint to confirm and prints what it did.
#
# Usage: scripts/deploy-local.sh bff|backend1|backend2 [ADMIN_ADDRESS]   (default 127.0.0.1:8079)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

name=${1:-}
admin=${2:-127.0.0.1:8079}
case "$name" in
  bff | backend1 | backend2) ;;
  *)
    echo "usage: scripts/deploy-local.sh bff|backend1|backend2 [ADMIN_ADDRESS]" >&2
    exit 2
    ;;
esac

ensure_wasm_target
step "building $name"
cargo build --release --target wasm32-wasip2 -p "$name"
step "asking the host at $admin to reload"
# The header tells the endpoint this is not a cross-site form post (it refuses those with 403).
if ! curl -fsS -X POST -H 'X-Xray-Host-Reload: 1' "http://$admin/reload"; then
  echo >&2
  echo "the host's admin endpoint at $admin did not answer: is scripts/dev.sh running?" >&2
  exit 1
fi
echo
