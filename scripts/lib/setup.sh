# shellcheck shell=bash
# Shared set-up for the scripts: sourced, not run. Works on bash 3.2 and later.

# Prints a step.
step() {
  printf '==> %s\n' "$*"
}

# Makes sure the Rust toolchain and targets that rust-toolchain.toml names are installed.
# rustup installs them on first use by itself, except where RUSTUP_AUTO_INSTALL=0 (as on the CI
# machines), so this asks for them: `rustup toolchain install` with no name reads the file.
ensure_wasm_target() {
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs) first" >&2
    exit 1
  fi
  local installed
  installed=$(rustup target list --installed 2>/dev/null || true)
  if printf '%s\n' "$installed" | grep -qx 'wasm32-wasip2' &&
    printf '%s\n' "$installed" | grep -qx 'wasm32-wasip1'; then
    return 0
  fi
  step "installing the Rust toolchain and targets named in rust-toolchain.toml"
  if ! rustup toolchain install; then
    local channel
    channel=$(sed -n 's/^channel = "\(.*\)"$/\1/p' rust-toolchain.toml)
    echo "error: rustup could not install the toolchain rust-toolchain.toml names ($channel)" \
      "with its targets; docs/supply-chain.md says what to do when it cannot be downloaded" >&2
    exit 1
  fi
}

# Installs the cargo subcommand `cargo $3` from the crate $1 at version $2 (--locked: with the
# dependency versions of the crate's own Cargo.lock) unless that version is already installed.
ensure_cargo_tool() {
  if cargo "$3" --version 2>/dev/null | grep -qw -- "$2"; then
    return 0
  fi
  step "installing $1 $2 (built from source, several minutes, once)"
  cargo install "$1" --locked --version "$2"
}

# The versions of the cargo tools the scripts install (docs/supply-chain.md: how to move one),
# read by the scripts that source this file.
# shellcheck disable=SC2034
cargo_component_version=0.21.1
# shellcheck disable=SC2034
cargo_deny_version=0.20.2
# shellcheck disable=SC2034
cargo_fuzz_version=0.13.2

# Builds the components and the host, release, into the shared target directory.
# The components (release) and the host in profile $1 (release unless given; `dist` for the
# binary that is shipped and measured, in target/dist).
build_all() {
  local profile=${1:-release}
  step "building the components (wasm32-wasip2)"
  cargo build --release --target wasm32-wasip2
  step "building the host ($profile)"
  cargo build --profile "$profile" -p xray-host
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

# Starts, in the background, a UDP socket on 127.0.0.1:$1 that reads and discards: the X-Ray
# daemon stand-in of the benchmarks (python3, standard library only). Its pid is in $!.
start_udp_sink() {
  python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', $1))
while True:
    s.recv(65536)
" &
}

# Builds backend 2 with --features standalone (WASI imports only, so other hosts can serve it)
# into target/bench/backend2-standalone.wasm, then the shipped backend 2 again.
build_standalone_backend2() {
  step "building backend 2's standalone build (WASI imports only)"
  mkdir -p target/bench
  cargo build --release --target wasm32-wasip2 -p backend2 --features standalone
  cp target/wasm32-wasip2/release/backend2.wasm target/bench/backend2-standalone.wasm
  cargo build --release --target wasm32-wasip2 -p backend2
}

# Makes the Python virtual environment $1/venv hold the packages of the requirements file $2
# ("$3" is what to call them in the log): a file made from its .in beside it, which pins every
# package, dependencies included, with the hashes pip checks each download against
# (docs/supply-chain.md). Does nothing when the environment was made from the same file.
ensure_python_env() {
  base_dir=$1
  env_dir=$1/venv
  requirements=$2
  what=$3
  # The venv's own path is part of what it was made for: its scripts name their interpreter by
  # absolute path, so a venv whose directory moved (a renamed checkout) has scripts that cannot
  # run. It is made at its physical path, the same through any symlink to it.
  mkdir -p "$base_dir"
  made_at=$(cd "$base_dir" && pwd -P)/venv
  wanted=$(cat "$requirements"; printf '%s\n' "# made at $made_at")
  if [ -x "$env_dir/bin/python" ] && [ "$wanted" = "$(cat "$env_dir/requirements.txt" 2>/dev/null)" ]; then
    return 0
  fi
  step "installing $what"
  python3 -m venv --clear "$made_at"
  "$env_dir/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$requirements"
  printf '%s\n' "$wanted" >"$env_dir/requirements.txt"
}

# Installs the npm packages of the package.json $2 into $1/node, exactly as the package-lock.json
# beside it locks them (`npm ci`: every package at its locked version, checked against its
# integrity hash) ("$3" is what to call them in the log). Does nothing when they were installed
# from the same two files; a copy of both, written last, marks a finished install.
ensure_node_packages() {
  lock=$(dirname "$2")/package-lock.json
  stamp=$1/node/node_modules/.installed-from
  wanted=$(cat "$2" "$lock")
  if [ "$wanted" = "$(cat "$stamp" 2>/dev/null)" ]; then
    return 0
  fi
  step "installing $3"
  mkdir -p "$1/node"
  cp "$2" "$1/node/package.json"
  cp "$lock" "$1/node/package-lock.json"
  (cd "$1/node" && npm ci --silent --no-audit --no-fund)
  printf '%s\n' "$wanted" >"$stamp"
}

# Prints the manifest of the reference application in one process (`xray-host run`): the
# frontend on 127.0.0.1:$1 routing /api to the BFF, the backends on the next two ports, with
# RECORD_LAST_ACCESS=$2 (on or off), the components from target/wasm32-wasip2/release.
one_process_manifest() {
  local port=$1 record=$2 wasm=$PWD/target/wasm32-wasip2/release
  cat <<EOF
[[service]]
name = "BFF"
component = "$wasm/bff.wasm"
env = { BACKEND_1_URL = "http://127.0.0.1:$((port + 1))", BACKEND_2_URL = "http://127.0.0.1:$((port + 2))" }
allow_outbound = ["http://127.0.0.1:$((port + 1))", "http://127.0.0.1:$((port + 2))"]

[[service]]
name = "Backend #1"
component = "$wasm/backend1.wasm"
listen = "127.0.0.1:$((port + 1))"
env = { RECORD_LAST_ACCESS = "$record" }

[[service]]
name = "Backend #2"
component = "$wasm/backend2.wasm"
listen = "127.0.0.1:$((port + 2))"
env = { RECORD_LAST_ACCESS = "$record" }

[frontend]
listen = "127.0.0.1:$port"
dir = "$PWD/frontend"
routes = { "/api" = "BFF" }
EOF
}
