#!/usr/bin/env bash
# Builds one component, checks that the host can serve it (`xray-host check`) and uploads it to
# the S3 location a service reads its component from (the host polls that object and swaps the
# new version in: no image build, no task restart). Needs the AWS CLI and credentials for the
# bucket; --dry-run prints the commands instead. scripts/deploy-component.sh does the same for
# the installed application, finding the bucket itself.
#
# Usage: scripts/upload-component.sh bff|backend1|backend2 s3://BUCKET/KEY [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

name=${1:-}
target=${2:-}
case "$name" in
  bff | backend1 | backend2) ;;
  *)
    echo "usage: scripts/upload-component.sh bff|backend1|backend2 s3://BUCKET/KEY [--dry-run]" >&2
    exit 2
    ;;
esac
case "$target" in
  s3://?*/?*) ;;
  *)
    echo "the destination must be s3://BUCKET/KEY, not '$target'" >&2
    exit 2
    ;;
esac
[ "${3:-}" = "--dry-run" ] && DRY_RUN=1
init_aws_errors

ensure_wasm_target
run cargo build --release --target wasm32-wasip2 -p "$name"
location=${target#s3://}
check_and_upload_component "target/wasm32-wasip2/release/$name.wasm" "${location%%/*}" "${location#*/}"
