#!/usr/bin/env bash
# Deploys the reference application to ECS Fargate in the account and region of the config:
# the VPC and base stacks, the components (built in the languages the config chooses, checked,
# then uploaded to the components bucket when they changed), the host and frontend images
# (built and pushed only when what goes into them changed), then the service stacks. Run it
# again after any change: it deploys only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/install.sh [--config FILE] [--dry-run]

Deploys every stack in order. --dry-run prints each command that would change something
instead of running it (read-only queries still run when credentials allow).

The config's TRACING_SIDECAR chooses how the traces reach X-Ray: xray-daemon (the default),
cloudwatch-agent or adot (a sidecar receiving the segments), or none (no sidecar: each host
exports OTLP to X-Ray itself). adot and none need CloudWatch Transaction Search enabled in the
account first; docs/tracing-modes.md says how, and what each mode costs.

BFF_LANGUAGE (rust or javascript) and BACKEND_LANGUAGE (rust or python) choose what each
service's component is built from; only the languages chosen are built, with
scripts/build-components.sh (which installs their toolchains on first use), and each file is
uploaded under its service's name. A Python backend keeps its instance for 128 requests
(BACKEND_MAX_INSTANCE_REUSE_COUNT; BFF_MAX_INSTANCE_REUSE_COUNT for the BFF; empty is the
host's default)." "$@"
load_config
if [ "$DRY_RUN" = 0 ]; then
  # shellcheck disable=SC2046,SC2086 # one word per tool, and per component
  require_tools aws docker cargo $(component_build_tools $COMPONENTS)
fi

account=$(query "123456789012" sts get-caller-identity --query Account --output text)

deploy_stack templates/0-vpc.yml "$PREFIX-vpc-stack" \
  "AppId=$APP_ID" "EnvId=$ENV_ID" "VpcCidr=$VPC_CIDR" \
  "PublicSubnet1Cidr=$PUBLIC_SUBNET_1_CIDR" "PublicSubnet2Cidr=$PUBLIC_SUBNET_2_CIDR" \
  "PrivateSubnet1Cidr=$PRIVATE_SUBNET_1_CIDR" "PrivateSubnet2Cidr=$PRIVATE_SUBNET_2_CIDR"
deploy_stack templates/1-svc-base.yml "$PREFIX-svc-base-stack" \
  "AppId=$APP_ID" "EnvId=$ENV_ID" "LogRetentionDays=$LOG_RETENTION_DAYS"

say "building, checking and uploading the components"
bucket=$(export_value components-bucket-name)
# shellcheck disable=SC2086 # the names are words without spaces
build_service_components $COMPONENTS
for component in $COMPONENTS; do
  check_and_upload_component "$(service_component_file "$component")" "$bucket" "$component.wasm"
done

# Images are tagged with a hash of their build context as it is on disk, so an unchanged image
# is not rebuilt and any change (committed or not) is.
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
push_image() {
  local repository=$1
  local tag=$2
  local dockerfile=$3
  local context=$4
  if probe ecr describe-images --repository-name "$repository" --image-ids "imageTag=$tag" \
    --query 'imageDetails[0].imageTags' --output text >/dev/null; then
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
architecture=$(printf '%s' "$CPU_ARCHITECTURE" | tr 'A-Z_' 'a-z-')
host_tag="$(context_hash .)-$architecture"
frontend_tag="$(context_hash frontend)-$architecture"
push_image "$PREFIX-host" "$host_tag" host/Dockerfile .
push_image "$PREFIX-frontend" "$frontend_tag" frontend/Dockerfile frontend

# Every parameter a template declares is passed, from the config, on every deploy.
scaling="MinTasks=$MIN_TASKS MaxTasks=$MAX_TASKS"
for service in $SERVICES_INSTALL_ORDER; do
  case "$service" in
    frontend) service_parameters="ImageTag=$frontend_tag RequestsPerTaskPerMinute=$REQUESTS_PER_TASK_PER_MINUTE" ;;
    bff) service_parameters="ImageTag=$host_tag RequestsPerTaskPerMinute=$REQUESTS_PER_TASK_PER_MINUTE" ;;
    *) service_parameters="ImageTag=$host_tag CpuTargetPercent=$BACKEND_CPU_TARGET_PERCENT" ;;
  esac
  if [ "$service" != frontend ]; then
    service_parameters="$service_parameters TracingSidecar=$TRACING_SIDECAR XRayDaemonImage=$XRAY_DAEMON_IMAGE"
    service_parameters="$service_parameters CloudWatchAgentImage=$CLOUDWATCH_AGENT_IMAGE AdotCollectorImage=$ADOT_COLLECTOR_IMAGE"
    service_parameters="$service_parameters ComponentPollInterval=$COMPONENT_POLL_INTERVAL"
    if [ "$service" = bff ]; then
      service_parameters="$service_parameters MaxInstanceReuseCount=$BFF_MAX_INSTANCE_REUSE_COUNT"
    else
      service_parameters="$service_parameters MaxInstanceReuseCount=$BACKEND_MAX_INSTANCE_REUSE_COUNT"
    fi
  fi
  # shellcheck disable=SC2086 # the parameters are words without spaces
  deploy_stack "templates/2-svc-$service.yml" "$PREFIX-svc-$service-stack" \
    "AppId=$APP_ID" "EnvId=$ENV_ID" "CpuArchitecture=$CPU_ARCHITECTURE" $scaling $service_parameters
done

say "installed: scripts/get_url.sh prints the application's URL"
