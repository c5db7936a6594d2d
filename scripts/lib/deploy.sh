# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are used by the scripts that source this file
# Shared by the deployment scripts (install.sh, get_url.sh, uninstall.sh, deploy-component.sh):
# options, the config file, running or printing AWS CLI and docker commands. Sourced, not run.
# Bash 3.2 compatible (macOS): no associative arrays, no ${var^}, no mapfile.

DRY_RUN=0
CONFIG_FILE=""
ROLLBACK=0
COMPONENT_FILE=""
# The AWS CLI prints instead of paging (v2 pipes output through `less` otherwise).
export AWS_PAGER=""
SCRIPT_NAME=$(basename "$0")

say() { printf '\033[33m==> %s\033[0m\n' "$*"; }
fail() {
  printf '\033[31m%s: %s\033[0m\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

# Parses --config FILE, --dry-run and --help; $1 is the usage text. Other arguments are left in
# REST_ARGS (space-separated; component names only). --rollback and --file FILE are accepted
# when EXTRA_OPTIONS names them.
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
      --rollback | --file)
        case " ${EXTRA_OPTIONS:-} " in
          *" $1 "*) ;;
          *) fail "unknown option $1 (see --help)" ;;
        esac
        if [ "$1" = --rollback ]; then
          ROLLBACK=1
          shift
        else
          [ $# -ge 2 ] || fail "--file needs a component file"
          COMPONENT_FILE=$2
          shift 2
        fi
        ;;
      -*) fail "unknown option $1 (see --help)" ;;
      *)
        REST_ARGS="$REST_ARGS $1"
        shift
        ;;
    esac
  done
}

# Sources the config file, then has xray-deploy check every value the scripts use and fill in
# the defaults (crates/deploy/src/settings.rs holds the rules; bash keeps the orchestration).
load_config() {
  local root settings
  root=$(cd "$(dirname "$0")/.." && pwd)
  [ -n "$CONFIG_FILE" ] || CONFIG_FILE="$root/envs/default.conf"
  [ -f "$CONFIG_FILE" ] || fail "no config file at $CONFIG_FILE (copy envs/default.conf and pass --config FILE)"
  # Every variable the file sets is exported, so that xray-deploy sees it.
  set -a
  # shellcheck disable=SC1090 # the config file is chosen at run time
  . "$CONFIG_FILE"
  set +a
  settings=$("$(deploy_tool)" settings "$CONFIG_FILE" 2>&1) || fail "$(printf '%s' "$settings" | tr '\n' ';' | sed 's/;/; /g')"
  eval "$settings"
  export AWS_REGION
  # Unset, the CLI's own chain decides (environment variables, SSO, CloudShell, instance roles).
  if [ -n "${AWS_PROFILE:-}" ]; then export AWS_PROFILE; fi
  PREFIX="$APP_ID-$ENV_ID"
  init_aws_errors
  say "APP_ID=$APP_ID ENV_ID=$ENV_ID AWS_PROFILE=${AWS_PROFILE:-unset} AWS_REGION=$AWS_REGION$( [ "$DRY_RUN" = 1 ] && printf ' (dry run)')"
}

# The xray-deploy tool (crates/deploy): $XRAY_DEPLOY_BIN, else this checkout's release build,
# built now (seconds: it has none of the host's dependencies), where cargo puts it
# ($CARGO_TARGET_DIR, if set). Needed in a dry run too: it checks the settings.
deploy_tool() {
  if [ -n "${XRAY_DEPLOY_BIN:-}" ]; then
    printf '%s' "$XRAY_DEPLOY_BIN"
    return
  fi
  command -v cargo >/dev/null 2>&1 || fail "cargo is not installed; the scripts build their settings checker with it (install Rust with rustup)"
  cargo build --release --quiet -p xray-deploy >&2 || fail "building xray-deploy (crates/deploy) failed"
  printf '%s' "${CARGO_TARGET_DIR:-target}/release/xray-deploy"
}

# A file for the AWS CLI's error messages, removed when the script exits.
init_aws_errors() {
  AWS_ERRORS=$(mktemp "${TMPDIR:-/tmp}/xray-deploy.XXXXXX")
  trap 'rm -f "$AWS_ERRORS"' EXIT
}

