#!/usr/bin/env bash
# shellcheck disable=SC2153 # the settings are set by an eval in load_config (scripts/lib/deploy.sh)
# Deploys the reference application to ECS Fargate in the account and region of the config:
# the VPC and base stacks, the components (built in the languages the config chooses, checked,
# then uploaded to the components bucket when they changed: under their content's hash for
# pinned services), the host and frontend images (built and pushed only when what goes into
# them changed, then named by digest), then the service stacks. Run it again after any change:
# it deploys only what changed. docs/deploy.md says what each setting does.
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
host's default).

COMPONENT_MODE (pinned, the default, or hot-swap; BFF_COMPONENT_MODE, BACKEND1_COMPONENT_MODE,
BACKEND2_COMPONENT_MODE per service) chooses whether a service's task definition names its
component's SHA-256 (a new component is an ECS deployment) or its hosts follow the object in
the bucket. CERTIFICATE_ARN serves HTTPS; COMPONENT_DEPLOYER_ARN names who may write
components (default: the caller); *_IMAGE_DIGEST pin the sidecar images by digest." "$@"
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
deployer=$(deployer_arn)
say "components may be written by $deployer only (the bucket policy)"
deploy_stack templates/1-svc-base.yml "$PREFIX-svc-base-stack" \
  "AppId=$APP_ID" "EnvId=$ENV_ID" "LogRetentionDays=$LOG_RETENTION_DAYS" \
  "CertificateArn=$CERTIFICATE_ARN" "ComponentDeployerArn=$deployer"

say "building, checking and uploading the components"
bucket=$(export_value components-bucket-name)
# shellcheck disable=SC2086 # the names are words without spaces
build_service_components $COMPONENTS
# Each service's component key and, pinned, its hash: "ComponentKey=... ComponentSha256=...".
component_parameters() {
  local file hash="" key
  file=$(service_component_file "$1")
  if [ "$(service_component_mode "$1")" = pinned ]; then
    hash=$(component_file_sha256 "$file")
  fi
  key=$(component_key "$1" "$hash")
  check_and_upload_component "$file" "$bucket" "$key" >&2
  printf 'ComponentKey=%s ComponentSha256=%s' "$key" "$hash"
}
bff_component=$(component_parameters bff)
backend1_component=$(component_parameters backend1)
backend2_component=$(component_parameters backend2)

# Images are tagged with a hash of their build context as it is on disk, so an unchanged image
# is not rebuilt and any change (committed or not) is.
# The repositories' tags are immutable, and the task definitions name each image by the digest
# ECR gives it, read back here: a task started later runs the same image.
registry="$account.dkr.ecr.$AWS_REGION.amazonaws.com"
# The docker platform of this machine's CPU (linux/amd64 or linux/arm64), as DOCKER_PLATFORM
# spells it.
native_docker_platform() {
  case "$(uname -m)" in
    x86_64 | amd64) echo linux/amd64 ;;
    aarch64 | arm64) echo linux/arm64 ;;
    *) uname -m ;;
  esac
}

# Prints the digest of $1:$2, built from Dockerfile $3 and context $4 and pushed unless there.
push_image() {
  local repository=$1
  local tag=$2
  local dockerfile=$3
  local context=$4
  local digest
  if digest=$(probe ecr describe-images --repository-name "$repository" --image-ids "imageTag=$tag" \
    --query 'imageDetails[0].imageDigest' --output text); then
    say "$repository:$tag is already in ECR ($digest)" >&2
    printf '%s' "$digest"
    return
  fi
  say "building and pushing $repository:$tag" >&2
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run: aws ecr get-login-password | docker login --username AWS --password-stdin %s\n' "$registry" >&2
  else
    aws ecr get-login-password | docker login --username AWS --password-stdin "$registry" >&2
  fi
  # The host's image runs a workload while it builds (profile-guided optimization); under
  # emulation that workload is slow and the pooling allocator's reservations may fail, so a
  # build for another CPU than this machine's is the dist build alone.
  local build_args=()
  if [ "$dockerfile" = host/Dockerfile ] && [ "$(native_docker_platform)" != "$DOCKER_PLATFORM" ]; then
    build_args=(--build-arg PGO=off)
  fi
  run docker build --platform "$DOCKER_PLATFORM" "${build_args[@]}" -f "$dockerfile" \
    -t "$registry/$repository:$tag" "$context" >&2
  run docker push "$registry/$repository:$tag" >&2
  [ "$DRY_RUN" = 0 ] || say "dry run: the digest of $repository:$tag is known after the push; shown as sha256:<64 zeros>" >&2
  query "sha256:$(printf '0%.0s' $(seq 64))" ecr describe-images --repository-name "$repository" \
    --image-ids "imageTag=$tag" --query 'imageDetails[0].imageDigest' --output text
}
architecture=$(printf '%s' "$CPU_ARCHITECTURE" | tr 'A-Z_' 'a-z-')
host_tag="$(context_hash .)-$architecture"
frontend_tag="$(context_hash frontend)-$architecture"
host_digest=$(push_image "$PREFIX-host" "$host_tag" host/Dockerfile .)
frontend_digest=$(push_image "$PREFIX-frontend" "$frontend_tag" frontend/Dockerfile frontend)
say "the tasks run $PREFIX-host@$host_digest ($host_tag) and $PREFIX-frontend@$frontend_digest ($frontend_tag)"

