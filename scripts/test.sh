#!/usr/bin/env bash
# Sets up and runs every test: installs what the tests need (the wasm32-wasip2 target, Debian's
# chromium for the page tests, shellcheck, cargo-component, componentize-py, the official X-Ray
# SDKs for Python and Node.js as interop peers), builds the components and the host once (release),
# runs the Rust tests (unit tests and integration tests that run the real host with the real
# components), lints the scripts, and checks that scripts/dev.sh serves the application.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_wasm_target
ensure_debian_packages chromium shellcheck
build_all
# The Python and JavaScript components (and componentize-py and componentize-js, pinned, on
# first use); the tests would build them when missing, this only makes the first test faster.
scripts/build-components.sh python js
scripts/setup-interop.sh

step "Rust tests"
results=$(mktemp)
# Every crate with tests. The second run below names the same packages, so that cargo unifies
# the same dependency features and builds nothing twice.
packages=(-p xray -p xray-local -p otlp-export -p xray-host-runtime -p xray-host -p xray-fuzzing
  -p xray-platform -p reference-support)
cargo test --release "${packages[@]}" 2>&1 | tee "$results"

step "the fault tests against the WASI 0.2 test component built by cargo-component"
if ! command -v cargo-component >/dev/null 2>&1; then
  step "installing cargo-component (about 5 minutes, once)"
  cargo install cargo-component --locked
fi
# cargo-component 0.21 cannot componentize WASI 0.3 components (its wit-component predates the
# async ABI that spin-sdk 7 emits), so it builds the WASI 0.2 test component; the others come
# from the plain wasm32-wasip2 build.
cargo component build --release -p test-faults
mixed=target/cargo-component-tests
mkdir -p "$mixed"
cp target/wasm32-wasip2/release/*.wasm "$mixed"/
cp target/wasm32-wasip1/release/test_faults.wasm "$mixed"/
XRAY_HOST_TEST_COMPONENTS=$mixed \
  cargo test --release "${packages[@]}" --test all -- faults:: hardening:: 2>&1 | tee -a "$results"
rust_passed=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$results" | awk '{ n += $1 } END { print n + 0 }')

step "shellcheck"
shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run

# scripts/dev.sh, as a newcomer runs it, with the Rust components and with --polyglot (the
# JavaScript BFF and the Python backends): GET /api/ answers both fields.
smoke() {
  step "scripts/dev.sh${*:+ $*} serves the application on 127.0.0.1:8080"
  local log answer="" ok=0 dev_pid
  log=$(mktemp)
  scripts/dev.sh "$@" >"$log" 2>&1 &
  dev_pid=$!
  if wait_for_port 8080 240; then
    answer=$(curl -fsS --retry 5 --retry-all-errors --retry-delay 2 http://127.0.0.1:8080/api/ || true)
    case "$answer" in
      *'"currentDate":"'*'"currentTime":"'*) ok=1 ;;
    esac
  fi
  kill -TERM "$dev_pid" 2>/dev/null || true
  wait "$dev_pid" 2>/dev/null || true
  if [ "$ok" = 1 ]; then
    echo "dev.sh${*:+ $*} smoke: GET /api/ answered $answer"
    smoke_passed=$(( smoke_passed + 1 ))
  else
    echo "dev.sh${*:+ $*} smoke: GET /api/ did not answer both fields (got: ${answer:-nothing}); its log:" >&2
    cat "$log" >&2
    smoke_failed=$(( smoke_failed + 1 ))
  fi
}
smoke_passed=0
smoke_failed=0
smoke
smoke --polyglot
echo "all: $(( rust_passed + smoke_passed )) passed, $smoke_failed failed"
[ "$smoke_failed" = 0 ]
