#!/usr/bin/env bash
# Swaps one service's component in place on AWS: builds it, checks that the host can serve it
# (`xray-host check`), and uploads it to the components bucket; the service's hosts see the new
# version at their next poll (30 s by default) and swap it in, with no image build and no task
# restart. --rollback puts the previous version back instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

EXTRA_OPTIONS="--rollback --file"
parse_options "usage: scripts/deploy-component.sh bff|backend1|backend2 [--file WASM] [--rollback] [--config FILE] [--dry-run]

Builds the component in the language the config chooses for it (BFF_LANGUAGE,
BACKEND_LANGUAGE), or takes --file WASM; checks it with xray-host check and uploads it;
nothing is uploaded if the host could not serve it. --rollback makes the previous version in
the bucket (the newest older one with other content) the current one again; running it twice
goes back to where it started." "$@"
name=$(printf '%s' "$REST_ARGS" | tr -d ' ')
case "$name" in
  bff | backend1 | backend2) ;;
  *) fail "name one component: bff, backend1 or backend2 (see --help)" ;;
esac
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws
bucket=$(export_value components-bucket-name)
[ -n "$bucket" ] || fail "no export $PREFIX-components-bucket-name: is the application installed (scripts/install.sh)?"
key="$name.wasm"

if [ "$ROLLBACK" = 1 ]; then
  # Newest first: version id, ETag, whether it is the current one.
  versions=$(query "" s3api list-object-versions --bucket "$bucket" --prefix "$key" \
    --query "Versions[?Key=='$key'].[VersionId, ETag, IsLatest]" --output text)
  current=$(printf '%s\n' "$versions" | awk -F '\t' '$3 == "True" { print $2; exit }')
  previous=$(printf '%s\n' "$versions" | awk -F '\t' -v current="$current" \
    'seen && $2 != current { print $1; exit } $3 == "True" { seen = 1 }')
  if [ -z "$previous" ]; then
    [ "$DRY_RUN" = 1 ] || fail "s3://$bucket/$key has no earlier version with other content to roll back to"
    previous="<previous version id>"
  fi
  say "rolling $name back to version $previous of s3://$bucket/$key"
  run aws s3api copy-object --bucket "$bucket" --key "$key" --copy-source "$bucket/$key?versionId=$previous" \
    --content-type application/wasm --metadata-directive REPLACE
  say "the hosts swap it in at their next poll"
  exit 0
fi

file=$COMPONENT_FILE
if [ -z "$file" ]; then
  # shellcheck disable=SC2046 # one word per tool
  [ "$DRY_RUN" = 1 ] || require_tools cargo $(component_build_tools "$name")
  build_service_components "$name"
  file=$(service_component_file "$name")
fi
check_and_upload_component "$file" "$bucket" "$key"
