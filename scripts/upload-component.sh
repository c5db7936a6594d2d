#!/usr/bin/env bash
# Builds one component and uploads it to the S3 location a service reads its component from
# (the host polls that object and swaps the new version in: no image build, no task restart).
# Needs the AWS CLI and credentials for the bucket; --dry-run prints the commands instead.
#
# Usage: scripts/upload-component.sh bff|backend1|backend2 s3://BUCKET/KEY [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

name=${1:-}
target=${2:-}
dry_run=${3:-}
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

run() {
  if [ "$dry_run" = "--dry-run" ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

ensure_wasm_target
run cargo build --release --target wasm32-wasip2 -p "$name"
run aws s3 cp "target/wasm32-wasip2/release/$name.wasm" "$target" --content-type application/wasm
