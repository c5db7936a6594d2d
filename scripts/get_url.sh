#!/usr/bin/env bash
# Prints the URL of the deployed application (the ALB's DNS name).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/deploy.sh
. scripts/lib/deploy.sh

parse_options "usage: scripts/get_url.sh [--config FILE]

Prints the application's URL from the base stack's exports." "$@"
load_config
[ "$DRY_RUN" = 1 ] || require_tools aws
dns=$(export_value alb-dns-name)
[ -n "$dns" ] || fail "no export $PREFIX-alb-dns-name: is the application installed (scripts/install.sh)?"
printf 'URL  http://%s\n' "$dns"
