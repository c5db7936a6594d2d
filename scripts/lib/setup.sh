# shellcheck shell=bash
# Shared set-up for the scripts: sourced, not run. Works on bash 3.2 and later.

# Prints a step.
step() {
  printf '==> %s\n' "$*"
}

# Adds the wasm32-wasip2 target to the Rust toolchain if it is missing.
ensure_wasm_target() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  if ! rustup target list --installed 2>/dev/null | grep -qx 'wasm32-wasip2'; then
    step "adding the wasm32-wasip2 target to the Rust toolchain"
    rustup target add wasm32-wasip2
  fi
}

# Builds the components and the host, release, into the shared target directory.
build_all() {
  step "building the components (wasm32-wasip2)"
  cargo build --release --target wasm32-wasip2
  step "building the host"
  cargo build --release -p xray-host
}

# Installs Debian packages that are missing (needs root or sudo).
ensure_debian_packages() {
  missing=""
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing="$missing $package"
  done
  [ -z "$missing" ] && return 0
  sudo_cmd=""
  if [ "$(id -u)" != "0" ]; then
    sudo_cmd="sudo"
  fi
  step "installing Debian packages:$missing"
  # shellcheck disable=SC2086 # the list is meant to split into words
  $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $missing
}

# Waits until something accepts TCP connections on 127.0.0.1:$1, for up to $2 seconds.
wait_for_port() {
  port=$1
  tries=$(( $2 * 10 ))
  while [ "$tries" -gt 0 ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
    tries=$(( tries - 1 ))
  done
  return 1
}
