#!/usr/bin/env bash
# Deploys one service's component on AWS: builds it, checks that the host can serve it
# (`xray-host check`), and uploads it to the components bucket. What happens next depends on
# the service's component mode (COMPONENT_MODE in the config, docs/deploy.md):
# - pinned: the file goes to its content-addressed key (<service>/sha256-<hex>.wasm) and the
#   service stack is updated with that key and hash (the rest as it is): a new task definition
#   revision that ECS rolls out, with the circuit breaker and rollback, in the deployment
#   history. The hosts refuse any other bytes.
# - hot-swap: the file becomes <service>.wasm; the service's hosts see the new version at their
#   next poll (30 s by default) and swap it in, with no image build and no task restart.
# --rollback goes back to the previous component instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

EXTRA_OPTIONS="--rollback --file"
parse_options "usage: scripts/deploy-component.sh bff|backend1|backend2 [--file WASM] [--rollback] [--config FILE] [--dry-run]

Builds the component in the language the config chooses for it (BFF_LANGUAGE,
BACKEND_LANGUAGE), or takes --file WASM; checks it with xray-host check and uploads it;
nothing is uploaded if the host could not serve it.

A pinned service (COMPONENT_MODE, or <SERVICE>_COMPONENT_MODE, pinned: the default) gets a new
task definition revision naming the component's SHA-256, rolled out by ECS; --rollback deploys
the component of the newest earlier successful ECS deployment with other bytes the same way.
A hot-swap service's hosts swap the new version in at their next poll; --rollback makes the
previous version in the bucket (the newest older one with other content) the current one
again. Either way, running --rollback twice goes back to where it started." "$@"
name=$(printf '%s' "$REST_ARGS" | tr -d ' ')
case "$name" in
  bff | backend1 | backend2) ;;
  *) fail "name one component: bff, backend1 or backend2 (see --help)" ;;
esac
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws
bucket=$(export_value components-bucket-name)
[ -n "$bucket" ] || fail "no export $PREFIX-components-bucket-name: is the application installed (scripts/install.sh)?"
mode=$(service_component_mode "$name")
stack="$PREFIX-svc-$name-stack"
# The key and hash the service stack has now.
deployed=$(stack_parameters "$stack" "templates/2-svc-$name.yml")
deployed_key=$(printf '%s\n' "$deployed" | awk -F '\t' '$1 == "ComponentKey" { print $2 }')
deployed_hash=$(printf '%s\n' "$deployed" | awk -F '\t' '$1 == "ComponentSha256" { print $2 }')
if [ "$mode" = hot-swap ] && [ -n "$deployed_key" ] && [ "$deployed_key" != "$name.wasm" ]; then
  fail "$stack serves the pinned $deployed_key, not $name.wasm: run scripts/install.sh once after switching $name to hot-swap"
fi

if [ "$ROLLBACK" = 1 ] && [ "$mode" = pinned ]; then
  # The ECS deployments that completed, newest first; each names a service revision, whose
  # task definition names the component's hash.
  cluster=$(export_value ecs-cluster-id)
  revisions=$(query "" ecs list-service-deployments --cluster "$cluster" --service "$PREFIX-$name-ecs-service" \
    --status SUCCESSFUL --query 'reverse(sort_by(serviceDeployments, &createdAt))[].targetServiceRevisionArn' --output text)
  previous=""
  for revision in $revisions; do
    task_definition=$(query "" ecs describe-service-revisions --service-revision-arns "$revision" \
      --query 'serviceRevisions[0].taskDefinition' --output text)
    hash=$(query "" ecs describe-task-definition --task-definition "$task_definition" \
      --query "taskDefinition.containerDefinitions[0].environment[?name=='XRAY_HOST_COMPONENT_SHA256'].value | [0]" --output text)
    if printf '%s\n' "$hash" | grep -Eq '^[0-9a-f]{64}$' && [ "$hash" != "$deployed_hash" ]; then
      previous=$hash
      break
    fi
  done
  if [ -z "$previous" ]; then
    [ "$DRY_RUN" = 1 ] || fail "$name's ECS deployment history has no earlier successful deployment of another pinned component to roll back to"
    previous=$(printf '0%.0s' $(seq 64))
  fi
  key=$(component_key "$name" "$previous")
  if [ "$DRY_RUN" = 0 ] && ! probe s3api head-object --bucket "$bucket" --key "$key" >/dev/null; then
    fail "s3://$bucket/$key, the component to roll back to, is not in the bucket"
  fi
  say "rolling $name back to sha256:$previous (from its ECS deployment history)"
  deploy_component_pin "$name" "$key" "$previous"
  exit 0
fi

if [ "$ROLLBACK" = 1 ]; then
  key="$name.wasm"
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
if [ "$mode" = hot-swap ]; then
  check_and_upload_component "$file" "$bucket" "$name.wasm"
  exit 0
fi
hash=$(component_file_sha256 "$file")
key=$(component_key "$name" "$hash")
check_and_upload_component "$file" "$bucket" "$key"
if [ "$hash" = "$deployed_hash" ] && [ "$key" = "$deployed_key" ]; then
  say "$stack already runs sha256:$hash"
  exit 0
fi
deploy_component_pin "$name" "$key" "$hash"
