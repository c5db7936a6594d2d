# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are used by the scripts that source this file
# Shared by the deployment scripts (install.sh, get_url.sh, uninstall.sh, deploy-component.sh):
# options, the config file, running or printing AWS CLI and docker commands. Sourced, not run.
# Bash 3.2 compatible (macOS): no associative arrays, no ${var^}, no mapfile.

DRY_RUN=0
CONFIG_FILE=""
SCRIPT_NAME=$(basename "$0")

say() { printf '\033[33m==> %s\033[0m\n' "$*"; }
fail() {
  printf '\033[31m%s: %s\033[0m\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# Parses --config FILE, --dry-run and --help; $1 is the usage text. Other arguments are left in
# REST_ARGS (space-separated; component names only).
parse_options() {
  local usage=$1
  shift
  REST_ARGS=""
  while [ $# -gt 0 ]; do
    case "$1" in
      -h | --help)
        printf '%s\n' "$usage"
        exit 0
        ;;
      --config)
        [ $# -ge 2 ] || fail "--config needs a file"
        CONFIG_FILE=$2
        shift 2
        ;;
      --dry-run)
        DRY_RUN=1
        shift
        ;;
      -*) fail "unknown option $1 (see --help)" ;;
      *)
        REST_ARGS="$REST_ARGS $1"
        shift
        ;;
    esac
  done
}

# Sources the config file and checks every value the scripts use.
load_config() {
  local root config_key config_value
  root=$(cd "$(dirname "$0")/.." && pwd)
  [ -n "$CONFIG_FILE" ] || CONFIG_FILE="$root/envs/default.conf"
  [ -f "$CONFIG_FILE" ] || fail "no config file at $CONFIG_FILE (copy envs/default.conf and pass --config FILE)"
  # shellcheck disable=SC1090 # the config file is chosen at run time
  . "$CONFIG_FILE"
  for config_key in APP_ID ENV_ID AWS_REGION VPC_CIDR PUBLIC_SUBNET_1_CIDR PUBLIC_SUBNET_2_CIDR \
    PRIVATE_SUBNET_1_CIDR PRIVATE_SUBNET_2_CIDR; do
    eval "config_value=\${$config_key:-}"
    [ -n "$config_value" ] || fail "$config_key is not set in $CONFIG_FILE"
  done
  printf '%s' "$APP_ID" | grep -Eq '^[a-z0-9-]{1,8}$' || fail "APP_ID must be 1 to 8 characters of a-z, 0-9 and -"
  printf '%s' "$ENV_ID" | grep -Eq '^[a-z0-9-]{1,4}$' || fail "ENV_ID must be 1 to 4 characters of a-z, 0-9 and -"
  CPU_ARCHITECTURE=${CPU_ARCHITECTURE:-X86_64}
  TRACING_SIDECAR=${TRACING_SIDECAR:-xray-daemon}
  LOG_RETENTION_DAYS=${LOG_RETENTION_DAYS:-30}
  case "$CPU_ARCHITECTURE" in
    X86_64) DOCKER_PLATFORM=linux/amd64 ;;
    ARM64) DOCKER_PLATFORM=linux/arm64 ;;
    *) fail "CPU_ARCHITECTURE must be X86_64 or ARM64" ;;
  esac
  case "$TRACING_SIDECAR" in
    xray-daemon | cloudwatch-agent) ;;
    *) fail "TRACING_SIDECAR must be xray-daemon or cloudwatch-agent" ;;
  esac
  export AWS_REGION
  [ -n "${AWS_PROFILE:-}" ] && export AWS_PROFILE
  PREFIX="$APP_ID-$ENV_ID"
  say "APP_ID=$APP_ID ENV_ID=$ENV_ID AWS_PROFILE=${AWS_PROFILE:-} AWS_REGION=$AWS_REGION$( [ "$DRY_RUN" = 1 ] && printf ' (dry run)')"
}

# Fails unless the named tools are installed (not needed for what a dry run only prints).
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed; it is needed to deploy"
  done
}

# Runs a command that changes something, or prints it in a dry run.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf 'would run:'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# Runs a read-only AWS CLI query (also in a dry run); prints its output, or $1 if it fails in a
# dry run (no credentials needed to see the plan).
query() {
  local fallback=$1 output
  shift
  if output=$(aws "$@" 2>/dev/null); then
    printf '%s' "$output"
  elif [ "$DRY_RUN" = 1 ]; then
    printf '%s' "$fallback"
  else
    fail "aws $* failed: check your credentials (AWS_PROFILE) and region"
  fi
}

# The value of a CloudFormation export of this application ($1 without the prefix).
export_value() {
  query "<$1>" cloudformation list-exports --query "Exports[?Name=='$PREFIX-$1'].Value" --output text
}

# Deploys one stack: $1 template file, $2 stack name, then Key=Value parameter overrides.
deploy_stack() {
  local template=$1 stack=$2
  shift 2
  say "deploying $stack"
  run aws cloudformation deploy --template-file "$template" --stack-name "$stack" \
    --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset \
    --parameter-overrides "$@"
}

# Deletes one stack and waits for it.
delete_stack() {
  say "deleting $1"
  run aws cloudformation delete-stack --stack-name "$1"
  run aws cloudformation wait stack-delete-complete --stack-name "$1"
}

# The components, and the service stacks in install order (backends first, so their Service
# Connect names exist before the BFF starts).
COMPONENTS="bff backend1 backend2"
SERVICES_INSTALL_ORDER="backend2 backend1 bff frontend"
SERVICES_UNINSTALL_ORDER="frontend bff backend1 backend2"