# Fails with the AWS CLI's message for "aws $*", and a hint when it is about credentials.
fail_aws() {
  local message hint=""
  message=$(tr '\n' ' ' <"$AWS_ERRORS")
  if grep -Eqi 'credential|expired|security token|sso|AccessDenied|not authorized|UnrecognizedClient' "$AWS_ERRORS"; then
    hint=" (check your credentials: AWS_PROFILE, 'aws sso login', or the environment's role)"
  elif grep -Eqi 'could not connect|endpoint' "$AWS_ERRORS"; then
    hint=" (check AWS_REGION and the network)"
  fi
  fail "aws $* failed: ${message:-no message}$hint"
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
# dry run (no credentials needed to see the plan). Otherwise a failure stops the script with
# the CLI's own message.
query() {
  local fallback=$1 output
  shift
  if output=$(aws "$@" 2>"$AWS_ERRORS"); then
    printf '%s' "$output"
  elif [ "$DRY_RUN" = 1 ]; then
    printf '%s' "$fallback"
  else
    fail_aws "$@"
  fi
}

# Asks whether something exists (also in a dry run): prints the CLI's output and returns 0, or
# returns 1 when the CLI fails, its message left in $AWS_ERRORS for the caller. Failures about
# credentials stop the script (outside a dry run) instead of reading as "does not exist".
probe() {
  if aws "$@" 2>"$AWS_ERRORS"; then
    return 0
  fi
  if [ "$DRY_RUN" = 0 ] && grep -Eqi 'credential|expired|security token|AccessDenied|not authorized|UnrecognizedClient|could not connect' "$AWS_ERRORS"; then
    fail_aws "$@"
  fi
  return 1
}

# Runs a command that deletes something; an error matching the pattern $1 (the thing is already
# gone) counts as done, so that every step can be run again after a partial run.
run_unless_gone() {
  local gone=$1
  shift
  if [ "$DRY_RUN" = 1 ]; then
    run "$@"
    return
  fi
  if "$@" >/dev/null 2>"$AWS_ERRORS"; then
    return 0
  fi
  if grep -Eq "$gone" "$AWS_ERRORS"; then
    say "already gone: $(tr '\n' ' ' <"$AWS_ERRORS")"
    return 0
  fi
  shift
  fail_aws "$@"
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

# Deletes one stack and waits for it (a stack that does not exist counts as deleted).
delete_stack() {
  say "deleting $1"
  run aws cloudformation delete-stack --stack-name "$1"
  run aws cloudformation wait stack-delete-complete --stack-name "$1" \
    || fail "$1 could not be deleted: its events say why (aws cloudformation describe-stack-events --stack-name $1); fix that and run this script again"
}

# The components, and the service stacks in install order (backends first, so their Service
# Connect names exist before the BFF starts).
COMPONENTS="bff backend1 backend2"
SERVICES_INSTALL_ORDER="backend2 backend1 bff frontend"
SERVICES_UNINSTALL_ORDER="frontend bff backend1 backend2"

# A SHA-256 of standard input, hex (sha256sum on Linux, shasum on macOS).
sha256() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum | cut -d' ' -f1
  else
    shasum -a 256 | cut -d' ' -f1
  fi
}

# The MD5 of a file, hex: the ETag S3 gives an object uploaded in one part.
file_md5() {
  if command -v md5sum >/dev/null 2>&1; then
    md5sum "$1" | cut -d' ' -f1
  elif command -v md5 >/dev/null 2>&1; then
    md5 -q "$1"
  else
    openssl md5 -r "$1" | cut -d' ' -f1
  fi
}

# A short hash of a docker build context ($1) as docker sees it: the name and content of every
# file in it, less what its .dockerignore leaves out, from the working tree as it is (unstaged
# and untracked files included; no git needed). An image tag made of it changes exactly when
# what would be built changes (crates/deploy/src/context.rs).
context_hash() {
  "$(deploy_tool)" context-hash "$1" || fail "cannot hash the build context $1"
}

# The xray-host binary that checks components: $XRAY_HOST_BIN, else this checkout's release
# build (built now outside a dry run), where cargo puts it ($CARGO_TARGET_DIR, if set).
host_binary() {
  if [ -n "${XRAY_HOST_BIN:-}" ]; then
    printf '%s' "$XRAY_HOST_BIN"
    return
  fi
  if [ "$DRY_RUN" = 0 ]; then
    say "building xray-host (it checks each component before the upload)" >&2
    cargo build --release -p xray-host >&2 || fail "building xray-host failed"
  fi
  printf '%s' "${CARGO_TARGET_DIR:-target}/release/xray-host"
}

# The language service $1 (bff, backend1, backend2) is built from, as the config says.
service_language() {
  case "$1" in
    bff) printf '%s' "$BFF_LANGUAGE" ;;
    *) printf '%s' "$BACKEND_LANGUAGE" ;;
  esac
}

