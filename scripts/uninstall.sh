#!/usr/bin/env bash
# Removes everything install.sh created: the service stacks, the components bucket's policy and
# every version in it (pinned components' content-addressed keys included), the image
# repositories (immutable tags do not keep --force from deleting their images), the base stack
# and the VPC stack. Every step treats "already
# gone" as done, so after a run that stopped half-way, running it again finishes the job.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/uninstall.sh [--config FILE] [--dry-run]

Deletes every stack in reverse order, after emptying the bucket and the repositories that
CloudFormation cannot delete while they hold data. Safe to run again after a partial run." "$@"
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws

for service in $SERVICES_UNINSTALL_ORDER; do
  delete_stack "$PREFIX-svc-$service-stack"
done

# Deletes the versions and delete markers listed in $batch (at most 1000: delete-objects' limit).
delete_batch() {
  run aws s3api delete-objects --bucket "$bucket" --delete "{\"Objects\":[$batch],\"Quiet\":true}"
  batch=""
  count=0
}

# The bucket is named by the base stack's export; once that stack is gone, so is the bucket.
bucket=$(export_value components-bucket-name)
if [ -n "$bucket" ]; then
  # The bucket policy denies deleting components to all but the deployer principal: removed
  # first, so that whoever may delete the stacks can empty the bucket (the stack deletion
  # below counts the policy as already gone).
  say "removing the bucket policy of s3://$bucket"
  run_unless_gone 'NoSuchBucket' aws s3api delete-bucket-policy --bucket "$bucket"
fi
if [ -z "$bucket" ]; then
  say "no components bucket export: the base stack is gone, and its bucket with it"
elif listing=$(probe s3api list-object-versions --bucket "$bucket" \
  --query '[Versions[].[Key, VersionId], DeleteMarkers[].[Key, VersionId]][]' --output text); then
  say "emptying s3://$bucket (every version)"
  # Keys as JSON strings: backslashes and quotes escaped.
  listing=$(printf '%s\n' "$listing" | sed 's/\\/\\\\/g; s/"/\\"/g')
  batch=""
  count=0
  tab=$(printf '\t')
  while IFS="$tab" read -r key version; do
    if [ -z "$key" ] || [ "$key" = None ]; then
      continue
    fi
    batch="$batch${batch:+,}{\"Key\":\"$key\",\"VersionId\":\"$version\"}"
    count=$((count + 1))
    if [ "$count" -eq 1000 ]; then
      delete_batch
    fi
  done <<LISTING
$listing
LISTING
  if [ "$count" -gt 0 ]; then
    delete_batch
  fi
elif grep -q NoSuchBucket "$AWS_ERRORS"; then
  say "s3://$bucket is already gone"
elif [ "$DRY_RUN" = 1 ]; then
  say "would empty s3://$bucket: every version and delete marker, 1000 a call"
else
  fail_aws s3api list-object-versions --bucket "$bucket"
fi

for repository in "$PREFIX-host" "$PREFIX-frontend"; do
  say "deleting the repository $repository and its images"
  run_unless_gone RepositoryNotFoundException aws ecr delete-repository --repository-name "$repository" --force
done

delete_stack "$PREFIX-svc-base-stack"
delete_stack "$PREFIX-vpc-stack"
say "uninstalled"
