#!/usr/bin/env bash
# Prints the URL of the deployed application (the ALB's DNS name; https with a certificate).
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
# http, or https with a certificate (a base stack from before the certificate setting has no
# such export: http).
scheme=$(export_value alb-scheme)
case "$scheme" in
  https)
    printf 'URL  https://%s\n' "$dns"
    say "the certificate names your domain, not this name: point your domain's DNS at it (a CNAME or a Route 53 alias) and browse to https://YOUR-DOMAIN"
    ;;
  *) printf 'URL  http://%s\n' "$dns" ;;
esac
