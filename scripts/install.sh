#!/usr/bin/env bash
# Deploys the reference application to ECS Fargate in the account and region of the config:
# the VPC and base stacks, the components (to the components bucket), the host and frontend
# images (built and pushed only when they changed), then the service stacks.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/install.sh [--config FILE] [--dry-run]

Deploys every stack in order. --dry-run prints each command that would change something
instead of running it (read-only queries still run when credentials allow)." "$@"
load_config
if [ "$DRY_RUN" = 0 ]; then
  require_tools aws docker cargo git
fi

account=$(query "123456789012" sts get-caller-identity --query Account --output text)

deploy_stack templates/0-vpc.yml "$PREFIX-vpc-stack" \
  "AppId=$APP_ID" "EnvId=$ENV_ID" "VpcCidr=$VPC_CIDR" \
  "PublicSubnet1Cidr=$PUBLIC_SUBNET_1_CIDR" "PublicSubnet2Cidr=$PUBLIC_SUBNET_2_CIDR" \
  "PrivateSubnet1Cidr=$PRIVATE_SUBNET_1_CIDR" "PrivateSubnet2Cidr=$PRIVATE_SUBNET_2_CIDR"
deploy_stack templates/1-svc-base.yml "$PREFIX-svc-base-stack" \
  "AppId=$APP_ID" "EnvId=$ENV_ID" "LogRetentionDays=$LOG_RETENTION_DAYS"

say "building and uploading the components"
bucket=$(export_value components-bucket-name)
run cargo build --release --target wasm32-wasip2
for component in $COMPONENTS; do
  run aws s3 cp "target/wasm32-wasip2/release/$component.wasm" "s3://$bucket/$component.wasm" \
    --content-type application/wasm
done

# Images are tagged with a hash of what goes into them, so an unchanged image is not rebuilt.
tree_hash() {
  git ls-files -s "$@" | git hash-object --stdin | cut -c1-12
}
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
push_image() {
  local repository=$1
  local tag=$2
  local dockerfile=$3
  local context=$4
  if query "" ecr describe-images --repository-name "$repository" --image-ids "imageTag=$tag" \
    --query 'imageDetails[0].imageTags[0]' --output text | grep -q "$tag"; then
    say "$repository:$tag is already in ECR"
    return
  fi
  say "building and pushing $repository:$tag"
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run: aws ecr get-login-password | docker login --username AWS --password-stdin %s\n' "$registry"
  else
    aws ecr get-login-password | docker login --username AWS --password-stdin "$registry"
  fi
  run docker build --platform "$DOCKER_PLATFORM" -f "$dockerfile" -t "$registry/$repository:$tag" "$context"
  run docker push "$registry/$repository:$tag"
}
host_tag="$(tree_hash host wit Cargo.toml Cargo.lock)-$(printf '%s' "$CPU_ARCHITECTURE" | tr 'A-Z_' 'a-z-')"
frontend_tag="$(tree_hash frontend)-$(printf '%s' "$CPU_ARCHITECTURE" | tr 'A-Z_' 'a-z-')"
push_image "$PREFIX-host" "$host_tag" host/Dockerfile .
push_image "$PREFIX-frontend" "$frontend_tag" frontend/Dockerfile frontend

for service in $SERVICES_INSTALL_ORDER; do
  if [ "$service" = frontend ]; then
    deploy_stack "templates/2-svc-$service.yml" "$PREFIX-svc-$service-stack" \
      "AppId=$APP_ID" "EnvId=$ENV_ID" "ImageTag=$frontend_tag" "CpuArchitecture=$CPU_ARCHITECTURE"
  else
    deploy_stack "templates/2-svc-$service.yml" "$PREFIX-svc-$service-stack" \
      "AppId=$APP_ID" "EnvId=$ENV_ID" "ImageTag=$host_tag" "CpuArchitecture=$CPU_ARCHITECTURE" \
      "TracingSidecar=$TRACING_SIDECAR"
  fi
done

say "installed: scripts/get_url.sh prints the application's URL"
