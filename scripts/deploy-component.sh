#!/usr/bin/env bash
# Swaps one service's component in place on AWS: builds it and uploads it to the components
# bucket; the service's host sees the new version at its next poll (30 s by default) and swaps
# it in, with no image build and no task restart.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/deploy-component.sh bff|backend1|backend2 [--config FILE] [--dry-run]" "$@"
name=$(printf '%s' "$REST_ARGS" | tr -d ' ')
case "$name" in
  bff | backend1 | backend2) ;;
  *) fail "name one component: bff, backend1 or backend2 (see --help)" ;;
esac
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws cargo
bucket=$(export_value components-bucket-name)
dry=""
[ "$DRY_RUN" = 1 ] && dry="--dry-run"
scripts/upload-component.sh "$name" "s3://$bucket/$name.wasm" $dry