# The component file scripts/build-components.sh makes for service $1 in its language: the
# Rust crate's <name>.wasm, or <name>-py.wasm, <name>-js.wasm (in $CARGO_TARGET_DIR, if set,
# where cargo and the build scripts put them).
service_component_file() {
  local dir="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release"
  case "$(service_language "$1")" in
    rust) printf '%s/%s.wasm' "$dir" "$1" ;;
    python) printf '%s/%s-py.wasm' "$dir" "$1" ;;
    javascript) printf '%s/%s-js.wasm' "$dir" "$1" ;;
  esac
}

# The tools the components of the services $@ need to build, beyond cargo (which every build
# needs: the Python build reads the WASI WIT through `cargo metadata`).
component_build_tools() {
  local service tools=""
  for service in "$@"; do
    case "$(service_language "$service")" in
      python) tools="$tools python3" ;;
      javascript) tools="$tools npm" ;;
    esac
  done
  printf '%s' "$tools"
}

# Builds the components of the services $@ in their languages, each language once, through
# scripts/build-components.sh (which installs the pinned toolchains on first use).
build_service_components() {
  local service language languages=""
  for service in "$@"; do
    language=$(service_language "$service")
    [ "$language" != javascript ] || language=js
    case " $languages " in
      *" $language "*) ;;
      *) languages="$languages $language" ;;
    esac
  done
  # shellcheck disable=SC2086 # one word per language
  run scripts/build-components.sh $languages
}

# Checks the component file $1 with `xray-host check` (what the hosts do before they serve
# it), then uploads it as s3://$2/$3 unless that object already has this content. A component
# the hosts would refuse never becomes the current object (the next task start would fail).
check_and_upload_component() {
  local file=$1 bucket=$2 key=$3 host etag
  host=$(host_binary)
  if [ "$DRY_RUN" = 1 ]; then
    run "$host" check "$file"
  else
    "$host" check "$file" || fail "$file cannot be served (above); nothing was uploaded"
  fi
  if [ -f "$file" ] && etag=$(probe s3api head-object --bucket "$bucket" --key "$key" --query ETag --output text) \
    && [ "$etag" = "\"$(file_md5 "$file")\"" ]; then
    say "s3://$bucket/$key already has this version"
    return
  fi
  run aws s3 cp "$file" "s3://$bucket/$key" --content-type application/wasm
}

# The component mode of service $1 (bff, backend1, backend2): pinned or hot-swap.
service_component_mode() {
  case "$1" in
    bff) printf '%s' "$BFF_COMPONENT_MODE" ;;
    backend1) printf '%s' "$BACKEND1_COMPONENT_MODE" ;;
    backend2) printf '%s' "$BACKEND2_COMPONENT_MODE" ;;
  esac
}

# The SHA-256 of file $1, hex.
file_sha256() {
  sha256 <"$1"
}

# The bucket key of service $1's component: <service>.wasm (hot swap), or the content-addressed
# <service>/sha256-<hex $2>.wasm (pinned), which an older task definition revision still finds
# after any number of later deployments.
component_key() {
  if [ "$(service_component_mode "$1")" = pinned ]; then
    printf '%s/sha256-%s.wasm' "$1" "$2"
  else
    printf '%s.wasm' "$1"
  fi
}

