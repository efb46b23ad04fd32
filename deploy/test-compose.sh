#!/usr/bin/env bash
# The real container test (tools/compose_failover.py): build the images,
# bring deploy/compose/ up, docker kill the primary's container while a
# client writes through HAProxy, measure kill -> first acknowledged write,
# and tear everything down (down -v). Needs dockerd (or podman), a compose
# CLI and the base image (deploy/image/make-base.sh). Run from a checkout
# with walrus installed (pip install -e .):
#   deploy/test-compose.sh [--rounds 3] [--runtime podman] [--no-build] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m walrus_ha.tools.compose_failover "$@"
