#!/usr/bin/env bash
# deploy/kubernetes/ under `podman kube play` on one machine, without a
# Kubernetes cluster (tools/podkube; what differs from a cluster:
# docs/internals.md, "Kubernetes under podman"). Needs podman and catatonit,
# the base image (deploy/image/make-base.sh podman) and the images
# (`podman-play.sh build`). Run from a checkout with walrus installed:
#   deploy/kubernetes/podman-play.sh build
#   deploy/kubernetes/podman-play.sh test --rounds 3     # up, kill the primary's pod, write through HAProxy, down
#   deploy/kubernetes/podman-play.sh up [--sync] --state /tmp/wk
#   deploy/kubernetes/podman-play.sh run --state /tmp/wk -- walrus drill campaign --rounds 1 --sync --ttl 10 \
#     $(deploy/kubernetes/podman-play.sh addresses --state /tmp/wk) \
#     --hooks deploy/drill-hooks/podman-kube.yaml --hook-var state=/tmp/wk
#   deploy/kubernetes/podman-play.sh down --state /tmp/wk
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 -m walrus_ha.tools.podkube "$@"