# The sidecar images, by digest where the config gives one (a warning for the one that runs
# otherwise: the others are passed but not started). The settings come from load_config's eval
# of xray-deploy's output, which shellcheck cannot follow (hence SC2153 off for this file).
xray_daemon_image=$(pinned_image "$XRAY_DAEMON_IMAGE" "$XRAY_DAEMON_IMAGE_DIGEST" 2>/dev/null)
cloudwatch_agent_image=$(pinned_image "$CLOUDWATCH_AGENT_IMAGE" "$CLOUDWATCH_AGENT_IMAGE_DIGEST" 2>/dev/null)
adot_collector_image=$(pinned_image "$ADOT_COLLECTOR_IMAGE" "$ADOT_COLLECTOR_IMAGE_DIGEST" 2>/dev/null)
case "$TRACING_SIDECAR" in
  xray-daemon) pinned_image "$XRAY_DAEMON_IMAGE" "$XRAY_DAEMON_IMAGE_DIGEST" >/dev/null ;;
  cloudwatch-agent) pinned_image "$CLOUDWATCH_AGENT_IMAGE" "$CLOUDWATCH_AGENT_IMAGE_DIGEST" >/dev/null ;;
  adot) pinned_image "$ADOT_COLLECTOR_IMAGE" "$ADOT_COLLECTOR_IMAGE_DIGEST" >/dev/null ;;
esac

# Every parameter a template declares is passed, from the config, on every deploy.
scaling="MinTasks=$MIN_TASKS MaxTasks=$MAX_TASKS"
for service in $SERVICES_INSTALL_ORDER; do
  case "$service" in
    frontend) service_parameters="ImageDigest=$frontend_digest RequestsPerTaskPerMinute=$REQUESTS_PER_TASK_PER_MINUTE" ;;
    bff) service_parameters="ImageDigest=$host_digest RequestsPerTaskPerMinute=$REQUESTS_PER_TASK_PER_MINUTE $bff_component" ;;
    backend1) service_parameters="ImageDigest=$host_digest CpuTargetPercent=$BACKEND_CPU_TARGET_PERCENT $backend1_component" ;;
    backend2) service_parameters="ImageDigest=$host_digest CpuTargetPercent=$BACKEND_CPU_TARGET_PERCENT $backend2_component" ;;
  esac
  if [ "$service" != frontend ]; then
    service_parameters="$service_parameters TracingSidecar=$TRACING_SIDECAR XRayDaemonImage=$xray_daemon_image"
    service_parameters="$service_parameters CloudWatchAgentImage=$cloudwatch_agent_image AdotCollectorImage=$adot_collector_image"
    service_parameters="$service_parameters ComponentPollInterval=$COMPONENT_POLL_INTERVAL"
    if [ "$service" = bff ]; then
      service_parameters="$service_parameters MaxInstanceReuseCount=$BFF_MAX_INSTANCE_REUSE_COUNT"
      service_parameters="$service_parameters IncomingTraceHeader=$BFF_INCOMING_TRACE_HEADER"
    else
      service_parameters="$service_parameters MaxInstanceReuseCount=$BACKEND_MAX_INSTANCE_REUSE_COUNT"
    fi
  fi
  # shellcheck disable=SC2086 # the parameters are words without spaces
  deploy_stack "templates/2-svc-$service.yml" "$PREFIX-svc-$service-stack" \
    "AppId=$APP_ID" "EnvId=$ENV_ID" "CpuArchitecture=$CPU_ARCHITECTURE" $scaling $service_parameters
done

say "installed: scripts/get_url.sh prints the application's URL"
