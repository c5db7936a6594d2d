#!/usr/bin/env bash
# Installs the peers the integration tests run: the official AWS X-Ray SDKs, Python's (with
# Flask) in a virtual environment and Node's (with Express), the OpenTelemetry Python SDK with
# AWS's X-Ray propagator and id generator (in the same virtual environment), moto's DynamoDB- and
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

ensure_python_env "$dir" "$peers/requirements.txt" \
  "the AWS X-Ray SDK for Python, Flask, moto and the AWS CLI"
ensure_node_packages "$dir" "$peers/package.json" "the AWS X-Ray SDK for Node.js and Express"