# The principal the bucket policy lets write components, as aws:PrincipalArn names it:
# COMPONENT_DEPLOYER_ARN, else the caller's own. An assumed-role session
# (arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION) becomes its role's ARN, path included (IAM
# SSO roles live under a path), read from IAM; without iam:GetRole, arn:aws:iam::ACCOUNT:role/NAME
# with a warning.
deployer_arn() {
  local caller partition account role arn
  if [ -n "$COMPONENT_DEPLOYER_ARN" ]; then
    printf '%s' "$COMPONENT_DEPLOYER_ARN"
    return
  fi
  caller=$(query "arn:aws:iam::123456789012:role/deployer" sts get-caller-identity --query Arn --output text)
  case "$caller" in
    arn:*:sts::*:assumed-role/*/*)
      partition=$(printf '%s' "$caller" | cut -d: -f2)
      account=$(printf '%s' "$caller" | cut -d: -f5)
      role=${caller#*:assumed-role/}
      role=${role%%/*}
      if arn=$(probe iam get-role --role-name "$role" --query Role.Arn --output text) && [ -n "$arn" ]; then
        printf '%s' "$arn"
      else
        say "cannot read the role $role from IAM: the bucket policy names arn:$partition:iam::$account:role/$role; set COMPONENT_DEPLOYER_ARN if the role has a path" >&2
        printf 'arn:%s:iam::%s:role/%s' "$partition" "$account" "$role"
      fi
      ;;
    *) printf '%s' "$caller" ;;
  esac
}

# The image reference a task definition gets for image $1 (repository:tag) and digest $2: the
# repository at the digest, or (no digest) the tag, with a warning: a tag can be moved.
pinned_image() {
  local image=$1 digest=$2 repository=$1
  if [ -n "$digest" ]; then
    case "${image##*/}" in
      *:*) repository=${image%:*} ;;
    esac
    printf '%s@%s' "$repository" "$digest"
  else
    say "WARNING: $image is pinned by tag only (a tag can be moved); set its *_IMAGE_DIGEST in the config (docs/deploy.md)" >&2
    printf '%s' "$image"
  fi
}

# The parameters stack $1 has now, one "Key<TAB>Value" line each. In a dry run without the
# stack, the names template $2 declares, with empty values.
stack_parameters() {
  local fallback
  fallback=$(awk '/^[A-Za-z]/ { inside = ($0 == "Parameters:") } inside && /^  [A-Za-z0-9]+:$/ { sub(/^  /, ""); sub(/:$/, ""); print $0 "\t" }' "$2")
  query "$fallback" cloudformation describe-stacks --stack-name "$1" \
    --query 'Stacks[0].Parameters[].[ParameterKey, ParameterValue]' --output text
}

# Points service $1's stack at the component key $2 with hash $3, every other parameter and the
# template as they are: a new task definition revision, rolled out by ECS (circuit breaker and
# rollback on), waited for.
deploy_component_pin() {
  local service=$1 key=$2 hash=$3 stack="$PREFIX-svc-$1-stack" parameter
  set -- ParameterKey=ComponentKey,ParameterValue="$key" ParameterKey=ComponentSha256,ParameterValue="$hash"
  for parameter in $(stack_parameters "$stack" "templates/2-svc-$service.yml" | cut -f1); do
    case "$parameter" in
      ComponentKey | ComponentSha256) ;;
      *) set -- "$@" ParameterKey="$parameter",UsePreviousValue=true ;;
    esac
  done
  say "deploying $service's component sha256:$hash: a new task definition revision of $stack"
  run aws cloudformation update-stack --stack-name "$stack" --use-previous-template \
    --capabilities CAPABILITY_NAMED_IAM --parameters "$@"
  run aws cloudformation wait stack-update-complete --stack-name "$stack" \
    || fail "$stack did not update: its events say why (aws cloudformation describe-stack-events --stack-name $stack); a deployment whose tasks failed was rolled back by ECS and the stack to its previous component"
  say "$service serves sha256:$hash"
}

# The SHA-256 of component file $1; in a dry run where it is not built yet, 64 zeros (said).
component_file_sha256() {
  if [ -f "$1" ]; then
    file_sha256 "$1"
  elif [ "$DRY_RUN" = 1 ]; then
    say "dry run: $1 is not built, so its SHA-256 is shown as 64 zeros" >&2
    printf '0%.0s' $(seq 64)
  else
    fail "$1 does not exist"
  fi
}
