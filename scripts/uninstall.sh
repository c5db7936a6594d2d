#!/usr/bin/env bash
# Removes everything install.sh created: the service stacks, the components bucket's contents,
# the image repositories, the base stack and the VPC stack.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/uninstall.sh [--config FILE] [--dry-run]

Deletes every stack in reverse order, after emptying the bucket and the repositories that
CloudFormation cannot delete while they hold data." "$@"
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws

for service in $SERVICES_UNINSTALL_ORDER; do
  delete_stack "$PREFIX-svc-$service-stack"
done

bucket=$(export_value components-bucket-name)
if [ -n "$bucket" ]; then
  say "emptying s3://$bucket (every version)"
  run aws s3 rm "s3://$bucket" --recursive
  versions=$(query '{"Objects": []}' s3api list-object-versions --bucket "$bucket" \
    --query '{Objects: [Versions[].{Key: Key, VersionId: VersionId}, DeleteMarkers[].{Key: Key, VersionId: VersionId}][]}' \
    --output json)
  if printf '%s' "$versions" | grep -q '"Key"'; then
    run aws s3api delete-objects --bucket "$bucket" --delete "$versions"
  fi
fi

for repository in "$PREFIX-host" "$PREFIX-frontend"; do
  say "deleting the repository $repository and its images"
  run aws ecr delete-repository --repository-name "$repository" --force
done

delete_stack "$PREFIX-svc-base-stack"
delete_stack "$PREFIX-vpc-stack"
say "uninstalled"
