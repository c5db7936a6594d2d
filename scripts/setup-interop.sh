#!/usr/bin/env bash
# Installs the peers the integration tests run: the official AWS X-Ray SDKs, Python's (with
# Flask) in a virtual environment and Node's (with Express), moto's DynamoDB- and
# S3-compatible server and the AWS CLI (in the same virtual environment), all under
# .local/interop.
# Idempotent: does nothing when they are already installed. The host's interop tests run it
# themselves when needed; scripts/test.sh runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
. scripts/lib/setup.sh

dir=.local/interop
peers=host/tests/peers
mkdir -p "$dir"

if [ ! -x "$dir/venv/bin/python" ] || ! cmp -s "$peers/requirements.txt" "$dir/venv/requirements.txt"; then
  step "installing the AWS X-Ray SDK for Python, Flask, moto and the AWS CLI"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$peers/requirements.txt"
  cp "$peers/requirements.txt" "$dir/venv/requirements.txt"
fi

if [ ! -d "$dir/node/node_modules/aws-xray-sdk" ] || ! cmp -s "$peers/package.json" "$dir/node/package.json"; then
  step "installing the AWS X-Ray SDK for Node.js and Express"
  mkdir -p "$dir/node"
  cp "$peers/package.json" "$dir/node/package.json"
  (cd "$dir/node" && npm install --silent --no-audit --no-fund)
fi
