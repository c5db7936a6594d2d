#!/usr/bin/env bash
# Sets up and runs every test: installs what the tests need (the wasm32-wasip2 target, Debian's
# chromium for the page tests, shellcheck, cargo-component, componentize-py, the official X-Ray
# SDKs for Python and Node.js as interop peers), builds the components and the host once (release),
# runs the Rust tests (unit tests and integration tests that run the real host with the real
# components), lints the scripts, checks the Rust dependency tree with cargo deny (licenses,
# bans, sources, and advisories where their database can be fetched: docs/supply-chain.md), and
# checks that scripts/dev.sh serves the application.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

ensure_wasm_target
ensure_debian_packages chromium shellcheck
build_all release
# The Python and JavaScript components (and componentize-py and componentize-js, pinned, on
# first use); the tests would build them when missing, this only makes the first test faster.
scripts/build-components.sh python js
scripts/setup-interop.sh

step "Rust tests"
results=$(mktemp)
# Every crate with tests. The second run below names the same packages, so that cargo unifies
# the same dependency features and builds nothing twice.
packages=(-p xray -p xray-local -p otlp-export -p xray-host-runtime -p xray-host -p xray-fuzzing
  -p xray-platform -p reference-support -p xray-deploy)
cargo test --release "${packages[@]}" 2>&1 | tee "$results"

step "the fault tests against the WASI 0.2 test component built by cargo-component"
ensure_cargo_tool cargo-component "$cargo_component_version" component
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

# The supply chain of the Rust dependency tree, by cargo-deny with deny.toml, for the workspace
# and the fuzz targets' own (docs/supply-chain.md). One deny.toml serves both, so an exception
# that only one of them needs is not reported in the other. Each finding names its crate and
# its line in Cargo.lock; `cargo tree -i <crate>` shows what brings it in (thousands of lines
# of such trees, for the duplicate versions alone, are left out).
deny_passed=0
deny_failed=0
deny_skipped=0
ensure_cargo_tool cargo-deny "$cargo_deny_version" deny
deny_check() {
  local manifest=$1
  shift
  step "cargo deny ($manifest): $*"
  if cargo deny --manifest-path "$manifest" check --hide-inclusion-graph \
    -A license-exception-not-encountered -A license-not-encountered "$@"; then
    echo "cargo deny ($manifest): $* ok"
    deny_passed=$(( deny_passed + 1 ))
  else
    echo "cargo deny ($manifest): $* FAILED" >&2
    deny_failed=$(( deny_failed + 1 ))
  fi
}
for manifest in Cargo.toml fuzz/Cargo.toml; do
  deny_check "$manifest" licenses bans sources
done
# The advisory database (RustSec's) is a git repository that cargo-deny clones from the network;
# where it cannot be reached, the check is not run, and is counted as skipped, never as passed.
step "cargo deny: fetching the advisory database"
if cargo deny fetch db; then
  for manifest in Cargo.toml fuzz/Cargo.toml; do
    deny_check "$manifest" advisories
  done
else
  echo "ADVISORIES NOT CHECKED: the advisory database could not be fetched (see above);" \
    "the advisories check is counted as skipped, not passed"
  deny_skipped=1
fi

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
skipped=""
if [ "$deny_skipped" != 0 ]; then
  skipped=", $deny_skipped skipped"
fi
echo "all: $(( rust_passed + deny_passed + smoke_passed )) passed, $(( deny_failed + smoke_failed )) failed$skipped"
[ "$deny_failed" = 0 ] && [ "$smoke_failed" = 0 ]
